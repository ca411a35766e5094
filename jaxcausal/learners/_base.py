"""The learner contract: a configuration Module whose `fit` returns a fitted predictor Module."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array, check_binary, check_finite, check_ndim, check_weights


class AbstractPredictor(eqx.Module):
    """A fitted nuisance model: called on a batch `(n, p)`, returns predictions `(n,)`.

    Classifiers return the probability of the class 1.
    """

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        """Predictions (or probabilities of class 1) for the rows of `x`."""


class AbstractLearner(eqx.Module):
    """Configuration of a nuisance learner.

    `fit(x, y, *, key, weights=None)` returns an [`jaxcausal.learners.AbstractPredictor`][]. It is a
    pure function of its inputs, so it can be `vmap`ped over keys and weight masks (one model per
    fold in one compiled call) and over array-valued hyperparameters. Rows with weight 0 do not
    influence the fit: a cross-fitting fold is a 0/1 mask over all rows.
    """

    @property
    def is_classifier(self) -> bool:
        """Whether the learner fits binary targets and predicts probabilities."""
        return False

    @abc.abstractmethod
    def fit(
        self,
        x: Float[Array, "n p"],
        y: Float[Array, " n"],
        *,
        key: PRNGKeyArray,
        weights: Float[Array, " n"] | None = None,
    ) -> AbstractPredictor:
        """Fits the learner to the rows with positive weight; returns the fitted predictor."""


def prepare_xyw(
    x: Any, y: Any, weights: Any, *, binary: bool = False, who: str = "learner"
) -> tuple[Array, Array, Array]:
    """Validates and converts the arguments of `fit` (shapes, finiteness, binary targets)."""
    x = as_float_array(x, "x")
    y = as_float_array(y, "y")
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, (2,), "x", "a matrix of shape (n_obs, n_features)")
    check_ndim(y, (1,), "y", "a vector of shape (n_obs,)")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    n = y.shape[0]
    w = jnp.ones((n,), x.dtype) if weights is None else check_weights(weights, n)
    x = check_finite(x, "x")
    y = check_finite(y, "y")
    if binary:
        y = check_binary(y, "y", f"for the classifier {who}")
    return x, y, w


def weighted_moments(x: Array, w: Array) -> tuple[Array, Array]:
    """Weighted column means and standard deviations (std floored to avoid division by zero)."""
    total = jnp.sum(w)
    wb = w[:, None] if x.ndim == 2 else w
    mean = jnp.sum(wb * x, axis=0) / total
    var = jnp.sum(wb * (x - mean[None] if x.ndim == 2 else x - mean) ** 2, axis=0) / total
    std = jnp.sqrt(var)
    return mean, jnp.where(std > 1e-12, std, 1.0)


def centred_cross_products(
    x: Array, y: Array, w: Array
) -> tuple[Array, Array, Array, Array, Array]:
    r"""Weighted means and centred cross-products of a least-squares problem.

    Returns `(x_mean, y_mean, gram, xy, yy)` with $\bar x, \bar y$ the `w`-weighted means,
    `gram` $= \sum_i w_i (x_i - \bar x)(x_i - \bar x)^\top$,
    `xy` $= \sum_i w_i (x_i - \bar x)(y_i - \bar y)$ and `yy` $= \sum_i w_i (y_i - \bar y)^2$.

    Written for `vmap` over `w` (cross-fitting folds, bootstrap weights): `x` is shifted once by
    its unweighted column mean $c$, which does not depend on `w`, and the weighted mean is removed
    with $\sum_i w_i (x_i - \bar x)(x_i - \bar x)^\top = \sum_i w_i x^0_i x^{0\top}_i
    - W\,(\bar x - c)(\bar x - c)^\top$, $x^0 = x - c$. Batched members then share the
    centred `x` instead of each materialising its own `n x p` copy (about 5x faster for 5000 folds
    of 500 x 20 on a CPU). As $\bar x - c$ is only a fold's deviation from the overall mean, the
    subtraction loses no precision that matters (parity with scikit-learn stays at 1e-15).
    """
    total = jnp.sum(w)
    c = jnp.mean(x, axis=0)
    x0 = x - c[None, :]
    shift = jnp.sum(w[:, None] * x0, axis=0) / total
    y_mean = jnp.sum(w * y) / total
    yc = y - y_mean
    gram = (w[:, None] * x0).T @ x0 - total * jnp.outer(shift, shift)
    xy = x0.T @ (w * yc)
    return c + shift, y_mean, gram, xy, jnp.sum(w * yc**2)


def validation_split(w: Array, fraction: float, key) -> tuple[Array, Array | None]:
    """Splits the positive-weight rows into training and validation weights, drawn from `key`.

    Each weighted row is held out with probability `fraction`; a tiny fold keeps at least one
    training row, and an empty validation set falls back to the training rows. `fraction = 0`
    returns `(w, None)` (no early stopping).
    """
    if fraction <= 0:
        return w, None
    is_val = (jr.uniform(key, w.shape) < fraction) & (w > 0)
    is_val = jnp.where(jnp.sum(w * ~is_val) > 0, is_val, jnp.zeros_like(is_val))
    w_train = jnp.where(is_val, 0.0, w)
    w_val = jnp.where(is_val, w, 0.0)
    return w_train, jnp.where(jnp.sum(w_val) > 0, w_val, w_train)


def standardisation(
    x: Array, y: Array, w: Array, classifier: bool
) -> tuple[Array, Array, Array, Array]:
    """Weighted input moments, and target moments for regressions (identity for classifiers)."""
    x_mean, x_scale = weighted_moments(x, w)
    if classifier:
        return x_mean, x_scale, jnp.zeros((), x.dtype), jnp.ones((), x.dtype)
    y_mean, y_scale = weighted_moments(y, w)
    return x_mean, x_scale, y_mean, y_scale


def check_training_config(learner) -> None:
    """Checks the training settings that network learners share (`MLP`, `FlaxLearner`)."""
    if not 0.0 <= learner.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {learner.val_fraction}")
    if learner.max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {learner.max_steps}")
    if learner.batch_size is not None and learner.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (or None), got {learner.batch_size}")
    if learner.eval_every < 1:
        raise ValueError(f"eval_every must be at least 1, got {learner.eval_every}")
    if learner.patience < 1:
        raise ValueError(f"patience must be at least 1, got {learner.patience}")
