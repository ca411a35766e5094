"""Q10 of ecosystem respiration estimated by double machine learning (Cohrs et al., 2024)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import is_concrete
from .._data import CausalData
from ..dml import PLR, DMLResult
from ..learners import AbstractLearner, AbstractPredictor


class Q10Result(eqx.Module):
    r"""A fitted Q10 model: the DML estimate of $\theta = \log Q_{10}$ and the base respiration.

    - `dml`: the underlying [`jaxcausal.dml.DMLResult`][] on the log scale.
    - `q10`: $e^{\hat\theta}$; `confint(level)` the exponentiated DML interval.
    - `rb(x)`: base respiration $\hat R_b(x) = e^{\hat\ell(x) - \hat\theta\hat m(x)}\cdot s$, with
      $\hat\ell, \hat m$ refitted on all rows and $s$ Duan's smearing factor (the mean of the
      exponentiated out-of-fold residuals), which undoes the log transform's bias
      $E[\log(1 + \varepsilon)] < 0$.
    """

    dml: DMLResult
    ml_l_full: AbstractPredictor
    ml_m_full: AbstractPredictor
    smearing: Float[Array, ""]
    t_ref: float = eqx.field(static=True)

    @property
    def log_q10(self) -> Float[Array, ""]:
        return self.dml.theta[0]

    @property
    def q10(self) -> Float[Array, ""]:
        return jnp.exp(self.log_q10)

    @property
    def se(self) -> Float[Array, ""]:
        """Standard error of $\\log Q_{10}$."""
        return self.dml.se[0]

    def confint(self, level: float = 0.95) -> Float[Array, " 2"]:
        """Confidence interval of Q10 (the DML interval of $\\log Q_{10}$, exponentiated)."""
        return jnp.exp(self.dml.confint(level)[0])

    def rb(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        """Base respiration at drivers `x` (the same columns as the fit's `x`)."""
        x = jnp.asarray(x)
        return jnp.exp(self.ml_l_full(x) - self.log_q10 * self.ml_m_full(x)) * self.smearing

    def predict(self, x: Float[Array, "n p"], ta: Float[Array, " n"]) -> Float[Array, " n"]:
        """Respiration $\\hat R_b(x)\\,\\hat Q_{10}^{(TA - T_{ref})/10}$."""
        return self.rb(x) * self.q10 ** ((jnp.asarray(ta) - self.t_ref) / 10.0)

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """One row: Q10, its interval, and the log-scale estimate, s.e. and p-value."""
        if not is_concrete(self.q10):
            raise ValueError("summary needs a concrete result (not batched or traced)")
        lo, hi = np.asarray(self.confint(level))
        alpha = 1.0 - level
        return pd.DataFrame(
            {
                "Q10": [float(self.q10)],
                f"{100 * alpha / 2:.1f} %": [float(lo)],
                f"{100 * (1 - alpha / 2):.1f} %": [float(hi)],
                "log Q10": [float(self.log_q10)],
                "std err": [float(self.se)],
                "P>|t|": [float(self.dml.pval[0])],
            },
            index=["Q10"],
        )


class Q10DML(eqx.Module):
    r"""Temperature sensitivity of respiration by double machine learning.

    With $RECO = R_b(X)\,Q_{10}^{(TA - T_{ref})/10}(1 + \varepsilon)$, taking logs gives the
    partially linear model $\log RECO = \theta\,\tau + g(X) + u$ with $\tau = (TA - T_{ref})/10$,
    $\theta = \log Q_{10}$ and $g = \log R_b + E\log(1+\varepsilon)$, which
    [`jaxcausal.dml.PLR`][] estimates without regularisation bias: the drivers $X$ of base
    respiration (for example `SW_POT_sm`, `SW_POT_sm_diff`) are partialled out of both the log
    outcome and the temperature term, which removes the confounding by the shared season.

    **Arguments:**

    - `ml_l`, `ml_m`: learners of $E[\log RECO \mid X]$ and $E[\tau \mid X]$.
    - `t_ref`: reference temperature (deg C).
    - `n_folds`, `n_rep`: cross-fitting folds and repetitions.

    `fit(data, *, key)` takes `CausalData(y=RECO, t=TA, x=drivers)`; RECO must be positive.

    *Reference:* Cohrs, Varando, Carvalhais, Reichstein, Camps-Valls (2024), Causal hybrid
    modeling with double machine learning.
    """

    ml_l: AbstractLearner
    ml_m: AbstractLearner
    t_ref: float = eqx.field(static=True, default=15.0)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def plr(self) -> PLR:
        return PLR(self.ml_l, self.ml_m, n_folds=self.n_folds, n_rep=self.n_rep)

    def transform(self, data: CausalData) -> CausalData:
        """The log-scale data the PLR sees: `y = log RECO`, `t = (TA - t_ref) / 10`."""
        if not isinstance(data, CausalData):
            raise TypeError(f"data must be a jaxcausal.CausalData; got {type(data).__name__}")
        if data.n_treatments != 1:
            raise ValueError(f"t must be one column (air temperature); got {data.n_treatments}")
        if is_concrete(data.y) and bool(jnp.any(data.y <= 0)):
            bad = int(np.argmax(np.asarray(data.y) <= 0))
            raise ValueError(
                f"y (RECO) must be positive to take its logarithm; row {bad} is "
                f"{float(data.y[bad]):g}"
            )
        return CausalData(
            y=jnp.log(data.y),
            t=(data.t - self.t_ref) / 10.0,
            x=data.x,
            y_name=f"log {data.y_name}",
            t_names=[f"({data.t_names[0]} - {self.t_ref:g})/10"],
            x_names=data.x_names,
        )

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> Q10Result:
        k_dml, k_l, k_m = jr.split(key, 3)
        logdata = self.transform(data)
        res = self.plr().fit(logdata, key=k_dml)
        theta = res.theta[0]
        tau = logdata.t[:, 0]
        g_oof = res.predictions["ml_l"][0] - theta * res.predictions["ml_m"][0]
        resid = logdata.y[None, :] - theta * tau[None, :] - g_oof
        return Q10Result(
            dml=res,
            ml_l_full=self.ml_l.fit(logdata.x, logdata.y, key=k_l),
            ml_m_full=self.ml_m.fit(logdata.x, tau, key=k_m),
            smearing=jnp.mean(jnp.exp(resid)),
            t_ref=self.t_ref,
        )
