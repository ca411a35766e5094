"""jaxcausal.dml's newer models against DoubleML 0.11: IIVM (LATE), APO/APOS (potential outcomes of
a discrete treatment), two-way cluster-robust PLR, and the cost of the sensitivity analysis.

Each model runs side by side on a generator with a known effect (jaxcausal.datasets:
`make_iivm_data` LATE = 0.5, `make_apo_data` E[Y(1)] = 0.75, `make_plr_twoway_cluster` theta =
0.5), the same data sets going to both libraries:

- jaxcausal with `MLP()` regressions and `MLP(classifier=True)` propensities, DoubleML with
  scikit-learn `MLPRegressor(hidden_layer_sizes=(64, 64))` / `MLPClassifier` (one BLAS thread);
- first call (compile included) and warm call (new data, same shapes), theta and se on data
  set 0;
- a small coverage study: `jc.dml.simulate` over `--n-sims` data sets, DoubleML's loop over
  `--n-sims-doubleml` (bias, RMSE, coverage of the 95% interval);
- the sensitivity analysis: `res.sensitivity()` (first and warm call) and the fit with and
  without the in-fit sensitivity elements, relative to a warm fit (target: < 10 %).

    python benchmarks/dml_models.py            # full run, writes results/dml_models.json
    python benchmarks/dml_models.py --quick    # a short smoke run (small n, few fits)
    python benchmarks/dml_models.py --no-doubleml --models IIVM APO
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
import warnings

import jax
import jax.random as jr
import numpy as np

import jaxcausal as jc

N_FOLDS = 5


# --- the models: data, jaxcausal estimator, DoubleML estimator, target ---------------------------

def iivm_data(n, key):
    return jc.datasets.make_iivm_data(n_obs=n, dim_x=10, theta=0.5, alpha_x=1.0, key=key)


def apo_data(n, key):
    return jc.datasets.make_apo_data(n_obs=n, dim_x=5, n_levels=3, effect=0.5, key=key)


def cluster_data(n, key):
    # a grid of firms x years with about n rows
    n1 = max(int(round((n * 1.2) ** 0.5)), 10)
    return jc.datasets.make_plr_twoway_cluster(n1, max(n // n1, 10), dim_x=10, theta=0.5, key=key)


def jc_models(mlp, clf):
    return {
        "IIVM": (jc.dml.IIVM(mlp, clf, clf, n_folds=N_FOLDS), iivm_data, 0.5, 0),
        "APO": (jc.dml.APO(mlp, clf, treatment_level=1, n_folds=N_FOLDS), apo_data, 0.75, 0),
        "APOS": (jc.dml.APOS(mlp, clf, treatment_levels=[0, 1, 2], n_folds=N_FOLDS), apo_data,
                 np.array([0.25, 0.75, 1.25]), 1),
        "PLR two-way cluster": (jc.dml.PLR(mlp, mlp, n_folds=3), cluster_data, 0.5, 0),
        "IRM": (jc.dml.IRM(mlp, clf, n_folds=N_FOLDS),
                lambda n, k: jc.datasets.make_irm_data(n_obs=n, dim_x=10, theta=0.5, key=k),
                0.5, 0),
    }


def dml_fit(name, data, seed):
    """Fits DoubleML's version of `name` on `data`; returns (theta, se) of the reported entry."""
    import doubleml
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from threadpoolctl import threadpool_limits

    reg = MLPRegressor(hidden_layer_sizes=(64, 64), random_state=seed)
    clf = MLPClassifier(hidden_layer_sizes=(64, 64), random_state=seed)
    df = data.to_pandas()
    x = list(data.x_names)
    np.random.seed(seed)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP ConvergenceWarnings at scikit-learn's defaults
        if name == "IIVM":
            model = doubleml.DoubleMLIIVM(doubleml.DoubleMLData(df, "y", "d", x, "z"), reg, clf,
                                          clf, n_folds=N_FOLDS)
        elif name == "APO":
            model = doubleml.DoubleMLAPO(doubleml.DoubleMLData(df, "y", "d", x), reg, clf,
                                         treatment_level=1, n_folds=N_FOLDS)
        elif name == "APOS":
            model = doubleml.DoubleMLAPOS(doubleml.DoubleMLData(df, "y", "d", x), reg, clf,
                                          treatment_levels=[0, 1, 2], n_folds=N_FOLDS)
        elif name == "PLR two-way cluster":
            cdata = doubleml.DoubleMLData(df, "y", "d", x, cluster_cols=list(data.cluster_names))
            model = doubleml.DoubleMLPLR(cdata, reg, reg, n_folds=3)
        else:
            model = doubleml.DoubleMLIRM(doubleml.DoubleMLData(df, "y", "d", x), reg, clf,
                                         n_folds=N_FOLDS)
        model.fit(store_predictions=False)
    idx = 1 if name == "APOS" else 0
    return float(np.asarray(model.coef)[idx]), float(np.asarray(model.se)[idx])


