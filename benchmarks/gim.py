"""Generative intervention models on the Hill-function suite and the Sachs perturbations.

Tables (mean +- s.e. over seeds) for the partially out-of-distribution split (same drugs, new
doses) and the fully out-of-distribution split (new drugs), for linear and nonlinear suites:
energy distance, MMD (unbiased, RBF with the median-heuristic width), squared error of the
means, target AUROC, for GIM, the Bayesian GIM (few-shot posterior from `N_SHOT` cells of the
test perturbation, scored on the rest), Unstructured, TwoStage and the control distribution.
Then: coverage of the Bayesian GIM's 90% intervals for the shifts of the true targets and their
width from 0 to 50 cells; fit time against d and the number of perturbations (compile and run
separately); and the Sachs ranking of each compound's literature target by the GIM (compounds
as one-hot features) next to `jc.scm.infer_interventions` run per condition.

    python benchmarks/gim.py            # full: writes benchmarks/results/gim.json
    JAXCAUSAL_SMALL=1 python benchmarks/gim.py   # a quick check at a small size
    python benchmarks/gim.py --parts scaling sachs --out benchmarks/results/gim_cpu.json
    python benchmarks/gim.py --parts nonlinear --seeds 0 1 --out results/gim_nl_01.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import jaxcausal as jc  # noqa: E402

SMALL = os.environ.get("JAXCAUSAL_SMALL", "0") == "1"
SEEDS = 1 if SMALL else 5
D = 5 if SMALL else 20
SUITE = dict(n_drugs=12, n_new_drugs=4, n_control=200) if SMALL else {}
STEPS = 200 if SMALL else 1500
N_SHOT = 10
N_PRED = 100 if SMALL else 200
SHOTS = (0, 5, 10, 50)
SEED_LIST = list(range(SEEDS))


def _context_metrics(pred, cells, scale):
    a, b = pred / scale[None, :], cells / scale[None, :]
    bw = jc.metrics.median_bandwidth(a, b)
    return {
        "energy": float(jc.metrics.energy_distance(a, b)),
        "mmd": float(jc.metrics.mmd(a, b, bandwidth=bw, unbiased=True)),
        "mse": float(jnp.mean((jnp.mean(pred, 0) - jnp.mean(cells, 0)) ** 2)),
    }


def _score(model, split, scale, key, bayes=None):
    """Per-perturbation metrics of `model` (or of the few-shot posterior when `bayes`)."""
    rows = []
    keys = jr.split(key, len(split.features))
    if bayes is None:
        samples = model.sample(split.features, N_PRED, key=key)
    for k in range(len(split.features)):
        cells = split.x[split.context == k]
        held = cells[N_SHOT:] if bayes is not None else cells
        if bayes is not None:
            post = bayes.posterior(split.features[k], cells[:N_SHOT], key=keys[k])
            pred = post.predictive(N_PRED, key=keys[k])
        else:
            pred = samples[k]
        rows.append(_context_metrics(pred, jnp.asarray(held), scale))
    out = {m: float(np.mean([r[m] for r in rows])) for m in rows[0]}
    if bayes is not None:
        probs = np.stack([bayes.posterior(split.features[k], split.x[split.context == k][:N_SHOT])
                          .target_probs for k in range(len(split.features))])
        out["auroc"] = float(jc.metrics.auroc(split.targets, probs))
    elif hasattr(model, "target_probs"):
        out["auroc"] = float(jc.metrics.auroc(split.targets, model.target_probs(split.features)))
    return out


def _coverage(fitted, split):
    """Share of true targets whose shift is inside the 90% interval, and the mean interval width,
    from `n` cells of each test perturbation."""
    out = {}
    for n in SHOTS:
        hits, widths = [], []
        for k in range(len(split.features)):
            post = fitted.posterior(split.features[k], split.x[split.context == k][:n])
            lo, hi = (np.asarray(a) for a in post.interval(0.9))
            for j in np.flatnonzero(split.targets[k]):
                hits.append(lo[j] <= split.shifts[k, j] <= hi[j])
                widths.append(hi[j] - lo[j])
        out[n] = {"coverage": float(np.mean(hits)), "width": float(np.mean(widths))}
    return out


def quality(seed: int, linear: bool) -> dict:
    suite = jc.datasets.hill_suite(jr.key(seed), d=D, linear=linear, **SUITE)
    data = suite.train.data
    causal = jc.gim.LinearSCM() if linear else jc.gim.MLPSCM()
    scale = jnp.asarray(suite.train.x[suite.train.context == -1].std(0))
    k = jr.split(jr.key(100 + seed), 8)
    t0 = time.perf_counter()
    gim = jax.block_until_ready(jc.gim.GIM(causal=causal, max_steps=STEPS).fit(
        data, key=k[0], groups=suite.train.drug))  # calibrated on held-out drugs
    seconds = time.perf_counter() - t0
    models = {
        "GIM": gim,
        "Unstructured": jc.gim.Unstructured(max_steps=STEPS).fit(data, key=k[1]),
        "TwoStage": jc.gim.TwoStage(causal=causal, max_steps=STEPS).fit(data, key=k[2]),
        "Control": jc.gim.Control().fit(data),
    }
    res = {"fit_seconds_gim": seconds}
    for split_name in ("partial", "full"):
        split = getattr(suite, split_name)
        table = {name: _score(m, split, scale, k[3]) for name, m in models.items()}
        table[f"Bayesian GIM ({N_SHOT} cells)"] = _score(gim, split, scale, k[4], bayes=gim)
        res[split_name] = table
    res["coverage_full"] = _coverage(gim, suite.full)
    return res


def _timed_fit(gim, data, key):
    t0 = time.perf_counter()
    jax.block_until_ready(gim.fit(data, key=key).causal)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(gim.fit(data, key=jr.fold_in(key, 1)).causal)
    return first, time.perf_counter() - t0


def scaling() -> dict:
    """Fit time without the calibration refits (which add one vmapped call of 5 fits)."""
    out = {"d": {}, "contexts": {}}
    gim = jc.gim.GIM(max_steps=STEPS, calibration_folds=None)
    for d in (5, 10) if SMALL else (10, 20, 50):
        data = jc.datasets.hill_suite(jr.key(0), d=d, **SUITE).train.data
        first, second = _timed_fit(gim, data, jr.key(1))
        out["d"][d] = {"first_call_s": first, "second_call_s": second}
    for drugs in (10, 25) if SMALL else (10, 25, 50, 100):
        data = jc.datasets.hill_suite(jr.key(0), d=D, n_drugs=drugs).train.data
        first, second = _timed_fit(gim, data, jr.key(1))
        out["contexts"][4 * drugs] = {"first_call_s": first, "second_call_s": second}
    return out


def sachs() -> dict:
    s = jc.datasets.sachs()
    logged = pd.DataFrame({v: np.log(s.data[v].to_numpy(dtype=float)) for v in s.names})
    logged["condition"] = s.data["condition"].astype(str).to_numpy()
    compounds = list(s.targets)
    conditions = pd.DataFrame(np.eye(len(compounds)), index=compounds, columns=compounds)
    data = jc.gim.PerturbationData.from_pandas(
        logged, conditions, context="condition", control=list(s.observational),
        variables=list(s.names), features=compounds,
    )
    fitted = jc.gim.GIM(max_steps=STEPS, calibration_folds=None).fit(data, key=jr.key(0))
    probs = np.asarray(fitted.target_probs(np.eye(len(compounds))))
    obs = s.data["condition"].isin(s.observational).to_numpy().astype(float)
    scm = jc.scm.fit(jc.scm.SCM.from_graph(s.adjacency, s.names),
                     {v: logged[v].to_numpy() for v in s.names}, weights=obs)
    method = jc.scm.NUTS(100, 100) if SMALL else jc.scm.NUTS(300, 300)
    rows = []
    for k, (cond, target) in enumerate(s.targets.items()):
        order = [s.names[j] for j in np.argsort(-probs[k])]
        block = (logged["condition"] == cond).to_numpy()
        post = jc.scm.infer_interventions(
            scm, {v: logged[v].to_numpy()[block] for v in s.names}, key=jr.key(k), method=method
        )
        rows.append({
            "condition": cond, "known_target": target,
            "gim_rank": order.index(target) + 1, "gim_top3": order[:3],
            "gim_prob_known": float(probs[k, s.names.index(target)]),
            "infer_rank": list(post.summary().index).index(target) + 1,
            "infer_top3": list(post.summary().index[:3]),
        })
    return {"rows": rows}


def _mean_se(values):
    a = np.asarray(values, float)
    se = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
    return f"{a.mean():.3f} +- {se:.3f}"


PARTS = ("linear", "nonlinear", "scaling", "sachs")


def main(parts=PARTS) -> dict:
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "device": str(jax.devices()[0]), "command": "python benchmarks/gim.py",
               "small": SMALL, "d": D, "seeds": SEED_LIST, "parts": list(parts)}
    for linear in (True, False):
        name = "linear" if linear else "nonlinear"
        if name not in parts:
            continue
        runs = [quality(seed, linear) for seed in SEED_LIST]
        results[name] = runs
        for split in ("partial", "full"):
            print(f"\n{name}, {split} OOD (d = {D}, {SEEDS} seeds)")
            table = {
                model: {m: _mean_se([r[split][model][m] for r in runs])
                        for m in runs[0][split][model]}
                for model in runs[0][split]
            }
            print(pd.DataFrame(table).T.to_string())
        cov = {n: _mean_se([r["coverage_full"][n]["coverage"] for r in runs]) for n in SHOTS}
        wid = {n: _mean_se([r["coverage_full"][n]["width"] for r in runs]) for n in SHOTS}
        print(f"90% interval coverage (full OOD) by cells: {cov}\n  widths: {wid}")
        print("GIM fit seconds (incl. compile):", _mean_se([r["fit_seconds_gim"] for r in runs]))
    if "scaling" in parts:
        results["scaling"] = scaling()
        print("\nscaling:", json.dumps(results["scaling"], indent=1))
    if "sachs" in parts:
        results["sachs"] = sachs()
        print("\nSachs:")
        print(pd.DataFrame(results["sachs"]["rows"]).to_string())
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    parser.add_argument("--out", default=None, help="JSON path (default results/gim[_small].json)")
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="which seeds of the quality tables to run (default: all), so that a "
                             "long suite can be split over several calls")
    args = parser.parse_args()
    if args.seeds is not None:
        SEED_LIST = list(args.seeds)
    out = main(tuple(args.parts))
    name = "gim_small.json" if SMALL else "gim.json"
    path = Path(args.out) if args.out else Path(__file__).parent / "results" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
