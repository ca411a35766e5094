"""Quantile treatment effects: jaxcausal's `QTE` against DoubleML 0.11's `DoubleMLQTE`.

Data: `jc.datasets.LocationScaleQTE()` (defaults: 5 covariates, an outcome and a propensity that
are smooth nonlinear functions of them through h(X) = X1 cos X3 + X2 sin X3, a treatment that
shifts the outcome by 1 and doubles its noise), n = 1000 by default; the true QTE at each
quantile is known in closed form. The grid has 9 quantiles (0.1, ..., 0.9); 5 folds, 1
repetition. The same data sets (drawn by jaxcausal from keys) go to both libraries.

Rows:
- jaxcausal, `Logistic()` for both nuisances (misspecified here: the truth is nonlinear in X);
- jaxcausal, `MLP(classifier=True)` for both nuisances (defaults otherwise);
- DoubleML, scikit-learn `RandomForestClassifier(n_estimators=100, min_samples_leaf=10)` for both.

Per row: wall time of the first call (a fresh compile for jaxcausal: the benchmark clears JAX's
caches first) and of the next call on new data of the same shape, then over `--n-data` data sets
the RMSE of the QTE (averaged over the grid), the coverage of the pointwise 95 % intervals and the
mean standard error. jaxcausal fits every fold, quantile and treatment level in one compiled call;
DoubleML fits 2 x 9 potential-quantile models, each with 5 x (5 + 2) learner fits, one after the
other (one BLAS thread).

    python benchmarks/dml_quantiles.py                 # writes results/dml_quantiles.json
    python benchmarks/dml_quantiles.py --quick         # small smoke run (n = 400, 3 quantiles)
    python benchmarks/dml_quantiles.py --no-doubleml --out results/dml_quantiles_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import jaxcausal as jc

N_FOLDS = 5
Z95 = 1.959963984540054


def draw(dgp, n_data, n_obs, key):
    return [dgp.sample(n_obs, key=k) for k in jr.split(key, n_data)]


def summarize(thetas, ses, truth):
    thetas, ses = np.asarray(thetas), np.asarray(ses)
    err = thetas - truth[None]
    covered = np.abs(err) <= Z95 * ses
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "rmse_per_quantile": np.sqrt(np.mean(err**2, axis=0)).tolist(),
        "bias_per_quantile": np.mean(err, axis=0).tolist(),
        "coverage": float(covered.mean()),
        "coverage_per_quantile": covered.mean(axis=0).tolist(),
        "mean_se": float(ses.mean()),
    }


def jc_row(name, learner, data, quantiles, truth, key):
    jax.clear_caches()
    est = jc.dml.QTE(learner, learner, quantiles=quantiles, n_folds=N_FOLDS)
    thetas, ses, times = [], [], []
    for i, d in enumerate(data):
        start = time.perf_counter()
        res = est.fit(d, key=jr.fold_in(key, i), throw=False)
        theta, se = np.asarray(res.theta), np.asarray(res.se)  # blocks
        times.append(time.perf_counter() - start)
        thetas.append(theta)
        ses.append(se)
        if i == 0:
            print(f"  {name}: first call {times[0]:.1f} s", flush=True)
    row = {"library": "jaxcausal", "nuisance": name, "first_call_s": times[0],
           "second_call_s": times[1] if len(times) > 1 else float("nan"),
           "warm_mean_s": float(np.mean(times[1:])) if len(times) > 1 else float("nan"),
           "n_data": len(data), "theta_0": thetas[0].tolist(), "se_0": ses[0].tolist()}
    row.update(summarize(thetas, ses, truth))
    return row


def dml_row(name, make_learners, data, quantiles, truth, seed):
    import doubleml
    from threadpoolctl import threadpool_limits

    thetas, ses, times = [], [], []
    for i, d in enumerate(data):
        np.random.seed(seed + i)
        dd = doubleml.DoubleMLData(d.to_pandas(), "y", "d", list(d.x_names))
        start = time.perf_counter()
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = doubleml.DoubleMLQTE(dd, *make_learners(), quantiles=list(quantiles),
                                         n_folds=N_FOLDS)
            model.fit()
        times.append(time.perf_counter() - start)
        thetas.append(np.asarray(model.coef))
        ses.append(np.asarray(model.se))
        print(f"  {name}: data set {i}: {times[-1]:.1f} s", flush=True)
    row = {"library": "DoubleML", "nuisance": name, "first_call_s": times[0],
           "second_call_s": times[1] if len(times) > 1 else float("nan"),
           "warm_mean_s": float(np.mean(times[1:])) if len(times) > 1 else float("nan"),
           "n_data": len(data), "theta_0": thetas[0].tolist(), "se_0": ses[0].tolist()}
    row.update(summarize(thetas, ses, truth))
    return row


def forests():
    from sklearn.ensemble import RandomForestClassifier

    def make():
        return RandomForestClassifier(n_estimators=100, min_samples_leaf=10, random_state=0)

    return make(), make()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--n-data", type=int, default=20, help="data sets (jaxcausal rows)")
    parser.add_argument("--n-data-doubleml", type=int, default=10)
    parser.add_argument("--no-doubleml", action="store_true")
    parser.add_argument("--no-mlp", action="store_true")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "dml_quantiles.json"))
    args = parser.parse_args()
    quantiles = tuple(np.round(np.arange(1, 10) / 10, 2).tolist())
    if args.quick:
        args.n_obs, args.n_data, args.n_data_doubleml = 400, 3, 2
        quantiles = (0.25, 0.5, 0.75)
    dgp = jc.datasets.LocationScaleQTE()
    truth = np.asarray(dgp.quantile_effect(jnp.asarray(quantiles)))
    key = jr.key(0)
    data = draw(dgp, max(args.n_data, args.n_data_doubleml, 2), args.n_obs, jr.fold_in(key, 0))
    rows = []

    def report(row):
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("per_quantile")}),
              flush=True)

    report(jc_row("Logistic", jc.learners.Logistic(), data[: args.n_data], quantiles, truth,
                  jr.fold_in(key, 1)))
    if not args.no_mlp:
        report(jc_row("MLP", jc.learners.MLP(classifier=True), data[: args.n_data], quantiles,
                      truth, jr.fold_in(key, 2)))
    if not args.no_doubleml:
        report(dml_row("random forests", forests, data[: args.n_data_doubleml], quantiles,
                       truth, seed=0))
    result = {
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "jax_device": str(jax.devices()[0]), "x64": bool(jax.config.jax_enable_x64),
        "n_obs": args.n_obs, "quantiles": list(quantiles), "truth": truth.tolist(),
        "n_folds": N_FOLDS, "quick": args.quick, "rows": rows,
    }
    print_table(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


def print_table(result):
    print(f"\nQTE over {len(result['quantiles'])} quantiles, n={result['n_obs']}, "
          f"{result['n_folds']} folds ({result['jax_device']})")
    print("| library | nuisances | first call (s) | next call (s) | RMSE | coverage (95 %) "
          "| mean se | data sets |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["rows"]:
        print(f"| {r['library']} | {r['nuisance']} | {r['first_call_s']:.1f} | "
              f"{r['second_call_s']:.1f} | {r['rmse']:.3f} | {r['coverage']:.2f} | "
              f"{r['mean_se']:.3f} | {r['n_data']} |")


if __name__ == "__main__":
    main()
