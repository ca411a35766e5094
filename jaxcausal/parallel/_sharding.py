"""Sharding a leading batch axis over a device mesh with JAX's own SPMD machinery.

Everything jaxcausal repeats (ensemble members, folds x repetitions, simulation replications) is a
leading batch axis. Placing that axis across a 1-D `jax.sharding.Mesh` and compiling the batched
computation with `jit` lets XLA's partitioner split the work over all devices (GPUs, TPUs, CPU
devices, or many hosts after `jax.distributed.initialize()`); there is no scheduler of our own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

from .._compile import filter_jit


def batch_mesh(devices: Sequence[Any] | None = None, *, axis_name: str = "batch") -> Mesh:
    """A 1-D device mesh whose single axis carries the batch.

    **Arguments:**

    - `devices`: the devices to use, in order; default all devices (`jax.devices()`), which spans
      every host after `jax.distributed.initialize()`.
    - `axis_name`: the name of the mesh axis.

    **Returns:** a `jax.sharding.Mesh` of shape `(len(devices),)`.

    !!! Example

        ```python
        mesh = jc.parallel.batch_mesh()              # all devices
        mesh = jc.parallel.batch_mesh(jax.devices()[:2])
        ```
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty; batch_mesh needs at least one device")
    if not isinstance(axis_name, str) or not axis_name:
        raise TypeError(f"axis_name must be a non-empty string; got {axis_name!r}")
    if len({id(d) for d in devices}) != len(devices):
        raise ValueError(f"devices must be distinct; got {devices}")
    return Mesh(np.array(devices, dtype=object), (axis_name,))


def _get_mesh(mesh: Mesh | None) -> Mesh:
    if mesh is None:
        return batch_mesh()
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh (see batch_mesh); got {type(mesh)}")
    if len(mesh.axis_names) != 1:
        raise ValueError(
            f"mesh must be 1-D (one batch axis); got axes {mesh.axis_names} of shape "
            f"{tuple(mesh.devices.shape)}"
        )
    return mesh


def _batch_sharding(mesh: Mesh, axis: int) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), mesh.axis_names[0]))


def shard_batch(tree: PyTree, mesh: Mesh | None = None) -> PyTree:
    """Places the leading axis of every array leaf of `tree` across the devices of `mesh`.

    Compiled functions (`jax.jit`, `eqx.filter_jit`, [`jaxcausal.train.fit_ensemble`][]) called on
    the result run sharded: each device computes its slice of the batch.

    **Arguments:**

    - `tree`: any pytree (models with a leading member axis, weight masks `(members, n)`, keys);
      non-array leaves are left as they are.
    - `mesh`: a 1-D mesh; default [`jaxcausal.parallel.batch_mesh`][]`()` over all devices.

    **Returns:** the same pytree with every array leaf sharded along its leading axis.

    Every array leaf needs a leading axis whose size is a multiple of the number of devices; pad
    the batch (or use [`jaxcausal.parallel.sharded_vmap`][], which pads for you) otherwise.
    """
    mesh = _get_mesh(mesh)
    sharding = _batch_sharding(mesh, 0)
    n_dev = mesh.devices.size

    def place(path, leaf):
        if not eqx.is_array(leaf):
            return leaf
        where = jax.tree_util.keystr(path) or "the tree itself"
        if leaf.ndim == 0:
            raise ValueError(
                f"cannot shard the scalar leaf at {where}: every array leaf of tree needs a "
                "leading batch axis"
            )
        if leaf.shape[0] % n_dev != 0:
            raise ValueError(
                f"the leading axis of the leaf at {where} has size {leaf.shape[0]}, which is not "
                f"divisible by the {n_dev} devices of the mesh; pad the batch to a multiple of "
                f"{n_dev} or use jc.parallel.sharded_vmap, which pads for you"
            )
        return jax.device_put(leaf, sharding)

    return jax.tree_util.tree_map_with_path(place, tree)


