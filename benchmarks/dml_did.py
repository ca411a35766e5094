"""jaxcausal's difference-in-differences models against DoubleML 0.11 with neural nuisances:
`jc.dml.DID` (two-period panel) and `jc.dml.DIDMulti` (staggered adoption, all group-time cells).

Data (drawn by jaxcausal from keys; the same data sets go to both libraries):
- DID: `make_did_SZ2020` design 1 (Sant'Anna and Zhao 2020), n = 1000 units, ATT theta = 1.
- DIDMulti: `make_did_CS2021` design 1 (Callaway and Sant'Anna 2021), n = 1000 units, 5 periods,
  groups first treated in periods 2, 3, 4 plus never treated: 12 group-time cells with known
  ATT(g, t) = max(t - g + 1, 0); the event-study overall effect is 2.

Learners: jaxcausal `MLP()` / `MLP(classifier=True)` at their defaults, float32, every nuisance
fit of every fold (and cell) in one compiled call. DoubleML (one BLAS thread): random forests
(100 trees, depth 5, leaves of 5: the learners of DoubleML's DID examples) and scikit-learn MLPs
(64, 64) at their defaults. Observational score, in-sample normalisation, trimming 0.01, 5 folds,
1 repetition on both sides.

Reported per model and library: the first call (compilation included; JAX's persistent cache
switched off, import and data drawing excluded), a warm call (second data set, same shapes),
theta and se on data set 0, then a small study over `--n-sims` data sets: bias, RMSE and coverage
of the 95% interval (for DIDMulti averaged over the 12 cells, and for the event-study overall
effect), and seconds per fit.

    python benchmarks/dml_did.py                 # full run, writes results/dml_did.json
    python benchmarks/dml_did.py --quick         # smoke run (small n, 2 data sets)
"""

from __future__ import annotations

import os

os.environ.setdefault("JAXCAUSAL_CACHE", "0")  # first calls compile; nothing read from disk

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

import jaxcausal as jc  # noqa: E402

THETA, N_FOLDS, Z = 1.0, 5, 1.959963984540054


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(jax.tree.leaves(out))
    return out, time.perf_counter() - start


def summarise(thetas, ses, truth):
    """Bias, RMSE and coverage over data sets; `thetas` (n_sims, k), `truth` (k,)."""
    thetas, ses = np.atleast_2d(np.asarray(thetas, float)), np.atleast_2d(np.asarray(ses, float))
    truth = np.broadcast_to(np.asarray(truth, float), thetas.shape[1:])
    err = thetas - truth
    covered = np.abs(err) <= Z * ses
    return {"bias": float(np.mean(err)), "rmse": float(np.sqrt(np.mean(err**2))),
            "coverage": float(np.mean(covered)), "mean_se": float(np.mean(ses))}


# ---------------------------------------------------------------- jaxcausal


def jc_did(datasets, key):
    est = jc.dml.DID(jc.learners.MLP(), jc.learners.MLP(classifier=True), n_folds=N_FOLDS)
    fit = eqx.filter_jit(lambda d, k: est.fit(d, key=k, throw=False))
    return _jc_loop(fit, datasets, key, lambda r: (np.asarray(r.theta), np.asarray(r.se)))


def jc_multi(panels, key):
    est = jc.dml.DIDMulti(jc.learners.MLP(), jc.learners.MLP(classifier=True), n_folds=N_FOLDS)

    def fit(p, k):
        res = est.fit(p, key=k, throw=False)
        overall = res.aggregate(jc.dml.EventStudy()).overall
        return res.theta, res.se, overall.theta, overall.se, res.ok

    fit = eqx.filter_jit(fit)
    return _jc_loop(fit, panels, key, lambda r: (np.asarray(r[0]), np.asarray(r[1]),
                                                 float(r[2][0]), float(r[3][0])))


def _jc_loop(fit, datasets, key, unpack):
    out, times = [], []
    for i, data in enumerate(datasets):
        res, seconds = timed(fit, data, jr.fold_in(key, i))
        out.append(unpack(res))
        times.append(seconds)
    return out, times


# ---------------------------------------------------------------- DoubleML


def forest():
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    kw = dict(n_estimators=100, max_depth=5, min_samples_leaf=5)
    return RandomForestRegressor(**kw), RandomForestClassifier(**kw)


def sk_mlp():
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    return MLPRegressor(hidden_layer_sizes=(64, 64)), MLPClassifier(hidden_layer_sizes=(64, 64))


def dml_did(datasets, make_learners):
    import doubleml

    out, times = [], []
    for i, data in enumerate(datasets):
        np.random.seed(i)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DoubleMLDID's deprecation, MLP convergence
            dd = doubleml.DoubleMLDIDData(data.to_pandas(), "y", "d", list(data.x_names))
            model = doubleml.DoubleMLDID(dd, *make_learners(), n_folds=N_FOLDS)
            model.fit(store_predictions=False)
        times.append(time.perf_counter() - start)
        out.append((model.coef, model.se))
    return out, times


def dml_multi(panels, make_learners):
    import doubleml

    out, times = [], []
    for i, panel in enumerate(panels):
        np.random.seed(i)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dd = doubleml.data.DoubleMLPanelData(panel.to_pandas(), "y", "d", "t", "id",
                                                 list(panel.x_names))
            model = doubleml.did.DoubleMLDIDMulti(dd, *make_learners(), n_folds=N_FOLDS)
            model.fit(store_predictions=False)
            overall = model.aggregate("eventstudy").overall_aggregated_framework
        times.append(time.perf_counter() - start)
        out.append((model.coef, model.se, float(overall.thetas[0]), float(overall.ses[0])))
    return out, times


