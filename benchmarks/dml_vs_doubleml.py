"""jaxcausal.dml against DoubleML 0.11: speed and accuracy of PLR with neural and lasso
nuisances, and a 1000-fit simulation study.

Data: `make_plr_CCDDHNR2018` (n = 2000, 20 covariates, theta = 0.5), 5 folds x 10 repetitions.
The same data sets (drawn by jaxcausal from keys) go to both libraries. DoubleML runs with one BLAS
thread (threadpoolctl), which on the 2-core benchmark machine was as fast or faster than two.

Parts:
1. MLP nuisances: jaxcausal `MLP()` defaults vs scikit-learn
   `MLPRegressor(hidden_layer_sizes=(64, 64))` at its defaults.
   Wall time of the first call (compile included) and of a second call (same shapes), theta and
   se on data set 0, RMSE of theta over several data sets.
2. Lasso nuisances (alpha = 0.05, scikit-learn's objective on both sides): the same, over more
   data sets.
3. Simulation study: 1000 PLR fits (n = 500, 5 folds, 1 repetition) with lasso nuisances through
   `jc.dml.simulate` against DoubleML's loop (DoubleML timed on a measured subset and
   extrapolated); with `--mlp-study` also with MLP nuisances (DoubleML with scikit-learn MLPs
   extrapolated from 5 fits).

    python benchmarks/dml_vs_doubleml.py            # full run, writes results/dml_vs_doubleml.json
    python benchmarks/dml_vs_doubleml.py --quick    # a short smoke run
    python benchmarks/dml_vs_doubleml.py --no-doubleml --out results/dml_vs_doubleml_gpu.json
    # the studies only, with the CPU split into one JAX device per core (replications sharded)
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/dml_vs_doubleml.py \
        --studies-only --mlp-study --out results/dml_study_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import equinox as eqx
import jax
import jax.random as jr
import numpy as np

import jaxcausal as jc

N_OBS, DIM_X, THETA, N_FOLDS = 2000, 20, 0.5, 5


def draw(n_data, n_obs, key):
    keys = jr.split(key, n_data)
    return [jc.datasets.make_plr_CCDDHNR2018(n_obs=n_obs, dim_x=DIM_X, alpha=THETA, key=k)
            for k in keys]


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return out, time.perf_counter() - start


def rmse(thetas):
    thetas = np.asarray(thetas, float)
    return float(np.sqrt(np.mean((thetas - THETA) ** 2)))


def jc_part(name, learner, data, n_rep, key, n_rmse):
    """First call, second call, and RMSE over `n_rmse` data sets (batched with vmap)."""
    est = jc.dml.PLR(learner, learner, n_folds=N_FOLDS, n_rep=n_rep)
    fit = eqx.filter_jit(lambda d, k: est.fit(d, key=k, throw=False))
    first, t_first = timed(fit, data[0], key)
    _, t_second = timed(fit, data[1], jr.fold_in(key, 1))
    batched = eqx.filter_jit(eqx.filter_vmap(lambda d, k: est.fit(d, key=k, throw=False)))
    stacked = jc.CausalData.stack(data[:n_rmse])
    res, t_batch = timed(batched, stacked, jr.split(jr.fold_in(key, 2), n_rmse))
    thetas = np.asarray(res.theta)[:, 0]
    return {
        "library": "jaxcausal", "nuisance": name, "n_rep": n_rep,
        "first_call_s": t_first, "second_call_s": t_second,
        "compile_s_approx": max(t_first - t_second, 0.0),
        "theta": float(first.theta[0]), "se": float(first.se[0]),
        "n_data_rmse": n_rmse, "rmse": rmse(thetas), "mean_theta": float(thetas.mean()),
        "mean_se": float(np.mean(np.asarray(res.se))),
        "batched_s": t_batch, "per_data_set_batched_s": t_batch / n_rmse,
    }


def dml_fit(data, learners, n_rep, seed):
    import doubleml
    from threadpoolctl import threadpool_limits

    np.random.seed(seed)
    dd = doubleml.DoubleMLData(data.to_pandas(), "y", "d", list(data.x_names))
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of MLPRegressor at its defaults
        model = doubleml.DoubleMLPLR(dd, *learners, n_folds=N_FOLDS, n_rep=n_rep)
        model.fit(store_predictions=False)
    return float(model.coef[0]), float(model.se[0])


def dml_part(name, make_learners, data, n_rep, n_rmse):
    thetas, ses, times = [], [], []
    for i in range(n_rmse):
        start = time.perf_counter()
        theta, se = dml_fit(data[i], make_learners(), n_rep, seed=i)
        times.append(time.perf_counter() - start)
        thetas.append(theta)
        ses.append(se)
    return {
        "library": "DoubleML", "nuisance": name, "n_rep": n_rep,
        "first_call_s": times[0], "second_call_s": times[1] if len(times) > 1 else times[0],
        "theta": thetas[0], "se": ses[0], "n_data_rmse": n_rmse, "rmse": rmse(thetas),
        "mean_theta": float(np.mean(thetas)), "mean_se": float(np.mean(ses)),
        "per_data_set_s": float(np.mean(times)),
    }


def study(learner, n_sims, key, batch_size=None):
    """`jc.dml.simulate` of n_sims PLR fits, twice: the first call compiles, the second (new
    data, same shapes) reuses the program."""
    est = jc.dml.PLR(learner, learner, n_folds=N_FOLDS, n_rep=1)

    def dgp(k):
        return jc.datasets.make_plr_CCDDHNR2018(n_obs=500, dim_x=DIM_X, alpha=THETA, key=k)

    times, tables = [], []
    for k in jr.split(key, 2):
        start = time.perf_counter()
        tables.append(jc.dml.simulate(est, dgp, key=k, n_sims=n_sims, truth=THETA,
                                      batch_size=batch_size))
        times.append(time.perf_counter() - start)
    row = tables[0].loc["d"]
    return {"seconds": times[0], "second_call_s": times[1], "n_sims": n_sims,
            "devices": jax.device_count(), "batch_size": batch_size,
            "rmse": float(row["rmse"]), "coverage": float(row["coverage"]),
            "bias_over_se": float(row["bias_over_se"]), "n_failed": int(row["n_failed"]),
            "coverage_second": float(tables[1].loc["d", "coverage"])}


def sk_mlp():
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor(hidden_layer_sizes=(64, 64))


def dml_study(make_learners, n_measured, n_sims, key):
    data = draw(n_measured, 500, key)
    start = time.perf_counter()
    thetas = [dml_fit(d, make_learners(), 1, seed=i)[0] for i, d in enumerate(data)]
    measured = time.perf_counter() - start
    return {"measured_fits": n_measured, "measured_s": measured,
            "seconds_for_n_sims": measured / n_measured * n_sims,
            "extrapolated": n_measured < n_sims, "rmse_measured": rmse(thetas)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--n-data", type=int, default=50, help="data sets for RMSE (lasso)")
    parser.add_argument("--n-data-mlp", type=int, default=10, help="data sets for RMSE (jc MLP)")
    parser.add_argument("--n-data-sklearn-mlp", type=int, default=1)
    parser.add_argument("--n-sims", type=int, default=1000)
    parser.add_argument("--n-sims-doubleml", type=int, default=200,
                        help="DoubleML fits measured in the study (extrapolated to --n-sims)")
    parser.add_argument("--mlp-study", action="store_true", help="also the study with MLPs")
    parser.add_argument("--no-doubleml", action="store_true")
    parser.add_argument("--studies-only", action="store_true",
                        help="only part 3, the simulation studies")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="replications per device at a time in jc.dml.simulate "
                             "(default: its own: 1 on a CPU, all on a GPU)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "dml_vs_doubleml.json"))
    args = parser.parse_args()
    n_rep = 10
    if args.quick:
        args.n_data, args.n_data_mlp, args.n_data_sklearn_mlp = 4, 2, 1
        args.n_sims, args.n_sims_doubleml, n_rep = 50, 10, 2
    key = jr.key(0)
    data = draw(max(args.n_data, args.n_data_mlp, 2), N_OBS, jr.fold_in(key, 0))
    rows = []

    def report(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    if not args.studies_only:
        report(jc_part("MLP", jc.learners.MLP(), data, n_rep, jr.fold_in(key, 1),
                       args.n_data_mlp))
        report(jc_part("lasso", jc.learners.Lasso(alpha=0.05), data, n_rep, jr.fold_in(key, 3),
                       args.n_data))
    if not args.no_doubleml and not args.studies_only:
        from sklearn.linear_model import Lasso

        report(dml_part("lasso", lambda: (Lasso(alpha=0.05), Lasso(alpha=0.05)), data, n_rep,
                        args.n_data))
        report(dml_part("MLP", lambda: (sk_mlp(), sk_mlp()), data, n_rep,
                        args.n_data_sklearn_mlp))
    bs = args.batch_size
    studies = {"lasso": study(jc.learners.Lasso(alpha=0.05), args.n_sims, jr.fold_in(key, 4), bs)}
    print(json.dumps({"study_jaxcausal_lasso": studies["lasso"]}), flush=True)
    if args.mlp_study:
        studies["MLP"] = study(jc.learners.MLP(), args.n_sims, jr.fold_in(key, 5), bs)
        print(json.dumps({"study_jaxcausal_MLP": studies["MLP"]}), flush=True)
    if not args.no_doubleml:
        from sklearn.linear_model import Lasso

        studies["doubleml_lasso"] = dml_study(
            lambda: (Lasso(alpha=0.05), Lasso(alpha=0.05)), args.n_sims_doubleml, args.n_sims,
            jr.fold_in(key, 6))
        print(json.dumps({"study_doubleml_lasso": studies["doubleml_lasso"]}), flush=True)
        studies["doubleml_MLP"] = dml_study(
            lambda: (sk_mlp(), sk_mlp()), 2 if args.quick else 5,
            args.n_sims, jr.fold_in(key, 7))
        print(json.dumps({"study_doubleml_MLP": studies["doubleml_MLP"]}), flush=True)
    result = {
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "jax_device": str(jax.devices()[0]), "x64": bool(jax.config.jax_enable_x64),
        "n_obs": N_OBS, "dim_x": DIM_X, "theta": THETA, "n_folds": N_FOLDS, "n_rep": n_rep,
        "quick": args.quick, "rows": rows, "studies": studies,
    }
    print_table(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


def print_table(result):
    print(f"\nPLR, n={result['n_obs']}, p={result['dim_x']}, {result['n_folds']} folds x "
          f"{result['n_rep']} repetitions ({result['jax_device']})")
    print("| library | nuisances | first call (s) | second call (s) | theta | se "
          "| RMSE (data sets) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in result["rows"]:
        print(f"| {r['library']} | {r['nuisance']} | {r['first_call_s']:.1f} | "
              f"{r['second_call_s']:.1f} | {r['theta']:.3f} | {r['se']:.3f} | "
              f"{r['rmse']:.4f} ({r['n_data_rmse']}) |")
    for name, s in result["studies"].items():
        print(f"study {name}: {json.dumps(s)}")


if __name__ == "__main__":
    main()