def _resolve_in_axes(in_axes: Any, args: tuple) -> tuple:
    """Per-leaf batch axes of `args` (None for unbatched leaves and for every non-array leaf)."""

    def resolve(spec, sub):
        if spec is not None and not isinstance(spec, int) and not callable(spec):
            raise TypeError(f"in_axes must hold None, ints or callables; got {spec!r}")

        def one(leaf):
            axis = spec(leaf) if callable(spec) else spec
            if axis is None or not eqx.is_array(leaf):
                return None
            if not -leaf.ndim <= axis < leaf.ndim:
                raise ValueError(
                    f"in_axes asks for axis {axis} of an array of shape {tuple(leaf.shape)}"
                )
            return axis % leaf.ndim

        return jax.tree.map(one, sub)

    if isinstance(in_axes, dict):
        raise TypeError(
            "in_axes must be an int, None, a callable, or a tuple prefix of the arguments"
        )
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(in_axes, tuple) and len(in_axes) != len(args):
        raise ValueError(
            f"in_axes has {len(in_axes)} entries but the function got {len(args)} arguments"
        )
    try:
        return jax.tree.map(resolve, in_axes, args, is_leaf=lambda x: x is None)
    except ValueError as err:
        if "in_axes asks" in str(err):
            raise
        raise ValueError(f"in_axes must be a prefix of the arguments' pytree: {err}") from None


def _batch_size(flat_args: list, flat_axes: list) -> int:
    sizes = {leaf.shape[ax] for leaf, ax in zip(flat_args, flat_axes) if ax is not None}
    if not sizes:
        raise ValueError("sharded_vmap found no batched array among the arguments (check in_axes)")
    if len(sizes) > 1:
        raise ValueError(
            f"the batched arguments disagree on the batch size: got sizes {sorted(sizes)}"
        )
    return sizes.pop()


@filter_jit
def _mapped(fn, args, axes, out_sharding):
    # One module-level `filter_jit`, so its cache outlives a `sharded_vmap` wrapper: the same `fn`
    # (and an `eqx.Partial` whose non-array parts are the same) on the same shapes compiles once.
    out = eqx.filter_vmap(fn, in_axes=axes)(*args)
    if out_sharding is None:
        return out
    return jax.tree.map(
        lambda a: jax.lax.with_sharding_constraint(a, out_sharding) if eqx.is_array(a) else a, out
    )


def _pad(leaf: jax.Array, axis: int, pad: int) -> jax.Array:
    # Padding repeats the last batch element, so padded members are valid inputs (a zero weight
    # mask or a NaN could trip the input checks of the function being mapped).
    last = jax.lax.slice_in_dim(leaf, leaf.shape[axis] - 1, leaf.shape[axis], axis=axis)
    return jnp.concatenate([leaf, jnp.repeat(last, pad, axis=axis)], axis=axis)