def run_doubleml(fn, data, make_learners):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return fn(data, make_learners)


# ---------------------------------------------------------------- report


def did_row(library, learners, out, times, n_first):
    thetas = [o[0] for o in out]
    ses = [o[1] for o in out]
    return {"model": "DID", "library": library, "learners": learners,
            "first_call_s": times[0], "warm_call_s": times[1] if len(times) > 1 else None,
            "theta_0": float(np.ravel(thetas[0])[0]), "se_0": float(np.ravel(ses[0])[0]),
            "n_sims": len(out), "s_per_fit": float(np.mean(times[n_first:] or times)),
            **summarise(thetas, ses, THETA)}


def multi_row(library, learners, out, times, cells, n_first):
    truth = [jc.datasets.did_cs2021_att(g, t) for g, _, t in cells]
    cell_stats = summarise([o[0] for o in out], [o[1] for o in out], truth)
    overall = summarise([[o[2]] for o in out], [[o[3]] for o in out], 2.0)
    return {"model": "DIDMulti", "library": library, "learners": learners,
            "first_call_s": times[0], "warm_call_s": times[1] if len(times) > 1 else None,
            "theta_0": out[0][2], "se_0": out[0][3], "n_sims": len(out),
            "s_per_fit": float(np.mean(times[n_first:] or times)),
            **{f"cells_{k}": v for k, v in cell_stats.items()},
            **{f"overall_{k}": v for k, v in overall.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--n-sims", type=int, default=20, help="data sets of each study")
    parser.add_argument("--n-sims-sklearn-mlp", type=int, default=2,
                        help="data sets for DoubleML with scikit-learn MLPs (slow)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["did", "multi", "doubleml", "sklearn-mlp"])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "dml_did.json"))
    args = parser.parse_args()
    if args.quick:
        args.n_obs, args.n_sims, args.n_sims_sklearn_mlp = 300, 2, 1
    key = jr.key(2024)
    n_sims = max(args.n_sims, 2)
    did_data = [jc.datasets.make_did_SZ2020(args.n_obs, key=k, theta=THETA)
                for k in jr.split(jr.fold_in(key, 0), n_sims)]
    panels = [jc.datasets.make_did_CS2021(args.n_obs, key=k)
              for k in jr.split(jr.fold_in(key, 1), n_sims)]
    cells = jc.dml.DIDMulti(None).cells(panels[0])
    rows = []

    def report(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    doubleml = "doubleml" not in args.skip
    sk = doubleml and "sklearn-mlp" not in args.skip
    n_sk = min(args.n_sims_sklearn_mlp, n_sims)
    if "did" not in args.skip:
        out, times = jc_did(did_data, jr.fold_in(key, 2))
        report(did_row("jaxcausal", "MLP", out, times, 1))
        if doubleml:
            out, times = run_doubleml(dml_did, did_data, forest)
            report(did_row("DoubleML", "random forest", out, times, 0))
        if sk:
            out, times = run_doubleml(dml_did, did_data[:n_sk], sk_mlp)
            report(did_row("DoubleML", "sklearn MLP (64, 64)", out, times, 0))
    if "multi" not in args.skip:
        out, times = jc_multi(panels, jr.fold_in(key, 3))
        report(multi_row("jaxcausal", "MLP", out, times, cells, 1))
        if doubleml:
            out, times = run_doubleml(dml_multi, panels, forest)
            report(multi_row("DoubleML", "random forest", out, times, cells, 0))
        if sk:
            out, times = run_doubleml(dml_multi, panels[:n_sk], sk_mlp)
            report(multi_row("DoubleML", "sklearn MLP (64, 64)", out, times, cells, 0))
    result = {
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "jax_device": str(jax.devices()[0]), "x64": bool(jax.config.jax_enable_x64),
        "n_obs": args.n_obs, "n_folds": N_FOLDS, "n_cells": len(cells), "quick": args.quick,
        "rows": rows,
    }
    print_table(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


def print_table(result):
    print(f"\nDID models, n = {result['n_obs']} units, {result['n_folds']} folds, 1 repetition "
          f"({result['jax_device']}); DIDMulti: {result['n_cells']} cells, overall = event study")
    print("| model | library | learners | first call (s) | warm call (s) | s / fit (study) "
          "| theta (data 0) | se | bias | RMSE | coverage | data sets |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["rows"]:
        warm = "–" if r["warm_call_s"] is None else f"{r['warm_call_s']:.1f}"
        stats = "" if r["model"] == "DID" else "overall_"
        print(f"| {r['model']} | {r['library']} | {r['learners']} | {r['first_call_s']:.1f} | "
              f"{warm} | {r['s_per_fit']:.1f} | {r['theta_0']:.3f} | {r['se_0']:.3f} | "
              f"{r[stats + 'bias']:.3f} | {r[stats + 'rmse']:.3f} | {r[stats + 'coverage']:.2f} "
              f"| {r['n_sims']} |")
        if r["model"] == "DIDMulti":
            print(f"|  | (12 cells) | | | | | | | {r['cells_bias']:.3f} | {r['cells_rmse']:.3f} | "
                  f"{r['cells_coverage']:.2f} | |")


if __name__ == "__main__":
    main()
