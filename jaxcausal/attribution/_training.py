"""What the training methods share: the task, the optimisation settings, the fitted network."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray

from .. import train
from .._checks import as_float_array, check_finite, is_concrete
from ..nn import MLP
from ..scm import SCM, AbstractMechanism, Graph, LinearGaussian, fit as fit_scm
from ._ace import ace
from ._curves import Curves
from ._effects import AbstractEffect, Total
from ._estimators import AbstractEstimator, MonteCarlo


class Regression(eqx.Module):
    """A real target, squared-error loss; effects on the prediction."""

    def out_size(self) -> int | str:
        return "scalar"

    def loss(self, out: Array, y: Array) -> Array:
        return (out - y) ** 2

    def predict(self, out: Array) -> Array:
        return out


class Classification(eqx.Module):
    """A class label `0, ..., n_classes - 1`, cross-entropy loss; the fitted network returns
    class probabilities, so effects are on a class probability (`output=c`)."""

    n_classes: int = eqx.field(static=True)

    def __check_init__(self):
        if not isinstance(self.n_classes, int) or self.n_classes < 2:
            raise ValueError(f"n_classes must be an integer of at least 2, got {self.n_classes!r}")

    def out_size(self) -> int | str:
        return self.n_classes

    def loss(self, out: Array, y: Array) -> Array:
        logp = jax.nn.log_softmax(out, axis=-1)
        return -jnp.take_along_axis(logp, y.astype(jnp.int32)[:, None], axis=-1)[:, 0]

    def predict(self, out: Array) -> Array:
        return jax.nn.softmax(out)


class Training(eqx.Module):
    """The network and its optimisation, shared by every training method.

    - `width`, `depth`, `activation`: the MLP (a smooth activation keeps the Taylor estimator
      meaningful: a ReLU network's Hessian vanishes).
    - `learning_rate`, `weight_decay`: AdamW; `steps`: updates; `batch_size`: minibatch rows
      (`None`: all rows every step).
    """

    width: int = eqx.field(static=True, default=32)
    depth: int = eqx.field(static=True, default=2)
    activation: Callable = eqx.field(static=True, default=jax.nn.gelu)
    learning_rate: float = eqx.field(static=True, default=3e-3)
    weight_decay: float = eqx.field(static=True, default=1e-4)
    steps: int = eqx.field(static=True, default=3000)
    batch_size: int | None = eqx.field(static=True, default=64)

    def __check_init__(self):
        if self.width < 1 or self.depth < 0:
            raise ValueError(f"width must be >= 1 and depth >= 0; got {self.width}, {self.depth}")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ValueError(
                "learning_rate must be positive and weight_decay non-negative; got "
                f"{self.learning_rate}, {self.weight_decay}"
            )
        if self.steps < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ValueError(
                f"steps and batch_size must be positive; got {self.steps}, {self.batch_size}"
            )

    def network(self, d: int, task: Any, *, key: PRNGKeyArray) -> MLP:
        return MLP(d, task.out_size(), self.width, self.depth, activation=self.activation,
                   key=key)

    def run(self, loss_fn: Any, model: Any, data: Any, steps: int, *, key: PRNGKeyArray):
        return train.fit(
            loss_fn, model, data, _adamw(self.learning_rate, self.weight_decay), key=key,
            max_steps=steps, batch_size=self.batch_size, eval_every=min(steps, 50),
        )


@functools.lru_cache(maxsize=32)
def _adamw(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    # One optimiser object per setting: a new one at every fit would recompile the loop.
    return optax.adamw(learning_rate, weight_decay=weight_decay)


class AttributedNetwork(eqx.Module):
    """A network trained by [`jaxcausal.attribution.AnteHoc`][],
    [`jaxcausal.attribution.CREDO`][], [`jaxcausal.attribution.EffectPrior`][] or
    [`jaxcausal.attribution.ERM`][], with the input SCM it is explained with.

    - `network`: the trained MLP (raw output: prediction or class logits).
    - `inputs`: the input [`jaxcausal.scm.SCM`][] (fitted on the graph, or the ante-hoc links).
    - `features`: the network's input order; `task`: regression or classification.
    - `train_loss`: per-step training loss (phases one after the other).

    Calling it on one input `(d,)` gives the prediction (regression) or the class probabilities
    (classification); `predict` does the same for `(n, d)`; `ace` explains it.
    """

    network: MLP
    inputs: SCM
    features: tuple[str, ...] = eqx.field(static=True)
    task: Regression | Classification
    train_loss: Float[Array, " steps"]

    def __call__(self, x: Float[Array, " d"]) -> Array:
        return self.task.predict(self.network(x))

    def predict(self, x: Any) -> Array:
        """Predictions (regression) or class probabilities (classification) for `(n, d)` rows."""
        return jax.vmap(self)(as_float_array(x, "x"))

    def ace(
        self,
        alphas: Any,
        *,
        effect: AbstractEffect = Total(),
        estimator: AbstractEstimator = MonteCarlo(),
        key: PRNGKeyArray | None = None,
        output: int | None = None,
        chunk: int | None = None,
    ) -> Curves:
        """[`jaxcausal.attribution.ace`][] of this network with its own input SCM."""
        return ace(
            _Explained(self.network, self.task), self.inputs, alphas, features=self.features,
            effect=effect, estimator=estimator, key=key, output=output, chunk=chunk,
        )


class _Explained(eqx.Module):
    network: MLP
    task: Regression | Classification

    def __call__(self, x: Array) -> Array:
        return self.task.predict(self.network(x))


def as_matrix(x: Any, graph: Graph | None) -> tuple[Array, tuple[str, ...]]:
    """The `(n, d)` inputs and their names: a DataFrame's columns, else the graph's nodes."""
    if isinstance(x, pd.DataFrame):
        names = tuple(str(c) for c in x.columns)
        arr = as_float_array(x.to_numpy(), "x")
    else:
        arr = as_float_array(x, "x")
        if arr.ndim != 2:
            raise ValueError(f"x must be a matrix (n, d); got shape {tuple(arr.shape)}")
        names = graph.names if graph is not None else tuple(f"x{k}" for k in range(arr.shape[1]))
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ValueError(
            f"x must have one column per feature {list(names)}; got shape {tuple(arr.shape)}"
        )
    if graph is not None and set(names) != set(graph.names):
        raise ValueError(
            f"x must have exactly the graph's nodes {list(graph.names)} as columns; got "
            f"{list(names)}"
        )
    return check_finite(arr, "x"), names


def as_target(y: Any, n: int, task: Any) -> Array:
    arr = as_float_array(y.to_numpy() if isinstance(y, pd.Series) else y, "y")
    if arr.shape != (n,):
        raise ValueError(f"y must have shape ({n},), one target per row of x; got {arr.shape}")
    arr = check_finite(arr, "y")
    if isinstance(task, Classification):
        if is_concrete(arr):
            host = np.asarray(arr)
            if not np.all((host == np.round(host)) & (host >= 0) & (host < task.n_classes)):
                raise ValueError(
                    f"y must hold class labels 0, ..., {task.n_classes - 1} for "
                    f"Classification({task.n_classes})"
                )
        return arr.astype(jnp.int32)
    return arr


def check_graph(graph: Any, argument: str = "graph") -> Graph | None:
    if graph is None or isinstance(graph, Graph):
        return graph
    raise TypeError(
        f"{argument} must be a jaxcausal.scm.Graph (e.g. Graph.from_adjacency(adj, names)) or "
        f"None; got {type(graph).__name__}"
    )


def fit_inputs(
    graph: Graph | None,
    x: Array,
    names: tuple[str, ...],
    mechanisms: AbstractMechanism,
    *,
    key: PRNGKeyArray,
) -> SCM:
    """The input SCM of a fitted network: `mechanisms` fitted on `graph` (without a graph, the
    complete DAG in feature order: a Gaussian with the data's covariance, good for controlled
    direct effects only)."""
    if graph is None:
        d = len(names)
        graph = Graph.from_adjacency(np.triu(np.ones((d, d), dtype=int), 1), names)
    template = SCM.from_graph(graph, mechanisms=mechanisms, key=key)
    return fit_scm(template, {v: x[:, k] for k, v in enumerate(names)}, key=key)


def default_mechanisms(mechanisms: Any) -> AbstractMechanism:
    mechanisms = LinearGaussian() if mechanisms is None else mechanisms
    if not isinstance(mechanisms, AbstractMechanism):
        raise TypeError(
            "mechanisms must be jc.scm.LinearGaussian() or jc.scm.AdditiveNoiseMLP(); got "
            f"{type(mechanisms).__name__}"
        )
    return mechanisms


def task_loss(task: Any, network: MLP, x: Array, y: Array, weights: Array) -> Array:
    out = jax.vmap(network)(x)
    return train.weighted_mean(task.loss(out, y), weights)


def split3(key: PRNGKeyArray) -> tuple[PRNGKeyArray, PRNGKeyArray, PRNGKeyArray]:
    k1, k2, k3 = jr.split(key, 3)
    return k1, k2, k3
