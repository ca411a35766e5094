"""Mechanism families for SCMs built from a graph: linear-Gaussian and additive-noise MLPs.

A mechanism object is configuration; `init(graph, key=...)` turns it into a program: an Equinox
module whose `__call__()` is a NumPyro program over the graph's nodes, with its parameters as
arrays (so fitting returns a new program, and `jit`/`vmap` see the parameters as data).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._checks import to_device
from ..nn import MLP
from ._graph import Graph


class AbstractMechanism(eqx.Module):
    """A family of mechanisms `x_j = f_j(pa_j) + scale_j * eps_j`, `eps_j ~ N(0, 1)`."""

    @abc.abstractmethod
    def init(self, graph: Graph, *, key: PRNGKeyArray | None) -> AbstractProgram:
        """Initial parameters for `graph` (random where the family needs them)."""


class AbstractProgram(eqx.Module):
    """A NumPyro program over `graph` with parametric additive-Gaussian-noise mechanisms."""

    graph: eqx.AbstractVar[Graph]
    scale: eqx.AbstractVar[Float[Array, " d"]]

    @abc.abstractmethod
    def loc(self, j: int, values: dict[str, Array]) -> Float[Array, ""]:
        """The mean of node `j` given `values`, a dict holding (at least) its parents' values."""

    def __call__(self) -> None:
        # A dict, not one array, so NumPyro's provenance tracking reads exactly the graph.
        values: dict[str, Array] = {}
        for j, v in enumerate(self.graph.names):
            values[v] = numpyro.sample(v, dist.Normal(self.loc(j, values), self.scale[j]))


def _parent_mask(graph: Graph) -> np.ndarray:
    return graph.adjacency.astype(bool)


class LinearGaussianProgram(AbstractProgram):
    r"""$x_j = b_j + \sum_{i \in pa(j)} W_{ij} x_i + \sigma_j \varepsilon_j$.

    - `weights`: `(d, d)`, `weights[i, j]` the coefficient of `i -> j` (zero off the graph).
    - `bias`, `scale`: `(d,)`.
    """

    graph: Graph
    weights: Float[Array, "d d"]
    bias: Float[Array, " d"]
    scale: Float[Array, " d"]

    def __check_init__(self):
        d = self.graph.n_nodes
        if self.weights.shape != (d, d) or self.bias.shape != (d,) or self.scale.shape != (d,):
            raise ValueError(
                f"weights must be ({d}, {d}) and bias, scale ({d},); got {self.weights.shape}, "
                f"{self.bias.shape}, {self.scale.shape}"
            )

    def loc(self, j: int, values: dict[str, Array]) -> Float[Array, ""]:
        out = self.bias[j]
        for p in self.graph.parent_names[j]:
            out = out + self.weights[self.graph.index(p), j] * values[p]
        return out

    def weights_frame(self) -> pd.DataFrame:
        """The weights by name: rows are causes, columns effects (`frame.loc["x", "y"]` is the
        coefficient of `x -> y`; 0 off the graph), whatever order the nodes were given in."""
        names = list(self.graph.names)
        return pd.DataFrame(np.asarray(self.weights), index=names, columns=names)

    def node_frame(self) -> pd.DataFrame:
        """Bias and noise scale of each node, indexed by name."""
        return pd.DataFrame(
            {"bias": np.asarray(self.bias), "scale": np.asarray(self.scale)},
            index=list(self.graph.names),
        )


class LinearGaussian(AbstractMechanism):
    """Linear mechanisms with Gaussian noise; fitted in closed form by weighted least squares.

    `init` draws weights `N(0, 1)` on the edges from `key` (zeros when `key` is `None`), bias 0,
    scale 1.
    """

    def init(self, graph: Graph, *, key: PRNGKeyArray | None = None) -> LinearGaussianProgram:
        d = graph.n_nodes
        # Constants are made on the host and transferred (`to_device`): eager `jnp.zeros`/`ones`
        # compile a small program each in every new process.
        if key is None:
            w = to_device(np.zeros((d, d)))
        else:
            w = jr.normal(key, (d, d)) * to_device(_parent_mask(graph))
        return LinearGaussianProgram(
            graph=graph, weights=w, bias=to_device(np.zeros((d,))), scale=to_device(np.ones((d,)))
        )


