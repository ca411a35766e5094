"""`EffectPrior`: training that pulls the network's effect curves towards prior knowledge."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array
from ..scm import SCM, AbstractMechanism, Graph
from ._ace import _resolve_moments, ace
from ._effects import AbstractEffect, Total
from ._estimators import AbstractEstimator, MonteCarlo, Taylor
from ._training import (
    AttributedNetwork,
    Classification,
    Regression,
    Training,
    _Explained,
    as_matrix,
    as_target,
    check_graph,
    default_mechanisms,
    fit_inputs,
    split3,
    task_loss,
)


class AbstractCurvePrior(eqx.Module):
    """Prior knowledge about one feature's centred effect curve: a penalty on the curve."""

    @abc.abstractmethod
    def penalty(self, curve: Float[Array, " m"]) -> Float[Array, ""]:
        """Non-negative; zero when the curve agrees with the prior."""


class Monotone(AbstractCurvePrior):
    r"""The effect rises (or, with `increasing=False`, falls) with $\alpha$: penalty
    $\frac1{m-1}\sum_k \max(0, \mp(c_{k+1} - c_k))^2$."""

    increasing: bool = eqx.field(static=True, default=True)

    def penalty(self, curve):
        step = jnp.diff(curve) * (1.0 if self.increasing else -1.0)
        return jnp.mean(jax.nn.relu(-step) ** 2)


class Zero(AbstractCurvePrior):
    r"""No effect (fairness: a protected input must not move the output): penalty
    $\frac1m\sum_k c_k^2$."""

    def penalty(self, curve):
        return jnp.mean(curve**2)


class Shape(AbstractCurvePrior):
    r"""A known shape: `values` on the prior's grid (centred before comparing): penalty
    $\frac1m\sum_k (c_k - \bar v_k)^2$."""

    values: Float[Array, " m"]

    def __init__(self, values: Any):
        self.values = as_float_array(values, "values")

    def __check_init__(self):
        if self.values.ndim != 1:
            raise ValueError(f"values must be a 1-d curve (m,); got shape {self.values.shape}")

    def penalty(self, curve):
        if curve.shape != self.values.shape:
            raise ValueError(
                f"the Shape prior has {self.values.shape[0]} values but the grid has "
                f"{curve.shape[0]} points"
            )
        return jnp.mean((curve - (self.values - jnp.mean(self.values))) ** 2)


class _PriorLoss(eqx.Module):
    task: Regression | Classification
    weight: Float[Array, ""]
    inputs: SCM
    alphas: Float[Array, "d m"]
    priors: tuple[tuple[int, AbstractCurvePrior], ...]
    features: tuple[str, ...] = eqx.field(static=True)
    effect: AbstractEffect
    estimator: AbstractEstimator
    output: int | None = eqx.field(static=True)

    def __call__(self, network, data, weights, *, key):
        x, y = data
        fit = task_loss(self.task, network, x, y, weights)
        curves = ace(
            _Explained(network, self.task), self.inputs, self.alphas, features=self.features,
            effect=self.effect, estimator=self.estimator, key=key, output=self.output,
        )
        penalty = sum(prior.penalty(curves.values[k]) for k, prior in self.priors)
        return fit + self.weight * penalty


