"""Multi-period difference-in-differences with staggered adoption: every group-time effect
ATT(g, t) cross-fitted in one compiled call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit
from .._panel import PanelData
from ..learners import AbstractLearner
from ._base import broadcast_to_krn
from ._crossfit import check_folds, draw_folds, holdout_masks, nuisance_loss
from ._did import check_did_config, fit_outcome_models, fit_propensity
from ._did_cells import (
    AbstractControlGroup,
    NeverTreated,
    StandardGT,
    as_cell_tuple,
    cell_arrays,
    cell_label,
    check_controls,
    resolve_cells,
)
from ._did_result import DIDMultiResult, check_message
from ._did_scores import AbstractDIDScore, Observational, sensitivity_from_riesz
from ._inference import solve_linear_score
from ._result import DMLResult

_TRACES = [0]


def trace_count() -> int:
    """How often the compiled DIDMulti fit has been traced (for no-recompilation tests)."""
    return _TRACES[0]


class DIDMulti(eqx.Module):
    r"""Difference-in-differences with several periods and staggered treatment adoption
    (Callaway and Sant'Anna 2021), as DoubleML 0.11's `DoubleMLDIDMulti` on panel data.

    For each group-time cell $(g, t_{pre}, t_{eval})$ the effect
    $ATT(g, t_{eval}) = E[Y_{t_{eval}}(g) - Y_{t_{eval}}(\infty) \mid G = g]$ is the two-period
    DID of the outcome difference $Y_{t_{eval}} - Y_{t_{pre}}$ between the units first treated in
    $g$ and the controls (never treated, or not yet treated), with the doubly robust score of
    [`jaxcausal.dml.DID`][] on that subsample. All cells share one fold split of the units, and
    the nuisance fits of every cell, fold and repetition are one batched, compiled
    cross-fit (`vmap` over cells with masks), not one fit per cell. Each cell's score is zero
    outside its subsample, as DoubleML pads it, so the cells' joint influence functions give
    aggregated effects and simultaneous bands ([`jaxcausal.dml.DIDMultiResult`][]).

    **Arguments:**

    - `ml_g`: outcome learner (regression of the outcome difference).
    - `ml_m`: propensity learner (a classifier); not used by `Experimental()`.
    - `score`: `jc.dml.Observational()` (default) or `jc.dml.Experimental()`.
    - `gt_combinations`: `jc.dml.StandardGT()` (default), `AllGT()`, `UniversalGT()` or a list
      of `(g, t_pre, t_eval)` tuples.
    - `control_group`: `jc.dml.NeverTreated()` (default) or `jc.dml.NotYetTreated()`.
    - `anticipation_periods`: periods before $g$ in which units may already react.
    - `trimming`, `in_sample_normalization`: as in [`jaxcausal.dml.DID`][].
    - `n_folds`, `n_rep`: folds and repetitions of cross-fitting.

    Differences from DoubleML: one fold split of the units for all cells (DoubleML draws one per
    cell, stratified by the group indicator); balanced panels only (`jc.PanelData` raises on a
    missing period); datetimes must be given as numbers. External predictions use DoubleML's
    form `{"ATT(g,pre,eval)": {"ml_g0": (n_units, n_rep), ...}}` for every cell.

    ```python
    panel = jc.datasets.make_did_CS2021(n_obs=1000, key=jr.key(0))
    est = jc.dml.DIDMulti(jc.learners.MLP(), jc.learners.MLP(classifier=True))
    res = est.fit(panel, key=jr.key(1))
    res.summary(); res.aggregate(jc.dml.EventStudy()).summary()
    ```

    *Reference:* Callaway and Sant'Anna (2021), Difference-in-differences with multiple time
    periods, Journal of Econometrics 225(2), 200-230.
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None = None
    score: AbstractDIDScore = Observational()
    gt_combinations: Any = eqx.field(static=True, default=StandardGT(), converter=as_cell_tuple)
    control_group: AbstractControlGroup = NeverTreated()
    anticipation_periods: int = eqx.field(static=True, default=0)
    trimming: float = eqx.field(static=True, default=0.01)
    in_sample_normalization: bool = eqx.field(static=True, default=True)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_did_config(self, "DIDMulti")
        if not isinstance(self.control_group, AbstractControlGroup):
            raise TypeError(
                "control_group must be jc.dml.NeverTreated() or jc.dml.NotYetTreated(); got "
                f"{self.control_group!r}"
            )
        if not isinstance(self.anticipation_periods, int) or self.anticipation_periods < 0:
            raise ValueError(
                f"anticipation_periods must be a non-negative integer, got "
                f"{self.anticipation_periods!r}"
            )

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_g0", "ml_g1", "ml_m") if self.score.needs_m else ("ml_g0", "ml_g1")

    def cells(self, data: PanelData) -> tuple[tuple[float, float, float], ...]:
        """The group-time cells $(g, t_{pre}, t_{eval})$ estimated on `data`."""
        if not isinstance(data, PanelData):
            raise TypeError(f"data must be a jaxcausal.PanelData; got {type(data).__name__}")
        return resolve_cells(
            self.gt_combinations, data.g_values, data.t_values, self.anticipation_periods
        )

    def labels(self, data: PanelData) -> tuple[str, ...]:
        """The cells' names, `"ATT(g,t_pre,t_eval)"` as in DoubleML."""
        return tuple(cell_label(c) for c in self.cells(data))

    def fit(
        self,
        data: PanelData,
        *,
        key: PRNGKeyArray,
        folds: Any = None,
        external_predictions: Mapping[str, Any] | None = None,
        throw: bool = True,
    ) -> DIDMultiResult:
        """Estimates every group-time effect; arguments as [`jaxcausal.dml.AbstractDML.fit`][]
        with `folds` of shape `(n_rep, n_units)` and `data` a [`jaxcausal.PanelData`][].

        **Returns:** a [`jaxcausal.dml.DIDMultiResult`][].
        """
        cells = self.cells(data)
        n = data.n_obs
        if n < self.n_folds:
            raise ValueError(f"data has {n} units but n_folds={self.n_folds}")
        arrays = cell_arrays(cells, data.t_values, self.anticipation_periods, data.y.dtype)
        if is_concrete(data.g):
            check_controls(data.g, cells, self.control_group, arrays)
        if folds is not None:
            folds = check_folds(folds, n, self.n_folds, self.n_rep)
        external = _external(external_predictions, self, cells, n, data.y.dtype)
        result = _fit_compiled(self, data, arrays, folds, key, external, cells)
        if not throw:
            return result
        effects = result.effects
        if is_concrete(effects.theta_rep):
            for name in sorted(effects.checks, key=_priority):
                value = np.asarray(effects.checks[name])
                if not value.all():
                    raise ValueError(check_message(name, value, effects.t_names))
            return result
        theta = eqx.error_if(
            effects.theta_rep, ~result.ok,
            "a DIDMulti check failed (NaN predictions, propensities at 0 or 1, or a training fold "
            "without treated or control units in a cell); inspect result.checks with throw=False",
        )
        return eqx.tree_at(lambda r: r.effects.theta_rep, result, theta)


def _priority(name: str):
    return ({"treated": 0, "control": 0, "finite": 1, "propensity": 2}.get(name.split(":")[0], 3),
            name)


@filter_jit
def _fit_compiled(model: DIDMulti, data: PanelData, arrays, folds, key, external, cells):
    _TRACES[0] += 1
    k_folds, k_fit = jr.split(key)
    n, dtype = data.n_obs, data.y.dtype
    c, n_rep = arrays.g.shape[0], model.n_rep
    if folds is None:
        folds = draw_folds(k_folds, n, model.n_folds, n_rep)
    test = holdout_masks(folds, model.n_folds).astype(dtype)
    y = (data.y[:, arrays.post] - data.y[:, arrays.pre]).T
    if data.x.ndim == 2:
        x = jnp.broadcast_to(data.x[None], (c, *data.x.shape))
    else:
        x = jnp.moveaxis(data.x[:, arrays.first], 1, 0)
    treated = data.g[None, :] == arrays.g[:, None]
    control = model.control_group.rows(data.g, treated, arrays.max_g)
    d, ctrl = treated.astype(dtype), control.astype(dtype)
    rows = d + ctrl
    train = (1.0 - test)[None] * rows[:, None, None, :]
    y_b, d_b = broadcast_to_krn(y, c, n_rep), broadcast_to_krn(d, c, n_rep)
    rows_b = broadcast_to_krn(rows, c, n_rep)
    groups = {"ml_g0": ctrl, "ml_g1": d}
    raw = _fit_nuisances(model, data.x, x, y_b, d_b, train, test, groups, k_fit, external)
    on_rows = rows_b > 0
    checks = {
        f"finite:{name}": jnp.all(jnp.isfinite(p) | ~on_rows, axis=-1) for name, p in raw.items()
    }
    preds = {name: jnp.where(on_rows, p, 0.0) for name, p in raw.items()}
    if "ml_g1" not in external:
        checks["treated:ml_g"] = jnp.sum(train * d[:, None, None], axis=-1) > 0
    if "ml_g0" not in external:
        checks["control:ml_g"] = jnp.sum(train * ctrl[:, None, None], axis=-1) > 0
    losses = {name: nuisance_loss(y_b, preds[name], groups[name], False) for name in groups}
    m_hat = None
    if model.score.needs_m:
        m_classifier = model.ml_m is not None and model.ml_m.is_classifier
        losses["ml_m"] = nuisance_loss(d_b, jnp.where(on_rows, preds["ml_m"], 0.5), rows,
                                       m_classifier)
        m_hat = jnp.clip(jnp.where(on_rows, preds["ml_m"], 0.5), model.trimming,
                         1.0 - model.trimming)
        checks["propensity:ml_m"] = jnp.all(((m_hat > 0.0) & (m_hat < 1.0)) | ~on_rows, axis=-1)
    normalize = model.in_sample_normalization
    psi_a, psi_b = model.score.panel(
        y_b, d_b, preds["ml_g0"], preds["ml_g1"], m_hat, normalize, rows=rows_b
    )
    theta, se, psi = solve_linear_score(psi_a, psi_b)
    g_hat = d_b * preds["ml_g1"] + (1.0 - d_b) * preds["ml_g0"]
    alpha, m_alpha = model.score.panel_riesz(d_b, m_hat, normalize, rows=rows_b)
    sensitivity = sensitivity_from_riesz(y_b, g_hat, alpha, m_alpha, rows=rows_b)
    effects = DMLResult(
        theta_rep=theta,
        se_rep=se,
        psi=psi,
        psi_a=psi_a,
        psi_b=psi_b,
        predictions={name: jnp.where(on_rows, p, jnp.nan) for name, p in raw.items()},
        losses=losses,
        folds=folds,
        checks=checks,
        t_names=tuple(cell_label(cell) for cell in cells),
    )
    in_group = data.g[None, :] == jnp.asarray(data.g_values, dtype)[:, None]
    shares = jnp.mean(in_group.astype(dtype), axis=1)
    return DIDMultiResult(
        effects=effects,
        group_shares=shares,
        sensitivity=sensitivity,
        cells=cells,
        g_values=data.g_values,
        t_values=data.t_values,
    )


def _fit_nuisances(model, x_data, x, y_b, d_b, train, test, groups, key, external):
    """The cells' outcome regressions and propensities. With time-invariant covariates every
    cell shares one covariate matrix, so the cells are stacked as extra repetitions of one
    batched fit (`k = 1`); otherwise each cell has its own matrix (`k = n_cells`)."""
    c, n_rep, n = y_b.shape
    if x_data.ndim == 2:
        def flat(a):
            return a.reshape(1, c * n_rep, *a.shape[2:])

        def back(a):
            return a.reshape(c, n_rep, n)

        xs, tests = x_data[None], jnp.tile(test, (c, 1, 1))
        cells = {k: flat(jnp.broadcast_to(v[:, None, :], (c, n_rep, n))) for k, v in groups.items()}
        ext = {k: flat(v) for k, v in external.items()}
        y_f, d_f, train_f = flat(y_b), flat(d_b), flat(train)
    else:
        def back(a):
            return a

        xs, tests, cells, ext = x, test, groups, external
        y_f, d_f, train_f = y_b, d_b, train
    raw = fit_outcome_models(model.ml_g, xs, y_f, train_f, tests, cells, key, ext)
    if model.score.needs_m:
        raw["ml_m"] = fit_propensity(model.ml_m, xs, d_f, train_f, tests, key, ext)
    return {name: back(p) for name, p in raw.items()}


def _external(given, model: DIDMulti, cells, n: int, dtype) -> dict[str, Any]:
    """DoubleML's `{cell label: {learner: (n_units, n_rep)}}` as `{learner: (n_cells, n_rep,
    n_units)}`; entries outside a cell's units may be NaN."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise TypeError(f"external_predictions must be a dict; got {type(given).__name__}")
    labels = [cell_label(c) for c in cells]
    unknown = [k for k in given if k not in labels]
    if unknown:
        raise ValueError(
            f"external_predictions names unknown cells {unknown}; the cells are {labels}"
        )
    missing = [k for k in labels if k not in given]
    if missing:
        raise ValueError(f"external_predictions gives no predictions for the cells {missing}")
    names = {frozenset(v) for v in given.values()}
    if len(names) != 1:
        raise ValueError("external_predictions must name the same learners for every cell")
    out = {}
    for name in sorted(next(iter(names))):
        if name not in model.learner_names:
            raise ValueError(
                f"external_predictions names an unknown learner {name!r}; expected some of "
                f"{model.learner_names}"
            )
        per_cell = []
        for label in labels:
            arr = jnp.asarray(given[label][name], dtype)
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.shape != (n, model.n_rep):
                raise ValueError(
                    f"external_predictions[{label!r}][{name!r}] must have shape (n_units,) or "
                    f"(n_units, n_rep) = ({n}, {model.n_rep}); got {tuple(arr.shape)}"
                )
            per_cell.append(arr.T)
        out[name] = jnp.stack(per_cell)
    return out
