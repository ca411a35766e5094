"""Input validation shared by every layer: eager on concrete values, `eqx.error_if` when traced."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when `x` holds values on the host side (not a tracer inside `jit`/`vmap`)."""
    return not isinstance(x, jax.core.Tracer)


def as_float_array(value: Any, name: str) -> jax.Array:
    """Converts `value` to a floating JAX array, naming `name` when that is impossible."""
    if isinstance(value, jax.Array):
        arr = value
    else:
        np_arr = np.asarray(value)
        if np_arr.dtype == object or not (
            np.issubdtype(np_arr.dtype, np.number) or np.issubdtype(np_arr.dtype, np.bool_)
        ):
            raise TypeError(f"{name} must be numeric; got an array of dtype {np_arr.dtype}")
        # Cast on the host (to float, and to JAX's precision): an eager cast in JAX compiles on
        # its first use in a process.
        target = np_arr.dtype if np.issubdtype(np_arr.dtype, np.floating) else float
        # `device_put` of a private copy: `jnp.asarray` would compile a copy per shape.
        np_arr = np.array(np_arr, dtype=jax.dtypes.canonicalize_dtype(target), order="C")
        arr = jax.device_put(np_arr)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def to_device(value: Any, dtype: Any = None) -> jax.Array:
    """A host value as a JAX array of `dtype` (default: JAX's default float type), cast with NumPy
    and transferred: unlike `jnp.asarray(..., dtype)` or `jnp.zeros`, it compiles no program (an
    eager JAX operation compiles one on its first use in every process)."""
    dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
    return jax.device_put(np.asarray(value, dtype=dtype))


def check_finite(arr: jax.Array, name: str) -> jax.Array:
    """Raises if `arr` holds NaN or infinite values.

    Concrete arrays are checked on the host with a `ValueError` naming the first bad row; traced
    arrays get an `eqx.error_if` whose result must be threaded into the computation.
    """
    if is_concrete(arr):
        bad = ~np.isfinite(np.asarray(arr))
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            kind = "NaN" if np.isnan(np.asarray(arr)[bad]).any() else "infinite"
            raise ValueError(
                f"{name} contains {kind} values ({int(bad.sum())} entries, first in row {row}); "
                "expected finite numbers"
            )
        return arr
    import equinox as eqx

    return eqx.error_if(arr, ~jnp.all(jnp.isfinite(arr)), f"{name} contains NaN or infinite values")


def check_ndim(arr: jax.Array, ndims: tuple[int, ...], name: str, what: str) -> None:
    if arr.ndim not in ndims:
        raise ValueError(f"{name} must be {what}; got an array of shape {tuple(arr.shape)}")


def check_binary(arr: jax.Array, name: str, why: str = "") -> jax.Array:
    """Raises unless every value of `arr` is 0 or 1 (eagerly when concrete)."""
    suffix = f" {why}" if why else ""
    if is_concrete(arr):
        vals = np.unique(np.asarray(arr))
        if not np.all(np.isin(vals, (0.0, 1.0))):
            shown = ", ".join(f"{v:g}" for v in vals[:5])
            raise ValueError(
                f"{name} must be binary (values in {{0, 1}}){suffix}; got values {shown}"
                + (" ..." if vals.size > 5 else "")
            )
        return arr
    import equinox as eqx

    return eqx.error_if(arr, ~jnp.all((arr == 0) | (arr == 1)), f"{name} must be binary{suffix}")


def check_weights(weights: Any, n: int, name: str = "weights") -> jax.Array:
    """Validates per-row weights of shape `(n,)`: finite, non-negative, not all zero."""
    w = as_float_array(weights, name)
    if w.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) (one weight per row); got {tuple(w.shape)}"
        )
    w = check_finite(w, name)
    if is_concrete(w):
        wn = np.asarray(w)
        if (wn < 0).any():
            raise ValueError(f"{name} must be non-negative; got a minimum of {wn.min():g}")
        if not (wn > 0).any():
            raise ValueError(f"{name} must have at least one positive entry; all are zero")
    return w
