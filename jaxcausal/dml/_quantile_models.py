"""The quantile models: `PQ`, `LPQ`, `CVaR` (one quantile, one treatment level) and `QTE` (a grid
of quantiles, both levels)."""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jaxtyping import Array, Float

from .._checks import is_concrete
from ..learners import AbstractLearner
from ._nonlinear import AbstractPreliminarySolver, BrentMinimum
from ._quantile import AbstractQuantileDML, as_quantiles, check_quantiles
from ._quantile_lpq import LocalPotentialQuantile
from ._quantile_scores import AbstractQuantileScore, ConditionalValueAtRisk, PotentialQuantile


class PQ(AbstractQuantileDML):
    r"""The potential quantile $\theta$ of the outcome under treatment level `treatment`,
    $P(Y(d) \le \theta) = q$, with the score of [`jaxcausal.dml.PotentialQuantile`][]
    (DoubleML's `DoubleMLPQ`).

    **Arguments:**

    - `ml_g`: classifier of $P(Y \le \theta \mid X, D = d)$, e.g. `jc.learners.Logistic()`.
    - `ml_m`: classifier of the propensity $P(D = 1 \mid X)$.
    - `quantile`: $q \in (0, 1)$.
    - `treatment`: the level $d$, 0 or 1.
    - `normalize_ipw`: normalise the inverse probability weights (DoubleML's default `True`).
    - `trimming`: propensities are clipped to `[trimming, 1 - trimming]`.
    - `preliminary`: the solver of the preliminary IPW estimate: [`jaxcausal.dml.BrentMinimum`][]
      (DoubleML's, the default) or [`jaxcausal.dml.BrentRoot`][] (the root of the step score,
      independent of rounding).
    - `n_folds`, `n_rep`: folds and repetitions of cross-fitting.

    ```python
    est = jc.dml.PQ(jc.learners.Logistic(), jc.learners.Logistic(), quantile=0.5, treatment=1)
    res = est.fit(data, key=jr.key(0))
    ```

    *Reference:* Kallus, Mao and Uehara (2019), Localized debiased machine learning: efficient
    inference on quantile treatment effects and beyond, arXiv:1912.12945.
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None
    quantile: Float[Array, " 1"] = eqx.field(converter=as_quantiles, default=0.5)
    treatment: int = eqx.field(static=True, default=1)
    normalize_ipw: bool = eqx.field(static=True, default=True)
    trimming: float = eqx.field(static=True, default=0.01)
    preliminary: AbstractPreliminarySolver = BrentMinimum()
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        _check_single(self)

    @property
    def quantile_score(self) -> AbstractQuantileScore:
        return PotentialQuantile()

    @property
    def levels(self) -> tuple[int, ...]:
        return (self.treatment,)

    @property
    def quantile_grid(self) -> Array:
        return self.quantile


class LPQ(AbstractQuantileDML):
    r"""The local potential quantile of compliers with a binary instrument, with the score of
    [`jaxcausal.dml.LocalPotentialQuantile`][] (DoubleML's `DoubleMLLPQ`). Arguments as for
    [`jaxcausal.dml.PQ`][]; `ml_m` fits $P(Z = 1 \mid X)$ and $P(D = 1 \mid X, Z = z)$, `ml_g`
    fits $P(D = d, Y \le \theta \mid X, Z = z)$.
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None
    quantile: Float[Array, " 1"] = eqx.field(converter=as_quantiles, default=0.5)
    treatment: int = eqx.field(static=True, default=1)
    normalize_ipw: bool = eqx.field(static=True, default=True)
    trimming: float = eqx.field(static=True, default=0.01)
    preliminary: AbstractPreliminarySolver = BrentMinimum()
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        _check_single(self)

    @property
    def quantile_score(self) -> AbstractQuantileScore:
        return LocalPotentialQuantile()

    @property
    def levels(self) -> tuple[int, ...]:
        return (self.treatment,)

    @property
    def quantile_grid(self) -> Array:
        return self.quantile


class CVaR(AbstractQuantileDML):
    r"""The conditional value at risk $E[Y(d) \mid Y(d) \ge Q_q(Y(d))]$ with the score of
    [`jaxcausal.dml.ConditionalValueAtRisk`][] (DoubleML's `DoubleMLCVAR`). Arguments as for
    [`jaxcausal.dml.PQ`][], but `ml_g` is a regression learner of the tail-adjusted outcome.
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None
    quantile: Float[Array, " 1"] = eqx.field(converter=as_quantiles, default=0.5)
    treatment: int = eqx.field(static=True, default=1)
    normalize_ipw: bool = eqx.field(static=True, default=True)
    trimming: float = eqx.field(static=True, default=0.01)
    preliminary: AbstractPreliminarySolver = BrentMinimum()
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        _check_single(self)

    @property
    def quantile_score(self) -> AbstractQuantileScore:
        return ConditionalValueAtRisk()

    @property
    def levels(self) -> tuple[int, ...]:
        return (self.treatment,)

    @property
    def quantile_grid(self) -> Array:
        return self.quantile


def _check_single(model) -> None:
    check_quantiles(model.quantile, "quantile")
    if model.quantile.shape != (1,):
        raise ValueError(f"quantile must be one number; got {model.quantile.shape[0]} (use QTE "
                         "for a grid)")
    if model.treatment not in (0, 1):
        raise ValueError(f"treatment must be 0 or 1, got {model.treatment!r}")
    model._check_learners()


class QTE(AbstractQuantileDML):
    r"""Quantile treatment effects $\theta_q^1 - \theta_q^0$ over a grid of quantiles (DoubleML's
    `DoubleMLQTE`): the potential quantiles (or local potential quantiles, or CVaRs) of both
    treatment levels at every quantile, all cross-fitted and solved in one compiled call. The
    standard error of a difference uses the scaled scores $\psi_1/J_1 - \psi_0/J_0$; the result
    has one row per quantile (named by the quantile), so `confint`, `bootstrap` (joint bands over
    the grid) and `summary` work as for several treatments.

    **Arguments:**

    - `ml_g`, `ml_m`: learners as for the chosen score.
    - `quantiles`: the grid, values in (0, 1).
    - `score`: `PotentialQuantile()` (default), `LocalPotentialQuantile()` or
      `ConditionalValueAtRisk()`.
    - `normalize_ipw`, `trimming`, `preliminary`, `n_folds`, `n_rep`: as for
      [`jaxcausal.dml.PQ`][].

    ```python
    est = jc.dml.QTE(jc.learners.Logistic(), jc.learners.Logistic(),
                     quantiles=(0.25, 0.5, 0.75))
    res = est.fit(data, key=jr.key(0))
    res.summary()                  # one row per quantile
    res.bootstrap(key=jr.key(1)).confint()   # a joint band over the grid
    ```
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None
    quantiles: Float[Array, " q"] = eqx.field(converter=as_quantiles, default=0.5)
    score: AbstractQuantileScore = PotentialQuantile()
    normalize_ipw: bool = eqx.field(static=True, default=True)
    trimming: float = eqx.field(static=True, default=0.01)
    preliminary: AbstractPreliminarySolver = BrentMinimum()
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_quantiles(self.quantiles, "quantiles")
        if not isinstance(self.score, AbstractQuantileScore):
            raise TypeError(
                "score must be PotentialQuantile(), LocalPotentialQuantile() or "
                f"ConditionalValueAtRisk(); got {self.score!r} (scores are objects, not strings)"
            )
        self._check_learners()

    @property
    def quantile_score(self) -> AbstractQuantileScore:
        return self.score

    @property
    def levels(self) -> tuple[int, ...]:
        return (0, 1)

    @property
    def quantile_grid(self) -> Array:
        return self.quantiles

    def row_names(self, t_names: tuple[str, ...]) -> tuple[str, ...]:
        if not is_concrete(self.quantiles):
            return tuple(f"q{i}" for i in range(self.quantiles.shape[0]))
        return tuple(f"{q:g}" for q in np.asarray(self.quantiles).tolist())
