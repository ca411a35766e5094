"""A GRU encoder over a window of time steps, run with `lax.scan`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class GRUEncoder(eqx.Module):
    """Encodes a sequence `(time, in_size)` into its last hidden state `(hidden_size,)`."""

    cell: eqx.nn.GRUCell
    hidden_size: int = eqx.field(static=True)

    def __init__(self, in_size: int, hidden_size: int, *, key: PRNGKeyArray):
        self.cell = eqx.nn.GRUCell(in_size, hidden_size, key=key)
        self.hidden_size = hidden_size

    def __call__(self, xs: Float[Array, "time in_size"]) -> Float[Array, " hidden"]:
        if xs.ndim != 2:
            raise ValueError(
                f"GRUEncoder expects a sequence of shape (time, features); got {xs.shape}"
            )

        def step(h, x):
            return self.cell(x, h), None

        h0 = jnp.zeros((self.hidden_size,), dtype=xs.dtype)
        h, _ = jax.lax.scan(step, h0, xs)
        return h
