"""Dragonnet with targeted regularisation (Shi, Blei and Veitch 2019)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import nn, train
from .._compile import filter_jit
from .._data import CausalData
from ._base import (
    AbstractFittedTE,
    AbstractTEModel,
    Scaler,
    Training,
    binary_arrays,
    check_eagerly,
    run_training,
    to_dtype,
)
from ._tarnet import RepresentationNet


class DragonNet(eqx.Module):
    """A representation with two outcome heads, a propensity head and the targeting parameter."""

    body: RepresentationNet
    propensity: nn.BernoulliHead
    epsilon: Float[Array, ""]

    def __call__(self, x: Float[Array, " p"]) -> tuple[Array, Array]:
        h = self.body.represent(x)
        return self.body.outcomes(h), self.propensity(h)


class FittedDragonnet(AbstractFittedTE):
    """A fitted Dragonnet. `propensity(x)` gives the fitted $P(t = 1 \\mid x)$."""

    net: DragonNet
    scaler: Scaler
    best_step: Int[Array, ""]
    n_steps: Int[Array, ""]

    def potential_outcomes(self, x: Float[Array, "n p"]) -> Float[Array, "n 2"]:
        out, _ = jax.vmap(self.net)(self.scaler.x(x))
        return self.scaler.y_inverse(out)

    def propensity(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        _, logit = jax.vmap(self.net)(self.scaler.x(x))
        return jax.nn.sigmoid(logit)


def _dragonnet_loss(model, data, weights, *, key):
    net, alpha, beta, clip = model
    x, t, y = data
    out, logit = jax.vmap(net)(x)
    q = jnp.where(t == 1, out[:, 1], out[:, 0])
    loss = train.weighted_mean((q - y) ** 2, weights)
    loss = loss + alpha * train.weighted_mean(optax.sigmoid_binary_cross_entropy(logit, t), weights)
    if beta > 0:
        g = jnp.clip(jax.nn.sigmoid(logit), clip, 1.0 - clip)
        h = t / g - (1.0 - t) / (1.0 - g)
        targeted = train.weighted_mean((y - q - net.epsilon * h) ** 2, weights)
        loss = loss + beta * targeted
    return loss


@filter_jit
def _fit_dragonnet(config: Dragonnet, data: CausalData, key, checked: bool = False):
    x, t, y = binary_arrays(data, "Dragonnet", checked=checked)
    k_body, k_prop, k_train = jr.split(key, 3)
    scaler = Scaler.of(x, y, jnp.ones_like(y))
    body = RepresentationNet(x.shape[1], config.rep_width, config.rep_depth, config.head_width,
                             config.head_depth, config.activation, key=k_body)
    net = DragonNet(body, nn.BernoulliHead(config.rep_width, key=k_prop), jnp.zeros(()))
    net = to_dtype(net, x.dtype)
    beta = float(config.beta) if config.targeted_regularization else 0.0
    model = (net, float(config.alpha), beta, float(config.propensity_clip))
    result = run_training(_dragonnet_loss, model, (scaler.x(x), t, scaler.y(y)),
                          config.training, key=k_train)
    return FittedDragonnet(result.model[0], scaler, result.best_step, result.n_steps)


class Dragonnet(AbstractTEModel):
    r"""Dragonnet (Shi, Blei and Veitch 2019): a shared representation $Z(x)$ with two outcome
    heads $Q(t, x)$ and a propensity head $g(x)$, trained jointly so the representation keeps what
    predicts treatment, with targeted regularisation.

    The loss on standardised outcomes is
    $\frac1n\sum_i (Q(t_i, x_i) - y_i)^2 + \alpha\,\mathrm{BCE}(g(x_i), t_i) + \beta\,\frac1n\sum_i
    (y_i - \tilde Q(t_i, x_i))^2$ with the perturbed outcome
    $\tilde Q = Q + \varepsilon\,(t/g - (1-t)/(1-g))$ and $\varepsilon$ a trained scalar: at its
    optimum the estimating equation of the efficient influence function holds, which removes the
    first-order bias of the plug-in average effect.

    **Arguments:**

    - `targeted_regularization`: add the targeted term (`beta`); `False` is the plain Dragonnet.
    - `alpha`, `beta`: weights of the propensity and targeted terms (1 and 1 in the paper).
    - `propensity_clip`: $g$ is clipped to `[clip, 1 - clip]` inside the targeted term.
    - `rep_width`, `rep_depth`, `head_width`, `head_depth`, `activation`: as for
      [`jaxcausal.te.CFR`][] (the paper: 3 layers of 200, heads of 2 layers of 100).
    - `training`: a [`jaxcausal.te.Training`][].

    **Reference:** Shi, Blei and Veitch (2019), *Adapting neural networks for the estimation of
    treatment effects*, NeurIPS.
    """

    targeted_regularization: bool = eqx.field(static=True, default=True)
    alpha: float = 1.0
    beta: float = 1.0
    propensity_clip: float = 0.01
    rep_width: int = eqx.field(static=True, default=200)
    rep_depth: int = eqx.field(static=True, default=3)
    head_width: int = eqx.field(static=True, default=100)
    head_depth: int = eqx.field(static=True, default=2)
    activation: Callable = eqx.field(static=True, default=jax.nn.elu)
    training: Training = Training()

    def __check_init__(self):
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be non-negative; got {self.alpha}, {self.beta}")
        if not 0.0 <= self.propensity_clip < 0.5:
            raise ValueError(f"propensity_clip must be in [0, 0.5), got {self.propensity_clip}")

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> FittedDragonnet:
        checked = check_eagerly(data, "Dragonnet")  # eager errors before compiling
        return _fit_dragonnet(self, data, key, checked)
