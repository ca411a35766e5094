"""The interactive regression model for a binary treatment."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_binary
from .._data import CausalData
from ..learners import AbstractLearner
from ..learners._base import targets_trusted
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
from ._plr import _check_common
from ._scores import ATE, AbstractIRMScore


def normalize_ipw(m_hat: Float[Array, "*b n"], d: Float[Array, "*b n"]) -> Float[Array, "*b n"]:
    """DoubleML's normalisation of the inverse probability weights (Hajek-type weights)."""
    mean1 = jnp.mean(d / m_hat, axis=-1, keepdims=True)
    mean0 = jnp.mean((1.0 - d) / (1.0 - m_hat), axis=-1, keepdims=True)
    return d * m_hat * mean1 + (1.0 - d) * (1.0 - (1.0 - m_hat) * mean0)


class IRM(AbstractDML):
    r"""Interactive regression model: $Y = g_0(D, X) + U$, $D = 1\{\cdot\}$ with propensity
    $m_0(X) = P(D = 1 \mid X)$.

    The outcome regressions $g_0(0, X)$ and $g_0(1, X)$ (learner `ml_g`, fitted on the untreated
    and the treated rows of each training fold: the fold mask times the treatment indicator) and
    the propensity $m_0(X)$ (`ml_m`, clipped to `[trimming, 1 - trimming]`) are cross-fitted, and
    the doubly robust score of [`jaxcausal.dml.ATE`][] or [`jaxcausal.dml.ATTE`][] is solved, as in
    DoubleML's `DoubleMLIRM`. External prediction names are `ml_g0`, `ml_g1` and `ml_m`.

    **Arguments:**

    - `ml_g`: outcome learner (regression).
    - `ml_m`: propensity learner, usually a classifier such as `jc.learners.Logistic()`.
    - `score`: `ATE()` (default) or `ATTE()`.
    - `trimming`: propensities are clipped to `[trimming, 1 - trimming]` (0 disables it).
    - `normalize_ipw`: normalise the inverse probability weights (DoubleML's option).
    - `n_folds`, `n_rep`: folds and repetitions of cross-fitting.

    ```python
    est = jc.dml.IRM(jc.learners.MLP(), jc.learners.Logistic(), score=jc.dml.ATTE())
    res = est.fit(data, key=jr.key(0))
    ```
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None
    score: AbstractIRMScore = ATE()
    trimming: float = eqx.field(static=True, default=0.01)
    normalize_ipw: bool = eqx.field(static=True, default=False)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        for name in ("ml_g", "ml_m"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, AbstractLearner):
                raise TypeError(f"{name} must be a jaxcausal learner or None; got {value!r}")
        if not isinstance(self.score, AbstractIRMScore):
            raise TypeError(
                f"score must be ATE() or ATTE(); got {self.score!r} (scores are objects, not "
                "strings)"
            )
        if not 0.0 <= self.trimming < 0.5:
            raise ValueError(f"trimming must be in [0, 0.5), got {self.trimming}")
        _check_common(self)

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_g0", "ml_g1", "ml_m")

    def check_data(self, data: CausalData) -> None:
        if data.z is not None:
            raise ValueError("data has instruments z; IRM takes no instruments")
        names = ", ".join(data.t_names)
        check_binary(data.t, "t", f"for IRM (treatment {names})")
        if self.ml_g is not None and self.ml_g.is_classifier:
            check_binary(data.y, "y", "when ml_g is a classifier")
        check_class_sizes(data, self.n_folds, "IRM", error=True)
        check_separation(data, "IRM")

    def strata(self, data: CausalData):
        return binary_strata(data.t)

    def nuisance(self, data, xs, test, key, external):
        k, n_rep = data.t.shape[-1], test.shape[0]
        d = data.t.T if targets_trusted() else check_binary(data.t.T, "t", "for IRM")
        train = jnp.broadcast_to(1.0 - test[None], (k, *test.shape))
        treated = d[:, None, None, :]
        y_b = broadcast_to_krn(data.y, k, n_rep)
        d_b = broadcast_to_krn(d, k, n_rep)
        checks, diagnostics = {}, {}
        masks = {"ml_g0": train * (1.0 - treated), "ml_g1": train * treated}
        # One key for every learner of a fold (common random numbers, as in PLR).
        fitted = [name for name in ("ml_g0", "ml_g1") if name not in external]
        if self.ml_g is None and fitted:
            raise ValueError(
                f"ml_g is None and no external predictions for {fitted[0]} were given"
            )
        # g0, g1 and m are three cross-fits of the same batch shape (one fit per repetition and
        # fold each), not g0 and g1 stacked into one batch: measured, three loops of equal
        # batches compile faster than two of different sizes (IRM with MLP nuisances, n = 1000:
        # first call 5.2 s -> 4.1 s, warm 0.35 s -> 0.31 s; presumably XLA reuses the code of
        # equal-shaped kernels), and each loop stops early on its own.
        preds = {}
        for name in ("ml_g0", "ml_g1"):
            preds[name] = fit_learner(name, self.ml_g, xs, y_b, masks[name], test, key,
                                      external, checks, diagnostics)
        preds["ml_m"] = fit_learner("ml_m", self.ml_m, xs, d_b, train, test, key, external,
                                    checks, diagnostics)
        preds = {name: preds[name] for name in ("ml_g0", "ml_g1", "ml_m")}
        m_classifier = self.ml_m is not None and self.ml_m.is_classifier
        losses = {
            "ml_g0": nuisance_loss(y_b, preds["ml_g0"], 1.0 - d, False),
            "ml_g1": nuisance_loss(y_b, preds["ml_g1"], d, False),
            "ml_m": nuisance_loss(d_b, preds["ml_m"], None, m_classifier),
        }
        m_hat = jnp.clip(preds["ml_m"], self.trimming, 1.0 - self.trimming)
        checks["propensity:ml_m"] = jnp.all((m_hat > 0.0) & (m_hat < 1.0), axis=-1)
        propensity_checks("ml_m", preds["ml_m"], self.trimming, checks, diagnostics)
        if "ml_g0" not in external:
            checks["untreated:ml_g"] = jnp.sum(masks["ml_g0"], axis=-1) > 0
        if "ml_g1" not in external:
            checks["treated:ml_g"] = jnp.sum(masks["ml_g1"], axis=-1) > 0
        if self.normalize_ipw:
            m_hat = normalize_ipw(m_hat, d_b)
        psi_a, psi_b = self.score.irm(y_b, d_b, preds["ml_g0"], preds["ml_g1"], m_hat)
        return Nuisance(psi_a=psi_a, psi_b=psi_b, predictions=preds, losses=losses,
                        checks=checks, diagnostics=diagnostics)

    # --- sensitivity analysis (issue 14) ---
    def sensitivity_elements(self, data, nuisance, theta):
        r"""DoubleML's IRM elements with the (trimmed, optionally normalised) propensity $m$ and
        the score's weights $\omega, \bar\omega$: $\sigma^2 = E[(Y - D g_1 - (1-D) g_0)^2]$,
        $\alpha = \bar\omega(D/m - (1-D)/(1-m))$ and
        $\nu^2 = E[2\omega\bar\omega(1/m + 1/(1-m)) - \alpha^2]$."""
        preds = nuisance.predictions
        k, n_rep = theta.shape
        y = broadcast_to_krn(data.y, k, n_rep)
        d = broadcast_to_krn(data.t.T, k, n_rep)
        m = jnp.clip(preds["ml_m"], self.trimming, 1.0 - self.trimming)
        if self.normalize_ipw:
            m = normalize_ipw(m, d)
        w, w_bar = self.score.weights(d, m)
        resid = y - d * preds["ml_g1"] - (1.0 - d) * preds["ml_g0"]
        riesz = w_bar * (d / m - (1.0 - d) / (1.0 - m))
        m_alpha = w * w_bar * (1.0 / m + 1.0 / (1.0 - m))
        return ipw_elements(resid, riesz, m_alpha)


def ipw_elements(y_resid, riesz, m_alpha):
    r"""Sensitivity elements from the outcome residual, the Riesz representer and
    $m(W; \alpha)$ (the functional applied to the representer), with the orthogonal
    $\nu^2 = E[2 m(W;\alpha) - \alpha^2]$."""
    sigma2 = jnp.mean(y_resid**2, axis=-1)
    nu2_rows = 2.0 * m_alpha - riesz**2
    nu2 = jnp.mean(nu2_rows, axis=-1)
    return {
        "sigma2": sigma2,
        "nu2": nu2,
        "psi_sigma2": y_resid**2 - sigma2[..., None],
        "psi_nu2": nu2_rows - nu2[..., None],
        "riesz_rep": riesz,
    }
