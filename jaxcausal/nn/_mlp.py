"""A plain MLP block with optional dropout, on one example (batch with `jax.vmap`)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray


class MLP(eqx.Module):
    """Multi-layer perceptron `in_size -> [width] * depth -> out_size`.

    **Arguments:**

    - `in_size`, `out_size`: input and output sizes; `"scalar"` for `out_size` returns shape `()`.
    - `width`, `depth`: hidden width and number of hidden layers (`depth=0` is a linear model).
    - `activation`: hidden activation (default `jax.nn.gelu`: smooth, which suits nuisance
      regressions).
    - `dropout`: dropout rate after each hidden activation (0 disables it). Dropout is active unless
      the module is put in inference mode (`eqx.nn.inference_mode`) or no `key` is given.
    - `key`: initialisation key.

    `__call__(x, *, key=None)` maps one input of shape `(in_size,)` to `(out_size,)`.
    """

    layers: tuple[eqx.nn.Linear, ...]
    dropout: eqx.nn.Dropout
    activation: Callable = eqx.field(static=True)
    out_size: int | str = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int | str,
        width: int = 64,
        depth: int = 2,
        *,
        activation: Callable = jax.nn.gelu,
        dropout: float = 0.0,
        key: PRNGKeyArray,
    ):
        if depth < 0:
            raise ValueError(f"depth must be non-negative, got {depth}")
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        sizes = [in_size] + [width] * depth + [out_size]
        keys = jr.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        )
        self.dropout = eqx.nn.Dropout(dropout, inference=dropout == 0.0)
        self.activation = activation
        self.out_size = out_size

    def __call__(self, x: Float[Array, " d"], *, key: PRNGKeyArray | None = None) -> Array:
        keys = [None] * len(self.layers) if key is None else list(jr.split(key, len(self.layers)))
        for layer, k in zip(self.layers[:-1], keys[:-1]):
            x = self.activation(layer(x))
            x = self.dropout(x, key=k, inference=k is None or self.dropout.inference)
        return self.layers[-1](x)
