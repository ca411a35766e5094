"""Building blocks of the quantile models: batched learner fits, propensity adjustments, sample
quantiles with masks, and the preliminary and final solves of weighted step scores."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ..learners import AbstractLearner
from ._nonlinear import bracket_guess, brent_root


def fit_batch(
    learner: AbstractLearner,
    x: Float[Array, "n p"],
    targets: Float[Array, "b n"],
    weights: Float[Array, "b n"],
    key: PRNGKeyArray,
) -> Float[Array, "b n"]:
    """Fits `learner` once per row of `targets`/`weights` (one `filter_vmap`) and predicts
    every row of `x` with each fit."""
    keys = jr.split(key, targets.shape[0])

    def one(t, w, k):
        return learner.fit(x, t, key=k, weights=w)(x)

    return eqx.filter_vmap(one)(targets, weights, keys)


def normalize_ipw(m: Array, d: Array, rows: Array) -> Array:
    """DoubleML's normalised propensities (Hajek weights), with the means over `rows`."""
    count = jnp.sum(rows, axis=-1, keepdims=True)
    mean1 = jnp.sum(rows * d / m, axis=-1, keepdims=True) / count
    mean0 = jnp.sum(rows * (1.0 - d) / (1.0 - m), axis=-1, keepdims=True) / count
    return d * (m * mean1) + (1.0 - d) * (1.0 - (1.0 - m) * mean0)


def adjust_propensity(m, d, rows, level, clip: float, normalize: bool) -> Array:
    """Clipping to `[clip, 1 - clip]`, optional normalisation over `rows`, and `1 - m` for the
    untreated level: the propensity of `d == level` used in the weights."""
    m = jnp.clip(m, clip, 1.0 - clip)
    if normalize:
        m = normalize_ipw(m, d, rows)
    return jnp.where(level == 0, 1.0 - m, m)


def masked_quantile(y: Float[Array, " n"], rows: Bool[Array, " n"], q: Array) -> Array:
    """NumPy's default (linear) sample quantile of the `rows` of `y`."""
    count = jnp.sum(rows)
    s = jnp.sort(jnp.where(rows, y, jnp.inf))
    virtual = (count - 1) * q
    prev = jnp.floor(virtual)
    gamma = virtual - prev
    above = virtual >= count - 1
    i = jnp.where(above, count - 1, prev).astype(int)
    j = jnp.where(above, count - 1, prev + 1).astype(int)
    a, b = s[i], s[j]
    diff = b - a
    return jnp.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def upper_tail_mean(y: Float[Array, " n"], rows: Bool[Array, " n"], q: Array) -> Array:
    """The mean of the `rows` of `y` at or above their `q` sample quantile."""
    tail = rows & (y >= masked_quantile(y, rows, q))
    return jnp.sum(jnp.where(tail, y, 0.0)) / jnp.sum(tail)


def step_mean(theta, y, a, offset, count):
    r"""$\sum_i a_i 1\{y_i \le \theta\} / \text{count} + \text{offset}$."""
    return jnp.sum(jnp.where(y <= theta, a, 0.0)) / count + offset


def preliminary_solve(solver, y, a, rows, q, start, lower, upper):
    r"""The preliminary estimate: `solver` applied to
    $\sum_{i \in \text{rows}} a_i 1\{y_i \le \theta\} / |\text{rows}| - q$ on DoubleML's
    bracket around `start`.

    **Returns:** `(estimate, ok)`.
    """
    count = jnp.sum(rows)
    weights = a * rows

    def score(theta):
        return step_mean(theta, y, weights, -q, count)

    lo, hi, found = bracket_guess(score, start, lower, upper)
    return solver.solve(score, lo, hi, found)


def final_solve(y, a, b_mean, start, lower, upper):
    r"""The root of $\overline{a\,1\{y \le \theta\}} + \bar b$ by Brent's method from a bracket
    around `start` (DoubleML's `NonLinearScoreMixin` with bounds).

    **Returns:** `(theta, ok)`; `ok` is `False` when no sign change was found in the bounds.
    """
    n = y.shape[-1]

    def score(theta):
        return step_mean(theta, y, a, b_mean, n)

    lo, hi, found = bracket_guess(score, start, lower, upper)
    theta, converged = brent_root(score, lo, hi)
    return theta, found & converged


def stack_weights(*blocks: Array) -> Array:
    """Concatenates mask blocks `(..., n)` into one batch `(b, n)`."""
    n = blocks[0].shape[-1]
    return jnp.concatenate([blk.reshape(-1, n) for blk in blocks], axis=0)


def out_of_fold(preds: Float[Array, "*b f n"], test: Float[Array, "*b f n"]) -> Array:
    """Sums fold predictions over the fold axis (-2), each on the rows its fold predicts."""
    return jnp.sum(preds * test, axis=-2)


def log_loss(target: Array, pred: Array, rows: Array | None) -> Array:
    """Mean log-loss over `rows` (all rows when `None`) along the last axis."""
    eps = jnp.finfo(pred.dtype).eps
    p = jnp.clip(pred, eps, 1.0 - eps)
    values = -(target * jnp.log(p) + (1.0 - target) * jnp.log1p(-p))
    if rows is None:
        return jnp.mean(values, axis=-1)
    return jnp.sum(rows * values, axis=-1) / jnp.sum(rows, axis=-1)


def rmse(target: Array, pred: Array, rows: Array) -> Array:
    return jnp.sqrt(jnp.sum(rows * (target - pred) ** 2, axis=-1) / jnp.sum(rows, axis=-1))

