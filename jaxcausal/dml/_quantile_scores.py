r"""The scores of the quantile models: potential quantiles (PQ) and conditional values at risk
(CVaR), as in DoubleML 0.11, and the machinery they share with local potential quantiles (LPQ,
`_quantile_lpq.py`).

A score object computes, for a grid of quantiles $q$ and treatment levels $d$ (the "cells"),
every nuisance of every fold and repetition in batched fits, the preliminary estimates, and the
final solution with its score $\psi_i$ and derivative $J$. Per fold, the training rows are split
in two stratified halves: on the first half a cross-fitted propensity gives a preliminary
inverse-probability-weighted estimate $\hat\theta_0$ of the quantile; the outcome learner is
fitted on the second half to a target that needs $\hat\theta_0$; the propensities are refitted on
all training rows.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from .._data import CausalData
from ._crossfit import holdout_masks
from ._nonlinear import kde_at_zero
from ._quantile_split import inner_masks
from ._quantile_tools import (
    adjust_propensity,
    final_solve,
    fit_batch,
    log_loss,
    masked_quantile,
    out_of_fold,
    preliminary_solve,
    rmse,
    stack_weights,
    upper_tail_mean,
)


class Cells(eqx.Module):
    """Per repetition `r`, treatment level `l` and quantile `q`: the estimate, the score at the
    estimate `(R, L, Q, n)`, its derivative $J$, predictions, losses and checks."""

    theta: Float[Array, "R L Q"]
    psi: Float[Array, "R L Q n"]
    deriv: Float[Array, "R L Q"]
    predictions: dict[str, Array]
    losses: dict[str, Array]
    checks: dict[str, Array]


def vmap_nested(fn, *axes):
    """Nested `vmap`s: `vmap_nested(fn, a1, a2)` maps `a1` outermost."""
    for ax in reversed(axes):
        fn = jax.vmap(fn, in_axes=ax)
    return fn


class AbstractQuantileScore(eqx.Module):
    """A score of the quantile models (chosen by object, e.g. `PotentialQuantile()`)."""

    @property
    @abc.abstractmethod
    def learner_names(self) -> tuple[str, ...]:
        """Names of the nuisance predictions (keys of `external_predictions`)."""

    @property
    def needs_instrument(self) -> bool:
        return False

    @property
    def g_is_classifier(self) -> bool:
        return True

    def strata(self, data: CausalData) -> tuple[Array, int]:
        """Integer strata of the sample splits and their number."""
        return data.t[:, 0].astype(jnp.int32), 2

    def start(self, y, rows, q):
        """The start value of the preliminary solve (the sample quantile of the level)."""
        return masked_quantile(y, rows, q)

    @abc.abstractmethod
    def cells(self, model, data, folds, inner, key, external, quantiles, levels) -> Cells:
        """All fits and solves for the quantiles `(Q,)` and the static treatment `levels`."""


class Setup(eqx.Module):
    y: Array
    d: Array
    x: Array
    test: Array
    train: Array
    first: Array
    second: Array
    prelim_train: Array
    prelim_test: Array
    ind: Array  # (L, n): d == level
    levels: Array
    start0: Array  # (L, Q)
    lower: Array
    upper: Array


def setup(score, model, data, folds, inner, quantiles, levels) -> Setup:
    y, d, x = data.y, data.t[:, 0], data.x
    dtype = y.dtype
    test = holdout_masks(folds, model.n_folds).astype(dtype)
    first, second, ptrain, ptest = inner_masks(inner, model.n_folds, dtype)
    lv = jnp.asarray(levels, dtype)
    ind = (d[None, :] == lv[:, None]).astype(dtype)
    start = vmap_nested(lambda r, q: score.start(y, r > 0, q), (0, None), (None, 0))
    start0 = start(ind, quantiles)
    return Setup(
        y=y, d=d, x=x, test=test, train=1.0 - test, first=first, second=second,
        prelim_train=ptrain, prelim_test=ptest, ind=ind, levels=lv, start0=start0,
        lower=jnp.min(y), upper=jnp.max(y),
    )


def propensities(model, s: Setup, key):
    """The propensity `P(D = 1 | X)` cross-fitted inside every first half `(R, K, n)` and on
    every training fold `(R, n)`, in one batch of fits."""
    R, K, n = s.test.shape
    weights = stack_weights(s.prelim_train, s.train)
    targets = jnp.broadcast_to(s.d, weights.shape)
    preds = fit_batch(model.ml_m, s.x, targets, weights, key)
    m_pre = out_of_fold(preds[: R * K * K].reshape(R, K, K, n), s.prelim_test)
    m_fin = out_of_fold(preds[R * K * K :].reshape(R, K, n), s.test)
    return m_pre, m_fin


def preliminary_weights(model, s: Setup, m_pre):
    """IPW weights `1{D = l} / m_l(X)` on the first half of each fold `(R, K, L, n)`."""

    def one(m, first, level, ind):
        prop = adjust_propensity(m, s.d, first, level, model.trimming, model.normalize_ipw)
        return first * ind / prop

    return vmap_nested(one, (0, 0, None, None), (0, 0, None, None), (None, None, 0, 0))(
        m_pre, s.first, s.levels, s.ind
    )


def preliminary_estimates(model, s: Setup, a, quantiles, carry_start: bool = True):
    """Preliminary estimates `(R, K, L, Q)` from weights `a (R, K, L, n)`.

    DoubleML's PQ and LPQ keep the start value of the solve on the model object and overwrite it
    with the mean preliminary estimate of each repetition, so repetition `r > 0` starts from the
    mean of repetition `r - 1` (and the first from the sample quantile): a scan over
    repetitions replays that (`carry_start`). Its CVaR starts every repetition afresh.
    """

    def one(a_fl, first, q, start):
        return preliminary_solve(model.preliminary, s.y, a_fl, first, q, start, s.lower,
                                 s.upper)

    per_rep = vmap_nested(one, (0, 0, None, None), (0, None, None, 0), (None, None, 0, 0))

    def step(start, inputs):
        a_r, first_r = inputs
        est, ok = per_rep(a_r, first_r, quantiles, start)
        return (jnp.mean(est, axis=0) if carry_start else start), (est, ok)

    _, (est, ok) = jax.lax.scan(step, s.start0, (a, s.first))
    return est, ok


def fit_outcome(learner, s: Setup, targets, rows, key):
    """Fits `learner` per repetition, fold, level and quantile to `targets (R, K, L, Q, n)` on
    `rows (R, K, L, Q, n)`; returns the out-of-fold predictions `(R, L, Q, n)`."""
    R, K, L, Q, n = targets.shape
    preds = fit_batch(learner, s.x, targets.reshape(-1, n), rows.reshape(-1, n), key)
    preds = preds.reshape(R, K, L, Q, n)
    return jnp.sum(preds * s.test[:, :, None, None, :], axis=1)


def final_propensity(model, s: Setup, m_fin):
    """Adjusted propensities of each level on all rows `(R, L, n)`."""
    ones = jnp.ones_like(s.y)

    def one(m, level):
        return adjust_propensity(m, s.d, ones, level, model.trimming, model.normalize_ipw)

    return vmap_nested(one, (0, None), (None, 0))(m_fin, s.levels)


def external_cells(external, name, shape):
    return jnp.broadcast_to(external[name][:, None, None, :], shape)


def solve_step_score(s: Setup, a, b, start):
    """Final root, score and KDE derivative for a step score `a 1{y <= theta} + b`:
    `a (R, L, n)`, `b (R, L, Q, n)`, `start (R, L, Q)`."""

    def one(a_rl, b_rlq, st):
        theta, ok = final_solve(s.y, a_rl, jnp.mean(b_rlq), st, s.lower, s.upper)
        psi = jnp.where(s.y <= theta, a_rl, 0.0) + b_rlq
        deriv = kde_at_zero(s.y - theta, a_rl)
        return theta, psi, deriv, ok

    return vmap_nested(one, (0, 0, 0), (0, 0, 0), (None, 0, 0))(a, b, start)


class PotentialQuantile(AbstractQuantileScore):
    r"""The potential quantile $\theta_q^d$ with $P(Y(d) \le \theta) = q$ (Kallus, Mao and Uehara
    2019; DoubleML's `DoubleMLPQ`):

    $$\psi = \frac{1\{D = d\}}{m_d(X)}\bigl(1\{Y \le \theta\} - g_d(X, \theta)\bigr)
    + g_d(X, \theta) - q,$$

    with $m_d(X) = P(D = d \mid X)$ (`ml_m`, clipped and normalised) and
    $g_d(X, \theta) = P(Y \le \theta \mid X, D = d)$ (`ml_g`, a classifier fitted on the second
    half of each training fold to $1\{Y \le \hat\theta_0\}$). $\theta$ is the root of the mean
    score and $J$ the weighted kernel density of $Y - \theta$ at 0 with weights
    $1\{D = d\}/m_d$.
    """

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_g", "ml_m")

    def cells(self, model, data, folds, inner, key, external, quantiles, levels) -> Cells:
        s = setup(self, model, data, folds, inner, quantiles, levels)
        R, K, n = s.test.shape
        L, Q = s.start0.shape
        checks = {}
        if external:
            m_fin = external["ml_m"]
            g = external_cells(external, "ml_g", (R, L, Q, n))
            start = jnp.broadcast_to(s.start0, (R, L, Q))
        else:
            k_m, k_g = jr.split(key)
            m_pre, m_fin = propensities(model, s, k_m)
            a_pre = preliminary_weights(model, s, m_pre)
            ipw, ok_pre = preliminary_estimates(model, s, a_pre, quantiles)
            targets = (s.y[None, None, None, None] <= ipw[..., None]).astype(s.y.dtype)
            rows = jnp.broadcast_to(
                s.second[:, :, None, None, :] * s.ind[None, None, :, None, :], targets.shape
            )
            g = fit_outcome(model.ml_g, s, targets, rows, k_g)
            start = jnp.mean(ipw, axis=1)
            checks["root:preliminary"] = jnp.all(ok_pre, axis=1)
            checks["level:ml_g"] = jnp.all(jnp.sum(rows, axis=-1) > 0, axis=1)
        m = final_propensity(model, s, m_fin)
        a = s.ind[None] / m
        b = g - a[:, :, None, :] * g - quantiles[None, None, :, None]
        theta, psi, deriv, ok = solve_step_score(s, a, b, start)
        checks["root:final"] = ok
        checks["finite:ml_g"] = jnp.all(jnp.isfinite(g), axis=-1)
        checks["finite:ml_m"] = per_rep(jnp.all(jnp.isfinite(m_fin), axis=-1), theta)
        checks["density:kde"] = jnp.isfinite(deriv) & (deriv > 0)
        predictions = {"ml_g": g, "ml_m": jnp.broadcast_to(m_fin[:, None, None], g.shape)}
        target_g = (s.y[None, None, None] <= theta[..., None]).astype(s.y.dtype)
        losses = {
            "ml_g": log_loss(target_g, g, jnp.broadcast_to(s.ind[None, :, None], g.shape)),
            "ml_m": per_rep(log_loss(rows_like(s.d, m_fin), m_fin, None), theta),
        }
        return Cells(theta=theta, psi=psi, deriv=deriv, predictions=predictions, losses=losses,
                     checks=checks)


class ConditionalValueAtRisk(AbstractQuantileScore):
    r"""The conditional value at risk (upper tail) $\theta_q^d = E[Y(d) \mid Y(d) \ge
    Q_q(Y(d))]$ (Kallus, Mao and Uehara 2019; DoubleML's `DoubleMLCVAR`). The score is linear:

    $$\psi = \frac{1\{D = d\}}{m_d(X)}\bigl(\tilde Y - g_d(X)\bigr) + g_d(X) - \theta,\qquad
    \tilde Y = \max\Bigl(\hat\theta_0, \frac{Y - q\hat\theta_0}{1 - q}\Bigr),$$

    with $\hat\theta_0$ the mean over folds of the preliminary potential quantiles and
    $g_d(X) = E[\tilde Y \mid X, D = d]$ (`ml_g`, a regression fitted on the second half of each
    training fold); $J = -1$.
    """

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_g", "ml_m")

    @property
    def g_is_classifier(self) -> bool:
        return False

    def start(self, y, rows, q):
        return upper_tail_mean(y, rows, q)

    def cells(self, model, data, folds, inner, key, external, quantiles, levels) -> Cells:
        if external:
            raise ValueError(
                "external_predictions are not supported for CVaR (the outcome learner's target "
                "depends on the preliminary quantile, as in DoubleML)"
            )
        s = setup(self, model, data, folds, inner, quantiles, levels)
        k_m, k_g = jr.split(key)
        m_pre, m_fin = propensities(model, s, k_m)
        a_pre = preliminary_weights(model, s, m_pre)
        ipw, ok_pre = preliminary_estimates(model, s, a_pre, quantiles, carry_start=False)
        qq = quantiles[None, None, None, :, None]
        y5 = s.y[None, None, None, None]
        targets = jnp.maximum(ipw[..., None], (y5 - qq * ipw[..., None]) / (1.0 - qq))
        rows = jnp.broadcast_to(
            s.second[:, :, None, None, :] * s.ind[None, None, :, None, :], targets.shape
        )
        g = fit_outcome(model.ml_g, s, targets, rows, k_g)
        pq = jnp.mean(ipw, axis=1)[..., None]  # (R, L, Q, 1)
        q3 = quantiles[None, None, :, None]
        target = jnp.maximum(pq, (s.y[None, None, None] - q3 * pq) / (1.0 - q3))
        m = final_propensity(model, s, m_fin)[:, :, None, :]
        psi_b = s.ind[None, :, None, :] * (target - g) / m + g
        theta = jnp.mean(psi_b, axis=-1)
        psi = psi_b - theta[..., None]
        ind_b = jnp.broadcast_to(s.ind[None, :, None], g.shape)
        checks = {
            "root:preliminary": jnp.all(ok_pre, axis=1),
            "level:ml_g": jnp.all(jnp.sum(rows, axis=-1) > 0, axis=1),
            "finite:ml_g": jnp.all(jnp.isfinite(g), axis=-1),
            "finite:ml_m": per_rep(jnp.all(jnp.isfinite(m_fin), axis=-1), theta),
        }
        predictions = {"ml_g": g, "ml_m": jnp.broadcast_to(m_fin[:, None, None], g.shape)}
        losses = {
            "ml_g": rmse(target, g, ind_b),
            "ml_m": per_rep(log_loss(rows_like(s.d, m_fin), m_fin, None), theta),
        }
        return Cells(theta=theta, psi=psi, deriv=-jnp.ones_like(theta), predictions=predictions,
                     losses=losses, checks=checks)


def rows_like(v: Array, like: Array) -> Array:
    return jnp.broadcast_to(v, like.shape)


def per_rep(v: Array, like: Array) -> Array:
    """A per-repetition value `(R,)` repeated over levels and quantiles."""
    return jnp.broadcast_to(v[:, None, None], like.shape)
