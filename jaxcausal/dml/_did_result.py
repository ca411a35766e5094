"""The result of a multi-period DID fit: the group-time effects and their aggregations."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray

from ._did_aggregation import AbstractAggregation, ByGroup, DIDAggregationResult, combine
from ._did_cells import Cell
from ._inference import AbstractBootstrap, NormalBootstrap
from ._result import BootstrapResult, DMLResult


class DIDMultiResult(eqx.Module):
    """What [`jaxcausal.dml.DIDMulti`][] `fit` returns.

    The group-time effects are a [`jaxcausal.dml.DMLResult`][] in `effects` (one "treatment" per
    cell, named `"ATT(g,t_pre,t_eval)"`); the estimates, intervals, `summary()` and `bootstrap()`
    below are those of `effects`, so a DIDMulti fit reads like any DML fit (and runs in
    [`jaxcausal.dml.simulate`][]). Predictions of units outside a cell are `NaN`.

    **Fields:**

    - `effects`: the cells' `DMLResult`.
    - `group_shares`: the units' share in each treated group (the aggregation weights).
    - `sensitivity`: DoubleML's sensitivity elements per cell (`sigma2`, `nu2` `(n_cells,
      n_rep)`; `psi_sigma2`, `psi_nu2`, `riesz_rep` `(n_cells, n_rep, n_units)`, zero outside a
      cell and scaled by `n_units / n_cell`, as `DoubleMLDIDBinary`).
    - `cells`, `g_values`, `t_values`: the cells $(g, t_{pre}, t_{eval})$, groups and periods.
    """

    effects: DMLResult
    group_shares: Float[Array, " n_groups"]
    sensitivity: dict[str, Array]
    cells: tuple[Cell, ...] = eqx.field(static=True)
    g_values: tuple[float, ...] = eqx.field(static=True)
    t_values: tuple[float, ...] = eqx.field(static=True)

    @property
    def theta_rep(self) -> Array:
        return self.effects.theta_rep

    @property
    def se_rep(self) -> Array:
        return self.effects.se_rep

    @property
    def theta(self) -> Array:
        return self.effects.theta

    @property
    def se(self) -> Array:
        return self.effects.se

    @property
    def t_stat(self) -> Array:
        return self.effects.t_stat

    @property
    def pval(self) -> Array:
        return self.effects.pval

    @property
    def ok(self) -> Array:
        return self.effects.ok

    @property
    def checks(self) -> dict[str, Array]:
        return self.effects.checks

    @property
    def predictions(self) -> dict[str, Array]:
        return self.effects.predictions

    @property
    def losses(self) -> dict[str, Array]:
        return self.effects.losses

    @property
    def folds(self) -> Array:
        return self.effects.folds

    @property
    def t_names(self) -> tuple[str, ...]:
        return self.effects.t_names

    @property
    def post_treatment(self) -> np.ndarray:
        """Whether each cell evaluates a period at or after its group's treatment."""
        return np.asarray([post >= g for g, _, post in self.cells])

    def confint(self, level: float = 0.95) -> Float[Array, "c 2"]:
        """Pointwise confidence intervals of the cells (joint ones: `bootstrap().confint()`)."""
        return self.effects.confint(level)

    def bootstrap(
        self,
        method: AbstractBootstrap = NormalBootstrap(),
        n_rep_boot: int = 500,
        *,
        key: PRNGKeyArray,
    ) -> BootstrapResult:
        """The multiplier bootstrap over all cells; `.confint()` of the returned object gives
        simultaneous confidence bands over the cells."""
        return self.effects.bootstrap(method, n_rep_boot, key=key)

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """DoubleML's summary table, one row per cell."""
        return self.effects.summary(level)

    def plot(self, *, key: PRNGKeyArray, level: float = 0.95, n_rep_boot: int = 500) -> Any:
        """One panel per treated group: the cells' effects over the evaluation period with
        simultaneous bands from the multiplier bootstrap (drawn with `key`), pre-treatment cells
        in grey, as DoubleML's `plot_effects`. Needs matplotlib (`jaxcausal[plot]`).

        **Returns:** the matplotlib figure.
        """
        from ._did_plot import plot_cells

        bands = np.asarray(self.bootstrap(n_rep_boot=n_rep_boot, key=key).confint(level))
        return plot_cells(self, bands, level)

    def aggregate(self, aggregation: AbstractAggregation = ByGroup()) -> DIDAggregationResult:
        """Aggregated effects: `jc.dml.ByGroup()` (default), `jc.dml.ByTime()`,
        `jc.dml.EventStudy()` (DoubleML's `"group"`, `"time"`, `"eventstudy"`).

        **Returns:** a [`jaxcausal.dml.DIDAggregationResult`][] with the aggregated effects, the
        overall effect and the weights `(n_aggregated, n_cells)`.
        """
        if not isinstance(aggregation, AbstractAggregation):
            raise TypeError(
                "aggregation must be jc.dml.ByGroup(), ByTime() or EventStudy(); got "
                f"{aggregation!r} (objects, not strings)"
            )
        names, weights, overall = aggregation.weights(self.cells, self.g_values,
                                                      self.group_shares)
        effects = combine(self.effects, weights, tuple(names))
        total = combine(self.effects, overall[None, :] @ weights, ("overall",))
        return DIDAggregationResult(
            effects=effects, overall=total, weights=weights, overall_weights=overall,
            method=aggregation.name,
        )


def check_message(name: str, value: np.ndarray, labels: tuple[str, ...]) -> str:
    kind, _, learner = name.partition(":")
    where = np.argwhere(~value)[0]
    cell = f"cell {labels[where[0]]}, repetition {where[1]}"
    if kind == "finite":
        return (
            f"the learner {learner} returned NaN or infinite out-of-fold predictions ({cell}); "
            "check its settings and the data"
        )
    if kind == "propensity":
        return (
            f"propensity scores from {learner} are 0 or 1 after trimming ({cell}); set "
            "trimming > 0 or regularise the classifier"
        )
    unit = "treated unit of the group" if kind == "treated" else "control unit"
    return (
        f"a training fold has no {unit} ({cell}, fold {where[2]}); {learner} cannot be fitted "
        "there: use fewer folds or more data"
    )
