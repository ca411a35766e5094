"""L2-penalised logistic regression for binary targets, solved by safeguarded Newton steps."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit
from ._base import (
    RCOND_ULPS,
    AbstractLearner,
    AbstractPredictor,
    _weighted_mean,
    full_precision,
    prepare_xyw,
    psd_inverse,
    resolved,
    sequential_under_vmap,
    standardise,
    warn_if_unresolved,
)

# Sufficient decrease of the Armijo rule, and how often a step may be halved.
_ARMIJO = 1e-4
_MAX_HALVINGS = 30



@sequential_under_vmap
def _cholesky_solve(a: Array, b: Array) -> Array:
    """`a^{-1} b` for the symmetric positive definite `a`, by Cholesky (one matrix per LAPACK
    call under `vmap`: see `sequential_under_vmap`)."""
    return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a, lower=True), b)


class LogisticPredictor(AbstractPredictor):
    """`sigmoid(x @ coef + intercept)`: the probability of class 1.

    - `coef`, `intercept`: the coefficients on the raw columns (comparable with scikit-learn's).
    - `n_iter`: Newton steps taken; `converged`: whether the Newton decrement met the tolerance
      (or no step could decrease the loss any more, at a decrement within rounding) before
      `max_iter`.
    - `cond`, `resolved`: the condition number of the standardised covariates' (penalised)
      correlation matrix and whether the working precision resolves it (see
      [`jaxcausal.learners.Linear`][]).
    """

    coef: Float[Array, " p"]
    intercept: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]
    cond: Float[Array, ""]
    resolved: Bool[Array, ""]

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        if x.ndim == 1:
            x = x[:, None]
        return jax.nn.sigmoid(jnp.dot(x, self.coef, precision="highest") + self.intercept)


class _State(eqx.Module):
    beta: Array
    eta: Array
    value: Array
    decrement: Array
    n_iter: Array
    done: Array
    accepted: Array


@filter_jit
@full_precision
def _fit_logistic(x, y, w, l2, tol, max_iter):
    st = standardise(x, w)
    n, p = x.shape
    dtype = x.dtype
    eps = float(jnp.finfo(dtype).eps)
    sw = w / st.total
    z = st.design(jnp.ones((n,), dtype))
    z1 = jnp.concatenate([jnp.ones((n, 1), dtype), z], axis=1)
    # The penalty l2/2 |coef|^2 on the raw slopes, in standardised coordinates (coef_j =
    # beta_j / scale_j) and per unit weight (the loss is a weighted mean).
    pen = jnp.concatenate([jnp.zeros((1,), dtype), l2 / (st.total * st.scale**2)])
    eye = jnp.eye(p + 1, dtype=dtype)
    shift = RCOND_ULPS * (p + 1) * eps
    # Below machine precision the decrement is rounding noise: float32 fits stop there.
    tol = max(tol, eps)

    def objective(eta, beta):
        # softplus(eta) - y * eta is the log-loss of a logit, stable for large |eta|.
        return jnp.sum(sw * (jax.nn.softplus(eta) - y * eta)) + 0.5 * jnp.sum(pen * beta**2)

    def body(state: _State) -> _State:
        beta, eta = state.beta, state.eta
        prob = jax.nn.sigmoid(eta)
        grad = z1.T @ (sw * (prob - y)) + pen * beta
        hess = (z1 * (sw * prob * (1.0 - prob))[:, None]).T @ z1 + jnp.diag(pen)
        # The Newton system in Jacobi-scaled form (unit diagonal: the penalty of a small-scale
        # column can be large), by Cholesky, with a Levenberg shift at the rounding level of the
        # eigenvalue cutoff: it keeps the factorisation defined for constant or collinear
        # columns and saturated probabilities, and changes the path, not the optimum.
        diag = jnp.diagonal(hess) + eps * 1e-3
        s = jax.lax.rsqrt(diag)
        scaled = s[:, None] * hess * s[None, :] + shift * eye
        direction = -s * _cholesky_solve(scaled, s * grad)
        slope = grad @ direction
        eta_dir = z1 @ direction

        # The full Newton step first; it is halved only while the Armijo rule fails, so a step
        # costs one pass over the rows (under `vmap`, as many as the slowest member needs). The
        # rule allows the rounding error of the loss, or near the optimum (where the predicted
        # decrease is below it) the full step would be cut for noise.
        noise = 10.0 * eps * jnp.abs(state.value)

        def sufficient(t, value):
            return jnp.isfinite(value) & (value <= state.value + _ARMIJO * t * slope + noise)

        def trial(t):
            return objective(eta + t * eta_dir, beta + t * direction)

        def failing(carry):
            t, value, k = carry
            return ~sufficient(t, value) & (k < _MAX_HALVINGS)

        def halve(carry):
            t, _, k = carry
            return 0.5 * t, trial(0.5 * t), k + 1

        one = jnp.ones((), dtype)
        t, value, _ = jax.lax.while_loop(failing, halve, (one, trial(one), jnp.array(0)))
        accepted = sufficient(t, value)
        # Newton decrement: -slope/2 approximates the distance to the optimum in objective value.
        decrement = -slope
        return _State(
            beta=jnp.where(accepted, beta + t * direction, beta),
            eta=jnp.where(accepted, eta + t * eta_dir, eta),
            value=jnp.where(accepted, value, state.value),
            decrement=decrement,
            n_iter=state.n_iter + 1,
            done=(decrement <= 2.0 * tol) | ~accepted,
            accepted=accepted,
        )

    def cond(state: _State) -> Array:
        return ~state.done & (state.n_iter < max_iter)

    # Start from the intercept-only fit: for a rare class this saves the first Newton steps.
    share = jnp.clip(_weighted_mean(y, w, st.total), eps, 1.0 - eps)
    beta0 = jnp.zeros((p + 1,), dtype).at[0].set(jnp.log(share) - jnp.log1p(-share))
    eta0 = jnp.full((n,), beta0[0], dtype)
    init = _State(
        beta=beta0,
        eta=eta0,
        value=objective(eta0, beta0),
        decrement=jnp.asarray(jnp.inf, dtype),
        n_iter=jnp.array(0),
        done=jnp.array(False),
        accepted=jnp.array(True),
    )
    final = jax.lax.while_loop(cond, body, init)
    converged = (final.decrement <= 2.0 * tol) | (
        ~final.accepted & (final.decrement <= jnp.sqrt(eps))
    )
    # Collinearity of the covariates (not the curvature, which vanishes under separation).
    a = z * jnp.sqrt(sw)[:, None]
    gram = a.T @ a + jnp.diag(pen[1:])
    cond_number = psd_inverse(gram).cond
    coef = jnp.where(st.constant, 0.0, final.beta[1:] / st.scale)
    return LogisticPredictor(
        coef=coef,
        intercept=final.beta[0] - st.mean @ coef,
        n_iter=final.n_iter,
        converged=converged,
        cond=cond_number,
        resolved=resolved(cond_number),
    )


class Logistic(AbstractLearner):
    r"""Logistic regression for a binary target, with an optional L2 penalty.

    Minimises
    $\sum_i w_i \bigl[\log(1 + e^{\eta_i}) - y_i \eta_i\bigr]
    + \tfrac{\text{l2}}{2}\lVert\beta\rVert_2^2$
    with $\eta_i = \beta_0 + x_i^\top\beta$ and the intercept $\beta_0$ unpenalised. This is
    scikit-learn's `LogisticRegression(C=1/l2)` with `sample_weight=w` (`C=np.inf`, formerly
    `penalty=None`, when `l2=0`).

    It is solved by Newton's method (iteratively reweighted least squares) on the covariates
    standardised inside the fit (weighted by `w`, so by the fold mask in cross-fitting), which
    makes the number of steps and the accuracy independent of the columns' units; the penalty on
    the raw slopes becomes $\text{l2}/s_j^2$ per standardised coordinate, so the optimum is the
    same. Each step takes the full Newton step unless it fails the Armijo rule, then halves it:
    one pass over the rows per step in the usual case. It starts from the intercept-only fit and
    stops when the Newton decrement falls below `tol` (per unit weight), typically after 5 to 10
    steps. Columns constant on the weighted rows get the coefficient 0. The fitted predictor
    records `n_iter`, `converged`, and the condition number `cond` of the standardised covariates
    with `resolved` (as for [`jaxcausal.learners.Linear`][]); an eager `fit` warns
    (`UserWarning`) when it did not converge or is not resolved at its precision.

    With `l2=0` and perfectly separable data there is no finite optimum: the coefficients grow
    with every step until the probabilities saturate. The fit then stops when the loss is zero to
    machine precision (or after `max_iter` steps) with large but finite coefficients and
    probabilities of 0 and 1; use `l2 > 0` for such data.

    **Arguments:**

    - `l2`: non-negative ridge penalty on the slopes; an array field (sweepable with `vmap`).
    - `tol`: tolerance on the Newton decrement per unit weight.
    - `max_iter`: Newton steps at most.

    **Returns** (from `fit`): a [`jaxcausal.learners.LogisticPredictor`][] giving probabilities.

    ```python
    pred = jc.learners.Logistic(l2=1.0).fit(x, d, key=jr.key(0))
    propensity = pred(x)
    ```
    """

    l2: Float[Array, ""] = eqx.field(default=0.0, converter=jnp.asarray)
    tol: float = eqx.field(static=True, default=1e-12)
    max_iter: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        if is_concrete(self.l2) and float(self.l2) < 0:
            raise ValueError(f"l2 must be non-negative, got {float(self.l2)}")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, got {self.tol}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter}")

    @property
    def is_classifier(self) -> bool:
        return True

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
    ) -> LogisticPredictor:
        """Fits the model; `key` is accepted for the common contract and not used."""
        del key
        x, y, w = prepare_xyw(x, y, weights, binary=True, who="Logistic")
        pred = _fit_logistic(x, y, w, jnp.asarray(self.l2, x.dtype), self.tol, self.max_iter)
        warn_if_unresolved(pred, "Logistic", x, w)
        return pred
