"""Small output heads used by treatment-effect models and VAEs."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class GaussianHead(eqx.Module):
    """Maps features to the mean and a positive scale of a diagonal Gaussian of size `out_size`."""

    linear: eqx.nn.Linear
    min_scale: float = eqx.field(static=True)

    def __init__(self, in_size: int, out_size: int, *, min_scale: float = 1e-3, key: PRNGKeyArray):
        self.linear = eqx.nn.Linear(in_size, 2 * out_size, key=key)
        self.min_scale = min_scale

    def __call__(self, h: Float[Array, " d"]) -> tuple[Array, Array]:
        loc, raw = jnp.split(self.linear(h), 2)
        return loc, jax.nn.softplus(raw) + self.min_scale


class BernoulliHead(eqx.Module):
    """Maps features to one logit (shape `()`); `jax.nn.sigmoid` of it is a probability."""

    linear: eqx.nn.Linear

    def __init__(self, in_size: int, *, key: PRNGKeyArray):
        self.linear = eqx.nn.Linear(in_size, "scalar", key=key)

    def __call__(self, h: Float[Array, " d"]) -> Float[Array, ""]:
        return self.linear(h)


class TwoHeads(eqx.Module):
    """Two outcome heads on a shared representation (potential outcomes under t = 0 and t = 1)."""

    head0: eqx.Module
    head1: eqx.Module

    def __call__(self, h: Float[Array, " d"]) -> Float[Array, "2 ..."]:
        return jnp.stack([self.head0(h), self.head1(h)])
