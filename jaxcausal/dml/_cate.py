r"""Heterogeneous effects after DML: the best linear predictor and a neural R-learner.

From a fitted PLR (one treatment) the residuals $\tilde Y = Y - \hat\ell(X)$ and
$\tilde D = D - \hat m(X)$ identify $\tau(x)$ through
$\min_\tau \sum_i (\tilde Y_i - \tau(x_i)\tilde D_i)^2$ (the R-learner of Nie and Wager 2021).
From a fitted IRM the doubly robust signal $\psi_b$ has $E[\psi_b \mid X] = \tau(X)$.

- Linear final stage: $\tau(x) = b(x)^\top\beta$ by least squares with heteroscedasticity-robust
  (HC0) covariance, per repetition, aggregated as DoubleML's `cate()` (the best linear predictor,
  like EconML's `LinearDML`).
- Neural final stage: any learner fitted to the pseudo-outcome $\tilde Y/\tilde D$ with weights
  $\tilde D^2$ (PLR; EconML's `NonParamDML`) or to $\psi_b$ (IRM), one per repetition in one
  `vmap`, averaged over repetitions.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array, check_finite, check_ndim
from .._data import CausalData
from ..learners import AbstractLearner, AbstractPredictor
from ..learners._base import sequential_under_vmap
from ._inference import aggregate, normal_quantile
from ._irm import IRM
from ._plr import PLR
from ._result import DMLResult
from ._scores import ATE, IVType


def _signal(model: PLR | IRM, res: DMLResult, data: CausalData) -> tuple[Array, Array]:
    """Outcome signal and treatment residual `(n_rep, n)` (the residual is 1 for IRM)."""
    if isinstance(model, IRM):
        return res.psi_b[0], jnp.ones_like(res.psi_b[0])
    m = res.predictions["ml_m"][0]
    d_tilde = data.t[:, 0][None, :] - m
    if isinstance(model.score, IVType):
        y_tilde = data.y[None, :] - res.theta_rep[0][:, None] * m - res.predictions["ml_g"][0]
    else:
        y_tilde = data.y[None, :] - res.predictions["ml_l"][0]
    return y_tilde, d_tilde


# one matrix at a time under vmap: batched LAPACK kernels can deadlock XLA's CPU thread pool
_pinv = sequential_under_vmap(jnp.linalg.pinv)


def _ols_hc0(y: Float[Array, " n"], b: Float[Array, "n q"]) -> tuple[Array, Array]:
    """Least squares coefficients and their HC0 covariance."""
    bread = _pinv(b.T @ b)
    coef = bread @ (b.T @ y)
    resid = y - b @ coef
    meat = (b * (resid**2)[:, None]).T @ b
    return coef, bread @ meat @ bread


def _basis(features: Array, intercept: bool) -> Array:
    if intercept:
        return jnp.concatenate([jnp.ones((features.shape[0], 1), features.dtype), features], 1)
    return features


class CATEResult(eqx.Module):
    """A fitted CATE model.

    - Linear final stage: `coef_rep`, `se_rep` `(n_basis, n_rep)` and `omega_rep`
      `(n_rep, n_basis, n_basis)` (HC0 covariances); `coef`, `se`, `summary()`.
    - Neural final stage: `predictor`, a stacked predictor with one member per repetition.
    - `dml`: the underlying [`jaxcausal.dml.DMLResult`][].

    `effect(features)` gives the effect at new rows; `effect_se(features)` (linear only) its
    standard errors and `effect_confint(features, level)` the pointwise intervals, aggregated over
    repetitions by DoubleML's rule.
    """

    dml: DMLResult
    coef_rep: Float[Array, "q n_rep"] | None
    se_rep: Float[Array, "q n_rep"] | None
    omega_rep: Float[Array, "n_rep q q"] | None
    predictor: AbstractPredictor | None
    intercept: bool = eqx.field(static=True)
    basis_names: tuple[str, ...] = eqx.field(static=True)

    @property
    def coef(self) -> Array:
        return aggregate(self.coef_rep, self.se_rep)[0]

    @property
    def se(self) -> Array:
        return aggregate(self.coef_rep, self.se_rep)[1]

    def _check_features(self, features: Any) -> Array:
        arr = as_float_array(features, "features")
        if arr.ndim == 1:
            arr = arr[:, None]
        check_ndim(arr, (2,), "features", "a matrix of shape (n_rows, n_features)")
        n_expected = len(self.basis_names) - (1 if self.intercept else 0)
        if arr.shape[1] != n_expected:
            raise ValueError(
                f"features must have {n_expected} columns (as in fit); got {arr.shape[1]}"
            )
        return check_finite(arr, "features")

    def _linear_rep(self, features: Any) -> tuple[Array, Array]:
        if self.coef_rep is None:
            raise ValueError("standard errors of the effect need the linear final stage")
        b = _basis(self._check_features(features), self.intercept)
        values = b @ self.coef_rep
        ses = jnp.sqrt(jnp.einsum("nq,rqp,np->nr", b, self.omega_rep, b))
        return values, ses

    def effect(self, features: Any) -> Float[Array, " m"]:
        """The estimated effect at rows `features` `(m, n_features)`."""
        if self.predictor is not None:
            x = self._check_features(features)
            return jnp.mean(eqx.filter_vmap(lambda p: p(x))(self.predictor), axis=0)
        return aggregate(*self._linear_rep(features))[0]

    def effect_se(self, features: Any) -> Float[Array, " m"]:
        return aggregate(*self._linear_rep(features))[1]

    def effect_confint(self, features: Any, level: float = 0.95) -> Float[Array, "m 2"]:
        """Pointwise intervals: per repetition value -+ z se, then the median over repetitions."""
        z = normal_quantile(level)
        values, ses = self._linear_rep(features)
        lower = jnp.median(values - z * ses, axis=-1)
        upper = jnp.median(values + z * ses, axis=-1)
        return jnp.stack([lower, upper], axis=-1)

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Coefficients of the best linear predictor (linear final stage)."""
        if self.coef_rep is None:
            raise ValueError("summary needs the linear final stage (final=None)")
        z = normal_quantile(level)
        coef, se = np.asarray(self.coef), np.asarray(self.se)
        lower = np.median(np.asarray(self.coef_rep - z * self.se_rep), axis=-1)
        upper = np.median(np.asarray(self.coef_rep + z * self.se_rep), axis=-1)
        alpha = 1.0 - level
        return pd.DataFrame(
            {"coef": coef, "std err": se, "t": coef / se,
             f"{100 * alpha / 2:.1f} %": lower, f"{100 * (1 - alpha / 2):.1f} %": upper},
            index=list(self.basis_names),
        )


