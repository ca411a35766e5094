r"""The causal models a GIM learns: linear (cyclic allowed, exact Gaussian likelihood) and
additive-noise MLPs on a learned soft graph.

Both are additive-noise models on standardised variables, $x = f_\theta(x) + b + \delta +
\sigma \odot \varepsilon$, so the residual $r = x - f_\theta(x) - b$ of a cell does not depend on
the intervention: a shift $\delta_j$ moves the mean of $r_j$ and nothing else. That makes the
likelihood of a whole perturbation factorise over variables given its per-variable residual sums
(see `jaxcausal.gim._gim`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..nn import MLP


def acyclicity(m: Float[Array, "d d"]) -> Float[Array, ""]:
    r"""NOTEARS' $h(M) = \mathrm{tr}\, e^{M \circ M} - d$: zero exactly when the weighted graph
    $M$ has no directed cycle (Zheng et al. 2018)."""
    return jnp.trace(jax.scipy.linalg.expm(m * m)) - m.shape[0]


class AbstractCausalParams(eqx.Module):
    """Trainable parameters of a causal model over `d` standardised variables."""

    bias: eqx.AbstractVar[Float[Array, " d"]]
    log_scale: eqx.AbstractVar[Float[Array, " d"]]

    @abc.abstractmethod
    def mechanisms(self, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        """$f_\\theta(x)$ for each row (without the bias)."""

    @abc.abstractmethod
    def edge_weights(self) -> Float[Array, "d d"]:
        """`(d, d)` edge strengths, `[i, j]` for `i -> j` (zero diagonal): penalised for
        sparsity and acyclicity, and thresholded for the graph of `FittedGIM.scm`."""

    def log_det(self) -> Float[Array, ""]:
        """$\\log|\\det(I - \\partial f / \\partial x)|$ per cell (0 unless overridden)."""
        return jnp.zeros((), self.bias.dtype)

    def residuals(self, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return x - self.mechanisms(x) - self.bias[None, :]

    @abc.abstractmethod
    def solve(self, u: Float[Array, "n d"]) -> Float[Array, "n d"]:
        """The cells `x` with `x = f(x) + u`, for exogenous inputs `u` (bias, shift, noise)."""


class LinearParams(AbstractCausalParams):
    """$x = W^\\top x + b + \\delta + \\sigma \\odot \\varepsilon$ (row form `x = x W + ...`)."""

    weights: Float[Array, "d d"]
    bias: Float[Array, " d"]
    log_scale: Float[Array, " d"]

    def _w(self) -> Array:
        return self.weights * (1.0 - jnp.eye(self.weights.shape[0], dtype=self.weights.dtype))

    def mechanisms(self, x):
        return x @ self._w()

    def edge_weights(self):
        return self._w()

    def log_det(self):
        # x = (b + delta + eps)(I - W)^{-1}: the density of x carries |det(I - W)| per cell, so
        # the likelihood is exact for cyclic W too (where I - W is invertible).
        return jnp.linalg.slogdet(jnp.eye(self.weights.shape[0]) - self._w())[1]

    def solve(self, u):
        d = self.weights.shape[0]
        return jnp.linalg.solve((jnp.eye(d) - self._w()).T, u.T).T


class MLPParams(AbstractCausalParams):
    """$x_j = \\beta_j^\\top (a_j \\odot x) + \\mathrm{MLP}_j(a_j \\odot x) + b_j + \\dots$ with
    soft edge gates $a_{ij} = \\sigma(\\ell_{ij})$ (zero diagonal)."""

    gate_logits: Float[Array, "d d"]
    linear: Float[Array, "d d"]
    mlps: MLP
    bias: Float[Array, " d"]
    log_scale: Float[Array, " d"]

    def gates(self) -> Array:
        d = self.gate_logits.shape[0]
        return jax.nn.sigmoid(self.gate_logits) * (1.0 - jnp.eye(d, dtype=self.bias.dtype))

    def _node(self, x_row: Array) -> Array:
        a = self.gates()  # a[i, j]: i -> j

        def one(mlp, gate, beta):
            z = x_row * gate
            return beta @ z + mlp(z)

        return eqx.filter_vmap(one)(self.mlps, a.T, self.linear.T)

    def mechanisms(self, x):
        return jax.vmap(self._node)(x)

    def edge_weights(self):
        # Input i's weight in node j's mechanism (as NOTEARS-MLP): the gate times the norm of
        # its linear coefficient and first-layer column.
        w1 = self.mlps.layers[0].weight  # (node j, width, input i)
        col = jnp.sqrt(jnp.sum(w1**2, axis=1) + self.linear.T**2 + 1e-12)
        return self.gates() * col.T

    def solve(self, u):
        # Fixed-point iteration, exact after d rounds on an acyclic graph (each round settles one
        # more generation of the topological order).
        def body(_, x):
            return self.mechanisms(x) + u

        return jax.lax.fori_loop(0, u.shape[1], body, u)


class AbstractCausal(eqx.Module):
    """Configuration of a GIM's causal model."""

    acyclic: eqx.AbstractVar[bool]
    edge_threshold: eqx.AbstractVar[float]

    @abc.abstractmethod
    def init(self, d: int, *, key: PRNGKeyArray) -> AbstractCausalParams:
        """Initial parameters over `d` variables."""


