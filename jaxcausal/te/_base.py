"""The contract of treatment-effect models, their shared training settings and batched fitting."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .. import train
from .._checks import check_binary, is_concrete
from .._data import CausalData
from .._progress import chunked_map


class AbstractFittedTE(eqx.Module):
    r"""A fitted treatment-effect model for a binary treatment.

    `potential_outcomes(x)` returns $(\hat\mu_0(x_i), \hat\mu_1(x_i))$ as an `(n, 2)` array;
    `effect(x)` the individual effects $\hat\tau(x_i) = \hat\mu_1(x_i) - \hat\mu_0(x_i)$, `(n,)`;
    `ate(x)` their mean over the rows of `x`. A fitted model is immutable; a batch of fitted models
    (from [`jaxcausal.te.fit_batch`][]) is queried with `eqx.filter_vmap`.
    """

    @abc.abstractmethod
    def potential_outcomes(self, x: Float[Array, "n ..."]) -> Float[Array, "n 2"]:
        """The predicted outcomes under control and treatment, `(n, 2)`."""

    def effect(self, x: Float[Array, "n ..."]) -> Float[Array, " n"]:
        po = self.potential_outcomes(x)
        return po[:, 1] - po[:, 0]

    def ate(self, x: Float[Array, "n ..."]) -> Float[Array, ""]:
        return jnp.mean(self.effect(x))


class AbstractTEModel(eqx.Module):
    """Configuration of a treatment-effect model: `fit(data, *, key)` returns an
    [`jaxcausal.te.AbstractFittedTE`][]. `fit` is a pure function, so it can be `vmap`ped over
    keys (seeds) and over stacked data sets (replications): see [`jaxcausal.te.fit_batch`][]."""

    @abc.abstractmethod
    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> AbstractFittedTE:
        """Trains the model on `data`; returns the fitted model."""


class Training(eqx.Module):
    """Optimisation settings shared by the neural treatment-effect models.

    **Arguments:**

    - `learning_rate`, `weight_decay`: AdamW settings.
    - `max_steps`: optimiser updates at most.
    - `batch_size`: minibatch size (`None`: all rows every step).
    - `val_fraction`: share of the rows held out (drawn from the key) for early stopping on the
      model's own loss; 0 disables it.
    - `eval_every`, `patience`: validate every so many steps; stop after `patience` validations
      without improvement, keeping the best parameters.
    """

    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    max_steps: int = 3000
    batch_size: int | None = 128
    val_fraction: float = 0.2
    eval_every: int = 20
    patience: int = 50

    def __check_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_steps < 1 or self.eval_every < 1 or self.patience < 1:
            raise ValueError(
                "max_steps, eval_every and patience must be at least 1; got "
                f"{self.max_steps}, {self.eval_every}, {self.patience}"
            )


class Scaler(eqx.Module):
    """Standardisation of covariates and outcome learned from the training rows."""

    x_mean: Float[Array, " p"]
    x_scale: Float[Array, " p"]
    y_mean: Float[Array, ""]
    y_scale: Float[Array, ""]

    @staticmethod
    def of(x: Float[Array, "n p"], y: Float[Array, " n"], w: Float[Array, " n"]) -> Scaler:
        total = jnp.sum(w)
        x_mean = jnp.sum(w[:, None] * x, axis=0) / total
        x_var = jnp.sum(w[:, None] * (x - x_mean[None, :]) ** 2, axis=0) / total
        y_mean = jnp.sum(w * y) / total
        y_var = jnp.sum(w * (y - y_mean) ** 2) / total
        # Constant columns (a site indicator absent from a split) keep scale 1.
        return Scaler(x_mean, jnp.where(x_var > 0, jnp.sqrt(x_var), 1.0),
                      y_mean, jnp.where(y_var > 0, jnp.sqrt(y_var), 1.0))

    def x(self, x: Float[Array, "n p"]) -> Float[Array, "n p"]:
        return (x - self.x_mean[None, :]) / self.x_scale[None, :]

    def y(self, y: Array) -> Array:
        return (y - self.y_mean) / self.y_scale

    def y_inverse(self, y: Array) -> Array:
        return y * self.y_scale + self.y_mean


def binary_arrays(
    data: CausalData, who: str, checked: bool = False
) -> tuple[Array, Array, Array]:
    """`(x, t, y)` from `data` with `t` a binary vector; raises a clear error otherwise.

    `checked=True` (inside a compiled fit whose caller already ran [`check_eagerly`][] on the
    concrete data) skips the traced `eqx.error_if`: its host callback would keep JAX from storing
    the compiled fit in the persistent compilation cache."""
    if not isinstance(data, CausalData):
        raise TypeError(f"data must be a jaxcausal.CausalData; got {type(data).__name__}")
    if data.t.ndim != 2 or data.t.shape[1] != 1:
        raise ValueError(
            f"{who} needs exactly one binary treatment column; data.t has shape "
            f"{tuple(data.t.shape)}"
        )
    if checked:
        return data.x, data.t[:, 0], data.y
    t = check_binary(data.t[:, 0], "t", f"for {who} (a binary treatment)")
    if is_concrete(t):
        n1 = int(jnp.sum(t))
        if n1 == 0 or n1 == t.shape[0]:
            raise ValueError(f"t must contain both treated and control rows for {who}; got {n1} "
                             f"treated of {t.shape[0]}")
    return data.x, t, data.y


def check_eagerly(data: CausalData, who: str) -> bool:
    """Runs the checks of [`binary_arrays`][] now; returns whether they were complete (the data
    is concrete), so that the compiled fit can skip them (a static `checked` argument)."""
    binary_arrays(data, who)
    return bool(is_concrete(data.t))


def split_weights(key: PRNGKeyArray, n: int, val_fraction: float) -> tuple[Array, Array | None]:
    """A random training/validation split as two 0/1 masks over all `n` rows."""
    if val_fraction == 0:
        return jnp.ones((n,)), None
    is_val = jr.uniform(key, (n,)) < val_fraction
    return jnp.where(is_val, 0.0, 1.0), jnp.where(is_val, 1.0, 0.0)


def run_training(
    loss_fn: train.LossFn, model: PyTree, arrays: PyTree, training: Training, *,
    key: PRNGKeyArray, val_fraction: float | None = None,
) -> train.TrainResult:
    """Trains `model` with AdamW through `jaxcausal.train.run` (call inside a jitted function)."""
    k_split, k_train = jr.split(key)
    n = jax.tree.leaves(arrays)[0].shape[0]
    frac = training.val_fraction if val_fraction is None else val_fraction
    w_train, w_val = split_weights(k_split, n, frac)
    optimiser = optax.adamw(training.learning_rate, weight_decay=training.weight_decay)
    return train.run(
        loss_fn, model, arrays, optimiser, key=k_train, weights=w_train, val_weights=w_val,
        max_steps=training.max_steps, batch_size=training.batch_size,
        eval_every=training.eval_every, patience=training.patience if w_val is not None else None,
    )


def to_dtype(model: PyTree, dtype: Any) -> PyTree:
    """Casts the floating arrays of a freshly initialised model to the data's dtype."""
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)