class AdditiveNoiseMLPProgram(AbstractProgram):
    r"""$x_j = \mu_j + s_j\,[\beta_j^\top (\tilde x \odot m_j) + \mathrm{MLP}_j(\tilde x \odot
    m_j)] + \sigma_j \varepsilon_j$ with $\tilde x = (x - c) / r$ the standardised inputs and $m_j$
    the parent mask of node `j`: a linear part plus an MLP for what is not linear.

    - `mlps`: `d` MLPs `d -> scalar` stacked on a leading axis (one per node).
    - `linear`: `(d, d)`, `linear[j, i]` the standardised linear coefficient of parent `i` in
      node `j`'s mechanism (zero off the graph).
    - `mask`: `(d, d)` booleans, `mask[j, i]` true when `i` is a parent of `j`.
    - `in_loc`, `in_scale`, `out_loc`, `out_scale`: `(d,)` standardisation constants.
    - `scale`: `(d,)` noise standard deviations.
    - `config`: the [`jaxcausal.scm.AdditiveNoiseMLP`][] settings used to train it.
    """

    graph: Graph
    mlps: MLP
    linear: Float[Array, "d d"]
    mask: Bool[Array, "d d"]
    in_loc: Float[Array, " d"]
    in_scale: Float[Array, " d"]
    out_loc: Float[Array, " d"]
    out_scale: Float[Array, " d"]
    scale: Float[Array, " d"]
    config: AdditiveNoiseMLP

    def node_mlp(self, j: int) -> MLP:
        return jax.tree.map(lambda a: a[j] if eqx.is_array(a) else a, self.mlps)

    def loc(self, j: int, values: dict[str, Array]) -> Float[Array, ""]:
        parents = self.graph.parent_names[j]
        zero = jnp.zeros((), self.scale.dtype)
        xt = jnp.stack([
            (values[v] - self.in_loc[i]) / self.in_scale[i] if v in parents else zero
            for i, v in enumerate(self.graph.names)
        ])
        return self.out_loc[j] + self.out_scale[j] * (self.linear[j] @ xt + self.node_mlp(j)(xt))


class AdditiveNoiseMLP(AbstractMechanism):
    """Additive-noise mechanisms `x_j = beta_j' pa_j + MLP_j(pa_j) + sigma_j * eps_j`, trained
    with [`jaxcausal.train.fit_ensemble`][] (all nodes in one compiled call).

    The fit starts from the weighted least-squares solution of the linear part with the MLPs'
    output layers at zero, so a mechanism is never fitted worse than linearly (on validation
    rows) and a strong linear signal is not underfitted; the MLPs learn what is not linear.

    **Arguments:** `width`, `depth`, `activation` of each node's MLP; `learning_rate`,
    `weight_decay` (AdamW), `max_steps`, `batch_size`, `val_fraction` (held-out rows for early
    stopping), `patience` (evaluations without improvement, each `eval_every` steps).
    """

    width: int = eqx.field(static=True, default=32)
    depth: int = eqx.field(static=True, default=2)
    activation: Callable = eqx.field(static=True, default=jax.nn.tanh)
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_steps: int = eqx.field(static=True, default=2000)
    batch_size: int | None = eqx.field(static=True, default=256)
    val_fraction: float = 0.2
    eval_every: int = eqx.field(static=True, default=20)
    patience: int | None = eqx.field(static=True, default=10)

    def __check_init__(self):
        if self.width < 1 or self.depth < 0:
            raise ValueError(f"width must be >= 1 and depth >= 0; got {self.width}, {self.depth}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1); got {self.val_fraction}")

    def init(self, graph: Graph, *, key: PRNGKeyArray | None = None) -> AdditiveNoiseMLPProgram:
        if key is None:
            raise ValueError("key is required to initialise AdditiveNoiseMLP mechanisms")
        d = graph.n_nodes
        keys = jr.split(key, d)
        mlps = eqx.filter_vmap(
            lambda k: MLP(d, "scalar", self.width, self.depth, activation=self.activation, key=k)
        )(keys)
        ones, zeros = to_device(np.ones((d,))), to_device(np.zeros((d,)))
        mask = jnp.asarray(_parent_mask(graph).T)
        return AdditiveNoiseMLPProgram(
            graph=graph, mlps=mlps, linear=to_device(np.zeros((d, d))), mask=mask, in_loc=zeros,
            in_scale=ones, out_loc=zeros, out_scale=ones, scale=ones, config=self,
        )


def from_graph(
    adjacency, names, mechanisms: AbstractMechanism, *, key: PRNGKeyArray | None, noise_scale=None
):
    """Builds the program of [`jaxcausal.scm.SCM.from_graph`][]."""
    graph = adjacency if isinstance(adjacency, Graph) else Graph.from_adjacency(adjacency, names)
    if not isinstance(mechanisms, AbstractMechanism):
        raise TypeError(
            "mechanisms must be a mechanism object such as jc.scm.LinearGaussian() or "
            f"jc.scm.AdditiveNoiseMLP(); got {type(mechanisms).__name__}"
        )
    program = mechanisms.init(graph, key=key)
    if noise_scale is not None:
        scale = jnp.broadcast_to(jnp.asarray(noise_scale, program.scale.dtype), program.scale.shape)
        program = eqx.tree_at(lambda p: p.scale, program, scale)
    return program
