r"""Kernel ridge regression with a Gaussian kernel, by the Nyström method: a smooth nuisance
learner for small samples, compiled and vmappable.

On a few hundred rows, networks trained by gradient descent fit a smooth regression with errors
of a size that shows up as bias in a DML score, and least squares cannot bend. A kernel ridge
regression is the classical estimator there; written on `m` landmark rows (all rows when there
are at most `m`, where it is exact) its cost is linear in the number of rows, and one fit per
fold and per hyperparameter setting is one `vmap`ped program.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit
from ._base import (
    AbstractLearner,
    AbstractPredictor,
    _eigh,
    _weighted_mean,
    full_precision,
    prepare_xyw,
    standardise,
)

# Eigenvalues of the landmarks' kernel matrix below this many units in the last place of the
# largest are at the eigensolver's rounding error: their directions are dropped.
_KERNEL_RCOND_ULPS = 10.0


class KernelRidgePredictor(AbstractPredictor):
    r"""$f(x) = b + \sum_j c_j \exp(-\gamma \lVert z(x) - \ell_j \rVert^2 / p)$, with
    $z(x) = (x - \bar x) / s$ the covariates standardised by the training rows' weighted means
    and standard deviations (0 in the columns constant there) and $\ell_j$ the landmarks in
    those coordinates.

    - `landmarks` `(m, p)`, `coef` `(m,)`, `intercept` `()`: the fitted function.
    - `mean`, `scale`, `constant` `(p,)`: the standardisation.
    - `gamma`: the kernel's inverse squared length scale per feature.
    - `rank`: how many directions of the landmarks' kernel matrix were resolved and used.
    """

    landmarks: Float[Array, "m p"]
    coef: Float[Array, " m"]
    intercept: Float[Array, ""]
    mean: Float[Array, " p"]
    scale: Float[Array, " p"]
    constant: Array
    gamma: Float[Array, ""]
    rank: Array

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        if x.ndim == 1:
            x = x[:, None]
        z = _standardised(x, self.mean, self.scale, self.constant)
        k = _gaussian(z, self.landmarks, self.gamma)
        return jnp.dot(k, self.coef, precision="highest") + self.intercept


def _standardised(x, mean, scale, constant):
    z = (x - mean[None, :]) / scale[None, :]
    return jnp.where(constant[None, :], 0.0, z)


def _gaussian(a: Array, b: Array, gamma: Array) -> Array:
    """`exp(-gamma * |a_i - b_j|^2 / p)` for the rows of `a` `(n, p)` and `b` `(m, p)`."""
    p = a.shape[1]
    sq = (jnp.sum(a**2, axis=1)[:, None] + jnp.sum(b**2, axis=1)[None, :]
          - 2.0 * jnp.dot(a, b.T, precision="highest"))
    return jnp.exp(-gamma * jnp.maximum(sq, 0.0) / max(p, 1))


def _landmark_rows(w: Array, m: int, key: PRNGKeyArray) -> Array:
    """Indices of `m` rows drawn without replacement among those with positive weight (all of
    them when there are at most `m`; then rows of weight 0 fill the rest, which changes nothing:
    the minimiser lies in the span of the weighted rows)."""
    u = jr.uniform(key, w.shape, dtype=w.dtype)
    score = jnp.where(w > 0, 1.0 + u, u)
    return jax.lax.top_k(score, m)[1]


@filter_jit
@full_precision
def _fit_kernel_ridge(x, y, w, alpha, gamma, key, n_components):
    n, p = x.shape
    m = min(n, n_components)
    st = standardise(x, w)
    mean, scale, constant = st.mean, st.scale, st.constant
    z = _standardised(x, mean, scale, constant)
    rows = jnp.arange(n) if m == n else _landmark_rows(w, m, key)
    marks = z[rows]
    # Nystroem features: phi(x) = k(x, L) U_r diag(lam_r)^{-1/2}, so that phi(x) . phi(x') is the
    # kernel projected on the landmarks' span (exact on the rows when m = n), and the RKHS norm
    # of f = phi . theta is |theta|: a ridge regression on phi is the kernel ridge regression.
    k_mm = _gaussian(marks, marks, gamma)
    lam, vec = _eigh(k_mm)
    eps = jnp.finfo(x.dtype).eps
    keep = lam > _KERNEL_RCOND_ULPS * eps * jnp.max(lam)
    inv_root = jnp.where(keep, jax.lax.rsqrt(jnp.where(keep, lam, 1.0)), 0.0)
    proj = vec * inv_root[None, :]
    phi = jnp.dot(_gaussian(z, marks, gamma), proj, precision="highest")
    # Unpenalised intercept: centre the features and the target on the weighted rows.
    total = st.total
    y_mean = _weighted_mean(y, w, total)
    phi_mean = _weighted_mean(phi, w, total)
    pc = phi - phi_mean[None, :]
    wpc = w[:, None] * pc
    gram = jnp.dot(wpc.T, pc, precision="highest")
    rhs = jnp.dot(wpc.T, y - y_mean, precision="highest")
    # gram is PSD and alpha > 0: solve (gram + alpha I) theta = rhs through its eigenvectors,
    # exact in the kept directions of the kernel (the dropped ones have zero columns).
    g_lam, g_vec = _eigh(gram)
    theta = g_vec @ ((g_vec.T @ rhs) / (jnp.maximum(g_lam, 0.0) + alpha))
    theta = jnp.where(keep, theta, 0.0)
    coef = proj @ theta
    return KernelRidgePredictor(
        landmarks=marks,
        coef=coef,
        intercept=y_mean - phi_mean @ theta,
        mean=mean,
        scale=scale,
        constant=constant,
        gamma=gamma,
        rank=jnp.sum(keep),
    )


class KernelRidge(AbstractLearner):
    r"""Kernel ridge regression with a Gaussian kernel and an unpenalised intercept.

    Minimises $\sum_i w_i (y_i - b - f(x_i))^2 + \alpha \lVert f\rVert_k^2$ over $b$ and $f$ in
    the reproducing-kernel Hilbert space of
    $k(x, x') = \exp(-\gamma \lVert z - z' \rVert^2 / p)$, where $z$ are the covariates
    standardised with the weighted means and standard deviations of the training rows (so any
    units work, at any precision) and $p$ is their number: $\gamma = 1$ is scikit-learn's
    default `gamma = 1 / n_features` on standardised columns.

    **How it is solved.** With at most `n_components` rows the fit is exact: the kernel matrix of
    the rows is eigendecomposed once, directions with eigenvalues below $10\,\varepsilon$ times
    the largest (unresolvable at the working precision $\varepsilon$) are dropped, and the ridge
    regression on the resulting features has the same minimiser as the textbook
    $(K + \alpha I)^{-1}$ form (with the intercept, as in a least-squares SVM). With more rows it
    is the Nyström approximation on `n_components` landmark rows drawn from the rows with
    positive weight (from `key`; a fixed key when none is given): cost linear in the rows,
    $O(n m^2)$. Rows with weight 0 never influence the fit, so a cross-fitting fold is a 0/1
    mask over all rows. Regression only.

    **Arguments:**

    - `alpha`: the penalty (positive; scikit-learn's `alpha`, on the sum of squares).
    - `gamma`: inverse squared length scale per feature (positive), as above.
    - `n_components`: the number of landmark rows (static).

    `alpha` and `gamma` are array fields, so a grid of them fits as one vmapped program (see
    [`jaxcausal.learners.default_candidates`][]).
    """

    alpha: Float[Array, ""] = eqx.field(default=0.1, converter=jnp.asarray)
    gamma: Float[Array, ""] = eqx.field(default=1.0, converter=jnp.asarray)
    n_components: int = eqx.field(static=True, default=300)

    def __check_init__(self):
        if is_concrete(self.alpha) and not float(self.alpha) > 0:
            raise ValueError(f"alpha must be positive, got {float(self.alpha)}")
        if is_concrete(self.gamma) and not float(self.gamma) > 0:
            raise ValueError(f"gamma must be positive, got {float(self.gamma)}")
        if self.n_components < 1:
            raise ValueError(f"n_components must be at least 1, got {self.n_components}")

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
    ) -> KernelRidgePredictor:
        """Fits the regression; `key` draws the landmark rows when there are more rows than
        `n_components` (a fixed key when `None`)."""
        x, y, w = prepare_xyw(x, y, weights)
        if key is None:
            key = jr.key(0)
        dtype = x.dtype
        return _fit_kernel_ridge(x, y, w, jnp.asarray(self.alpha, dtype),
                                 jnp.asarray(self.gamma, dtype), key, self.n_components)
