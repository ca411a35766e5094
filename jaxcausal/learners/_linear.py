"""Least squares and ridge regression with an unpenalised intercept, in closed form."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit
from ._base import (
    AbstractLearner,
    AbstractPredictor,
    _weighted_mean,
    full_precision,
    prepare_xyw,
    psd_inverse,
    resolved,
    standardise,
    warn_if_unresolved,
)


class LinearPredictor(AbstractPredictor):
    r"""`x @ coef + intercept`.

    - `coef`, `intercept`: the coefficients on the raw columns (comparable with scikit-learn's).
    - `cond`: condition number of the standardised normal equations (kept directions only).
    - `rank`: how many directions were kept (the rest is exact collinearity at the precision).
    - `lost`: how significantly the dropped directions explain the residual: the largest
      $n_\text{eff}\,\text{corr}^2$ of one with the residual (about $\chi^2_1$ when they are
      rounding noise, as they are for exact collinearity; $n_\text{eff}$ the effective number
      of weighted rows).
    - `resolved`: whether the working precision resolves the fit (see [`Linear`][]).
    """

    coef: Float[Array, " p"]
    intercept: Float[Array, ""]
    cond: Float[Array, ""]
    rank: Int[Array, ""]
    lost: Float[Array, ""]
    resolved: Bool[Array, ""]

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        if x.ndim == 1:
            x = x[:, None]
        return jnp.dot(x, self.coef, precision="highest") + self.intercept


@filter_jit
@full_precision
def _fit_linear(x, y, w, ridge):
    st = standardise(x, w)
    y_mean = _weighted_mean(y, w, st.total)
    yc = y - y_mean
    root = jnp.sqrt(w / st.total)
    a = st.design(root)  # the standardised design, rows scaled by sqrt(w / sum(w))
    ya = root * yc
    # In standardised coordinates beta_j = coef_j * scale_j, so the ridge penalty on the raw
    # coefficients becomes ridge / scale_j^2 per coordinate (divided by sum(w) like the Gram).
    pen = ridge / (st.total * st.scale**2)
    gram = a.T @ a + jnp.diag(pen)
    inverse = psd_inverse(gram)
    # One step of iterative refinement: the residual is computed from the data, which recovers
    # the accuracy that forming the normal equations loses (their condition number is the
    # square of the design's).
    beta = inverse(a.T @ ya)
    resid = ya - root * st.apply(beta)
    beta = beta + inverse(a.T @ resid - pen * beta)
    # Did a dropped direction (exact collinearity at this precision) carry signal? Its
    # correlation with the residual is rounding noise when it does not (n_eff * corr^2 is then
    # chi-squared with one degree of freedom), and large when it does.
    resid = ya - root * st.apply(beta)
    av = a @ inverse.vectors
    num = av.T @ resid
    den = jnp.sum(av**2, axis=0) * jnp.sum(resid**2)
    corr2 = jnp.where(inverse.dropped & (den > 0), num**2 / jnp.where(den > 0, den, 1.0), 0.0)
    n_eff = st.total**2 / jnp.sum(w**2)
    lost = n_eff * jnp.max(corr2)
    coef = jnp.where(st.constant, 0.0, beta / st.scale)
    return LinearPredictor(
        coef=coef,
        intercept=y_mean - st.mean @ coef,
        cond=inverse.cond,
        rank=inverse.rank,
        lost=lost,
        resolved=resolved(inverse.cond, lost),
    )


class Linear(AbstractLearner):
    r"""Weighted least squares with an intercept and an optional ridge penalty.

    Minimises $\sum_i w_i (y_i - x_i^\top\beta - \beta_0)^2 + \text{ridge}\,\lVert\beta\rVert_2^2$,
    the intercept unpenalised: with `ridge > 0` this is scikit-learn's `Ridge(alpha=ridge)` with
    `sample_weight=w`, with `ridge = 0` its `LinearRegression`.

    **How it is solved, at any precision and any units.** The covariates are standardised inside
    the fit with the weighted means and standard deviations of the training rows (two passes, so a
    column's offset costs no precision), the normal equations are formed on the standardised
    columns (a correlation matrix, plus the penalty $\text{ridge}/(s_j^2 \sum_i w_i)$ per
    coordinate), and solved through a symmetric eigendecomposition with one step of iterative
    refinement from the data. Coefficients map back as $\beta_j / s_j$. Then:

    - a column that is constant on the training rows (to 10 units in the last place of its
      magnitude) gets the coefficient 0;
    - eigenvalues below $10\,p\,\varepsilon$ times the largest (after scaling to a unit diagonal)
      are exact collinearity at the working precision $\varepsilon$: their directions are dropped,
      which gives the minimum-norm solution *in standardised coordinates*. The predictions equal
      `LinearRegression`'s; so do the coefficients when the collinear columns have equal spreads
      (duplicated columns), and otherwise they are split in proportion to the spreads;
    - the fit records `cond` (condition number of the kept directions) and `resolved`, which is
      false when `cond * eps > 1e-2` (rounding the data to the working precision could move the
      coefficients by more than about 1 %; float32 resolves a condition number up to 8e4,
      float64 up to 4.5e13), or when a dropped direction explains the residual significantly
      ($n_\text{eff}\,\text{corr}^2 > 40$ for its correlation with the residual: the target
      depends on a difference of columns that the working precision cannot resolve). An eager
      `fit` then warns (`UserWarning`, naming the nearly collinear columns); inside a DML fit the
      model reports it after the compiled fit.

    **Arguments:**

    - `ridge`: non-negative penalty; an array field, so it can be swept with `vmap`.
    """

    ridge: Float[Array, ""] = eqx.field(default=0.0, converter=jnp.asarray)

    def __check_init__(self):
        if is_concrete(self.ridge) and float(self.ridge) < 0:
            raise ValueError(f"ridge must be non-negative, got {float(self.ridge)}")

    @property
    def compiles_light(self) -> bool:
        return True

    def fit(
        self,
        x: Float[Array, "n p"],
        y: Float[Array, " n"],
        *,
        key: PRNGKeyArray | None = None,
        weights: Float[Array, " n"] | None = None,
    ) -> LinearPredictor:
        """Fits the regression; `key` is accepted for the common contract and not used."""
        del key
        x, y, w = prepare_xyw(x, y, weights)
        pred = _fit_linear(x, y, w, jnp.asarray(self.ridge, x.dtype))
        warn_if_unresolved(pred, "Linear", x, w)
        return pred
