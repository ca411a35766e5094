"""Ante-hoc training of causal effects (Reddy et al., AAAI 2024): causal links among the inputs."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, Float, PRNGKeyArray

from .. import train
from ..nn import MLP
from ..scm import SCM, AbstractProgram, Graph, LinearGaussianProgram
from ._training import (
    AttributedNetwork,
    Classification,
    Regression,
    Training,
    as_matrix,
    as_target,
    split3,
    task_loss,
)


class MLPLinks(eqx.Module):
    """Each input with parents gets a small MLP of its parents (nonlinear mechanisms)."""

    width: int = eqx.field(static=True, default=16)
    depth: int = eqx.field(static=True, default=1)
    activation: Any = eqx.field(static=True, default=jax.nn.tanh)


class LinearLinks(eqx.Module):
    """Each input with parents is an affine function of them (a linear-Gaussian input SCM, so
    the Taylor estimator's moments are exact)."""


def _links(graph: Graph, names: tuple[str, ...], kind: Any, key: PRNGKeyArray) -> tuple:
    keys = jax.random.split(key, len(names))
    out = []
    for v, k in zip(names, keys):
        pa = graph.parents(v)
        if not pa:
            out.append(None)
        elif isinstance(kind, LinearLinks):
            out.append(MLP(len(pa), "scalar", 1, 0, key=k))
        else:
            out.append(MLP(len(pa), "scalar", kind.width, kind.depth, activation=kind.activation,
                           key=k))
    return tuple(out)


class _Model(eqx.Module):
    network: MLP
    links: tuple[MLP | None, ...]


class _Static(eqx.Module):
    """The graph structure as column indices (static: it determines the program): each column's
    parents, and the columns in a topological order."""

    parents: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    order: tuple[int, ...] = eqx.field(static=True)


def _predict_link(link: MLP, x: Array, parents: tuple[int, ...]) -> Array:
    return jax.vmap(link)(x[:, list(parents)])


class _Phase1Loss(eqx.Module):
    task: Regression | Classification

    def __call__(self, model, data, weights, *, key):
        x, y = data
        return task_loss(self.task, model, x, y, weights)


class _Phase2Loss(eqx.Module):
    task: Regression | Classification
    lam: Float[Array, ""]
    structure: _Static

    def __call__(self, model: _Model, data, weights, *, key):
        x, y = data
        recon = jnp.zeros((), x.dtype)
        generated: dict[int, Array] = {}
        for j in self.structure.order:
            link, pa = model.links[j], self.structure.parents[j]
            if link is None:
                generated[j] = x[:, j]
                continue
            # Each link regresses its input on the observed parents (its mechanism) ...
            fitted = _predict_link(link, x, pa)
            recon = recon + train.weighted_mean((fitted - x[:, j]) ** 2, weights)
            # ... and the network also sees the inputs generated from the roots alone.
            generated[j] = jax.vmap(link)(jnp.stack([generated[p] for p in pa], axis=1))
        x_gen = jnp.stack([generated[j] for j in range(x.shape[1])], axis=1)
        fit = task_loss(self.task, model.network, x, y, weights)
        fit_gen = task_loss(self.task, model.network, x_gen, y, weights)
        return fit + fit_gen + self.lam * recon


class LinkProgram(AbstractProgram):
    r"""The input SCM formed by ante-hoc links: $x_j = g_j(\mathrm{pa}_j) + \sigma_j
    \varepsilon_j$ with $g_j$ the trained link (roots: $x_j = \mu_j + \sigma_j\varepsilon_j$) and
    $\sigma_j$ the residual scale on the training data."""

    graph: Graph
    links: tuple[MLP | None, ...]
    parent_index: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    root_mean: Float[Array, " d"]
    scale: Float[Array, " d"]

    def loc(self, j: int, values: dict[str, Array]) -> Float[Array, ""]:
        link = self.links[j]
        if link is None:
            return self.root_mean[j]
        pa = jnp.stack([values[self.graph.names[p]] for p in self.parent_index[j]])
        return link(pa)

    def __call__(self) -> None:
        values: dict[str, Array] = {}
        for j, v in enumerate(self.graph.names):
            values[v] = numpyro.sample(v, dist.Normal(self.loc(j, values), self.scale[j]))


def _input_scm(graph_names, parents, links, x, kind) -> SCM:
    """The links as an SCM over the features, in the network's input order (a topological order
    of the graph is not required: the program runs in the graph's order)."""
    d = x.shape[1]
    fitted = []
    for j in range(d):
        link = links[j]
        fitted.append(x[:, j] * 0 + jnp.mean(x[:, j]) if link is None
                      else _predict_link(link, x, parents[j]))
    resid = x - jnp.stack(fitted, axis=1)
    scale = jnp.sqrt(jnp.mean(resid**2, axis=0))
    root_mean = jnp.mean(x, axis=0)
    graph = Graph.from_parents({graph_names[j]: [graph_names[p] for p in parents[j]]
                                for j in range(d)})
    order = [graph_names.index(v) for v in graph.names]
    if isinstance(kind, LinearLinks):
        w = jnp.zeros((d, d), x.dtype)
        bias = jnp.zeros((d,), x.dtype)
        pos = {v: k for k, v in enumerate(graph.names)}
        for j in range(d):
            link = links[j]
            jj = pos[graph_names[j]]
            if link is None:
                bias = bias.at[jj].set(root_mean[j])
                continue
            layer = link.layers[0]
            for k, p in enumerate(parents[j]):
                w = w.at[pos[graph_names[p]], jj].set(layer.weight[0, k])
            bias = bias.at[jj].set(layer.bias[0])
        program = LinearGaussianProgram(graph=graph, weights=w, bias=bias,
                                        scale=scale[jnp.asarray(order)])
        return SCM(program, graph=graph, deterministic=())
    pos = {v: k for k, v in enumerate(graph.names)}
    program = LinkProgram(
        graph=graph,
        links=tuple(links[graph_names.index(v)] for v in graph.names),
        parent_index=tuple(tuple(pos[graph_names[p]] for p in parents[graph_names.index(v)])
                           for v in graph.names),
        root_mean=root_mean[jnp.asarray(order)],
        scale=scale[jnp.asarray(order)],
    )
    return SCM(program, graph=graph, deterministic=())


class AnteHoc(eqx.Module):
    r"""Ante-hoc causal effects (Reddy et al., "Towards learning and explaining indirect causal
    effects in neural networks", AAAI 2024).

    Causal-link modules connect the input neurons along the input DAG. Phase 1 trains the network
    on the observed inputs. Phase 2 trains network and links together on

    $$\mathcal{L}_{task}(f(x)) + \mathcal{L}_{task}(f(\hat x)) + \lambda \sum_{j \notin roots}
    \tfrac1n \sum_u \big(g_j(\mathrm{pa}_j(x_u)) - x_{u,j}\big)^2$$

    where $\hat x$ feeds only the roots and generates every descendant through the links
    ($\hat x_j = g_j(\hat x_{\mathrm{pa}_j})$). Each link regresses its input on the *observed*
    parents, so it estimates its mechanism $\mathbb{E}[x_j \mid \mathrm{pa}_j]$ (a reconstruction
    from generated parents would confound a link's parents with each other); the authors alternate
    the two phase-2 steps at every batch, here their losses are added. The trained links, with
    their residual scales as additive Gaussian noise (roots Gaussian with the data's mean and
    scale), form the input SCM that `.ace` uses for total and indirect effects.

    **Arguments:**

    - `graph`: the [`jaxcausal.scm.Graph`][] among the inputs.
    - `links`: [`jaxcausal.attribution.MLPLinks`][] (default) or
      [`jaxcausal.attribution.LinearLinks`][].
    - `lam`: weight $\lambda$ of the reconstruction.
    - `phase2_fraction`: share of `training.steps` spent in phase 2.
    - `training`, `task`: as for [`jaxcausal.attribution.ERM`][].
    """

    graph: Graph
    links: MLPLinks | LinearLinks = MLPLinks()
    lam: float = 1.0
    phase2_fraction: float = eqx.field(static=True, default=0.5)
    training: Training = Training()
    task: Regression | Classification = Regression()

    def __check_init__(self):
        if not isinstance(self.graph, Graph):
            raise TypeError(f"graph must be a jaxcausal.scm.Graph; got {type(self.graph).__name__}")
        if not isinstance(self.links, (MLPLinks, LinearLinks)):
            raise TypeError(f"links must be MLPLinks() or LinearLinks(); got {self.links!r}")
        if not self.lam >= 0:
            raise ValueError(f"lam must be non-negative, got {self.lam}")
        if not 0.0 < self.phase2_fraction <= 1.0:
            raise ValueError(f"phase2_fraction must be in (0, 1], got {self.phase2_fraction}")

    def fit(self, x: Any, y: Any, *, key: PRNGKeyArray) -> AttributedNetwork:
        xs, names = as_matrix(x, self.graph)
        ys = as_target(y, xs.shape[0], self.task)
        parents = tuple(tuple(names.index(p) for p in self.graph.parents(v)) for v in names)
        k_net, k_links, k_train = split3(key)
        k1, k2 = jax.random.split(k_train)
        net = self.training.network(xs.shape[1], self.task, key=k_net)
        steps2 = max(1, int(round(self.training.steps * self.phase2_fraction)))
        steps1 = self.training.steps - steps2
        losses = []
        if steps1 > 0:
            res1 = self.training.run(_Phase1Loss(self.task), net, (xs, ys), steps1, key=k1)
            net = res1.model
            losses.append(res1.train_loss)
        model = _Model(net, _links(self.graph, names, self.links, k_links))
        order = tuple(names.index(v) for v in self.graph.names)
        loss2 = _Phase2Loss(self.task, jnp.asarray(self.lam, xs.dtype), _Static(parents, order))
        res2 = self.training.run(loss2, model, (xs, ys), steps2, key=k2)
        losses.append(res2.train_loss)
        inputs = _input_scm(names, parents, res2.model.links, xs, self.links)
        return AttributedNetwork(
            res2.model.network, inputs, names, self.task, jnp.concatenate(losses)
        )
