"""Arctic synthetic benchmark: KGCM-VAE and its ablations against TARNet, a GRU T-learner and the
zero-effect predictor, over independent seeds (a new simulated series per seed).

Units are days; covariates are the previous `window` days of the five series. The first 80% of the
days train every model, the last 20% are held out (a temporal split). All seeds of one model train
in one compiled call (`jaxcausal.te.fit_batch` on stacked data).

    python benchmarks/te_arctic.py             # 10 seeds, 1620 days
    python benchmarks/te_arctic.py --quick     # 3 seeds, 600 days, short training
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


def models(window, training):
    adj = jc.datasets.arctic_adjacency()
    kg = dict(window=window, adjacency=adj, training=training)
    return {
        "KGCM-VAE (full)": jc.te.KGCMVAE(**kg),
        "KGCM-VAE (no MMD)": jc.te.KGCMVAE(use_mmd=False, **kg),
        "KGCM-VAE (no adjacency)": jc.te.KGCMVAE(use_adjacency=False, **kg),
        "KGCM-VAE (neither)": jc.te.KGCMVAE(use_mmd=False, use_adjacency=False, **kg),
        "KGCM-VAE (learned input mask)": jc.te.KGCMVAE(learned_input_mask=True, **kg),
        "TARNet (windows)": jc.te.TARNet(training=training),
        "GRU T-learner": jc.te.GRUTLearner(window=window, training=training),
    }


def mean_se(v):
    v = np.asarray(v)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    n_seeds = args.seeds or (3 if args.quick else 10)
    n_days = args.days or (600 if args.quick else 1620)
    training = jc.te.Training(max_steps=300 if args.quick else 3000)
    sims = [jc.datasets.arctic_synthetic(jr.key(s), n_days=n_days) for s in range(n_seeds)]
    pairs = [s.windows(args.window) for s in sims]
    data = jc.CausalData.stack([p[0] for p in pairs])
    tau = jnp.stack([p[1] for p in pairs])
    m = tau.shape[1]
    cut = int(0.8 * m)
    take = lambda d, sl: jax.tree.map(lambda a: a[:, sl], d)  # noqa: E731
    train, test = take(data, slice(0, cut)), take(data, slice(cut, m))
    tau_in, tau_out = tau[:, :cut], tau[:, cut:]
    pehe = jax.vmap(jc.metrics.pehe)
    ate = jax.vmap(jc.metrics.ate_error)
    results = {"zero effect": {
        "pehe_in": mean_se(pehe(tau_in, 0 * tau_in)),
        "pehe_out": mean_se(pehe(tau_out, 0 * tau_out)),
        "ate_in": mean_se(ate(tau_in, 0 * tau_in)), "ate_out": mean_se(ate(tau_out, 0 * tau_out)),
        "train_s_per_seed": 0.0, "compile_s": 0.0,
    }}
    chosen = models(args.window, training)
    if args.models:
        chosen = {k: v for k, v in chosen.items() if k in args.models}
    for name, model in chosen.items():
        start = time.perf_counter()
        fitted = jax.block_until_ready(jc.te.fit_batch(model, train, key=jr.key(1)))
        first = time.perf_counter() - start
        start = time.perf_counter()
        fitted = jax.block_until_ready(jc.te.fit_batch(model, train, key=jr.key(1)))
        second = time.perf_counter() - start
        eff = eqx.filter_vmap(lambda f, x: f.effect(x))
        e_in, e_out = eff(fitted, train.x), eff(fitted, test.x)
        results[name] = {
            "pehe_in": mean_se(pehe(tau_in, e_in)), "pehe_out": mean_se(pehe(tau_out, e_out)),
            "ate_in": mean_se(ate(tau_in, e_in)), "ate_out": mean_se(ate(tau_out, e_out)),
            "train_s_per_seed": second / n_seeds, "compile_s": first - second,
        }
        r = results[name]
        print(f"{name:30s} sqrtPEHE in {r['pehe_in'][0]:.3f}±{r['pehe_in'][1]:.3f} out "
              f"{r['pehe_out'][0]:.3f}±{r['pehe_out'][1]:.3f}", flush=True)
        _save(args, {"partial": True}, results)
    meta = {"seeds": n_seeds, "days": n_days, "window": args.window, "quick": args.quick,
            "units_train": cut, "units_test": m - cut, "device": str(jax.devices()[0]),
            "platform": platform.platform(), "jax": jax.__version__,
            "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}
    fmt = lambda v: f"{v[0]:.3f} ± {v[1]:.3f}"  # noqa: E731
    lines = [f"{n_seeds} seeds, {n_days} days, window {args.window}, device {meta['device']}",
             "| model | √PEHE in | √PEHE out | ATE err in | ATE err out | train s / seed | "
             "compile s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(f"| {name} | {fmt(r['pehe_in'])} | {fmt(r['pehe_out'])} | "
                     f"{fmt(r['ate_in'])} | {fmt(r['ate_out'])} | {r['train_s_per_seed']:.2f} | "
                     f"{r['compile_s']:.0f} |")
    print("\n".join(lines))
    out = _save(args, meta, results)
    print(f"wrote {out}")



def _save(args, meta, results):
    name = Path(__file__).stem + ("_quick" if args.quick else "")
    out = Path(args.out or Path(__file__).parent / "results" / f"{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return out


if __name__ == "__main__":
    main()