# --- measurements -----------------------------------------------------------------------------

def timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.theta_rep if hasattr(out, "theta_rep") else out)
    return out, time.perf_counter() - start


def summary(thetas, ses, truth):
    thetas, ses = np.asarray(thetas), np.asarray(ses)
    covered = np.abs(thetas - truth) <= 1.959964 * ses
    return {"bias": float(np.mean(thetas - truth)),
            "rmse": float(np.sqrt(np.mean((thetas - truth) ** 2))),
            "coverage": float(np.mean(covered)), "n": int(thetas.size)}


def draw_sets(draw, n, key, m):
    """Data sets 0..m-1 of a model (the same for both libraries)."""
    k_data = jr.split(key, 3)[0]
    return [draw(n, jr.fold_in(k_data, i)) for i in range(m)]


def jc_side(name, est, draw, truth, idx, n, n_sims, key):
    _, k_fit, k_sim = jr.split(key, 3)
    data = draw_sets(draw, n, key, 2)
    first, t_first = timed(lambda: est.fit(data[0], key=k_fit))
    warm, t_warm = timed(lambda: est.fit(data[1], key=jr.fold_in(k_fit, 1)))
    # the sensitivity analysis: first call (compiles) and warm call
    _, t_sens_first = timed(lambda: first.sensitivity(cf_y=0.03, cf_d=0.03).theta_lower)
    _, t_sens_warm = timed(lambda: warm.sensitivity(cf_y=0.04, cf_d=0.02).theta_lower)
    # the in-fit elements: the same model without them (warm calls of both, median of 3)
    plain = _without_elements(est)
    plain.fit(data[0], key=k_fit)
    t_with = np.median([timed(lambda: est.fit(data[1], key=k_fit))[1] for _ in range(3)])
    t_without = np.median([timed(lambda: plain.fit(data[1], key=k_fit))[1] for _ in range(3)])
    row = {
        "library": "jaxcausal", "model": name, "n_obs": data[0].n_obs,
        "first_call_s": t_first, "warm_call_s": t_warm,
        "theta": float(first.theta[idx]), "se": float(first.se[idx]),
        "sensitivity_first_s": t_sens_first, "sensitivity_warm_s": t_sens_warm,
        "fit_with_elements_s": float(t_with), "fit_without_elements_s": float(t_without),
        "sensitivity_share_first": t_sens_first / t_warm,
        "elements_share": (float(t_with) - float(t_without)) / float(t_without),
    }
    if n_sims:
        start = time.perf_counter()
        rows = jc.dml.simulate(est, lambda k: draw(n, k), key=k_sim, n_sims=n_sims,
                               truth=truth, summarize=False)
        row["study_s"] = time.perf_counter() - start
        name_idx = rows["treatment"].unique()[idx]
        sub = rows[(rows["treatment"] == name_idx) & rows["ok"]]
        t = truth[idx] if np.ndim(truth) else truth
        row["study"] = summary(sub["theta"], sub["se"], t)
        row["study"]["n_failed"] = int((~rows["ok"]).sum())
    return row


