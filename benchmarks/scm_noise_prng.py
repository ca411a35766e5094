"""Which PRNG should draw the bulk noise of SCM sampling? jaxcausal's Philox4x32-10 (drawn for a
vmapped batch of keys, the default) against JAX's threefry, `rbg` and `unsafe_rbg` (drawn one key
at a time, their fastest way on a CPU).

The workload is the first one of `scm_interventions.py`: hard interventions on a 20-node SCM with
`tanh` mechanisms, fresh noise per intervention (DoWhy's semantics), 10,000 samples each, in
chunks of 50 (`jc.scm.interventional_means`). For every implementation of
`jaxcausal.scm._scm.BULK_NOISE_IMPL` it times the first call (compile included) and the best of
three warm calls, and a bare draw of the same uniforms, in a fresh process each.

    python benchmarks/scm_noise_prng.py            # 1000 interventions; about 2 min on 2 cores
    python benchmarks/scm_noise_prng.py --quick    # 100 interventions

writes `benchmarks/results/scm_noise_prng.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp, jax.random as jr, numpy as np
sys.path.insert(0, {bench!r})
import jaxcausal.scm._scm as scm_mod
scm_mod.BULK_NOISE_IMPL = {impl!r}
import jaxcausal as jc
from scm_interventions import make_scm, D
scm, (names, *_ ) = make_scm()
m, n = {m}, 10_000
rng = np.random.default_rng(1)
table = np.full((m, D), np.nan, np.float32)
table[np.arange(m), rng.integers(0, D, m)] = rng.normal(size=m) * 1.5
ivs = {{v: jnp.asarray(table[:, j]) for j, v in enumerate(names)}}
def run(k):
    out = jc.scm.interventional_means(scm, ivs, n, key=jr.key(k), chunk=50)
    return jax.block_until_ready(out)
t = time.perf_counter(); run(0); first = time.perf_counter() - t
warm = []
for k in (1, 2, 3):
    t = time.perf_counter(); run(k); warm.append(time.perf_counter() - t)
one = lambda kk: jnp.sum(scm_mod.unit_uniforms(kk, n, D))
draw = jax.jit(lambda k: jax.vmap(one)(jr.split(k, m)) if scm_mod.noise_vmaps()
               else jax.lax.map(one, jr.split(k, m)))
draw(jr.key(0)).block_until_ready()
t = time.perf_counter(); draw(jr.key(1)).block_until_ready(); bare = time.perf_counter() - t
print(json.dumps({{"first_s": first, "warm_s": min(warm), "bare_uniforms_s": bare}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    m = 100 if args.quick else 1000
    here = Path(__file__).resolve().parent
    env = {**os.environ, "JAXCAUSAL_CACHE": "0", "PYTHONPATH": str(here.parent)}
    rows = {}
    for impl in ("philox4x32", "threefry2x32", "rbg", "unsafe_rbg"):
        code = CHILD.format(bench=str(here), impl=impl, m=m)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, check=True)
        rows[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{impl:13s} first {rows[impl]['first_s']:6.2f} s  warm {rows[impl]['warm_s']:6.2f} s"
              f"  bare uniforms {rows[impl]['bare_uniforms_s']:6.2f} s", flush=True)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "interventions": m,
           "samples_each": 10_000, "nodes": 20, "chunk": 50, "rows": rows}
    path = here / "results" / "scm_noise_prng.json"
    path.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
