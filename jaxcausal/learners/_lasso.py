"""Lasso regression by coordinate descent, and its cross-validated variant."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit
from ._base import (
    AbstractLearner,
    AbstractPredictor,
    _weighted_mean,
    full_precision,
    prepare_xyw,
    standardise,
    warn_if_unresolved,
)


class _AbstractLinearPredictor(AbstractPredictor):
    coef: eqx.AbstractVar[Float[Array, " p"]]
    intercept: eqx.AbstractVar[Float[Array, ""]]

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        if x.ndim == 1:
            x = x[:, None]
        return jnp.dot(x, self.coef, precision="highest") + self.intercept


class LassoPredictor(_AbstractLinearPredictor):
    """`x @ coef + intercept`, with the penalty `alpha` it was fitted with.

    `n_iter` counts coordinate-descent sweeps; `converged` says whether the duality gap met the
    tolerance (or the sweeps reached the fixed point of the working precision) before `max_iter`.
    """

    coef: Float[Array, " p"]
    intercept: Float[Array, ""]
    alpha: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]


class LassoCVPredictor(_AbstractLinearPredictor):
    """The Lasso refitted on all weighted rows with the penalty chosen by cross-validation.

    - `alpha`: the chosen penalty (the grid value with the smallest mean validation MSE).
    - `alphas`: the grid, in decreasing order.
    - `mse_path`: `(n_folds, n_alphas)` weighted validation MSE of every fit.
    - `n_iter`, `converged`: of the final refit.
    """

    coef: Float[Array, " p"]
    intercept: Float[Array, ""]
    alpha: Float[Array, ""]
    alphas: Float[Array, " n_alphas"]
    mse_path: Float[Array, "n_folds n_alphas"]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]


class _Moments(eqx.Module):
    """A weighted least-squares problem in standardised coordinates (covariates and target), its
    cross-products divided by sum(w): `gram` is a correlation matrix (0 for constant columns)."""

    x_mean: Array
    x_scale: Array
    y_mean: Array
    y_scale: Array
    gram: Array
    xy: Array
    yy: Array


def _moments(x, y, w) -> _Moments:
    st = standardise(x, w)
    root = jnp.sqrt(w / st.total)
    y_mean = _weighted_mean(y, w, st.total)
    ya = root * (y - y_mean)
    y_sd = jnp.sqrt(jnp.sum(ya**2))
    y_scale = jnp.where(y_sd > 0, y_sd, 1.0)
    yt = ya / y_scale
    a = st.design(root)
    return _Moments(st.mean, st.scale, y_mean, y_scale, a.T @ a, a.T @ yt, jnp.sum(yt**2))


def _penalties(m: _Moments, alpha):
    """scikit-learn's penalty `alpha * |coef_j|` on the raw columns, in standardised units: with
    `beta_j = coef_j * x_scale_j / y_scale` it is `alpha / (x_scale_j * y_scale)` per coordinate
    (the objective divided by `y_scale**2`)."""
    return alpha / (m.x_scale * m.y_scale)


def _raw(m: _Moments, beta):
    """Coefficients and intercept on the raw columns from standardised coefficients."""
    coef = beta * m.y_scale / m.x_scale
    return coef, m.y_mean - m.x_mean @ coef


class _CDState(eqx.Module):
    coef: Array
    gram_coef: Array
    n_iter: Array
    done: Array


def _coordinate_descent(m: _Moments, alpha, tol, max_iter):
    """Cyclic coordinate descent on the standardised Gram matrix with the per-coordinate
    penalties of [`_penalties`][]; stops on the duality gap. Returns standardised coefficients."""
    pen = _penalties(m, alpha)
    p = m.xy.shape[0]
    diag = jnp.diagonal(m.gram)
    # Columns without variance (or fully masked) keep a zero coefficient.
    safe_diag = jnp.where(diag > 0, diag, 1.0)
    eps = float(jnp.finfo(m.gram.dtype).eps)
    tol = max(tol, 10 * eps)

    index = jnp.arange(p)

    def coordinate(carry, inputs):
        # One coordinate update; the Gram row arrives through `scan`, and the coefficient is read
        # and written with masks rather than dynamic indexing (cheaper to compile under `vmap`).
        coef, gram_coef, biggest = carry
        j, gram_row, xy_j, diag_j, safe_diag_j, pen_j = inputs
        here = index == j
        coef_j = jnp.sum(jnp.where(here, coef, 0.0))
        rho = xy_j - jnp.sum(jnp.where(here, gram_coef, 0.0)) + diag_j * coef_j
        shrunk = jnp.sign(rho) * jnp.maximum(jnp.abs(rho) - pen_j, 0.0) / safe_diag_j
        new = jnp.where(diag_j > 0, shrunk, 0.0)
        delta = new - coef_j
        carry = (
            jnp.where(here, new, coef),
            gram_coef + gram_row * delta,
            jnp.maximum(biggest, jnp.abs(delta)),
        )
        return carry, None

    def gap(coef, gram_coef):
        # Duality gap of the Lasso, written with the Gram matrix: `rr` is the weighted mean squared
        # residual and `ry` the residual's inner product with the centred target.
        rr = m.yy - 2.0 * (m.xy @ coef) + coef @ gram_coef
        ry = m.yy - m.xy @ coef
        # The residual, scaled into the dual feasible set |x_j' r| <= pen_j (weighted L1).
        ratio = jnp.max(jnp.abs(m.xy - gram_coef) / jnp.where(pen > 0, pen, 1.0))
        const = jnp.where(ratio > 1.0, 1.0 / jnp.where(ratio > 0, ratio, 1.0), 1.0)
        return 0.5 * rr * (1.0 + const**2) + jnp.sum(pen * jnp.abs(coef)) - const * ry

    def stationarity(coef, gram_coef):
        # Largest violation of the optimality conditions, in correlation units. Used for alpha=0,
        # where the duality gap above does not vanish (no dual point of the form `const * r`).
        grad = gram_coef - m.xy
        violation = jnp.where(
            coef != 0,
            jnp.abs(grad + pen * jnp.sign(coef)),
            jnp.maximum(jnp.abs(grad) - pen, 0.0),
        )
        scale = jnp.sqrt(jnp.where(diag > 0, diag, 1.0) * jnp.where(m.yy > 0, m.yy, 1.0))
        return jnp.max(jnp.where(diag > 0, violation / scale, 0.0))

    def converged(coef, gram_coef):
        return jnp.where(
            alpha > 0,
            gap(coef, gram_coef) <= tol * m.yy,
            stationarity(coef, gram_coef) <= tol,
        )

    def body(state: _CDState) -> _CDState:
        zero = jnp.zeros((), m.gram.dtype)
        (coef, gram_coef, biggest), _ = jax.lax.scan(
            coordinate,
            (state.coef, state.gram_coef, zero),
            (index, m.gram, m.xy, diag, safe_diag, pen),
        )
        # Recomputed once per sweep: the running update would accumulate rounding errors over
        # thousands of sweeps (in float32 enough to keep the duality gap from closing).
        gram_coef = m.gram @ coef
        # A sweep that moves no coefficient by more than a few units in the last place has
        # reached the fixed point of the working precision.
        stalled = biggest <= 4.0 * eps * jnp.max(jnp.abs(coef))
        done = converged(coef, gram_coef) | stalled
        return _CDState(coef, gram_coef, state.n_iter + 1, done)

    def cond(state: _CDState):
        return ~state.done & (state.n_iter < max_iter)

    zeros = jnp.zeros((p,), m.gram.dtype)
    init = _CDState(zeros, zeros, jnp.array(0), converged(zeros, zeros))
    final = jax.lax.while_loop(cond, body, init)
    return final.coef, final.n_iter, final.done


@filter_jit
@full_precision
def _fit_lasso(x, y, w, alpha, tol, max_iter):
    m = _moments(x, y, w)
    beta, n_iter, done = _coordinate_descent(m, alpha, tol, max_iter)
    coef, intercept = _raw(m, beta)
    return LassoPredictor(coef, intercept, alpha, n_iter, done)


def _check_alpha(alpha, name):
    if is_concrete(alpha) and np.any(np.asarray(alpha) < 0):
        raise ValueError(f"{name} must be non-negative, got {np.asarray(alpha).min():g}")


def _check_solver(tol, max_iter):
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")


class Lasso(AbstractLearner):
    r"""Least squares with an L1 penalty on the slopes (the intercept is unpenalised).

    Minimises
    $\frac{1}{2\sum_i w_i}\sum_i w_i (y_i - x_i^\top\beta - \beta_0)^2 + \alpha\lVert\beta\rVert_1$,
    scikit-learn's `Lasso(alpha)` objective with `sample_weight=w`, by cyclic coordinate descent
    on the weighted Gram matrix in a `lax.while_loop`, until the duality gap is below
    `tol` (at least 10 machine epsilons) times the weighted variance of `y`, or a sweep moves no
    coefficient by more than a few units in the last place (the fixed point of the working
    precision), or after `max_iter` sweeps. With `alpha=0` (least squares,
    where the gap does not vanish) it stops when the optimality conditions hold to `tol` in
    correlation units instead.

    The descent runs on standardised covariates and target (weighted by `w`, so by the fold mask
    in cross-fitting), which makes its accuracy independent of the columns' units. As the
    penalty is not scale-free, it is carried over exactly: with $\beta_j = \text{coef}_j
    s_j / s_y$ the penalty $\alpha\lvert\text{coef}_j\rvert$ becomes the weighted L1 term
    $\alpha/(s_j s_y)\,\lvert\beta_j\rvert$, so the problem solved is scikit-learn's on the
    raw columns. Columns constant on the weighted rows get the coefficient 0. An eager `fit`
    warns (`UserWarning`) when the descent stops at `max_iter`.

    **Arguments:**

    - `alpha`: non-negative penalty; an array field (sweepable with `vmap`).
    - `tol`: relative duality-gap tolerance.
    - `max_iter`: coordinate-descent sweeps at most.

    **Returns** (from `fit`): a [`jaxcausal.learners.LassoPredictor`][].
    """

    alpha: Float[Array, ""] = eqx.field(default=1.0, converter=jnp.asarray)
    tol: float = eqx.field(static=True, default=1e-10)
    max_iter: int = eqx.field(static=True, default=10_000)

    def __check_init__(self):
        _check_alpha(self.alpha, "alpha")
        _check_solver(self.tol, self.max_iter)

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
    ) -> LassoPredictor:
        """Fits the model; `key` is accepted for the common contract and not used."""
        del key
        x, y, w = prepare_xyw(x, y, weights)
        pred = _fit_lasso(x, y, w, jnp.asarray(self.alpha, x.dtype), self.tol, self.max_iter)
        warn_if_unresolved(pred, "Lasso", x, w)
        return pred


@filter_jit
def _draw_folds(key: PRNGKeyArray, weights: Float[Array, " n"], n_folds: int) -> Int[Array, " n"]:
    """Fold ids `0..n_folds-1` for the rows with positive weight (balanced), `-1` for the others."""
    n = weights.shape[0]
    u = jnp.where(weights > 0, jr.uniform(key, (n,)), jnp.inf)
    rank = jnp.zeros((n,), int).at[jnp.argsort(u)].set(jnp.arange(n))
    return jnp.where(weights > 0, rank % n_folds, -1)


def _alpha_grid(x, y, w, n_alphas: int, eps: float):
    """scikit-learn's default Lasso grid: `n_alphas` log-spaced values from `alpha_max` down to
    `eps * alpha_max`, where `alpha_max = max_j |x_j' W (y - ȳ)| / sum(w)` (centred `x`) is the
    smallest penalty giving all-zero slopes."""
    m = _moments(x, y, w)
    tiny = jnp.finfo(x.dtype).resolution
    alpha_max = jnp.maximum(jnp.max(jnp.abs(m.xy) * m.x_scale * m.y_scale), tiny)
    return alpha_max * jnp.logspace(0.0, np.log10(eps), n_alphas, dtype=x.dtype)


@filter_jit
@full_precision
def _fit_lasso_cv(learner: LassoCV, x, y, w, key):
    n_folds, tol, max_iter = learner.n_folds, learner.tol, learner.max_iter
    # Checked eagerly in `fit` for concrete weights; this covers weights traced under `vmap`.
    w = eqx.error_if(
        w, jnp.sum(w > 0) < n_folds, "LassoCV needs at least n_folds rows with positive weight"
    )
    if learner.alphas is None:
        alphas = _alpha_grid(x, y, w, learner.n_alphas, learner.eps)
    else:
        alphas = -jnp.sort(-learner.alphas.astype(x.dtype))
    folds = _draw_folds(key, w, n_folds)
    in_fold = folds[None, :] == jnp.arange(n_folds)[:, None]
    train_w = jnp.where(in_fold, 0.0, w[None, :])
    val_w = jnp.where(in_fold, w[None, :], 0.0)

    def val_mse(m, vw, alpha):
        beta, _, _ = _coordinate_descent(m, alpha, tol, max_iter)
        coef, intercept = _raw(m, beta)
        resid = y - x @ coef - intercept
        return jnp.sum(vw * resid**2) / jnp.sum(vw)

    over_alphas = jax.vmap(val_mse, in_axes=(None, None, 0))
    mse_path = jax.vmap(lambda tw, vw: over_alphas(_moments(x, y, tw), vw, alphas))(
        train_w, val_w
    )
    alpha = alphas[jnp.argmin(jnp.mean(mse_path, axis=0))]
    m = _moments(x, y, w)
    beta, n_iter, done = _coordinate_descent(m, alpha, tol, max_iter)
    coef, intercept = _raw(m, beta)
    return LassoCVPredictor(coef, intercept, alpha, alphas, mse_path, n_iter, done)


def _as_alphas(alphas):
    return None if alphas is None else jnp.asarray(alphas)


class LassoCV(AbstractLearner):
    r"""The [`jaxcausal.learners.Lasso`][] with its penalty chosen by K-fold cross-validation.

    The folds are drawn from the key among the rows with positive weight (balanced sizes). Every
    (fold, alpha) pair is fitted in one vmapped call; the penalty with the smallest mean (over
    folds) of the weighted validation MSE is chosen, as scikit-learn's `LassoCV` does, and the
    Lasso is refitted with it on all weighted rows.

    **Arguments:**

    - `alphas`: the grid of penalties (sorted decreasingly), or `None` for scikit-learn's default
      grid: `n_alphas` values log-spaced from `alpha_max` (the smallest penalty with all-zero
      slopes on the weighted data) down to `eps * alpha_max`.
    - `n_alphas`, `eps`: size and depth of the default grid.
    - `n_folds`: number of folds, at least 2.
    - `tol`, `max_iter`: as for [`jaxcausal.learners.Lasso`][].

    **Returns** (from `fit`): a [`jaxcausal.learners.LassoCVPredictor`][] recording the chosen
    `alpha`, the grid and the validation MSE of every fit.
    """

    alphas: Float[Array, " n_alphas"] | None = eqx.field(default=None, converter=_as_alphas)
    n_alphas: int = eqx.field(static=True, default=100)
    eps: float = eqx.field(static=True, default=1e-3)
    n_folds: int = eqx.field(static=True, default=5)
    tol: float = eqx.field(static=True, default=1e-10)
    max_iter: int = eqx.field(static=True, default=10_000)

    def __check_init__(self):
        if self.alphas is not None:
            if self.alphas.ndim != 1 or self.alphas.shape[0] < 1:
                raise ValueError(
                    f"alphas must be a non-empty vector; got shape {tuple(self.alphas.shape)}"
                )
            _check_alpha(self.alphas, "alphas")
        if self.n_alphas < 1:
            raise ValueError(f"n_alphas must be at least 1, got {self.n_alphas}")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        _check_solver(self.tol, self.max_iter)

    def folds(self, weights: Float[Array, " n"], *, key: PRNGKeyArray) -> Int[Array, " n"]:
        """The fold id of each row used by `fit(..., key=key, weights=weights)` (-1: weight 0)."""
        return _draw_folds(key, jnp.asarray(weights), self.n_folds)

    @property
    def compiles_light(self) -> bool:
        return True

    def fit(
        self,
        x: Float[Array, "n p"],
        y: Float[Array, " n"],
        *,
        key: PRNGKeyArray,
        weights: Float[Array, " n"] | None = None,
    ) -> LassoCVPredictor:
        """Cross-validates the grid on folds drawn from `key`, then refits on all weighted rows."""
        x, y, w = prepare_xyw(x, y, weights)
        if is_concrete(w) and int(np.sum(np.asarray(w) > 0)) < self.n_folds:
            raise ValueError(
                f"LassoCV needs at least n_folds={self.n_folds} rows with positive weight; "
                f"got {int(np.sum(np.asarray(w) > 0))}"
            )
        pred = _fit_lasso_cv(self, x, y, w, key)
        warn_if_unresolved(pred, "LassoCV", x, w)
        return pred
