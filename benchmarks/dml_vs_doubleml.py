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
    # 4. IRM on earnings data (real-data shaped), first and warm calls, float32 and float64:
    python benchmarks/dml_vs_doubleml.py --irm-only      # writes results/dml_vs_doubleml_irm.json

Part 4, IRM with `Linear` / `Logistic(l2=1)` nuisances against DoubleML with
`LinearRegression()` / `LogisticRegression()` (the same objectives; scikit-learn's default lbfgs
solver, and newton-cholesky), 5 folds x 3 repetitions, on data shaped like the LaLonde NSW-CPS
earnings data (16,177 rows, 1.1 % treated, age, education, four 0/1 indicators, 1974/1975
earnings in dollars with many zeros): a synthetic generator (`lalonde_like`, always) and the real
NSW treated + CPS controls when the `causaldata` package is installed (`pip install causaldata`,
benchmark extra; it ships the data offline). Every (library, precision, data) cell runs in a fresh
process, so "first call" is what a one-off script pays: the first fit in the process, compilation
included (its JAX tracing and XLA compilation times are read from JAX's compile log); "warm" is the
median of 5 further fits (new keys, same shapes). DoubleML runs with one BLAS thread. The
"jaxcausal+cache" row is the same script run a second time with `jc.enable_compilation_cache()`
(the compiled program is loaded from disk; tracing still runs).
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


# ---------------------------------------------------------------------------------------------
# Part 4: IRM on earnings data, one fresh process per cell.

LALONDE_X = ["age", "educ", "black", "hisp", "marr", "nodegree", "re74", "re75"]


def lalonde_like(seed=0, n_treated=185, n_control=15992):
    """A synthetic data set shaped like the LaLonde NSW treated units + CPS controls.

    Group shares and covariate distributions follow the published summaries of the NSW-CPS
    sample (treated: young, 84 % black, mostly without degree, 1974 earnings zero for 71 %;
    controls: CPS men, earnings near 1e4 dollars with about 12 % zeros); earnings are capped at
    the CPS top code (25,862). The outcome (1978 earnings) depends on the covariates, with a
    treatment effect of 1,800 dollars (close to the NSW experimental estimate).
    """
    import pandas as pd

    rng = np.random.default_rng(seed)

    def group(n, age, educ, black, hisp, marr, nodeg, zero74, zero75, mean_earn):
        cap = 25862.0
        earn = [np.where(rng.uniform(size=n) < z, 0.0,
                         np.minimum(rng.gamma(2.0, mean_earn / 2.0, n), cap))
                for z in (zero74, zero75)]
        return pd.DataFrame({
            "age": np.clip(rng.normal(age, 9.0, n).round(), 16, 55),
            "educ": np.clip(rng.normal(educ, 2.8, n).round(), 0, 18),
            "black": rng.binomial(1, black, n).astype(float),
            "hisp": rng.binomial(1, hisp, n).astype(float),
            "marr": rng.binomial(1, marr, n).astype(float),
            "nodegree": rng.binomial(1, nodeg, n).astype(float),
            "re74": earn[0], "re75": earn[1],
        })

    treated = group(n_treated, 25.8, 10.3, 0.84, 0.06, 0.19, 0.71, 0.71, 0.60, 6000.0)
    control = group(n_control, 33.2, 12.0, 0.07, 0.07, 0.71, 0.30, 0.12, 0.11, 15000.0)
    df = pd.concat([treated, control], ignore_index=True)
    df["treat"] = np.r_[np.ones(n_treated), np.zeros(n_control)]
    noise = rng.normal(0.0, 6000.0, len(df))
    df["re78"] = np.maximum(
        0.0, 3000.0 + 0.45 * df.re75 + 0.25 * df.re74 + 250.0 * (df.educ - 12)
        - 40.0 * (df.age - 33) ** 2 / 10 + 1500.0 * df.marr - 800.0 * df.black
        + 1800.0 * df.treat + noise)
    return df[[*LALONDE_X, "re78", "treat"]]


def lalonde_real():
    """NSW treated units and CPS controls from the `causaldata` package (None if missing)."""
    try:
        from causaldata import cps_mixtape, nsw_mixtape
    except ImportError:
        return None
    import pandas as pd

    nsw = nsw_mixtape.load_pandas().data
    cps = cps_mixtape.load_pandas().data
    df = pd.concat([nsw[nsw.treat == 1], cps], ignore_index=True)
    return df[[*LALONDE_X, "re78", "treat"]].astype(float)


def _irm_data(name):
    return lalonde_like() if name == "synthetic" else lalonde_real()


class _CompileLog:
    """Collects JAX's compile-log timings ("Finished tracing ...", "Finished XLA compilation")."""

    def __init__(self):
        import logging
        import re

        self.seconds = {"trace": 0.0, "lower": 0.0, "compile": 0.0}
        self._re = re.compile(r"in ([0-9.eE+-]+) sec")
        outer = self

        class Handler(logging.Handler):
            def emit(self, record):
                msg = record.getMessage()
                m = outer._re.search(msg)
                if not m:
                    return
                if msg.startswith("Finished tracing"):
                    outer.seconds["trace"] += float(m.group(1))
                elif msg.startswith("Finished jaxpr to MLIR"):
                    outer.seconds["lower"] += float(m.group(1))
                elif msg.startswith("Finished XLA compilation"):
                    outer.seconds["compile"] += float(m.group(1))

        self.handler = Handler(logging.DEBUG)
        logging.getLogger("jax").addHandler(self.handler)
        logging.getLogger("jax").setLevel(logging.DEBUG)


def irm_worker(library, precision, data_name, n_warm):
    """One cell of part 4, in its own process: returns a dict with first/warm wall times."""
    df = _irm_data(data_name)
    dtype = np.float64 if precision == 64 else np.float32
    df = df.astype(dtype)
    out = {"library": library, "precision": f"float{precision}", "data": data_name,
           "n_obs": len(df), "treated_share": float(df.treat.mean())}
    if library.startswith("jaxcausal"):
        jax.config.update("jax_enable_x64", precision == 64)
        if library == "jaxcausal+cache":
            jc.enable_compilation_cache(os.environ["IRM_BENCH_CACHE"])
        log = _CompileLog()
        data = jc.CausalData.from_pandas(df, y="re78", t="treat", x=LALONDE_X)
        est = jc.dml.IRM(jc.learners.Linear(), jc.learners.Logistic(l2=1.0), n_folds=5, n_rep=3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with jax.log_compiles():
                start = time.perf_counter()
                res = est.fit(data, key=jr.key(0))
                jax.block_until_ready(res.theta_rep)
                out["first_call_s"] = time.perf_counter() - start
        out["first_call_jax_trace_s"] = log.seconds["trace"]
        out["first_call_jax_lower_s"] = log.seconds["lower"]
        out["first_call_xla_compile_s"] = log.seconds["compile"]
        out["warnings"] = sorted({str(w.message)[:160] for w in caught})
        times = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(n_warm):
                start = time.perf_counter()
                r = est.fit(data, key=jr.key(i + 1))
                jax.block_until_ready(r.theta_rep)
                times.append(time.perf_counter() - start)
        out["dtype"] = res.dtype
    else:
        import doubleml
        from sklearn.linear_model import LinearRegression, LogisticRegression
        from threadpoolctl import threadpool_limits

        solver = library.split(":")[1]
        dd = doubleml.DoubleMLData(df, "re78", "treat", LALONDE_X)

        def fit(seed):
            np.random.seed(seed)
            model = doubleml.DoubleMLIRM(dd, LinearRegression(), LogisticRegression(solver=solver),
                                         n_folds=5, n_rep=3)
            model.fit()
            return model

        with threadpool_limits(1), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            res = fit(0)
            out["first_call_s"] = time.perf_counter() - start
            times = []
            for i in range(n_warm):
                start = time.perf_counter()
                fit(i + 1)
                times.append(time.perf_counter() - start)
        out["warnings"] = sorted({str(w.message)[:160] for w in caught})
    out["warm_s"] = float(np.median(times))
    out["theta"] = float(np.asarray(res.coef if library.startswith("doubleml") else res.theta)[0])
    out["se"] = float(np.asarray(res.se)[0])
    return out


def irm_part(n_warm, quick):
    """Runs every cell of part 4 in a fresh subprocess and collects the rows."""
    import subprocess
    import sys
    import tempfile

    datasets = ["synthetic"] + (["real"] if lalonde_real() is not None else [])
    # jaxcausal cold (no persistent cache: what a first run pays), then a script run a second
    # time with jc.enable_compilation_cache() (the first of the two runs fills the cache).
    libraries = ["jaxcausal", "jaxcausal+cache", "doubleml:lbfgs", "doubleml:newton-cholesky"]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, JAXCAUSAL_CACHE="0", IRM_BENCH_CACHE=cache)
        for data_name in datasets:
            for precision in (32, 64):
                for library in libraries:
                    cmd = [sys.executable, os.path.abspath(__file__), "--irm-worker", library,
                           "--irm-precision", str(precision), "--irm-data", data_name,
                           "--irm-warm", str(n_warm)]
                    runs = 2 if library == "jaxcausal+cache" else 1
                    for _ in range(runs):
                        done = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                              env=env)
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                if quick:
                    break
    return rows