class EffectPrior(eqx.Module):
    r"""Training with priors on effect curves: the task loss plus `weight` times the penalties of
    the features' [`jaxcausal.attribution.ace`][] curves (differentiable with respect to the
    network), recomputed at every step:

    $$\mathcal{L} = \mathcal{L}_{task}
      + w \sum_{i \in P} \mathrm{penalty}_i\big(\mathrm{ACE}_i(f)\big)$$

    **Arguments:**

    - `curves`: `{feature name: prior}` with priors [`jaxcausal.attribution.Monotone`][],
      [`jaxcausal.attribution.Zero`][] or [`jaxcausal.attribution.Shape`][].
    - `weight`: $w$.
    - `graph` (the input SCM is `mechanisms` fitted on it, as for
      [`jaxcausal.attribution.ERM`][]) or `inputs` (a given input SCM).
    - `effect`, `estimator`: the curves penalised (default total effects by the Taylor estimator,
      exact and cheap for a linear-Gaussian input SCM; Monte Carlo needs more work per step).
    - `alphas`: the grid, `(m,)` or `(d, m)`; default 16 points from each feature's minimum to
      its maximum in the training data.
    - `training`, `task`, `mechanisms`; `output`: the class whose probability is explained.
    """

    curves: Mapping[str, AbstractCurvePrior]
    weight: float = 1.0
    graph: Graph | None = None
    inputs: SCM | None = None
    effect: AbstractEffect = Total()
    estimator: AbstractEstimator = Taylor()
    alphas: Any = None
    training: Training = Training()
    task: Regression | Classification = Regression()
    mechanisms: AbstractMechanism | None = None
    output: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_graph(self.graph)
        if not isinstance(self.curves, Mapping) or not self.curves:
            raise TypeError("curves must be a non-empty dict {feature name: prior}")
        bad = [k for k, p in self.curves.items() if not isinstance(p, AbstractCurvePrior)]
        if bad:
            raise TypeError(
                f"curves must map features to Monotone/Zero/Shape priors; not for {bad}"
            )
        if not self.weight >= 0:
            raise ValueError(f"weight must be non-negative, got {self.weight}")
        if self.inputs is not None and not isinstance(self.inputs, SCM):
            raise TypeError(f"inputs must be a jaxcausal.scm.SCM; got {type(self.inputs).__name__}")
        if isinstance(self.task, Classification) and self.output is None:
            raise ValueError("output must name the class whose probability the curves describe")

    def fit(self, x: Any, y: Any, *, key: PRNGKeyArray) -> AttributedNetwork:
        xs, names = as_matrix(x, self.graph)
        unknown = [v for v in self.curves if v not in names]
        if unknown:
            raise ValueError(f"curves name features {unknown} that are not among {list(names)}")
        ys = as_target(y, xs.shape[0], self.task)
        k_net, k_train, k_scm = split3(key)
        if self.inputs is not None:
            inputs = self.inputs
            inputs.graph.check_names(names, "the columns of x")
        else:
            inputs = fit_inputs(self.graph, xs, names, default_mechanisms(self.mechanisms),
                                key=k_scm)
        grid = self._grid(xs)
        # Which moments the Taylor estimator uses is decided here, once, on concrete values.
        estimator = self.estimator
        if isinstance(estimator, Taylor):
            kind, estimator = _resolve_moments(inputs, estimator)
            if kind == "linear" and estimator.moments is None:
                from ._estimators import LinearGaussianMoments

                estimator = Taylor(estimator.hutchinson, LinearGaussianMoments())
        elif not isinstance(estimator, MonteCarlo):
            raise TypeError(f"estimator must be MonteCarlo(n) or Taylor(...); got {estimator!r}")
        loss = _PriorLoss(
            self.task, jnp.asarray(self.weight, xs.dtype), inputs, grid,
            tuple((names.index(v), p) for v, p in self.curves.items()), names, self.effect,
            estimator, self.output,
        )
        net = self.training.network(xs.shape[1], self.task, key=k_net)
        res = self.training.run(loss, net, (xs, ys), self.training.steps, key=k_train)
        return AttributedNetwork(res.model, inputs, names, self.task, res.train_loss)

    def _grid(self, xs: Array) -> Array:
        if self.alphas is not None:
            grid = as_float_array(self.alphas, "alphas")
            if grid.ndim == 1:
                grid = jnp.broadcast_to(grid[None, :], (xs.shape[1], grid.shape[0]))
            if grid.ndim != 2 or grid.shape[0] != xs.shape[1]:
                raise ValueError(
                    f"alphas must be (m,) or ({xs.shape[1]}, m); got {tuple(grid.shape)}"
                )
            return grid
        lo, hi = jnp.min(xs, axis=0), jnp.max(xs, axis=0)
        return lo[:, None] + (hi - lo)[:, None] * jnp.asarray(np.linspace(0, 1, 16))[None, :]
