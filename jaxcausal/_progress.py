"""Progress for long batched work: a mapped computation run in equal chunks of one compiled program.

A progress bar fed from inside compiled code needs a host callback, and JAX never stores a program
with host callbacks in its persistent compilation cache. Long studies therefore run as a Python
loop over equal chunks of the batch (the last one padded), one call of the same compiled program
per chunk, and the bar moves between calls: no callback, no recompilation, the same results as
one call (every element is computed on its own).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .parallel import sharded_map
from .parallel._sharding import _default_batch_size, _get_mesh

TARGET_CHUNKS = 40
"""About how many times the bar moves in a long run."""


def _leading_size(args) -> int:
    sizes = {leaf.shape[0] for leaf in jax.tree.leaves(args) if eqx.is_array(leaf)}
    if len(sizes) != 1:
        raise ValueError(f"the batched arguments disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def chunk_size(size: int, n_dev: int, per_step: int | None) -> int:
    """Elements per call: a multiple of `n_dev * per_step` giving about `TARGET_CHUNKS` calls
    (everything at once when the devices take all elements together, `per_step=None`)."""
    if per_step is None:
        return size
    unit = n_dev * per_step
    steps = -(-size // unit)
    return unit * -(-steps // TARGET_CHUNKS)


def chunked_map(
    fn: Callable[..., Any],
    *args: Any,
    batch_size: int | None,
    mesh: Any,
    progress: bool,
    desc: str,
    unit: str,
    header: str | None = None,
    out: Any = None,
) -> Any:
    """`jaxcausal.parallel.sharded_map(fn, batch_size=..., mesh=...)(*args)`, in chunks with a
    tqdm bar when `progress` (and `header` printed first), in one call otherwise."""
    if not progress:
        return sharded_map(fn, batch_size=batch_size, mesh=mesh)(*args)
    mesh = _get_mesh(mesh)
    n_dev = mesh.devices.size
    per_step = _default_batch_size(mesh) if batch_size is None else batch_size
    size = _leading_size(args)
    chunk = min(chunk_size(size, n_dev, per_step), -(-size // n_dev) * n_dev)
    stream = sys.stderr if out is None else out
    platform = mesh.devices.ravel()[0].platform
    at_a_time = "all at once" if per_step is None else f"{per_step} at a time per device"
    if header:
        print(f"{header}; on {n_dev} {platform} device(s), {at_a_time}", file=stream, flush=True)
    from tqdm import tqdm

    mapped = sharded_map(fn, batch_size=batch_size, mesh=mesh)
    pieces = []
    with tqdm(total=size, desc=desc, unit=unit, file=stream) as bar:
        for start in range(0, size, chunk):
            stop = min(start + chunk, size)

            def take(a, start=start, stop=stop):
                if not eqx.is_array(a):
                    return a
                part = a[start:stop]
                if stop - start < chunk:  # the last chunk repeats its last element
                    fill = jnp.repeat(part[-1:], chunk - (stop - start), axis=0)
                    part = jnp.concatenate([part, fill], axis=0)
                return part

            result = jax.block_until_ready(mapped(*jax.tree.map(take, args)))
            pieces.append(jax.tree.map(lambda a, n=stop - start: a[:n] if eqx.is_array(a) else a,
                                       result))
            bar.update(stop - start)
    if len(pieces) == 1:
        return pieces[0]
    return jax.tree.map(
        lambda *parts: jnp.concatenate(parts, axis=0) if eqx.is_array(parts[0]) else parts[0],
        *pieces,
    )