def sharded_vmap(
    fn: Callable[..., Any], *, in_axes: Any = 0, mesh: Mesh | None = None
) -> Callable[..., Any]:
    """`eqx.filter_jit(eqx.filter_vmap(fn, in_axes=in_axes))` with the batch sharded over `mesh`.

    The batched inputs are padded to a multiple of the number of devices (by repeating their last
    element), placed across the mesh, mapped and compiled as one SPMD program whose outputs stay
    sharded along their leading axis; the padding is sliced off the outputs, so any batch size
    works. On one device this is just `jit(vmap(fn))`. Each batch element is computed on its
    own, so the same inputs (keys included) give the same outputs on one or many devices, up to
    the rounding of the compiled kernels. With several hosts (after
    `jax.distributed.initialize()`), every process calls it with the same inputs.

    **Arguments:**

    - `fn`: a pure function of positional arguments; its outputs get the batch as leading axis.
    - `in_axes`: as for `eqx.filter_vmap`: an int, `None` or a callable applied to every leaf, or
      a tuple with one such entry (or a pytree prefix) per argument. Only array leaves are
      batched: an int applies to the arrays of its subtree and leaves other objects alone.
    - `mesh`: a 1-D mesh; default [`jaxcausal.parallel.batch_mesh`][]`()` over all devices.

    **Returns:** a callable with the signature of `fn` (positional arguments only). Calling it
    again with the same shapes does not recompile, nor does a new `sharded_vmap` of the same `fn`
    (compilations are cached by `fn`'s identity; an `equinox.Partial` is cached by its function
    and the non-array parts of its arguments, and its arrays are traced).

    !!! Example

        ```python
        learner = jc.learners.MLP()
        fit_one = lambda k, w, x, y: learner.fit(x, y, key=k, weights=w)
        predictors = jc.parallel.sharded_vmap(fit_one, in_axes=(0, 0, None, None))(
            jr.split(key, 50), masks, x, y
        )
        ```
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    mesh = _get_mesh(mesh)
    n_dev = mesh.devices.size
    out_sharding = _batch_sharding(mesh, 0) if n_dev > 1 else None

    def call(*args):
        axes = _resolve_in_axes(in_axes, args)
        flat_args, treedef = jax.tree.flatten(args)
        flat_axes = treedef.flatten_up_to(axes)
        size = _batch_size(flat_args, flat_axes)
        pad = -size % n_dev
        placed = []
        for leaf, ax in zip(flat_args, flat_axes):
            if ax is not None:
                leaf = jnp.asarray(leaf)
                if pad:
                    leaf = _pad(leaf, ax, pad)
                if n_dev > 1:
                    leaf = jax.device_put(leaf, _batch_sharding(mesh, ax))
            placed.append(leaf)
        out = _mapped(fn, jax.tree.unflatten(treedef, placed), axes, out_sharding)
        if not pad:
            return out
        return jax.tree.map(lambda a: a[:size] if eqx.is_array(a) else a, out)

    return call


def _default_batch_size(mesh: Mesh) -> int | None:
    return 1 if all(d.platform == "cpu" for d in mesh.devices.ravel()) else None


def _in_batches(fn, batch_size, *args):
    # `lax.map` carries arrays only: non-array leaves of the arguments ride along unbatched, and
    # those of the output (static configuration of a returned module) are read once from the
    # output's shape and put back.
    arrays, rest = eqx.partition(args, eqx.is_array)

    def one(a):
        return eqx.filter(fn(*eqx.combine(a, rest)), eqx.is_array)

    first = jax.tree.map(lambda a: a[0], arrays)
    shapes = eqx.filter_eval_shape(lambda a: fn(*eqx.combine(a, rest)), first)
    static = eqx.filter(shapes, lambda x: not isinstance(x, jax.ShapeDtypeStruct))
    return eqx.combine(jax.lax.map(one, arrays, batch_size=batch_size), static)


def sharded_map(
    fn: Callable[..., Any], *, batch_size: int | None = None, mesh: Mesh | None = None
) -> Callable[..., Any]:
    """Maps `fn` over the leading axis of every array argument: the batch is sharded over the
    devices of `mesh`, and each device computes `batch_size` elements at a time (a `vmap` inside a
    `lax.map`), all in one compiled program.

    The default `batch_size` is all elements at once on GPUs and TPUs (plain
    [`jaxcausal.parallel.sharded_vmap`][]) and one at a time on CPU devices. On a CPU, members of
    one vmapped batch that train with early stopping run in lockstep until the slowest one stops,
    and a large batch no longer fits the caches: 100 DML fits with MLP nuisances took 79 s as
    one batch and 26 s one at a time on one core (`benchmarks/cpu_batching.py`), while a GPU
    fills its cores with the batch.
    Results do not depend on `batch_size` beyond the rounding of the compiled kernels.

    **Arguments:**

    - `fn`: a pure function of positional arguments. Every array leaf of every argument is batched
      along axis 0; pass unbatched arrays inside an `equinox.Partial` (they are traced, so the
      program is reused for new values).
    - `batch_size`: elements computed together on a device (a positive integer or `None` for the
      default above).
    - `mesh`: a 1-D mesh; default [`jaxcausal.parallel.batch_mesh`][]`()` over all devices.

    **Returns:** a callable with the signature of `fn`; outputs get the batch as leading axis.
    Calling it again, or a new `sharded_map` of the same `fn`, with the same shapes does not
    recompile.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    mesh = _get_mesh(mesh)
    n_dev = mesh.devices.size
    size_per_step = _default_batch_size(mesh) if batch_size is None else batch_size

    def call(*args):
        flat = [leaf for leaf in jax.tree.leaves(args) if eqx.is_array(leaf)]
        size = _batch_size(flat, [0] * len(flat))
        per_device = -(-size // n_dev)
        if size_per_step is None or size_per_step >= per_device:
            return sharded_vmap(fn, mesh=mesh)(*args)
        pad = n_dev * per_device - size

        def split(a):
            if not eqx.is_array(a):
                return a
            a = _pad(jnp.asarray(a), 0, pad) if pad else a
            return a.reshape(n_dev, per_device, *a.shape[1:])

        out = sharded_vmap(eqx.Partial(_in_batches, fn, size_per_step), mesh=mesh)(
            *jax.tree.map(split, args)
        )
        return jax.tree.map(
            lambda a: a.reshape(n_dev * per_device, *a.shape[2:])[:size] if eqx.is_array(a) else a,
            out,
        )

    return call
