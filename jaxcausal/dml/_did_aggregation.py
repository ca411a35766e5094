r"""Aggregation of group-time effects ATT(g, t) (Callaway and Sant'Anna 2021, Section 3), with
DoubleML 0.11's weights (`DoubleMLDIDMulti.aggregate`).

An aggregate $\theta_a = \sum_c w_{ac}\,\theta_c$ is a linear combination of cells, so its
influence function is $\sum_c w_{ac}\,\psi_c / J_c$ (with $J_c = \overline{\psi_{a,c}}$): the
standard error and the multiplier bootstrap (simultaneous bands over all aggregates) follow
from the cells' scores without refitting, per repetition, and are then aggregated over
repetitions as for any DML estimate.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray

from ._did_cells import Cell, fmt
from ._inference import AbstractBootstrap, NormalBootstrap
from ._result import BootstrapResult, DMLResult


class AbstractAggregation(eqx.Module):
    """A rule turning group-time effects into aggregated effects and one overall effect."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The aggregation's name in tables."""

    @abc.abstractmethod
    def weights(
        self,
        cells: tuple[Cell, ...],
        g_values: tuple[float, ...],
        shares: Float[Array, " n_groups"],
    ) -> tuple[list[str], Array, Array]:
        """Names of the aggregated effects, weights `(n_agg, n_cells)` and overall weights
        `(n_agg,)`; `shares` are the units' shares in each treated group."""


def _post(cells) -> np.ndarray:
    return np.asarray([post >= g for g, _, post in cells])


def _share_of(cells, g_values, shares) -> Array:
    index = [g_values.index(c[0]) for c in cells]
    return shares[jnp.asarray(index)]


def _normalised_rows(member: np.ndarray, share: Array) -> Array:
    w = jnp.asarray(member, share.dtype) * share[None, :]
    return w / jnp.sum(w, axis=1, keepdims=True)


class ByGroup(AbstractAggregation):
    r"""Per treated group, the mean of its post-treatment cells ($t \ge g$); overall, the groups
    weighted by their share of units ($\theta^{sel}_O$ of Callaway and Sant'Anna)."""

    @property
    def name(self) -> str:
        return "group"

    def weights(self, cells, g_values, shares):
        post = _post(cells)
        groups = [g for g in g_values if any(post[i] and c[0] == g for i, c in enumerate(cells))]
        if not groups:
            raise ValueError("no post-treatment cells (t_eval >= g) to aggregate by group")
        member = np.asarray([[post[i] and c[0] == g for i, c in enumerate(cells)] for g in groups])
        w = jnp.asarray(member / member.sum(axis=1, keepdims=True), shares.dtype)
        overall = shares[jnp.asarray([g_values.index(g) for g in groups])]
        return [fmt(g) for g in groups], w, overall / jnp.sum(overall)


class ByTime(AbstractAggregation):
    r"""Per calendar period $t$, the post-treatment cells evaluated at $t$ weighted by the group
    shares; overall, the mean over periods ($\theta^{c}_O$)."""

    @property
    def name(self) -> str:
        return "time"

    def weights(self, cells, g_values, shares):
        post = _post(cells)
        times = sorted({c[2] for i, c in enumerate(cells) if post[i]})
        if not times:
            raise ValueError("no post-treatment cells (t_eval >= g) to aggregate by time")
        member = np.asarray([[post[i] and c[2] == t for i, c in enumerate(cells)] for t in times])
        w = _normalised_rows(member, _share_of(cells, g_values, shares))
        return [fmt(t) for t in times], w, jnp.full((len(times),), 1.0 / len(times), shares.dtype)


class EventStudy(AbstractAggregation):
    r"""Per event time $e = t - g$ (pre-treatment cells included), the cells with that exposure
    weighted by the group shares; overall, the mean over $e \ge 0$ ($\theta^{es}_O$)."""

    @property
    def name(self) -> str:
        return "eventstudy"

    def weights(self, cells, g_values, shares):
        event = np.asarray([post - g for g, _, post in cells])
        values = np.unique(event)
        member = event[None, :] == values[:, None]
        w = _normalised_rows(member, _share_of(cells, g_values, shares))
        overall = (values >= 0) / max(int((values >= 0).sum()), 1)
        return [fmt(e) for e in values], w, jnp.asarray(overall, shares.dtype)


def combine(effects: DMLResult, weights: Float[Array, "a c"], names: tuple[str, ...]) -> DMLResult:
    """The linear combinations `weights @ theta` of `effects` as a `DMLResult` whose score is the
    combined, normalised score $-\\sum_c w_c \\psi_c / J_c$ (with $\\psi_a = -1$)."""
    n = effects.psi.shape[-1]
    scaled = effects.psi / jnp.mean(effects.psi_a, axis=-1, keepdims=True)
    combined = jnp.einsum("ac,crn->arn", weights.astype(scaled.dtype), scaled)
    theta = jnp.einsum("ac,cr->ar", weights.astype(scaled.dtype), effects.theta_rep)
    se = jnp.sqrt(jnp.mean(combined**2, axis=-1) / n)
    psi_a = -jnp.ones_like(combined)
    return DMLResult(
        theta_rep=theta,
        se_rep=se,
        psi=-combined,
        psi_a=psi_a,
        psi_b=-combined + theta[..., None],
        predictions={},
        losses={},
        folds=effects.folds,
        checks=effects.checks,
        t_names=names,
    )


class DIDAggregationResult(eqx.Module):
    """Aggregated group-time effects: `effects` (one per group, period or event time) and the
    `overall` effect, each a [`jaxcausal.dml.DMLResult`][] (so `confint`, `bootstrap` and
    `summary` work as for any DML estimate).

    `bootstrap(key=...)` draws the multiplier bootstrap of the aggregated effects jointly, and
    its `confint()` gives simultaneous confidence bands (DoubleML's `confint(joint=True)`).
    """

    effects: DMLResult
    overall: DMLResult
    weights: Float[Array, "a c"]
    overall_weights: Float[Array, " a"]
    method: str = eqx.field(static=True)

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """One row for the overall effect, then one per aggregated effect."""
        table = pd.concat([self.overall.summary(level), self.effects.summary(level)])
        table.index.name = self.method
        return table

    def confint(self, level: float = 0.95) -> Float[Array, "a 2"]:
        """Pointwise intervals of the aggregated effects."""
        return self.effects.confint(level)

    def bootstrap(
        self,
        method: AbstractBootstrap = NormalBootstrap(),
        n_rep_boot: int = 500,
        *,
        key: PRNGKeyArray,
    ) -> BootstrapResult:
        """The multiplier bootstrap of the aggregated effects (joint bands with `.confint()`)."""
        return self.effects.bootstrap(method, n_rep_boot, key=key)

    def plot(self, *, key: PRNGKeyArray, level: float = 0.95, n_rep_boot: int = 500) -> Any:
        """The aggregated effects with simultaneous bootstrap bands (drawn with `key`) and the
        overall effect as a line. Needs matplotlib (`jaxcausal[plot]`).

        **Returns:** the matplotlib figure.
        """
        from ._did_plot import plot_aggregated

        bands = np.asarray(self.bootstrap(n_rep_boot=n_rep_boot, key=key).confint(level))
        return plot_aggregated(self, bands, level)
