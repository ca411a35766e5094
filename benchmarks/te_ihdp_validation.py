"""Selection of TARNet/CFR defaults on IHDP validation replications that the benchmark never sees.

`te_ihdp.py` reports replications 0..99 of base key 2017; the candidates here are compared on
replications 0..R-1 of base key 1 (different coefficients, noise and splits), so the default chosen
is not tuned on the reported numbers. Each candidate trains TARNet and CFR-MMD on all validation
replications in one batched call (same training keys for every candidate), and the table gives
within/out-of-sample sqrt(PEHE) and the paired difference to the current defaults.

    python benchmarks/te_ihdp_validation.py               # 16 replications, all candidates
    python benchmarks/te_ihdp_validation.py --candidates current reweight --models TARNet
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np

import jaxcausal as jc

sys.path.insert(0, str(Path(__file__).parent))
from te_ihdp import evaluate  # noqa: E402

PAPER = jc.te.Training(batch_size=100)  # Shalit et al. (2017): batches of 100


def candidates() -> dict[str, dict[str, jc.te.AbstractTEModel]]:
    """Each candidate has a reason: the paper's sample reweighting, the paper's batch size, or a
    stronger weight decay or smaller step (the best validation step is early, ~180 of 3000, so
    the nets overfit quickly)."""
    def pair(training=jc.te.Training(), **kw):
        return {"TARNet": jc.te.TARNet(training=training, **kw),
                "CFR-MMD": jc.te.CFR(ipm=jc.te.MMD(), training=training, **kw)}

    return {
        "current": pair(),
        "reweight": pair(reweight=True),
        "batch 100": pair(PAPER),
        "reweight + batch 100": pair(PAPER, reweight=True),
        "weight decay 1e-3": pair(jc.te.Training(weight_decay=1e-3)),
        "learning rate 3e-4": pair(jc.te.Training(learning_rate=3e-4)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=16, help="validation replications")
    parser.add_argument("--candidates", nargs="*", default=None, help="subset of candidates")
    parser.add_argument("--models", nargs="*", default=None, help="TARNet and/or CFR-MMD")
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args(argv)
    reps = jc.datasets.ihdp_replications(args.reps, key=jr.key(1))  # not te_ihdp.py's key 2017
    chosen = candidates()
    if args.candidates:
        chosen = {k: v for k, v in chosen.items() if k in args.candidates}
    out = Path(args.out or Path(__file__).parent / "results" / "te_ihdp_validation.json")
    previous = json.loads(out.read_text())["results"] if out.exists() else {}
    results = dict(previous)
    for cand, models in chosen.items():
        for name, model in models.items():
            if args.models and name not in args.models:
                continue
            start = time.perf_counter()
            fitted = jax.block_until_ready(jc.te.fit_batch(model, reps.train, key=jr.key(0)))
            metrics = evaluate(fitted, reps)
            results[f"{cand} | {name}"] = {
                **{k: v.tolist() for k, v in metrics.items()},
                "seconds": time.perf_counter() - start,
                "mean_steps": float(np.mean(fitted.n_steps)),
                "mean_best_step": float(np.mean(fitted.best_step)),
            }
            print(line(results, cand, name), flush=True)
            meta = {"replications": args.reps, "data_key": 1, "jax": jax.__version__,
                    "device": str(jax.devices()[0]), "platform": platform.platform()}
            out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")


def line(results, cand, name) -> str:
    r = results[f"{cand} | {name}"]
    pin, pout = np.asarray(r["pehe_in"]), np.asarray(r["pehe_out"])
    se = lambda v: v.std(ddof=1) / np.sqrt(len(v))  # noqa: E731
    text = (f"{cand:30s} {name:8s} sqrtPEHE in {pin.mean():.3f}±{se(pin):.3f} out "
            f"{pout.mean():.3f}±{se(pout):.3f}  best step {r['mean_best_step']:.0f}  "
            f"{r['seconds']:.0f} s")
    base = results.get(f"current | {name}")
    if base is not None and cand != "current":
        d_in = pin - np.asarray(base["pehe_in"])
        d_out = pout - np.asarray(base["pehe_out"])
        text += (f"  vs current: in {d_in.mean():+.3f}±{se(d_in):.3f} "
                 f"out {d_out.mean():+.3f}±{se(d_out):.3f}")
    return text


if __name__ == "__main__":
    main()