class CATE(eqx.Module):
    r"""Conditional average treatment effects $\tau(x)$ on top of a PLR or IRM (ATE score).

    **Arguments:**

    - `model`: a [`jaxcausal.dml.PLR`][] or [`jaxcausal.dml.IRM`][] with the `ATE()` score, for
      one treatment.
    - `final`: `None` for the linear final stage (best linear predictor with robust standard
      errors), or a learner (e.g. `jc.learners.MLP()`) for a nonparametric final stage.
    - `intercept`: add a constant to the linear basis.

    `fit(data, *, key, features=None, folds=None)` cross-fits the DML model and fits the final
    stage on `features` (default: the covariates `data.x`), returning a
    [`jaxcausal.dml.CATEResult`][].

    ```python
    cate = jc.dml.CATE(jc.dml.PLR(jc.learners.MLP(), jc.learners.MLP())).fit(data, key=key)
    cate.summary(); cate.effect(x_new)
    ```
    """

    model: PLR | IRM
    final: AbstractLearner | None = None
    intercept: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if not isinstance(self.model, (PLR, IRM)):
            raise TypeError(f"model must be jc.dml.PLR or jc.dml.IRM; got {self.model!r}")
        if isinstance(self.model, IRM) and not isinstance(self.model.score, ATE):
            raise ValueError("CATE with IRM needs the ATE() score")
        if self.final is not None and not isinstance(self.final, AbstractLearner):
            raise TypeError(f"final must be a learner or None; got {self.final!r}")

    def fit(
        self,
        data: CausalData,
        *,
        key: PRNGKeyArray,
        features: Any = None,
        folds: Any = None,
    ) -> CATEResult:
        if data.n_treatments != 1:
            raise ValueError(f"CATE needs one treatment; data has {data.n_treatments}")
        if features is None:
            features, names = data.x, data.x_names
        else:
            features = as_float_array(features, "features")
            if features.ndim == 1:
                features = features[:, None]
            check_ndim(features, (2,), "features", "a matrix of shape (n_obs, n_features)")
            if features.shape[0] != data.n_obs:
                raise ValueError(
                    f"features has {features.shape[0]} rows but data has {data.n_obs}"
                )
            names = tuple(f"f{i}" for i in range(features.shape[1]))
        k_dml, k_final = jr.split(key)
        res = self.model.fit(data, key=k_dml, folds=folds)
        y_sig, d_sig = _signal(self.model, res, data)
        basis_names = (("const",) if self.intercept else ()) + tuple(names)
        if self.final is None:
            b = _basis(features, self.intercept)
            coef, omega = jax.vmap(lambda y, d: _ols_hc0(y, b * d[:, None]))(y_sig, d_sig)
            se = jnp.sqrt(jnp.diagonal(omega, axis1=1, axis2=2))
            return CATEResult(dml=res, coef_rep=coef.T, se_rep=se.T, omega_rep=omega,
                              predictor=None, intercept=self.intercept, basis_names=basis_names)
        # R-learner: tau minimises sum d~^2 (y~/d~ - tau)^2; rows with d~ = 0 carry no weight.
        safe = jnp.where(d_sig == 0, 1.0, d_sig)
        pseudo, weights = y_sig / safe, jnp.where(d_sig == 0, 0.0, d_sig**2)
        keys = jr.split(k_final, pseudo.shape[0])
        predictor = eqx.filter_vmap(
            lambda y, w, k: self.final.fit(features, y, key=k, weights=w)
        )(pseudo, weights, keys)
        return CATEResult(dml=res, coef_rep=None, se_rep=None, omega_rep=None,
                          predictor=predictor, intercept=False, basis_names=tuple(names))
