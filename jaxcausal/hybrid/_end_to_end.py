"""The end-to-end hybrid model of respiration: a network for base respiration times a Q10 law.

This is the baseline that Cohrs et al. (2024) compare double machine learning against. Training the
network and Q10 jointly is biased when regularisation (dropout, weight decay) shrinks the network's
share of the signal, and Q10 is not identified (equifinality) when temperature itself may enter the
network: any temperature dependence can then be moved between the network and the Q10 factor.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import nn, train
from .._checks import is_concrete
from .._compile import filter_jit
from .._data import CausalData
from ..learners._base import weighted_moments


class _Q10Network(eqx.Module):
    net: nn.MLP
    log_q10: Float[Array, ""]

    def __call__(self, inputs: Array, tau: Array, *, key: PRNGKeyArray | None = None) -> Array:
        return jax.nn.softplus(self.net(inputs, key=key)) * jnp.exp(self.log_q10 * tau)


def _reco_loss(model, data, weights, *, key):
    inputs, tau, reco = data
    keys = jr.split(key, inputs.shape[0])
    pred = jax.vmap(lambda i, t, k: model(i, t, key=k))(inputs, tau, keys)
    return train.weighted_mean((pred - reco) ** 2, weights)


class EndToEndQ10Result(eqx.Module):
    """An ensemble of trained end-to-end hybrid models (leading member axis on every array).

    - `q10_members`: Q10 of every member; `q10` and `q10_sd` their mean and standard deviation.
    - `best_step`, `n_steps`: where early stopping took each member and how long it ran.
    """

    models: _Q10Network
    in_mean: Float[Array, " p"]
    in_scale: Float[Array, " p"]
    t_ref: float = eqx.field(static=True)
    ta_in_network: bool = eqx.field(static=True)
    best_step: Int[Array, " members"]
    n_steps: Int[Array, " members"]

    @property
    def q10_members(self) -> Float[Array, " members"]:
        return jnp.exp(self.models.log_q10)

    @property
    def q10(self) -> Float[Array, ""]:
        return jnp.mean(self.q10_members)

    @property
    def q10_sd(self) -> Float[Array, ""]:
        return jnp.std(self.q10_members, ddof=1) if self.q10_members.shape[0] > 1 else jnp.zeros(())

    def _inputs(self, x: Array, ta: Array) -> Array:
        cols = jnp.concatenate([x, ta[:, None]], axis=1) if self.ta_in_network else x
        return (cols - self.in_mean[None, :]) / self.in_scale[None, :]

    def rb(self, x: Float[Array, "n p"], ta: Float[Array, " n"]) -> Float[Array, "members n"]:
        """Base respiration per member, `softplus(NN(inputs))`."""
        inputs = self._inputs(x, ta)
        return eqx.filter_vmap(lambda m: jax.vmap(lambda i: jax.nn.softplus(m.net(i)))(inputs))(
            self.models
        )

    def predict(self, x: Float[Array, "n p"], ta: Float[Array, " n"]) -> Float[Array, "members n"]:
        """Predicted respiration per member."""
        tau = (ta - self.t_ref) / 10.0
        return self.rb(x, ta) * jnp.exp(self.models.log_q10[:, None] * tau[None, :])


@filter_jit
def _fit(config: EndToEndQ10, x, ta, reco, key):
    n = reco.shape[0]
    members = config.n_members
    k_split, k_init, k_train = jr.split(key, 3)
    is_val = jr.uniform(k_split, (members, n)) < config.val_fraction
    w_train = jnp.where(is_val, 0.0, 1.0)
    w_val = jnp.where(is_val, 1.0, 0.0)
    cols = jnp.concatenate([x, ta[:, None]], axis=1) if config.ta_in_network else x
    in_mean, in_scale = weighted_moments(cols, jnp.ones((n,), cols.dtype))
    inputs = (cols - in_mean[None, :]) / in_scale[None, :]
    tau = (ta - config.t_ref) / 10.0

    def make(k):
        net = nn.MLP(
            inputs.shape[1], "scalar", config.width, config.depth, dropout=config.dropout, key=k
        )
        net = jax.tree.map(lambda a: a.astype(cols.dtype) if eqx.is_inexact_array(a) else a, net)
        return _Q10Network(net=net, log_q10=jnp.log(jnp.asarray(config.q10_init, cols.dtype)))

    models = eqx.filter_vmap(make)(jr.split(k_init, members))
    optimiser = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

    def one(model, k, w, vw):
        return train.run(
            _reco_loss,
            model,
            (inputs, tau, reco),
            optimiser,
            key=k,
            weights=w,
            val_weights=vw,
            max_steps=config.max_steps,
            batch_size=config.batch_size,
            eval_every=config.eval_every,
            patience=config.patience,
        )

    res = eqx.filter_vmap(one)(models, jr.split(k_train, members), w_train, w_val)
    return EndToEndQ10Result(
        models=eqx.nn.inference_mode(res.model),
        in_mean=in_mean,
        in_scale=in_scale,
        t_ref=config.t_ref,
        ta_in_network=config.ta_in_network,
        best_step=res.best_step,
        n_steps=res.n_steps,
    )


class EndToEndQ10(eqx.Module):
    r"""End-to-end hybrid model $RECO \approx \mathrm{softplus}(NN(x))\,Q_{10}^{(TA - T_{ref})/10}$.

    The network and $\log Q_{10}$ are trained jointly on the squared error of RECO with AdamW and
    early stopping on a random validation split; `n_members` members (different initialisations
    and splits) train in one compiled call through `jaxcausal.train`.

    **Arguments:**

    - `t_ref`: reference temperature.
    - `ta_in_network`: also feed air temperature to the network (this makes Q10 unidentified).
    - `dropout`, `weight_decay`: regularisation of the network.
    - `width`, `depth`, `learning_rate`, `max_steps`, `batch_size`, `eval_every`, `patience`,
      `val_fraction`: network and training settings.
    - `q10_init`: initial Q10 of every member.
    - `n_members`: ensemble size.

    `fit(data, *, key)` takes `CausalData(y=RECO, t=TA, x=drivers)`; every column of `x` enters the
    network.
    """

    t_ref: float = eqx.field(static=True, default=15.0)
    ta_in_network: bool = eqx.field(static=True, default=False)
    dropout: float = eqx.field(static=True, default=0.0)
    weight_decay: float = 0.0
    width: int = eqx.field(static=True, default=32)
    depth: int = eqx.field(static=True, default=2)
    learning_rate: float = 3e-3
    max_steps: int = eqx.field(static=True, default=3000)
    batch_size: int | None = eqx.field(static=True, default=256)
    eval_every: int = eqx.field(static=True, default=50)
    patience: int = eqx.field(static=True, default=10)
    val_fraction: float = eqx.field(static=True, default=0.2)
    q10_init: float = 1.0
    n_members: int = eqx.field(static=True, default=10)

    def __check_init__(self):
        if self.n_members < 1:
            raise ValueError(f"n_members must be at least 1, got {self.n_members}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.q10_init <= 0:
            raise ValueError(f"q10_init must be positive, got {self.q10_init}")

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> EndToEndQ10Result:
        """Trains the ensemble on `data` (`y` = observed RECO > 0, `t` = air temperature)."""
        if data.n_treatments != 1:
            raise ValueError(f"t must be one column (air temperature); got {data.n_treatments}")
        if is_concrete(data.y) and bool(jnp.any(data.y <= 0)):
            raise ValueError("y (RECO) must be positive for the Q10 model; found values <= 0")
        return _fit(self, data.x, data.t[:, 0], data.y, key)
