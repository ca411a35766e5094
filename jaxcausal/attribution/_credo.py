"""Plain training (ERM) and CREDO (Kancheti et al., ICML 2022): attribution priors on gradients."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .. import train
from ..scm import AbstractMechanism, Graph
from ._training import (
    AttributedNetwork,
    Classification,
    Regression,
    Training,
    as_matrix,
    as_target,
    check_graph,
    default_mechanisms,
    fit_inputs,
    split3,
    task_loss,
)


class _TaskLoss(eqx.Module):
    task: Regression | Classification

    def __call__(self, model, data, weights, *, key):
        x, y = data
        return task_loss(self.task, model, x, y, weights)


def _check_task(task: Any) -> None:
    if not isinstance(task, (Regression, Classification)):
        raise TypeError(
            f"task must be Regression() or Classification(n_classes); got {type(task).__name__}"
        )


class ERM(eqx.Module):
    """Plain training (empirical risk minimisation): the network explained post hoc.

    **Arguments:**

    - `graph`: the [`jaxcausal.scm.Graph`][] among the inputs; the input SCM used by `.ace` is
      `mechanisms` fitted on it. Without a graph, a Gaussian with the data's covariance (right for
      `ControlledDirect`, the attributions of Chattopadhyay et al. 2019; not for total effects).
    - `training`: [`jaxcausal.attribution.Training`][]; `task`: `Regression()` or
      `Classification(k)`; `mechanisms`: `jc.scm.LinearGaussian()` (default) or
      `jc.scm.AdditiveNoiseMLP()`.

    `fit(x, y, *, key)` (x a DataFrame or `(n, d)` array, y `(n,)`) returns an
    [`jaxcausal.attribution.AttributedNetwork`][]. Pure: `eqx.filter_vmap` over keys trains
    several seeds in one compiled call.
    """

    graph: Graph | None = None
    training: Training = Training()
    task: Regression | Classification = Regression()
    mechanisms: AbstractMechanism | None = None

    def __check_init__(self):
        check_graph(self.graph)
        _check_task(self.task)

    def fit(self, x: Any, y: Any, *, key: PRNGKeyArray) -> AttributedNetwork:
        xs, names = as_matrix(x, self.graph)
        ys = as_target(y, xs.shape[0], self.task)
        k_net, k_train, k_scm = split3(key)
        net = self.training.network(xs.shape[1], self.task, key=k_net)
        res = self.training.run(_TaskLoss(self.task), net, (xs, ys), self.training.steps,
                                key=k_train)
        inputs = fit_inputs(self.graph, xs, names, default_mechanisms(self.mechanisms), key=k_scm)
        return AttributedNetwork(res.model, inputs, names, self.task, res.train_loss)


class _CredoLoss(eqx.Module):
    task: Regression | Classification
    gamma: Float[Array, ""]
    priors: tuple[tuple[int, Callable], ...]
    output: int | None = eqx.field(static=True)

    def __call__(self, model, data, weights, *, key):
        x, y = data
        fit = task_loss(self.task, model, x, y, weights)

        def explained(v):
            out = self.task.predict(model(v))
            return out if self.output is None else out[self.output]

        grads = jax.vmap(jax.grad(explained))(x)
        gap = sum(jnp.abs(grads[:, k] - jax.vmap(fn)(x[:, k])) for k, fn in self.priors)
        return fit + self.gamma * train.weighted_mean(gap, weights)


class CREDO(eqx.Module):
    r"""CREDO (Kancheti et al., ICML 2022): the task loss plus a penalty that pulls the network's
    input gradients towards prior derivatives,

    $$\mathcal{L} = \mathcal{L}_{task} + \gamma \,\frac1n \sum_u \sum_{i \in P}
    \Big|\frac{\partial f}{\partial x_i}(x_u) - \delta_i'(x_{u,i})\Big|$$

    with $\delta_i'$ the user's prior derivative of the effect of feature $i$ (a function of the
    feature's own value, as in the paper) for the features $P$ that have one.

    **Arguments:**

    - `priors`: `{feature name: derivative}`, each a function of one value, e.g.
      `{"x": lambda v: 3 * v**2}`.
    - `gamma`: weight of the penalty.
    - `graph`, `training`, `task`, `mechanisms`: as for [`jaxcausal.attribution.ERM`][].
    - `output`: for classification, the class whose probability the priors describe.
    """

    priors: Mapping[str, Callable]
    gamma: float = 0.1
    graph: Graph | None = None
    training: Training = Training()
    task: Regression | Classification = Regression()
    mechanisms: AbstractMechanism | None = None
    output: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_graph(self.graph)
        _check_task(self.task)
        if not isinstance(self.priors, Mapping) or not self.priors:
            raise TypeError("priors must be a non-empty dict {feature name: derivative function}")
        bad = [k for k, f in self.priors.items() if not callable(f)]
        if bad:
            raise TypeError(f"priors must map feature names to functions; not callable for {bad}")
        if not self.gamma >= 0:
            raise ValueError(f"gamma must be non-negative, got {self.gamma}")
        if isinstance(self.task, Classification) and self.output is None:
            raise ValueError("output must name the class whose probability the priors describe")

    def fit(self, x: Any, y: Any, *, key: PRNGKeyArray) -> AttributedNetwork:
        xs, names = as_matrix(x, self.graph)
        unknown = [v for v in self.priors if v not in names]
        if unknown:
            raise ValueError(f"priors name features {unknown} that are not among {list(names)}")
        ys = as_target(y, xs.shape[0], self.task)
        k_net, k_train, k_scm = split3(key)
        net = self.training.network(xs.shape[1], self.task, key=k_net)
        loss = _CredoLoss(
            self.task, jnp.asarray(self.gamma, xs.dtype),
            tuple((names.index(v), fn) for v, fn in self.priors.items()), self.output,
        )
        res = self.training.run(loss, net, (xs, ys), self.training.steps, key=k_train)
        inputs = fit_inputs(self.graph, xs, names, default_mechanisms(self.mechanisms), key=k_scm)
        return AttributedNetwork(res.model, inputs, names, self.task, res.train_loss)
