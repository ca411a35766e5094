"""First and warm call of one DML fit with the default MLP nuisances, each model in a fresh
Python process (compilation included in the first call; persistent cache off).

    JAXCAUSAL_CACHE=0 python benchmarks/dml_first_call_models.py [--models IRM DID DIDCS ...]

n = 1000, 5 folds, 1 repetition, float32, `MLP()` / `MLP(classifier=True)`. Used for the
figures of IRM's and DID's cross-fit layout (`benchmarks/README.md`, dml_models section);
`dml_models.py` and `first_call.py` give the comparisons with DoubleML.
"""

import argparse
import json
import os
import subprocess
import sys
import time

MODELS = ("IRM", "IIVM", "APO", "APOS", "DID", "DIDCS")


def _one(name: str, n: int) -> dict:
    import jax
    import jax.random as jr
    import numpy as np

    import jaxcausal as jc

    mlp, clf = jc.learners.MLP(), jc.learners.MLP(classifier=True)
    k = jr.key(0)
    model, data = {
        "IRM": lambda: (jc.dml.IRM(mlp, clf, n_folds=5),
                        jc.datasets.make_irm_data(n_obs=n, dim_x=10, theta=0.5, key=k)),
        "IIVM": lambda: (jc.dml.IIVM(mlp, clf, clf, n_folds=5),
                         jc.datasets.make_iivm_data(n_obs=n, dim_x=10, theta=0.5, alpha_x=1.0,
                                                    key=k)),
        "APO": lambda: (jc.dml.APO(mlp, clf, treatment_level=1, n_folds=5),
                        jc.datasets.make_apo_data(n_obs=n, dim_x=5, n_levels=3, effect=0.5,
                                                  key=k)),
        "APOS": lambda: (jc.dml.APOS(mlp, clf, treatment_levels=[0, 1, 2], n_folds=5),
                         jc.datasets.make_apo_data(n_obs=n, dim_x=5, n_levels=3, effect=0.5,
                                                   key=k)),
        "DID": lambda: (jc.dml.DID(mlp, clf, n_folds=5),
                        jc.datasets.make_did_SZ2020(n_obs=n, key=k)),
        "DIDCS": lambda: (jc.dml.DIDCS(mlp, clf, n_folds=5),
                          jc.datasets.make_did_SZ2020(n_obs=n, cross_sectional=True, key=k)),
    }[name]()
    start = time.perf_counter()
    res = model.fit(data, key=jr.key(1))
    jax.block_until_ready(res.theta)
    first = time.perf_counter() - start
    start = time.perf_counter()
    res = model.fit(data, key=jr.key(2))
    jax.block_until_ready(res.theta)
    warm = time.perf_counter() - start
    return {"model": name, "n_obs": n, "first_call_s": first, "warm_call_s": warm,
            "theta": np.asarray(res.theta, float).ravel().tolist()}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per model")
    parser.add_argument("--out", default=None, help="JSON file for the rows")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(args.child, args.n_obs)), flush=True)
        return
    env = {**os.environ, "JAXCAUSAL_CACHE": "0"}
    rows = []
    for name in args.models:
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", name,
                                  "--n-obs", str(args.n_obs)], check=True, env=env,
                                 stdout=subprocess.PIPE, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(f"{name}: first {row['first_call_s']:.2f} s, warm {row['warm_call_s']:.2f} s, "
                  f"theta {row['theta']}", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
