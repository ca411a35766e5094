"""The partially linear regression model."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_binary
from .._data import CausalData
from ..learners import AbstractLearner
from ._base import (
    AbstractDML,
    Nuisance,
    broadcast_to_krn,
    check_class_sizes,
    check_separation,
    fit_learner,
    propensity_checks,
)
from ._crossfit import binary_strata, nuisance_loss
from ._scores import AbstractPartiallyLinearScore, PartiallingOut


def _check_common(model) -> None:
    if not isinstance(model.n_folds, int) or model.n_folds < 2:
        raise ValueError(f"n_folds must be an integer of at least 2, got {model.n_folds!r}")
    if not isinstance(model.n_rep, int) or model.n_rep < 1:
        raise ValueError(f"n_rep must be a positive integer, got {model.n_rep!r}")


class PLR(AbstractDML):
    r"""Partially linear regression: $Y = \theta D + g_0(X) + \zeta$, $D = m_0(X) + V$.

    The nuisances $\ell_0(X) = E[Y \mid X]$ (learner `ml_l`), $m_0(X) = E[D \mid X]$ (`ml_m`) and,
    for the IV-type score, $g_0(X) = E[Y - \theta D \mid X]$ (`ml_g`, fitted to
    $Y - \hat\theta_0 D$ with a preliminary partialling-out estimate) are cross-fitted, and
    $\theta$ solves the empirical score equation (DML2), as in DoubleML's `DoubleMLPLR`.

    **Arguments:**

    - `ml_l`, `ml_m`: learners of $E[Y|X]$ and $E[D|X]$ (a classifier for `ml_m` when the
      treatment is binary gives probabilities). `None` is allowed when external predictions
      replace them.
    - `ml_g`: learner of $g_0$ for [`jaxcausal.dml.IVType`][] (default: `ml_l`).
    - `score`: [`jaxcausal.dml.PartiallingOut`][] (default) or [`jaxcausal.dml.IVType`][].
    - `n_folds`, `n_rep`: folds and repetitions of cross-fitting.

    ```python
    est = jc.dml.PLR(jc.learners.MLP(), jc.learners.MLP(), n_folds=5, n_rep=3)
    res = est.fit(data, key=jr.key(0))
    res.summary()
    ```

    *Reference:* Chernozhukov et al. (2018), Double/debiased machine learning for treatment and
    structural parameters, Econometrics Journal 21, C1-C68.
    """

    ml_l: AbstractLearner | None
    ml_m: AbstractLearner | None
    ml_g: AbstractLearner | None = None
    score: AbstractPartiallyLinearScore = PartiallingOut()
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        for name in ("ml_l", "ml_m", "ml_g"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, AbstractLearner):
                raise TypeError(f"{name} must be a jaxcausal learner or None; got {value!r}")
        if not isinstance(self.score, AbstractPartiallyLinearScore):
            raise TypeError(
                f"score must be PartiallingOut() or IVType(); got {self.score!r} (scores are "
                "objects, not strings)"
            )
        _check_common(self)

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_l", "ml_m", "ml_g") if self.score.needs_g else ("ml_l", "ml_m")

    def check_data(self, data: CausalData) -> None:
        if data.z is not None:
            raise ValueError("data has instruments z; use jc.dml.PLIV for instrumental variables")
        if self.ml_m is not None and self.ml_m.is_classifier:
            check_binary(data.t, "t", "when ml_m is a classifier")
        if self.ml_l is not None and self.ml_l.is_classifier:
            check_binary(data.y, "y", "when ml_l is a classifier")
        check_class_sizes(data, self.n_folds, "PLR", error=False)
        check_separation(data, "PLR")

    def strata(self, data: CausalData):
        return binary_strata(data.t)

    supports_cluster: ClassVar[bool] = True

    def nuisance(self, data, xs, test, key, external, train=None):
        k, n_rep = data.t.shape[-1], test.shape[0]
        d = data.t.T
        train = jnp.broadcast_to(1.0 - test[None] if train is None else train[None],
                                 (k, *test.shape))
        y_b = broadcast_to_krn(data.y, k, n_rep)
        d_b = broadcast_to_krn(d, k, n_rep)
        # Every learner of a fold gets the fold's key (common random numbers): the networks for
        # E[Y|X] and E[D|X] then share initialisation, minibatches and validation rows, so their
        # estimation errors align and do not attenuate theta.
        checks, diagnostics = {}, {}

        def get(name, learner, target):
            return fit_learner(name, learner, xs, target, train, test, key, external, checks,
                               diagnostics)

        preds, losses = {}, {}
        needs_l = not (self.score.needs_g and "ml_g" in external)
        if needs_l:
            preds["ml_l"] = get("ml_l", self.ml_l, y_b)
            losses["ml_l"] = nuisance_loss(y_b, preds["ml_l"], None, False)
        preds["ml_m"] = get("ml_m", self.ml_m, d_b)
        m_classifier = self.ml_m is not None and self.ml_m.is_classifier
        losses["ml_m"] = nuisance_loss(d_b, preds["ml_m"], None, m_classifier)
        g_hat = None
        if self.score.needs_g:
            if "ml_g" in external:
                g_hat = get("ml_g", None, y_b)
                target = y_b
            else:
                # A preliminary partialling-out estimate per treatment and repetition.
                a0, b0 = PartiallingOut().plr(y_b, d_b, preds["ml_l"], preds["ml_m"], None)
                theta0 = -jnp.mean(b0, axis=-1) / jnp.mean(a0, axis=-1)
                target = y_b - theta0[..., None] * d_b
                g_learner = self.ml_g if self.ml_g is not None else self.ml_l
                g_hat = get("ml_g", g_learner, target)
            preds["ml_g"] = g_hat
            losses["ml_g"] = nuisance_loss(target, g_hat, None, False)
        psi_a, psi_b = self.score.plr(y_b, d_b, preds.get("ml_l"), preds["ml_m"], g_hat)
        if m_classifier:
            propensity_checks("ml_m", preds["ml_m"], 0.0, checks, diagnostics)
        return Nuisance(psi_a=psi_a, psi_b=psi_b, predictions=preds, losses=losses,
                        checks=checks, diagnostics=diagnostics)

    # --- sensitivity analysis (issue 14) ---
    def sensitivity_elements(self, data, nuisance, theta):
        r"""DoubleML's PLR elements: $\sigma^2 = E[(Y - \ell - \theta(D - m))^2]$ (IV-type:
        $E[(Y - g - \theta D)^2]$), $\alpha = (D - m) / E[(D - m)^2]$ and
        $\nu^2 = 1 / E[(D - m)^2]$ with influence function $\nu^2 - (D - m)^2\nu^4$."""
        preds = nuisance.predictions
        k, n_rep = theta.shape
        y = broadcast_to_krn(data.y, k, n_rep)
        d = broadcast_to_krn(data.t.T, k, n_rep)
        th = theta[..., None]
        if self.score.needs_g:
            resid = y - preds["ml_g"] - th * d
        else:
            resid = y - preds["ml_l"] - th * (d - preds["ml_m"])
        return plr_elements(resid, d - preds["ml_m"])


def plr_elements(y_resid, d_resid):
    """Sensitivity elements from the outcome residual and the treatment residual."""
    sigma2 = jnp.mean(y_resid**2, axis=-1)
    nu2 = 1.0 / jnp.mean(d_resid**2, axis=-1)
    return {
        "sigma2": sigma2,
        "nu2": nu2,
        "psi_sigma2": y_resid**2 - sigma2[..., None],
        "psi_nu2": nu2[..., None] - d_resid**2 * nu2[..., None] ** 2,
        "riesz_rep": d_resid * nu2[..., None],
    }