def fit_batch(
    model: AbstractTEModel,
    data: CausalData,
    *,
    key: PRNGKeyArray,
    n: int | None = None,
    batch_size: int | None = None,
    mesh: Any = None,
    progress: bool = True,
) -> AbstractFittedTE:
    """Fits many copies of `model` in one compiled call, sharded over devices.

    - Replications: `data` stacked on a leading axis (`CausalData.stack`, or the `train` field of
      [`jaxcausal.datasets.ihdp_replications`][]); copy `r` is fitted on `data[r]` with key
      `jr.split(key, R)[r]`.
    - Seeds: a single `data` set and `n` keys.

    `batch_size` and `mesh` are those of [`jaxcausal.parallel.sharded_map`][]: by default all
    copies train together on a GPU and one at a time on a CPU, where copies trained together wait
    for the slowest one to stop early. A second call with the same shapes does not recompile.

    `progress` shows a tqdm bar on stderr (the copies then run in a few dozen equal chunks of
    one compiled program, with the same results); `False` prints nothing.

    **Returns:** the fitted models with a leading axis on their arrays; query them with
    `eqx.filter_vmap(lambda m, x: m.effect(x))(fitted, xs)`.
    """
    if not isinstance(model, AbstractTEModel):
        raise TypeError(f"model must be a jaxcausal.te model; got {type(model).__name__}")
    stacked = data.y.ndim == 2
    if stacked == (n is not None):
        raise ValueError(
            "give either stacked data (y of shape (R, n_obs)) or one data set with n=<copies>; "
            f"got y of shape {tuple(data.y.shape)} and n={n}"
        )
    count = data.y.shape[0] if stacked else n
    if count < 1:
        raise ValueError(f"n must be at least 1, got {count}")
    keys = jr.split(key, count)
    options = dict(batch_size=batch_size, mesh=mesh, progress=progress, desc="fit_batch",
                   unit="fit")
    # `eqx.Partial`s keep the program cached across calls; their arrays are traced, not baked in.
    if stacked:
        return chunked_map(eqx.Partial(_fit_copy, model), data, keys, **options)
    return chunked_map(eqx.Partial(_fit_copy, model, data), keys, **options)


def _fit_copy(model, data, key):
    return model.fit(data, key=key)


def as_windows(x: Array, window: int, n_vars: int, who: str) -> Array:
    """Reshapes flattened windows `(n, window * n_vars)` (or checks `(n, window, n_vars)`) into
    `(n, window, n_vars)`, with an error that names the expected shapes."""
    if x.ndim == 3 and x.shape[1:] == (window, n_vars):
        return x
    if x.ndim == 2 and x.shape[1] == window * n_vars:
        return x.reshape(x.shape[0], window, n_vars)
    raise ValueError(
        f"{who} expects windows of {window} days x {n_vars} variables: x of shape "
        f"(n, {window * n_vars}) (flattened, day-major) or (n, {window}, {n_vars}); got "
        f"{tuple(x.shape)}"
    )
