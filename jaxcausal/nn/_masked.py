"""Adjacency-masked MLP: output `j` sees only the inputs `i` with `adjacency[i, j] = 1`."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._mlp import MLP


class MaskedMLP(eqx.Module):
    """One small MLP per output, whose first layer is masked by a 0/1 adjacency matrix.

    `adjacency[i, j] = 1` lets input `i` reach output `j`. Each output has its own hidden layers
    (stacked and evaluated with `vmap`), so output `j` depends on exactly the inputs allowed by
    column `j`: no information leaks through shared hidden units. Masked weights are zero at
    initialisation and receive exactly zero gradient (the mask multiplies the weight in the forward
    pass and is a boolean leaf, so it is never trained); with Adam/AdamW they stay exactly zero.

    **Arguments:**

    - `adjacency`: array-like `(in_size, out_size)` of 0/1 (or bool).
    - `width`, `depth`: hidden width and depth of every per-output network (`depth >= 1`).
    - `activation`: hidden activation.
    - `key`: initialisation key.

    `__call__(x)` maps `(in_size,)` to `(out_size,)`.
    """

    mask: Bool[Array, "out in"]
    first_weight: Float[Array, "out width in"]
    first_bias: Float[Array, "out width"]
    rest: MLP
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        adjacency,
        width: int = 32,
        depth: int = 1,
        *,
        activation: Callable = jax.nn.gelu,
        key: PRNGKeyArray,
    ):
        adj = np.asarray(adjacency)
        if adj.ndim != 2:
            raise ValueError(
                f"adjacency must be a matrix (in_size, out_size); got shape {adj.shape}"
            )
        if not np.isin(adj, (0, 1)).all():
            raise ValueError("adjacency must hold only 0/1 (or bool) entries")
        if depth < 1:
            raise ValueError(f"depth must be at least 1 for MaskedMLP, got {depth}")
        in_size, out_size = adj.shape
        k_first, k_rest = jr.split(key)
        lim = 1.0 / np.sqrt(max(in_size, 1))
        mask = jnp.asarray(adj.T.astype(bool))
        w = jr.uniform(k_first, (out_size, width, in_size), minval=-lim, maxval=lim)
        self.mask = mask
        self.first_weight = jnp.where(mask[:, None, :], w, 0.0)
        self.first_bias = jr.uniform(
            jr.fold_in(k_first, 1), (out_size, width), minval=-lim, maxval=lim
        )
        keys = jr.split(k_rest, out_size)
        self.rest = eqx.filter_vmap(
            lambda k: MLP(width, "scalar", width, depth - 1, activation=activation, key=k)
        )(keys)
        self.activation = activation

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " out_size"]:
        w = jnp.where(self.mask[:, None, :], self.first_weight, 0.0)
        h = self.activation(jnp.einsum("owi,i->ow", w, x) + self.first_bias)
        return eqx.filter_vmap(lambda mlp, hj: mlp(hj))(self.rest, h)

    @property
    def adjacency(self) -> Bool[Array, "in out"]:
        return self.mask.T
