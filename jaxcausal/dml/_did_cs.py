"""Difference-in-differences for repeated cross-sections."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_binary
from .._data import CausalData
from ..learners import AbstractLearner
from ._base import AbstractDML, Nuisance, all_finite, broadcast_to_krn
from ._crossfit import nuisance_loss
from ._did import check_did_config, check_did_data, fit_outcome_models, fit_propensity
from ._did_scores import AbstractDIDScore, Observational, sensitivity_from_riesz

_CELLS = ("d0_t0", "d0_t1", "d1_t0", "d1_t1")


def _cell_rows(d, t):
    return {
        "d0_t0": (1.0 - d) * (1.0 - t), "d0_t1": (1.0 - d) * t,
        "d1_t0": d * (1.0 - t), "d1_t1": d * t,
    }


class DIDCS(AbstractDML):
    r"""Difference-in-differences for repeated cross-sections: each row is a unit observed once,
    in the pre-treatment period ($T = 0$) or after it ($T = 1$), from a treated ($D = 1$) or a
    control group; the target is the ATT $E[Y_1(1) - Y_1(0) \mid D = 1]$ under conditional
    parallel trends, with the doubly robust score of Sant'Anna and Zhao (2020, eq. 3.5-3.6) as
    DoubleML's `DoubleMLDIDCS`.

    Data: `jc.CausalData(y=y, t=d, x=X, time=period)` or
    `jc.CausalData.from_pandas(df, y="y", t="d", x=[...], time="period")`. The outcome regression
    $g_{dt}(X) = E[Y \mid D = d, T = t, X]$ of each of the four treatment-period cells (learner
    `ml_g`, the four fits stacked into one batched call) and, for
    [`jaxcausal.dml.Observational`][], the propensity $m(X)$ (`ml_m`, clipped to
    `[trimming, 1 - trimming]`) are cross-fitted. External prediction names are `ml_g_d0_t0`,
    `ml_g_d0_t1`, `ml_g_d1_t0`, `ml_g_d1_t1` and `ml_m`.

    **Arguments:**

    - `ml_g`: outcome learner (regression).
    - `ml_m`: propensity learner (a classifier); not used by `Experimental()`.
    - `score`: `jc.dml.Observational()` (default) or `jc.dml.Experimental()`.
    - `trimming`: propensities are clipped to `[trimming, 1 - trimming]` (default 0.01).
    - `in_sample_normalization`: weights normalised to mean one in each cell (default `True`, as
      DoubleML); `False` divides by the shares $p\lambda$, $p(1 - \lambda)$, ... instead.
    - `n_folds`, `n_rep`: folds and repetitions of cross-fitting.

    Quirks kept from DoubleML 0.11: $p = \overline{D}$ and $\lambda = \overline{T}$ are shares
    of the whole sample; the Riesz representer of `Observational()` without in-sample
    normalisation has no signs on the four cells (`DoubleMLDIDCS._sensitivity_element_est`).
    DoubleML stratifies its folds by $D + 2T$; `fit` draws plain random folds unless `folds`
    are given.

    *Reference:* Sant'Anna and Zhao (2020), Doubly robust difference-in-differences estimators,
    Journal of Econometrics 219(1), 101-122.
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None = None
    score: AbstractDIDScore = Observational()
    trimming: float = eqx.field(static=True, default=0.01)
    in_sample_normalization: bool = eqx.field(static=True, default=True)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_did_config(self, "DIDCS")

    @property
    def learner_names(self) -> tuple[str, ...]:
        names = tuple(f"ml_g_{c}" for c in _CELLS)
        return (*names, "ml_m") if self.score.needs_m else names

    def check_data(self, data: CausalData) -> None:
        check_did_data(data, "DIDCS")
        if data.time is None:
            raise ValueError(
                "DIDCS needs the period indicator time (CausalData(..., time=period) or "
                "from_pandas(..., time='period')); for panel data use jc.dml.DID"
            )

    def nuisance(self, data, xs, test, key, external):
        n_rep = test.shape[0]
        d = check_binary(data.t.T, "t", "for DIDCS")
        t = check_binary(data.time[None], "time", "for DIDCS")
        train = (1.0 - test)[None]
        y_b = broadcast_to_krn(data.y, 1, n_rep)
        d_b, t_b = broadcast_to_krn(d, 1, n_rep), broadcast_to_krn(t, 1, n_rep)
        rows = {f"ml_g_{c}": r for c, r in _cell_rows(d, t).items()}
        preds = fit_outcome_models(self.ml_g, xs, y_b, train, test, rows, key, external,
                                   stacked=False)
        checks = {f"finite:{name}": all_finite(p) for name, p in preds.items()}
        losses = {name: nuisance_loss(y_b, preds[name], r, False) for name, r in rows.items()}
        for name, r in rows.items():
            if name not in external:
                kind = "treated" if name.startswith("ml_g_d1") else "untreated"
                # reported as "a training fold has no (un)treated unit ...; ml_g_d0_t1 cannot
                # be fitted there": the learner name says which period is missing
                checks[f"{kind}:{name}"] = jnp.sum(train * r[:, None, None], axis=-1) > 0
        m_hat = None
        if self.score.needs_m:
            preds["ml_m"] = fit_propensity(self.ml_m, xs, d_b, train, test, key, external)
            checks["finite:ml_m"] = all_finite(preds["ml_m"])
            m_classifier = self.ml_m is not None and self.ml_m.is_classifier
            losses["ml_m"] = nuisance_loss(d_b, preds["ml_m"], None, m_classifier)
            m_hat = jnp.clip(preds["ml_m"], self.trimming, 1.0 - self.trimming)
            checks["propensity:ml_m"] = jnp.all((m_hat > 0.0) & (m_hat < 1.0), axis=-1)
        g = {c: preds[f"ml_g_{c}"] for c in _CELLS}
        psi_a, psi_b = self.score.cross_section(
            y_b, d_b, t_b, g, m_hat, self.in_sample_normalization
        )
        return Nuisance(psi_a=psi_a, psi_b=psi_b, predictions=preds, losses=losses, checks=checks)

    def sensitivity_elements(self, data, nuisance, theta):
        """DoubleML's sensitivity elements of the DIDCS score
        (`DoubleMLDIDCS._sensitivity_element_est`); each `(1, n_rep)` or `(1, n_rep, n_obs)`."""
        preds = nuisance.predictions
        n_rep = preds["ml_g_d0_t0"].shape[1]
        y_b = broadcast_to_krn(data.y, 1, n_rep)
        d_b = broadcast_to_krn(data.t.T, 1, n_rep)
        t_b = broadcast_to_krn(data.time[None], 1, n_rep)
        m_hat = None
        if self.score.needs_m:
            m_hat = jnp.clip(preds["ml_m"], self.trimming, 1.0 - self.trimming)
        g_hat = sum(r * preds[f"ml_g_{c}"] for c, r in _cell_rows(d_b, t_b).items())
        alpha, m_alpha = self.score.cross_section_riesz(
            d_b, t_b, m_hat, self.in_sample_normalization
        )
        return sensitivity_from_riesz(y_b, g_hat, alpha, m_alpha)
