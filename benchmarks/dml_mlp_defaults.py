"""Evidence for the defaults of `jc.learners.MLP` as DML nuisance learners.

Fits PLR (5 folds) with MLP nuisances built from several candidate settings on data sets from
`make_plr_CCDDHNR2018` (n = 2000, 20 covariates, theta = 0.5) and reports, per setting, the mean
estimate, bias, RMSE, coverage of the 95% interval, the out-of-fold nuisance losses and the time of
the batched fit (all data sets in one `vmap`, compile included).

    python benchmarks/dml_mlp_defaults.py --n-data 32
"""

from __future__ import annotations

import argparse
import json
import time

import equinox as eqx
import jax
import jax.random as jr
import numpy as np

import jaxcausal as jc

CANDIDATES = {
    "old defaults": dict(learning_rate=3e-3, weight_decay=1e-3, max_steps=2000, batch_size=256,
                         patience=20),
    "wd 0.1": dict(learning_rate=3e-3, weight_decay=0.1, max_steps=1000, batch_size=256,
                   patience=20),
    "wd 1": dict(learning_rate=3e-3, weight_decay=1.0, max_steps=1000, batch_size=256,
                 patience=20),
    "lr 1e-2 bs 512 wd 0.1": dict(learning_rate=1e-2, weight_decay=0.1, max_steps=1000,
                                  batch_size=512, patience=20),
    "width 32 wd 0.1": dict(width=32, learning_rate=3e-3, weight_decay=0.1, max_steps=1000,
                            batch_size=256, patience=20),
    "lr 1e-3": dict(learning_rate=1e-3, weight_decay=1e-3, max_steps=2000, batch_size=256,
                    patience=20),
    "full batch lr 1e-2": dict(learning_rate=1e-2, weight_decay=0.1, max_steps=1000,
                               batch_size=None, patience=20),
    "depth 1 wd 0.1": dict(depth=1, learning_rate=3e-3, weight_decay=0.1, max_steps=1000,
                           batch_size=256, patience=20),
    "patience 10 wd 0.1": dict(learning_rate=3e-3, weight_decay=0.1, max_steps=1000,
                               batch_size=256, patience=10),
    "w32 lr 1e-3": dict(width=32, learning_rate=1e-3, weight_decay=1e-3, max_steps=2000,
                        batch_size=256, patience=20),
    "w32 wd 1": dict(width=32, learning_rate=3e-3, weight_decay=1.0, max_steps=1000,
                     batch_size=256, patience=20),
    "w32 full batch lr 1e-2": dict(width=32, learning_rate=1e-2, weight_decay=0.1,
                                   max_steps=1000, batch_size=None, patience=20),
    "w32 lr 1e-3 bs 512": dict(width=32, learning_rate=1e-3, weight_decay=1e-3, max_steps=2000,
                               batch_size=512, patience=20),
    "lr 1e-3 val 0.1": dict(learning_rate=1e-3, weight_decay=0.1, max_steps=2000,
                            batch_size=256, patience=20, val_fraction=0.1),
    "w32 dropout 0.1": dict(width=32, learning_rate=3e-3, weight_decay=0.1, max_steps=1000,
                            batch_size=256, patience=20, dropout=0.1),
    "w32 depth 1 wd 1": dict(width=32, depth=1, learning_rate=3e-3, weight_decay=1.0,
                             max_steps=1000, batch_size=256, patience=20),
    "lr 1e-3 patience 40": dict(learning_rate=1e-3, weight_decay=1e-3, max_steps=3000,
                                batch_size=256, patience=40),
    "w32 lr 1e-3 patience 40": dict(width=32, learning_rate=1e-3, weight_decay=0.1,
                                    max_steps=3000, batch_size=256, patience=40),
}


def run(name, cfg, n_data, n_obs, key):
    mlp = jc.learners.MLP(**cfg)
    est = jc.dml.PLR(mlp, mlp, n_folds=5, n_rep=1)
    k_data, k_fit = jr.split(key)
    data = jax.vmap(
        lambda k: jc.datasets.make_plr_CCDDHNR2018(n_obs=n_obs, dim_x=20, alpha=0.5, key=k)
    )(jr.split(k_data, n_data))
    fit = eqx.filter_jit(eqx.filter_vmap(lambda d, k: est.fit(d, key=k)))
    start = time.perf_counter()
    res = fit(data, jr.split(k_fit, n_data))
    jax.block_until_ready(res.theta_rep)
    seconds = time.perf_counter() - start
    theta, se = np.asarray(res.theta)[:, 0], np.asarray(res.se)[:, 0]
    row = {
        "setting": name, **{k: (v if v is not None else "full") for k, v in cfg.items()},
        "mean": float(theta.mean()), "bias": float(theta.mean() - 0.5),
        "bias_over_se": float((theta.mean() - 0.5) / se.mean()),
        "rmse": float(np.sqrt(np.mean((theta - 0.5) ** 2))), "mean_se": float(se.mean()),
        "coverage": float(np.mean(np.abs(theta - 0.5) <= 1.96 * se)),
        "loss_l": float(res.losses["ml_l"].mean()), "loss_m": float(res.losses["ml_m"].mean()),
        "seconds": seconds,
    }
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-data", type=int, default=32)
    parser.add_argument("--n-obs", type=int, default=2000)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = [run(name, cfg, args.n_data, args.n_obs, jr.key(2024))
            for name, cfg in CANDIDATES.items() if not args.only or name in args.only]
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": str(jax.devices()[0]), "n_data": args.n_data, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
