"""Any Flax module as a nuisance learner, trained by the package's one training loop."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from flax import linen, nnx
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .. import train
from .._compile import filter_jit
from ._base import (
    AbstractLearner,
    AbstractPredictor,
    check_training_config,
    prepare_xyw,
    standardisation,
    validation_split,
)


class FlaxNet(eqx.Module):
    """A Flax model as an Equinox module: trainable `params` and how to apply them (static).

    `module` is a `flax.linen.Module` (applied with `module.apply(params, x)`) or an `nnx`
    graph definition (applied with `nnx.merge(module, params)(x)`). Called on a batch `(n, p)`,
    returns `(n,)`.
    """

    params: PyTree
    module: Any = eqx.field(static=True)

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        if isinstance(self.module, linen.Module):
            out = self.module.apply(self.params, x)
        else:
            out = nnx.merge(self.module, self.params)(x)
        n = x.shape[0]
        if out.shape not in ((n,), (n, 1)):
            raise ValueError(
                f"the Flax module must map a batch of shape {tuple(x.shape)} to shape ({n},) or "
                f"({n}, 1); got {tuple(out.shape)}"
            )
        return out.reshape(n)


class FlaxPredictor(AbstractPredictor):
    """A trained Flax model with the input (and, for regression, target) standardisation.

    `best_step` and `n_steps` record where early stopping took the parameters and how long it ran.
    """

    net: FlaxNet
    x_mean: Float[Array, " p"]
    x_scale: Float[Array, " p"]
    y_mean: Float[Array, ""]
    y_scale: Float[Array, ""]
    best_step: Int[Array, ""]
    n_steps: Int[Array, ""]
    classifier: bool = eqx.field(static=True)

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        if x.ndim == 1:
            x = x[:, None]
        out = self.net((x - self.x_mean[None, :]) / self.x_scale[None, :])
        if self.classifier:
            return jax.nn.sigmoid(out)
        return out * self.y_scale + self.y_mean


def _squared_error(model, data, weights, *, key):
    del key
    x, y = data
    return train.weighted_mean((model(x) - y) ** 2, weights)


def _log_loss(model, data, weights, *, key):
    del key
    x, y = data
    return train.weighted_mean(optax.sigmoid_binary_cross_entropy(model(x), y), weights)


def _init(module, x, key) -> FlaxNet:
    if isinstance(module, linen.Module):
        return FlaxNet(module.init(key, x[:1]), module)
    graphdef, params = nnx.split(module(nnx.Rngs(key)))
    return FlaxNet(params, graphdef)


@filter_jit
def _fit_flax(learner: FlaxLearner, x, y, w, key):
    k_val, k_init, k_train = jr.split(key, 3)
    w_train, w_val = validation_split(w, learner.val_fraction, k_val)
    has_val = w_val is not None
    x_mean, x_scale, y_mean, y_scale = standardisation(x, y, w_train, learner.classifier)
    xs = (x - x_mean[None, :]) / x_scale[None, :]
    net = _init(learner.module, xs, k_init)
    net = jax.tree.map(lambda a: a.astype(x.dtype) if eqx.is_inexact_array(a) else a, net)
    optimiser = optax.adamw(learner.learning_rate, weight_decay=learner.weight_decay)
    result = train.run(
        _log_loss if learner.classifier else _squared_error,
        net,
        (xs, (y - y_mean) / y_scale),
        optimiser,
        key=k_train,
        weights=w_train,
        val_weights=w_val,
        max_steps=learner.max_steps,
        batch_size=learner.batch_size,
        eval_every=learner.eval_every,
        patience=learner.patience if has_val else None,
    )
    return FlaxPredictor(
        net=result.model,
        x_mean=x_mean,
        x_scale=x_scale,
        y_mean=y_mean,
        y_scale=y_scale,
        best_step=result.best_step,
        n_steps=result.n_steps,
        classifier=learner.classifier,
    )


def _check_module(module: Any) -> Any:
    # A converter rather than `__check_init__`: an nnx instance holds arrays, and must be refused
    # before Equinox stores it as a static field.
    if isinstance(module, nnx.Module):
        raise TypeError(
            "module must be a function rngs -> flax.nnx.Module (so that each fit initialises "
            "its parameters from its key), not an nnx.Module instance"
        )
    if not (isinstance(module, linen.Module) or callable(module)):
        raise TypeError(
            "module must be a flax.linen.Module or a function rngs -> flax.nnx.Module; "
            f"got {type(module).__name__}"
        )
    return module


class FlaxLearner(AbstractLearner):
    """Any Flax model as a nuisance learner, trained like [`jaxcausal.learners.MLP`][].

    The parameters are initialised from the key; inputs are standardised with the training rows'
    weighted moments (and the target too, for regression); the model trains with AdamW through
    `jaxcausal.train` on minibatches drawn from the key, and stops early on a validation split
    drawn from the key among the rows with positive weight, keeping the best parameters. `fit` can
    be vmapped over keys and weight masks like every learner.

    **Arguments:**

    - `module`: either a `flax.linen.Module` that maps a batch `(n, p)` to `(n,)` or `(n, 1)`, or a
      function `make(rngs: flax.nnx.Rngs) -> flax.nnx.Module` building such an `nnx` model. It is
      static configuration: it must be hashable, and the same object (a linen module compares by
      its fields; pass a module-level function, not a new lambda) so refits do not recompile.
      Deterministic models only: no dropout or batch statistics.
    - `classifier`: fit a binary target with the logistic loss; the model's output is the logit.
    - `learning_rate`, `weight_decay`: AdamW settings; array fields (sweepable with `vmap`).
    - `max_steps`, `batch_size`: optimiser steps at most and minibatch size (`None`: full batch).
    - `val_fraction`: share of the weighted rows held out for early stopping (0 disables it).
    - `eval_every`, `patience`: evaluate every so many steps; stop after `patience` evaluations
      without improvement.

    **Returns** (from `fit`): a [`jaxcausal.learners.FlaxPredictor`][].

    ```python
    class Net(flax.linen.Module):
        @flax.linen.compact
        def __call__(self, x):
            return flax.linen.Dense(1)(flax.linen.gelu(flax.linen.Dense(32)(x)))

    pred = jc.learners.FlaxLearner(Net(), max_steps=500).fit(x, y, key=jr.key(0))
    ```
    """

    module: Any = eqx.field(static=True, converter=_check_module)
    classifier: bool = eqx.field(static=True, default=False)
    learning_rate: Float[Array, ""] = eqx.field(default=3e-3, converter=jnp.asarray)
    weight_decay: Float[Array, ""] = eqx.field(default=1e-3, converter=jnp.asarray)
    max_steps: int = eqx.field(static=True, default=2000)
    batch_size: int | None = eqx.field(static=True, default=256)
    val_fraction: float = eqx.field(static=True, default=0.2)
    eval_every: int = eqx.field(static=True, default=10)
    patience: int = eqx.field(static=True, default=20)

    def __check_init__(self):
        check_training_config(self)

    @property
    def is_classifier(self) -> bool:
        return self.classifier

    def fit(
        self,
        x: Float[Array, "n p"],
        y: Float[Array, " n"],
        *,
        key: PRNGKeyArray,
        weights: Float[Array, " n"] | None = None,
    ) -> FlaxPredictor:
        x, y, w = prepare_xyw(x, y, weights, binary=self.classifier, who="FlaxLearner(classifier)")
        return _fit_flax(self, x, y, w, key)
