r"""The interactive IV model: the local average treatment effect with a binary instrument."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_binary
from .._data import CausalData
from ..learners import AbstractLearner
from ._base import AbstractDML, Nuisance, all_finite, broadcast_to_krn
from ._crossfit import crossfit, nuisance_loss
from ._irm import ipw_elements, normalize_ipw
from ._plr import _check_common
from ._scores import AbstractScore


class LATE(AbstractScore):
    r"""The local average treatment effect (the effect on compliers) of Frölich (2007):
    $\theta = (E[g(1, X)] - E[g(0, X)]) / (E[r(1, X)] - E[r(0, X)])$, with the doubly robust score

    $$\psi_b = g_1 - g_0 + \frac{Z(Y - g_1)}{m} - \frac{(1-Z)(Y - g_0)}{1-m},\qquad
    \psi_a = -\Bigl(r_1 - r_0 + \frac{Z(D - r_1)}{m} - \frac{(1-Z)(D - r_0)}{1-m}\Bigr),$$

    where $g_z(X) = E[Y|Z=z,X]$, $r_z(X) = E[D|Z=z,X]$ and $m(X) = P(Z=1|X)$ (DoubleML's `LATE`).
    """

    def iivm(self, y, z, d, g0, g1, m, r0, r1):
        psi_b = g1 - g0 + z * (y - g1) / m - (1.0 - z) * (y - g0) / (1.0 - m)
        psi_a = -(r1 - r0 + z * (d - r1) / m - (1.0 - z) * (d - r0) / (1.0 - m))
        return psi_a, psi_b


class Subgroups(eqx.Module):
    """Which compliance types the sample may contain (DoubleML's `subgroups`).

    - `always_takers`: units treated even when the instrument is 0. Without them
      $r(0, X) = 0$ and `ml_r0` is not fitted.
    - `never_takers`: units untreated even when the instrument is 1. Without them
      $r(1, X) = 1$ and `ml_r1` is not fitted.
    """

    always_takers: bool = eqx.field(static=True, default=True)
    never_takers: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        for name in ("always_takers", "never_takers"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Subgroups.{name} must be True or False; got "
                                f"{getattr(self, name)!r}")


class IIVM(AbstractDML):
    r"""Interactive IV model: binary treatment $D$, binary instrument $Z$,
    $Y = g_0(Z, X) + \nu$, $D = r_0(Z, X) + U$, $Z = m_0(X) + V$; the target is the local
    average treatment effect ([`jaxcausal.dml.LATE`][]), as in DoubleML's `DoubleMLIIVM`.

    The outcome regressions $g(0, X)$, $g(1, X)$ (`ml_g`, fitted on the rows with $Z = 0$ and
    $Z = 1$ of each training fold), the instrument propensity $m(X)$ (`ml_m`, clipped to
    `[trimming, 1 - trimming]`) and the treatment regressions $r(0, X)$, $r(1, X)$ (`ml_r`,
    a classifier) are cross-fitted in one compiled call. External prediction names are `ml_g0`,
    `ml_g1`, `ml_m`, `ml_r0`, `ml_r1`.

    **Arguments:**

    - `ml_g`: outcome learner (a classifier for a binary outcome gives probabilities).
    - `ml_m`: instrument propensity learner (a classifier such as `jc.learners.Logistic()`).
    - `ml_r`: treatment learner (a classifier).
    - `score`: `LATE()`.
    - `subgroups`: a [`jaxcausal.dml.Subgroups`][] (default: both always- and never-takers).
    - `trimming`: propensities are clipped to `[trimming, 1 - trimming]`.
    - `normalize_ipw`: normalise the inverse probability weights of the instrument (Hajek).
    - `normalize_by_treatment`: with `normalize_ipw`, normalise with the treatment indicator
      $D$ instead of the instrument $Z$, as DoubleML 0.11.4 does (`_score_elements` of
      `DoubleMLIIVM` passes `d`); only for parity with DoubleML.
    - `n_folds`, `n_rep`: folds and repetitions of cross-fitting.

    ```python
    est = jc.dml.IIVM(jc.learners.MLP(), jc.learners.Logistic(), jc.learners.Logistic(),
                      subgroups=jc.dml.Subgroups(always_takers=False))
    res = est.fit(data, key=jr.key(0))          # data with a binary instrument z
    ```

    *Reference:* Frölich (2007), Nonparametric IV estimation of local average treatment effects
    with covariates, Journal of Econometrics 139, 35-75; Chernozhukov et al. (2018), Section 5.2.
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None
    ml_r: AbstractLearner | None
    score: LATE = LATE()
    subgroups: Subgroups = Subgroups()
    trimming: float = eqx.field(static=True, default=0.01)
    normalize_ipw: bool = eqx.field(static=True, default=False)
    normalize_by_treatment: bool = eqx.field(static=True, default=False)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        for name in ("ml_g", "ml_m", "ml_r"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, AbstractLearner):
                raise TypeError(f"{name} must be a jaxcausal learner or None; got {value!r}")
        if not isinstance(self.score, LATE):
            raise TypeError(f"score must be LATE(); got {self.score!r} (scores are objects)")
        if not isinstance(self.subgroups, Subgroups):
            raise TypeError(
                "subgroups must be jc.dml.Subgroups(always_takers=..., never_takers=...); got "
                f"{self.subgroups!r}"
            )
        if not 0.0 <= self.trimming < 0.5:
            raise ValueError(f"trimming must be in [0, 0.5), got {self.trimming}")
        _check_common(self)

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_g0", "ml_g1", "ml_m", "ml_r0", "ml_r1")

    def check_data(self, data: CausalData) -> None:
        if data.z is None:
            raise ValueError("IIVM needs a binary instrument: data.z is None (pass z=)")
        if data.z.shape[-1] != 1:
            raise ValueError(f"IIVM needs exactly one instrument z; data has {data.z_names}")
        if data.n_treatments != 1:
            raise ValueError(f"IIVM needs exactly one treatment; data has {data.t_names}")
        check_binary(data.t, "t", f"for IIVM (treatment {data.t_names[0]})")
        check_binary(data.z, "z", f"for IIVM (instrument {data.z_names[0]})")

    def _propensity(self, m_raw, z, d):
        m = jnp.clip(m_raw, self.trimming, 1.0 - self.trimming)
        if self.normalize_ipw:
            m = normalize_ipw(m, d if self.normalize_by_treatment else z)
        return m

    def nuisance(self, data, xs, test, key, external):
        n_rep = test.shape[0]
        z = check_binary(data.z[:, 0], "z", "for IIVM")
        d = check_binary(data.t[:, 0], "t", "for IIVM")
        train = 1.0 - test[None]
        zi = z[None, None, None, :]
        y_b = broadcast_to_krn(data.y, 1, n_rep)
        d_b = broadcast_to_krn(d, 1, n_rep)
        z_b = broadcast_to_krn(z, 1, n_rep)

        def get(name, learner, target, weights):
            if name in external:
                return external[name]
            if learner is None:
                raise ValueError(
                    f"{name[:4]} is None and no external predictions for {name} were given"
                )
            return crossfit(learner, xs, target, weights, test, key)

        preds = {
            "ml_g0": get("ml_g0", self.ml_g, y_b, train * (1.0 - zi)),
            "ml_g1": get("ml_g1", self.ml_g, y_b, train * zi),
            "ml_m": get("ml_m", self.ml_m, z_b, train),
        }
        if self.subgroups.always_takers:
            preds["ml_r0"] = get("ml_r0", self.ml_r, d_b, train * (1.0 - zi))
        if self.subgroups.never_takers:
            preds["ml_r1"] = get("ml_r1", self.ml_r, d_b, train * zi)
        r0 = preds.get("ml_r0", jnp.zeros_like(y_b))
        r1 = preds.get("ml_r1", jnp.ones_like(y_b))
        classifier = {name: getattr(self, name) is not None and getattr(self, name).is_classifier
                      for name in ("ml_g", "ml_m", "ml_r")}
        z_rows = z[None]
        losses = {
            "ml_g0": nuisance_loss(y_b, preds["ml_g0"], 1.0 - z_rows, classifier["ml_g"]),
            "ml_g1": nuisance_loss(y_b, preds["ml_g1"], z_rows, classifier["ml_g"]),
            "ml_m": nuisance_loss(z_b, preds["ml_m"], None, classifier["ml_m"]),
        }
        for name, rows in (("ml_r0", 1.0 - z_rows), ("ml_r1", z_rows)):
            if name in preds:
                losses[name] = nuisance_loss(d_b, preds[name], rows, classifier["ml_r"])
        m = self._propensity(preds["ml_m"], z_b, d_b)
        m_trimmed = jnp.clip(preds["ml_m"], self.trimming, 1.0 - self.trimming)
        checks = {f"finite:{name}": all_finite(p) for name, p in preds.items()}
        checks["propensity:ml_m"] = jnp.all((m_trimmed > 0.0) & (m_trimmed < 1.0), axis=-1)
        if "ml_g0" not in external:
            checks["z0:ml_g"] = jnp.sum(train * (1.0 - zi), axis=-1) > 0
        if "ml_g1" not in external:
            checks["z1:ml_g"] = jnp.sum(train * zi, axis=-1) > 0
        psi_a, psi_b = self.score.iivm(y_b, z_b, d_b, preds["ml_g0"], preds["ml_g1"], m, r0, r1)
        return Nuisance(psi_a=psi_a, psi_b=psi_b, predictions=preds, losses=losses, checks=checks)

    # --- sensitivity analysis (issue 14) ---
    def sensitivity_elements(self, data, nuisance, theta):
        r"""jaxcausal's IIVM elements (DoubleML 0.11 has none for IIVM).

        The LATE solves $E[\psi_b] + \theta E[\psi_a] = 0$: it is the effect of $Z$ on
        $\tilde Y = Y - \theta D$ (an IRM in $Z$) divided by the first stage $J = -E[\psi_a]$.
        An omitted confounder of the instrument biases that numerator as in the IRM, which gives
        $\sigma^2 = E[(Y - \theta D - g_Z + \theta r_Z)^2]$ (with $g_Z, r_Z$ at the observed
        instrument), $\alpha = (Z/m - (1-Z)/(1-m)) / J$ and
        $\nu^2 = E[2(1/m + 1/(1-m))/J^2 - \alpha^2]$ (the estimation error of $J$ is ignored in
        the influence function, as DoubleML does for ATTE's weights). Without always- and
        never-takers and with $Z = D$ these are DoubleML's IRM (ATE) elements.
        """
        preds = nuisance.predictions
        n_rep = theta.shape[1]
        y = broadcast_to_krn(data.y, 1, n_rep)
        d = broadcast_to_krn(data.t[:, 0], 1, n_rep)
        z = broadcast_to_krn(data.z[:, 0], 1, n_rep)
        r0 = preds.get("ml_r0", jnp.zeros_like(y))
        r1 = preds.get("ml_r1", jnp.ones_like(y))
        m = self._propensity(preds["ml_m"], z, d)
        th = theta[..., None]
        g_z = z * preds["ml_g1"] + (1.0 - z) * preds["ml_g0"]
        r_z = z * r1 + (1.0 - z) * r0
        resid = y - th * d - (g_z - th * r_z)
        jac = -jnp.mean(nuisance.psi_a, axis=-1, keepdims=True)
        riesz = (z / m - (1.0 - z) / (1.0 - m)) / jac
        m_alpha = (1.0 / m + 1.0 / (1.0 - m)) / jac**2
        return ipw_elements(resid, riesz, m_alpha)
