"""How the one training loop scales with the ensemble size (folds x repetitions x replications).

Trains E MLP nuisance learners (`jc.learners.MLP()` defaults) on E different 0/1 weight masks of
one data set (n = 2000, 20 covariates) in one compiled call, for growing E, and compares with
fitting the same models one after another in a Python loop (the way DoubleML runs its folds).
Reports compile time and warm time separately, per call and per member.

    python benchmarks/ensemble_scaling.py            # E in 10, 50, 200 (CPU-sized)
    python benchmarks/ensemble_scaling.py --gpu      # E up to 2000 (accelerator-sized)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import jaxcausal as jc


def _data(n: int = 2000, p: int = 20):
    data = jc.datasets.make_plr_CCDDHNR2018(n, p, key=jr.key(0))
    return data.x, data.y


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def run(sizes: list[int], n_loop: int) -> list[dict]:
    x, y = _data()
    learner = jc.learners.MLP()

    @eqx.filter_jit
    def ensemble(keys, masks):
        fitted = eqx.filter_vmap(lambda k, w: learner.fit(x, y, key=k, weights=w))(keys, masks)
        return eqx.filter_vmap(lambda f: f(x))(fitted)

    rows = []
    for size in sizes:
        keys = jr.split(jr.key(1), size)
        masks = (jr.uniform(jr.key(2), (size, x.shape[0])) < 0.8).astype(x.dtype)
        _, first = _timed(ensemble, keys, masks)
        _, warm = _timed(ensemble, jr.split(jr.key(3), size), masks)
        rows.append(
            {
                "members": size,
                "first_call_s": first,
                "warm_s": warm,
                "warm_ms_per_member": 1e3 * warm / size,
            }
        )
        print(
            f"E={size:5d}  first {first:7.2f} s  warm {warm:7.2f} s  "
            f"{1e3 * warm / size:7.1f} ms/member"
        )
    # The one-by-one loop (same learner, same masks): compile once, then fit members in turn.
    one = eqx.filter_jit(lambda k, w: learner.fit(x, y, key=k, weights=w)(x))
    masks = (jr.uniform(jr.key(2), (n_loop, x.shape[0])) < 0.8).astype(x.dtype)
    _timed(one, jr.key(9), masks[0])
    start = time.perf_counter()
    for i in range(n_loop):
        jax.block_until_ready(one(jr.fold_in(jr.key(4), i), masks[i]))
    per = (time.perf_counter() - start) / n_loop
    print(f"one at a time (warm): {1e3 * per:.1f} ms/member")
    rows.append({"members": 1, "loop_warm_ms_per_member": 1e3 * per})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="larger ensembles for an accelerator")
    parser.add_argument("--out", default=None, help="JSON output path")
    args = parser.parse_args()
    sizes = [10, 100, 500, 2000] if args.gpu else [10, 50, 200]
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}")
    rows = run(sizes, n_loop=10)
    out = Path(
        args.out or Path(__file__).parent / "results" / f"ensemble_scaling_{device.platform}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "device": device.device_kind,
        "platform": device.platform,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "dtype": str(jnp.zeros(()).dtype),
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
