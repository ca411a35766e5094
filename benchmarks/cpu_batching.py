"""How many replications to compute together on a CPU: `jc.dml.simulate(..., batch_size=...)`.

Members of one vmapped batch train in lockstep until the slowest stops early, and a large batch
leaves the CPU caches; on a GPU the batch fills the cores instead. This script times PLR studies
(`make_plr_CCDDHNR2018`, n = 500, 20 covariates, 5 folds) at several batch sizes, each twice (the
first call compiles, the second reuses the program), and a CFR-MMD fit on one IHDP replication.

    taskset -c 0 env XLA_FLAGS=--xla_cpu_multi_thread_eigen=false \\
        python benchmarks/cpu_batching.py --out benchmarks/results/cpu_batching.json
    python benchmarks/cpu_batching.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.random as jr

import jaxcausal as jc


def dgp(k):
    return jc.datasets.make_plr_CCDDHNR2018(n_obs=500, dim_x=20, alpha=0.5, key=k)


def study(learner, n_sims, batch_size):
    est = jc.dml.PLR(learner, learner, n_folds=5)
    times = []
    for k in (jr.key(0), jr.key(1)):
        start = time.perf_counter()
        table = jc.dml.simulate(est, dgp, key=k, n_sims=n_sims, truth=0.5, batch_size=batch_size)
        times.append(time.perf_counter() - start)
    return {"n_sims": n_sims, "batch_size": batch_size, "first_call_s": times[0],
            "second_call_s": times[1], "coverage_second": float(table.loc["d", "coverage"])}


def cfr_fit(max_steps):
    rep = jc.datasets.ihdp(0, key=jr.key(2017))
    model = jc.te.CFR(ipm=jc.te.MMD(),
                      training=jc.te.Training(max_steps=max_steps, patience=max_steps))
    jax.block_until_ready(model.fit(rep.train, key=jr.key(0)))
    start = time.perf_counter()
    jax.block_until_ready(model.fit(rep.train, key=jr.key(1)))
    return {"max_steps": max_steps, "warm_fit_s": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    n_mlp, n_lasso, steps = (8, 50, 40) if args.quick else (100, 1000, 400)
    rows = []
    for bs in (n_mlp, 10, 1):
        rows.append({"nuisance": "MLP", **study(jc.learners.MLP(), n_mlp, bs)})
        print(json.dumps(rows[-1]), flush=True)
    for bs in (n_lasso, 10, 1):
        rows.append({"nuisance": "lasso", **study(jc.learners.Lasso(alpha=0.05), n_lasso, bs)})
        print(json.dumps(rows[-1]), flush=True)
    cfr = cfr_fit(steps)
    print(json.dumps({"CFR-MMD": cfr}), flush=True)
    result = {"machine": f"{platform.machine()} cpus={os.cpu_count()}",
              "jax": jax.__version__, "device": str(jax.devices()[0]),
              "xla_flags": os.environ.get("XLA_FLAGS", ""), "studies": rows, "cfr_mmd": cfr}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