def print_irm_table(rows):
    print("\nIRM, LaLonde-shaped earnings data (n = 16,177, 1.1 % treated, 8 covariates), "
          "5 folds x 3 repetitions")
    print("| data | precision | library | first call (s) | of which XLA compile (s) | warm (s) "
          "| first: DoubleML / jaxcausal | warm: DoubleML / jaxcausal | theta | se |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ours = {(r["data"], r["precision"]): r for r in rows if r["library"] == "jaxcausal"}
    for r in rows:
        jc_row = ours[(r["data"], r["precision"])]
        ratio_first = ratio_warm = ""
        if r["library"].startswith("doubleml"):
            ratio_first = f"{r['first_call_s'] / jc_row['first_call_s']:.1f}x"
            ratio_warm = f"{r['warm_s'] / jc_row['warm_s']:.1f}x"
        comp = r.get("first_call_xla_compile_s")
        print(f"| {r['data']} | {r['precision']} | {r['library']} | {r['first_call_s']:.2f} | "
              f"{'' if comp is None else f'{comp:.2f}'} | {r['warm_s']:.3f} | {ratio_first} | "
              f"{ratio_warm} | {r['theta']:.0f} | {r['se']:.0f} |")


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
    parser.add_argument("--out", default=None,
                        help="JSON output (default results/dml_vs_doubleml.json, or "
                             "results/dml_vs_doubleml_irm.json with --irm-only)")
    parser.add_argument("--irm-only", action="store_true", help="only part 4, the IRM table")
    parser.add_argument("--no-irm", action="store_true", help="skip part 4")
    parser.add_argument("--irm-warm", type=int, default=5, help="warm fits per cell (part 4)")
    parser.add_argument("--irm-worker", help=argparse.SUPPRESS)
    parser.add_argument("--irm-precision", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--irm-data", default="synthetic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.irm_worker:
        print(json.dumps(irm_worker(args.irm_worker, args.irm_precision, args.irm_data,
                                    args.irm_warm)))
        return
    results_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    if args.irm_only:
        rows = irm_part(2 if args.quick else args.irm_warm, args.quick)
        print_irm_table(rows)
        out = args.out or os.path.join(results_dir, "dml_vs_doubleml_irm.json")
        with open(out, "w") as f:
            json.dump({"machine": f"{platform.machine()} {platform.processor()} "
                                  f"cpus={os.cpu_count()}", "jax": jax.__version__,
                       "rows": rows}, f, indent=1)
        return
    args.out = args.out or os.path.join(results_dir, "dml_vs_doubleml.json")
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
    irm_rows = [] if args.no_irm else irm_part(2 if args.quick else args.irm_warm, args.quick)
    result = {
        "irm_rows": irm_rows,
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "jax_device": str(jax.devices()[0]), "x64": bool(jax.config.jax_enable_x64),
        "n_obs": N_OBS, "dim_x": DIM_X, "theta": THETA, "n_folds": N_FOLDS, "n_rep": n_rep,
        "quick": args.quick, "rows": rows, "studies": studies,
    }
    print_table(result)
    if irm_rows:
        print_irm_table(irm_rows)
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
