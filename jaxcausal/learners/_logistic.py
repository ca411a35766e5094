"""L2-penalised logistic regression for binary targets, solved by damped Newton steps."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import is_concrete
from ._base import AbstractLearner, AbstractPredictor, prepare_xyw

# Step sizes tried by the backtracking line search, all at once (branch-free under `vmap`).
_N_STEPS = 40
_ARMIJO = 1e-4


class LogisticPredictor(AbstractPredictor):
    """`sigmoid(x @ coef + intercept)`: the probability of class 1.

    `n_iter` is the number of Newton steps taken and `converged` whether the loop stopped before
    `max_iter` (tolerance met, or no step decreased the loss any more).
    """

    coef: Float[Array, " p"]
    intercept: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        if x.ndim == 1:
            x = x[:, None]
        return jax.nn.sigmoid(x @ self.coef + self.intercept)


def _objective(beta, eta, y, w, penalty):
    # softplus(eta) - y * eta is the log-loss of a logit, stable for large |eta|.
    return jnp.sum(w * (jax.nn.softplus(eta) - y * eta)) + 0.5 * jnp.sum(penalty * beta**2)


class _State(eqx.Module):
    beta: Array
    value: Array
    n_iter: Array
    done: Array


@eqx.filter_jit
def _fit_logistic(x, y, w, l2, tol, max_iter):
    n, p = x.shape
    dtype = x.dtype
    x1 = jnp.concatenate([jnp.ones((n, 1), dtype), x], axis=1)
    penalty = jnp.concatenate([jnp.zeros((1,), dtype), jnp.full((p,), l2, dtype)])
    steps = 0.5 ** jnp.arange(_N_STEPS, dtype=dtype)
    scale = jnp.sum(w)
    eye = jnp.eye(p + 1, dtype=dtype)
    # Below machine precision the decrement is rounding noise: float32 fits stop there.
    tol = max(tol, float(jnp.finfo(dtype).eps))

    def body(state: _State) -> _State:
        beta = state.beta
        eta = x1 @ beta
        prob = jax.nn.sigmoid(eta)
        grad = x1.T @ (w * (prob - y)) + penalty * beta
        hess = (x1 * (w * prob * (1.0 - prob))[:, None]).T @ x1 + jnp.diag(penalty)
        # A tiny Levenberg shift keeps the solve defined for collinear columns or saturated
        # probabilities; it changes the path, not the fixed point (the gradient's zero).
        shift = 1e-12 * (1.0 + jnp.max(jnp.abs(jnp.diag(hess))))
        direction = -jnp.linalg.solve(hess + shift * eye, grad)
        slope = grad @ direction
        candidates = beta[None, :] + steps[:, None] * direction[None, :]
        # The linear predictor is linear in the step size: one more product with x1 serves all.
        eta_dir = x1 @ direction
        values = jax.vmap(
            lambda b, t: _objective(b, eta + t * eta_dir, y, w, penalty)
        )(candidates, steps)
        ok = jnp.isfinite(values) & (values <= state.value + _ARMIJO * steps * slope)
        first = jnp.argmax(ok)
        accepted = ok[first]
        new_beta = jnp.where(accepted, candidates[first], beta)
        new_value = jnp.where(accepted, values[first], state.value)
        # Newton decrement: -slope/2 approximates the distance to the optimum in objective value.
        small = -slope <= 2.0 * tol * scale
        return _State(
            beta=new_beta,
            value=new_value,
            n_iter=state.n_iter + 1,
            done=small | ~accepted,
        )

    def cond(state: _State) -> Array:
        return ~state.done & (state.n_iter < max_iter)

    beta0 = jnp.zeros((p + 1,), dtype)
    init = _State(
        beta=beta0,
        value=_objective(beta0, x1 @ beta0, y, w, penalty),
        n_iter=jnp.array(0),
        done=jnp.array(False),
    )
    final = jax.lax.while_loop(cond, body, init)
    return LogisticPredictor(
        coef=final.beta[1:], intercept=final.beta[0], n_iter=final.n_iter, converged=final.done
    )


class Logistic(AbstractLearner):
    r"""Logistic regression for a binary target, with an optional L2 penalty.

    Minimises
    $\sum_i w_i \bigl[\log(1 + e^{\eta_i}) - y_i \eta_i\bigr]
    + \tfrac{\text{l2}}{2}\lVert\beta\rVert_2^2$
    with $\eta_i = \beta_0 + x_i^\top\beta$ and the intercept $\beta_0$ unpenalised. This is
    scikit-learn's `LogisticRegression(C=1/l2)` with `sample_weight=w` (`C=np.inf`, formerly
    `penalty=None`, when `l2=0`). It is solved by Newton's method with a backtracking (Armijo)
    line search in a `lax.while_loop`, stopping when the Newton decrement falls below
    `tol * sum(w)`.

    With `l2=0` and perfectly separable data there is no finite optimum: the coefficients grow
    with every step until the probabilities saturate. The fit then stops when the loss is zero to
    machine precision (or after `max_iter` steps) with large but finite coefficients and
    probabilities of 0 and 1; use `l2 > 0` for such data.

    **Arguments:**

    - `l2`: non-negative ridge penalty on the slopes; an array field (sweepable with `vmap`).
    - `tol`: relative tolerance on the Newton decrement.
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
        return _fit_logistic(x, y, w, jnp.asarray(self.l2, x.dtype), self.tol, self.max_iter)
