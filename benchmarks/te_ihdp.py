"""IHDP benchmark of the treatment-effect models of `jaxcausal.te` (response surface B).

Every model trains on all replications at once (`jaxcausal.te.fit_batch`, one compiled call per
model); within-sample (training units) and out-of-sample (75 test units) sqrt(PEHE) and average
effect errors are reported as mean +- standard error over replications, next to the published
numbers (Shalit et al. 2017, Louizos et al. 2017, Shi et al. 2019; NPCI replications, which are less
heterogeneous than fresh draws, so compare roughly).

    python benchmarks/te_ihdp.py               # 100 replications
    python benchmarks/te_ihdp.py --quick       # 4 replications, short training (smoke run)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import jaxcausal as jc

PUBLISHED = {  # sqrt PEHE within / out, ATE error within / out (None: not reported)
    "OLS": (5.8, 5.8, None, None),
    "TARNet": (0.88, 0.95, 0.26, 0.28),
    "CFR-MMD": (0.73, 0.78, None, None),
    "CFR-Wass": (0.71, 0.76, 0.25, 0.27),
    "CEVAE": (2.7, 2.6, 0.34, 0.46),
    "Dragonnet": (None, None, 0.14, 0.20),
}


def models(training: jc.te.Training, alpha: float = 1.0) -> dict[str, jc.te.AbstractTEModel]:
    return {
        "OLS": jc.te.OLS(),
        "T-learner": jc.te.TLearner(training=training),
        "TARNet": jc.te.TARNet(training=training),
        "CFR-MMD": jc.te.CFR(ipm=jc.te.MMD(), alpha=alpha, training=training),
        "CFR-Wass": jc.te.CFR(ipm=jc.te.Wasserstein(), alpha=alpha, training=training),
        "Dragonnet": jc.te.Dragonnet(training=training),
        "CEVAE": jc.te.CEVAE(training=training),
    }


def mean_se(v: np.ndarray) -> tuple[float, float]:
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def evaluate(fitted, reps) -> dict[str, np.ndarray]:
    eff = eqx.filter_vmap(lambda m, x: m.effect(x))
    tau_in, tau_out = reps.tau_train, reps.tau_test
    e_in, e_out = eff(fitted, reps.train.x), eff(fitted, reps.test.x)
    pehe = jax.vmap(jc.metrics.pehe)
    ate = jax.vmap(jc.metrics.ate_error)
    return {"pehe_in": np.asarray(pehe(tau_in, e_in)), "pehe_out": np.asarray(pehe(tau_out, e_out)),
            "ate_in": np.asarray(ate(tau_in, e_in)), "ate_out": np.asarray(ate(tau_out, e_out))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 replications, 300 steps")
    parser.add_argument("--reps", type=int, default=None, help="number of replications")
    parser.add_argument("--models", nargs="*", default=None, help="subset of model names")
    parser.add_argument("--x64", action="store_true", help="float64 (default float32)")
    parser.add_argument("--alpha", type=float, default=1.0, help="CFR imbalance weight")
    parser.add_argument("--patience", type=int, default=50, help="early-stopping patience")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="validation share")
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", args.x64)
    n_reps = args.reps or (4 if args.quick else 100)
    training = jc.te.Training(max_steps=300 if args.quick else 3000, patience=args.patience,
                              val_fraction=args.val_fraction)
    reps = jc.datasets.ihdp_replications(n_reps, key=jr.key(2017))
    chosen = models(training, args.alpha)
    if args.models:
        unknown = set(args.models) - set(chosen)
        if unknown:
            parser.error(f"unknown models {sorted(unknown)}; choose from {sorted(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in args.models}
    results = {}
    for name, model in chosen.items():
        key = jr.key(0)
        start = time.perf_counter()
        fitted = jax.block_until_ready(jc.te.fit_batch(model, reps.train, key=key))
        first = time.perf_counter() - start
        start = time.perf_counter()
        fitted = jax.block_until_ready(jc.te.fit_batch(model, reps.train, key=key))
        second = time.perf_counter() - start
        metrics = evaluate(fitted, reps)
        steps = getattr(fitted, "n_steps", None)
        results[name] = {
            **{k: mean_se(v) for k, v in metrics.items()},
            "compile_s": first - second, "train_s_total": second,
            "train_s_per_replication": second / n_reps,
            "mean_steps": None if steps is None else float(jnp.mean(steps)),
            "published": PUBLISHED.get(name),
        }
        r = results[name]
        print(f"{name:10s} sqrtPEHE in {r['pehe_in'][0]:.2f}±{r['pehe_in'][1]:.2f} "
              f"out {r['pehe_out'][0]:.2f}±{r['pehe_out'][1]:.2f}  ATE err in "
              f"{r['ate_in'][0]:.2f}±{r['ate_in'][1]:.2f} out {r['ate_out'][0]:.2f}±"
              f"{r['ate_out'][1]:.2f}  {second / n_reps * 1e3:.0f} ms/rep "
              f"(compile {first - second:.0f} s)", flush=True)
        _save(args, {"partial": True}, results)
    tau_sd = np.asarray(jnp.std(jnp.concatenate([reps.tau_train, reps.tau_test], 1), axis=1))
    meta = {
        "replications": n_reps, "quick": args.quick, "x64": args.x64,
        "device": str(jax.devices()[0]), "platform": platform.platform(),
        "processor": platform.processor(), "jax": jax.__version__,
        "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
        "median_sd_of_tau": float(np.median(tau_sd)),
    }
    print(table(results, meta))
    out = _save(args, meta, results)
    print(f"wrote {out}")


def table(results, meta) -> str:
    fmt = lambda m: f"{m[0]:.2f} ± {m[1]:.2f}"  # noqa: E731
    pub = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [
        f"{meta['replications']} replications, device {meta['device']}",
        "| model | √PEHE in | √PEHE out | ATE err in | ATE err out | published √PEHE in/out "
        "| published ATE err in/out | train s / rep | compile s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        p = r["published"] or (None,) * 4
        lines.append(
            f"| {name} | {fmt(r['pehe_in'])} | {fmt(r['pehe_out'])} | {fmt(r['ate_in'])} | "
            f"{fmt(r['ate_out'])} | {pub(p[0])} / {pub(p[1])} | {pub(p[2])} / {pub(p[3])} | "
            f"{r['train_s_per_replication']:.3f} | {r['compile_s']:.0f} |"
        )
    return "\n".join(lines)



def _save(args, meta, results):
    name = Path(__file__).stem + ("_quick" if args.quick else "")
    out = Path(args.out or Path(__file__).parent / "results" / f"{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return out


if __name__ == "__main__":
    main()