class LinearSCM(AbstractCausal):
    r"""Linear-Gaussian causal model $x = W^\top x + b + \delta + \sigma \odot \varepsilon$.

    `acyclic=True` (default) adds NOTEARS' acyclicity penalty (growing during training) so the
    learned graph is a DAG and [`jaxcausal.gim.FittedGIM.scm`][] is exact; `acyclic=False` allows
    feedback: the likelihood $\log p(x) = \sum_j \log \mathcal N(r_j; 0, \sigma_j^2) +
    \log|\det(I - W)|$ with $r = x(I - W) - b - \delta$ stays exact wherever $I - W$ is
    invertible, and sampling solves the linear system. `edge_threshold`: weights below it (in
    standardised units) are left out of [`jaxcausal.gim.FittedGIM.scm`][].
    """

    acyclic: bool = eqx.field(static=True, default=True)
    edge_threshold: float = 0.05

    def init(self, d: int, *, key: PRNGKeyArray) -> LinearParams:
        z = jnp.zeros((d,))
        return LinearParams(weights=jnp.zeros((d, d)), bias=z, log_scale=z)


class MLPSCM(AbstractCausal):
    r"""Additive-noise MLP mechanisms on a learned soft graph: node $j$'s mechanism is a linear
    term plus an MLP of its gated inputs $a_{\cdot j} \odot x$, $a = \sigma(\ell)$, with sparsity
    and acyclicity penalties on each input's weight, $a_{ij}$ times the norm of input $i$'s linear
    coefficient and first-layer column in node $j$ (as NOTEARS-MLP). The likelihood leaves out
    the Jacobian of $x \mapsto x - f(x)$, which is exactly 1 on an acyclic graph (as DCDI and
    NOTEARS-MLP do).

    **Arguments:** `width`, `depth`, `activation` of each node's MLP; `acyclic`;
    `edge_threshold`, the input weight below which an edge is left out of
    [`jaxcausal.gim.FittedGIM.scm`][].
    """

    width: int = eqx.field(static=True, default=16)
    depth: int = eqx.field(static=True, default=1)
    activation: Callable = eqx.field(static=True, default=jax.nn.tanh)
    acyclic: bool = eqx.field(static=True, default=True)
    edge_threshold: float = 0.2

    def __check_init__(self):
        if self.width < 1 or self.depth < 0:
            raise ValueError(f"width must be >= 1 and depth >= 0; got {self.width}, {self.depth}")

    def init(self, d: int, *, key: PRNGKeyArray) -> MLPParams:
        keys = jr.split(key, d)
        mlps = eqx.filter_vmap(
            lambda k: MLP(d, "scalar", self.width, self.depth, activation=self.activation, key=k)
        )(keys)
        last = mlps.layers[-1]
        mlps = eqx.tree_at(
            lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlps,
            (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
        )
        z = jnp.zeros((d,))
        return MLPParams(
            gate_logits=jnp.zeros((d, d)), linear=jnp.zeros((d, d)), mlps=mlps, bias=z,
            log_scale=z,
        )