def _without_elements(est):
    """The same configuration, its class without the sensitivity elements (for timing only)."""
    cls = type(est)
    plain_cls = type(f"{cls.__name__}NoElements", (cls,), {
        "sensitivity_elements": lambda self, data, nuisance, theta: None,
    })
    fields = {f.name: getattr(est, f.name) for f in dataclasses.fields(est)}
    return plain_cls(**fields)


def dml_side(name, draw, truth, idx, n, n_sims, key):
    data = draw_sets(draw, n, key, max(n_sims, 2))
    times, thetas, ses = [], [], []
    for i, d in enumerate(data):
        start = time.perf_counter()
        theta, se = dml_fit(name, d, seed=i)
        times.append(time.perf_counter() - start)
        thetas.append(theta)
        ses.append(se)
    t = truth[idx] if np.ndim(truth) else truth
    return {"library": "DoubleML", "model": name, "n_obs": data[0].n_obs,
            "first_call_s": times[0], "warm_call_s": times[1], "theta": thetas[0], "se": ses[0],
            "study": summary(thetas[:n_sims], ses[:n_sims], t) if n_sims else None,
            "study_s": float(np.sum(times))}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--n-sims", type=int, default=50, help="jaxcausal study size")
    parser.add_argument("--n-sims-doubleml", type=int, default=10, help="DoubleML study size")
    parser.add_argument("--models", nargs="*", default=None,
                        help="subset of: IIVM APO APOS 'PLR two-way cluster' IRM")
    parser.add_argument("--no-doubleml", action="store_true")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "dml_models.json"))
    args = parser.parse_args()
    mlp, clf = jc.learners.MLP(), jc.learners.MLP(classifier=True)
    if args.quick:
        args.n_obs, args.n_sims, args.n_sims_doubleml = 300, 2, 2
        mlp = jc.learners.MLP(max_steps=100)
        clf = jc.learners.MLP(classifier=True, max_steps=100)
    models = jc_models(mlp, clf)
    names = args.models or list(models)
    rows = []
    for i, name in enumerate(names):
        est, draw, truth, idx = models[name]
        key = jr.fold_in(jr.key(0), i)
        row = jc_side(name, est, draw, truth, idx, args.n_obs, args.n_sims, key)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not args.no_doubleml:
            row = dml_side(name, draw, truth, idx, args.n_obs, args.n_sims_doubleml, key)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "jax_device": str(jax.devices()[0]), "x64": bool(jax.config.jax_enable_x64),
        "n_obs": args.n_obs, "n_folds": N_FOLDS, "quick": args.quick, "rows": rows,
    }
    print_table(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


def print_table(result):
    print(f"\nn={result['n_obs']}, MLP nuisances ({result['jax_device']})")
    print("| model | library | first call (s) | warm call (s) | theta | se | study: bias / RMSE "
          "/ coverage (n) | sensitivity first / warm (s) | share of a warm fit |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["rows"]:
        s = r.get("study")
        study = (f"{s['bias']:+.3f} / {s['rmse']:.3f} / {s['coverage']:.2f} ({s['n']})"
                 if s else "-")
        if r["library"] == "jaxcausal":
            sens = f"{r['sensitivity_first_s']:.2f} / {r['sensitivity_warm_s']:.3f}"
            share = (f"{100 * r['sensitivity_share_first']:.1f} % (+ elements "
                     f"{100 * r['elements_share']:+.1f} %)")
        else:
            sens = share = "-"
        print(f"| {r['model']} | {r['library']} | {r['first_call_s']:.1f} | "
              f"{r['warm_call_s']:.1f} | {r['theta']:.3f} | {r['se']:.3f} | {study} | {sens} | "
              f"{share} |")


if __name__ == "__main__":
    main()
