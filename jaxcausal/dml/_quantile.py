r"""Quantile models: potential quantiles (`PQ`), quantile treatment effects (`QTE`), local
potential quantiles (`LPQ`) and conditional values at risk (`CVaR`), as in DoubleML 0.11.

Their scores are not linear in $\theta$. The fit returns the same
[`jaxcausal.dml.DMLResult`][] as the linear models, holding the score at the estimate in `psi`
and its derivative $J = \partial_\theta E[\psi]$ in `psi_a` (constant over rows), with
`psi_b = psi - psi_a * theta`: the score linearised at the estimate. Standard errors
$\sqrt{\overline{\psi^2} / (n J^2)}$, intervals, the multiplier bootstrap and
[`jaxcausal.dml.simulate`][] then work as for the linear models.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_binary, is_concrete
from .._compile import filter_jit
from .._data import CausalData
from ..learners import AbstractLearner
from ._crossfit import check_folds
from ._nonlinear import AbstractPreliminarySolver
from ._quantile_lpq import LocalPotentialQuantile
from ._quantile_scores import AbstractQuantileScore, Cells, ConditionalValueAtRisk
from ._quantile_split import check_inner_folds, draw_inner_folds, stratified_folds
from ._result import DMLResult

_TRACES = [0]
_PRIORITY = {"level": 0, "finite": 1, "root": 2, "density": 3}


def quantile_trace_count() -> int:
    """How often the compiled fit of the quantile models has been traced."""
    return _TRACES[0]


def as_quantiles(value: Any) -> Array:
    return jnp.atleast_1d(jnp.asarray(value, dtype=jnp.result_type(float)))


def check_quantiles(values: Array, name: str) -> None:
    if values.ndim != 1 or values.shape[0] == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence; got shape "
                         f"{tuple(values.shape)}")
    if is_concrete(values):
        host = np.asarray(values)
        if not np.all((host > 0) & (host < 1)):
            raise ValueError(f"{name} must lie in (0, 1); got {host.tolist()}")


class AbstractQuantileDML(eqx.Module):
    """A quantile model: configuration only; `fit` returns a [`jaxcausal.dml.DMLResult`][].

    Subclasses hold `ml_g`, `ml_m`, `normalize_ipw`, `trimming`, `n_folds` and `n_rep`.
    """

    @property
    @abc.abstractmethod
    def quantile_score(self) -> AbstractQuantileScore:
        """The score (potential quantile, local potential quantile or CVaR)."""

    @property
    @abc.abstractmethod
    def levels(self) -> tuple[int, ...]:
        """The treatment levels whose cells are fitted: `(treatment,)`, or `(0, 1)` for QTE."""

    @property
    @abc.abstractmethod
    def quantile_grid(self) -> Array:
        """The quantiles `(n_quantiles,)`."""

    @property
    def learner_names(self) -> tuple[str, ...]:
        """Names of the nuisance predictions (keys of `external_predictions`)."""
        return self.quantile_score.learner_names

    def _check_learners(self) -> None:
        for name in ("ml_g", "ml_m"):
            value = getattr(self, name)
            if not isinstance(value, AbstractLearner | None):
                raise TypeError(f"{name} must be a jaxcausal learner or None; got {value!r}")
        if self.ml_m is not None and not self.ml_m.is_classifier:
            raise TypeError(f"ml_m must be a classifier (e.g. jc.learners.Logistic()); got "
                            f"{self.ml_m!r}")
        if self.ml_g is not None and self.ml_g.is_classifier != self.quantile_score.g_is_classifier:
            kind = "a classifier" if self.quantile_score.g_is_classifier else "a regression learner"
            raise TypeError(f"ml_g must be {kind} for {type(self.quantile_score).__name__}; got "
                            f"{self.ml_g!r}")
        if not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise ValueError(f"n_folds must be an integer of at least 2, got {self.n_folds!r}")
        if not isinstance(self.n_rep, int) or self.n_rep < 1:
            raise ValueError(f"n_rep must be a positive integer, got {self.n_rep!r}")
        if not 0.0 < self.trimming < 0.5:
            raise ValueError(f"trimming must be in (0, 0.5), got {self.trimming}")
        if not isinstance(self.preliminary, AbstractPreliminarySolver):
            raise TypeError(f"preliminary must be BrentMinimum() or BrentRoot(); got "
                            f"{self.preliminary!r}")

    def row_names(self, t_names: tuple[str, ...]) -> tuple[str, ...]:
        """Names of the result's rows (`t_names` of the result) for data with treatment
        names `t_names`."""
        return tuple(t_names)

    def fit(
        self,
        data: CausalData,
        *,
        key: PRNGKeyArray,
        folds: Any = None,
        inner_folds: Any = None,
        external_predictions: Mapping[str, Any] | None = None,
        throw: bool = True,
    ) -> DMLResult:
        """Estimates the parameter(s) by cross-fitted double machine learning.

        **Arguments:**

        - `data`: a [`jaxcausal.CausalData`][] with one binary treatment (and, for `LPQ`, one
          binary instrument `z`).
        - `key`: a JAX PRNG key for the sample splits and the learners.
        - `folds`: optional fold ids `(n_rep, n_obs)`; drawn from `key` (stratified by the
          treatment, or by treatment and instrument for `LPQ`) when omitted.
        - `inner_folds`: optional split of every training fold `(n_rep, n_folds, n_obs)`: `-1`
          on the fold's own rows, `0 ... n_folds - 1` on the first half (the id is the
          preliminary fold), `n_folds` on the second half; needs `folds`. Drawn from `key`
          when omitted ([`jaxcausal.dml.draw_inner_folds`][]).
        - `external_predictions`: out-of-fold predictions of every nuisance (`PQ`: `ml_g`,
          `ml_m`; `LPQ`: `ml_m_z`, `ml_g_du_z0`, `ml_g_du_z1`, `ml_m_d_z0`, `ml_m_d_z1`), arrays
          `(n_obs,)` or `(n_obs, n_rep)`; then no learner is fitted.
        - `throw`: raise a `ValueError` naming the failed check (or `eqx.error_if` under
          `jit`/`vmap`); with `False` failures stay in `result.checks`.
        """
        if not isinstance(data, CausalData):
            raise TypeError(f"data must be a jaxcausal.CausalData; got {type(data).__name__}")
        self._check_data(data)
        n = data.n_obs
        if n < 2 * self.n_folds:
            raise ValueError(f"data has {n} rows but n_folds={self.n_folds}; the quantile models "
                             "split every training fold in two halves")
        if folds is not None:
            folds = check_folds(folds, n, self.n_folds, self.n_rep)
        if inner_folds is not None:
            if folds is None:
                raise ValueError("inner_folds needs folds: pass the outer fold ids as well")
            inner_folds = check_inner_folds(inner_folds, folds, self.n_folds)
        external = self._external(external_predictions, data)
        if not external and (self.ml_g is None or self.ml_m is None):
            raise ValueError("ml_g and ml_m may only be None when external_predictions are given")
        result = _fit_compiled(self, data, folds, inner_folds, key, external)
        # names outside the compiled call: a new quantile grid must not retrace
        result = dataclasses.replace(result, t_names=self.row_names(data.t_names))
        return _throw(result, throw)

    def _check_data(self, data: CausalData) -> None:
        who = type(self).__name__
        if data.n_treatments != 1:
            raise ValueError(f"t must have one column for {who}; got {data.n_treatments} "
                             f"({', '.join(data.t_names)})")
        check_binary(data.t, "t", f"for {who} (treatment '{data.t_names[0]}')")
        if self.quantile_score.needs_instrument:
            if data.z is None or data.z.shape[1] != 1:
                raise ValueError(f"{who} needs one binary instrument z; got "
                                 f"{'none' if data.z is None else data.z.shape[1]}")
            check_binary(data.z, "z", f"for {who} (instrument '{data.z_names[0]}')")
        elif data.z is not None:
            raise ValueError(f"data has instruments z; {who} takes no instruments")
        if is_concrete(data.t):
            present = np.unique(np.asarray(data.t))
            for level in self.levels:
                if level not in present:
                    raise ValueError(
                        f"treatment={level} does not occur in t ('{data.t_names[0]}'): no row "
                        f"has t == {level}"
                    )

    def _external(self, given, data: CausalData) -> dict[str, Array]:
        if given is None:
            return {}
        if not isinstance(given, Mapping):
            raise TypeError(f"external_predictions must be a dict; got {type(given).__name__}")
        if set(given) == {data.t_names[0]} and isinstance(given[data.t_names[0]], Mapping):
            given = given[data.t_names[0]]
        names = self.quantile_score.learner_names
        if isinstance(self.quantile_score, ConditionalValueAtRisk) or len(self.levels) > 1:
            raise ValueError(
                f"external_predictions are not supported for {type(self).__name__} (as in "
                "DoubleML); fit PQ or LPQ with external predictions instead"
            )
        unknown = [k for k in given if k not in names]
        if unknown:
            raise ValueError(f"external_predictions names unknown learners {unknown}; expected "
                             f"{list(names)}")
        if set(given) != set(names):
            raise ValueError(
                f"external_predictions must give all of {list(names)} or none (the preliminary "
                f"estimate needs the learners); missing {[k for k in names if k not in given]}"
            )
        n, out = data.n_obs, {}
        for name in names:
            arr = jnp.asarray(given[name], dtype=data.y.dtype)
            arr = arr[:, None] if arr.ndim == 1 else arr
            if arr.shape != (n, self.n_rep):
                raise ValueError(f"external_predictions[{name!r}] must have shape (n_obs,) or "
                                 f"(n_obs, n_rep) = ({n}, {self.n_rep}); got {tuple(arr.shape)}")
            out[name] = arr.T
        return out


@filter_jit
def _fit_compiled(model, data, folds, inner, key, external) -> DMLResult:
    _TRACES[0] += 1
    k_folds, k_inner, k_fit = jr.split(key, 3)
    strata, n_strata = model.quantile_score.strata(data)
    if folds is None:
        folds = stratified_folds(k_folds, strata, model.n_folds, model.n_rep, n_strata)
    if inner is None:
        inner = draw_inner_folds(k_inner, folds, strata, model.n_folds, n_strata)
    quantiles = model.quantile_grid.astype(data.y.dtype)
    cells = model.quantile_score.cells(
        model, data, folds, inner, k_fit, external, quantiles, model.levels
    )
    return _result(model, cells, folds, ())


def _by_cell(v: Array) -> Array:
    """`(R, Q, ...)` -> `(Q, R, ...)`."""
    return jnp.swapaxes(v, 0, 1)


def _result(model, cells: Cells, folds, names) -> DMLResult:
    n = cells.psi.shape[-1]
    if len(model.levels) == 1:
        theta = _by_cell(cells.theta[:, 0])
        psi = _by_cell(cells.psi[:, 0])
        deriv = _by_cell(cells.deriv[:, 0])
        predictions = {k: _by_cell(v[:, 0]) for k, v in cells.predictions.items()}
        losses = {k: _by_cell(v[:, 0]) for k, v in cells.losses.items()}
    else:
        # DoubleML's difference of frameworks: scaled scores psi / J subtract
        theta = _by_cell(cells.theta[:, 1] - cells.theta[:, 0])
        scaled = cells.psi / cells.deriv[..., None]
        psi = _by_cell(scaled[:, 1] - scaled[:, 0])
        deriv = jnp.ones_like(theta)
        shared = _shared_learners(model.quantile_score)
        predictions, losses = {}, {}
        for k, v in cells.predictions.items():
            for i, level in enumerate(model.levels):
                if k in shared and i > 0:
                    continue
                label = k if k in shared else f"{k}_d{level}"
                predictions[label] = _by_cell(v[:, i])
                losses[label] = _by_cell(cells.losses[k][:, i])
    se = jnp.sqrt(jnp.mean(psi**2, axis=-1) / (n * deriv**2))
    psi_a = jnp.broadcast_to(deriv[..., None], psi.shape)
    checks = {k: _by_cell(jnp.all(v, axis=1)) for k, v in cells.checks.items()}
    return DMLResult(
        theta_rep=theta, se_rep=se, psi=psi, psi_a=psi_a, psi_b=psi - psi_a * theta[..., None],
        predictions=predictions, losses=losses, folds=folds, checks=checks, t_names=names,
    )


def _shared_learners(score) -> tuple[str, ...]:
    """Nuisances that do not depend on the treatment level."""
    if isinstance(score, LocalPotentialQuantile):
        return ("ml_m_z", "ml_m_d_z0", "ml_m_d_z1")
    return ("ml_m",)


def _throw(result: DMLResult, throw: bool) -> DMLResult:
    if not throw:
        return result
    if is_concrete(result.theta_rep):
        for name in sorted(result.checks, key=lambda c: (_PRIORITY.get(c.split(":")[0], 9), c)):
            value = np.asarray(result.checks[name])
            if not value.all():
                raise ValueError(_message(name, value, result.t_names))
        return result
    theta = eqx.error_if(
        result.theta_rep, ~result.ok,
        "a quantile-model check failed (NaN predictions, no sign change of the score, an empty "
        "half of a training fold); inspect result.checks with throw=False",
    )
    return eqx.tree_at(lambda r: r.theta_rep, result, theta)


def _message(name: str, value: np.ndarray, names: tuple[str, ...]) -> str:
    kind, _, what = name.partition(":")
    where = np.argwhere(~value)[0]
    at = f"({names[where[0]]!r}, repetition {where[1]})"
    if kind == "finite":
        return (f"the learner {what} returned NaN or infinite out-of-fold predictions {at}; "
                "check its settings and the data")
    if kind == "level":
        return (f"the second half of a training fold has no rows of the treatment level (or, "
                f"for LPQ, of an instrument value) {at}; {what} cannot be fitted there: use "
                "fewer folds or more data")
    if kind == "root" and what == "preliminary":
        return (f"the preliminary IPW estimate found no minimum of |score| in a fold {at}; the "
                "first half of the training fold may have too few rows of the treatment level")
    if kind == "root":
        return (f"the score has no sign change between min(y) and max(y) {at}; the nuisance "
                "predictions cannot give this quantile (DoubleML falls back to a minimiser with "
                "a warning)")
    if kind == "density":
        return (f"the kernel density estimate of the score derivative is zero or not finite "
                f"{at}; the standard error is undefined")
    return f"check {name} failed {at}"
