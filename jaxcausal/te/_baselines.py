"""Floor baselines: ordinary least squares and a T-learner with one MLP per arm."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import learners, nn, train
from .._compile import filter_jit
from .._data import CausalData
from ..learners._linear import _fit_linear
from ._base import (
    AbstractFittedTE,
    AbstractTEModel,
    Scaler,
    Training,
    as_windows,
    binary_arrays,
    check_eagerly,
    run_training,
    to_dtype,
)


class FittedOLS(AbstractFittedTE):
    """Linear potential outcomes: `mu_t(x) = x @ coef[t] + intercept[t]`."""

    coef: Float[Array, "2 p"]
    intercept: Float[Array, " 2"]

    def potential_outcomes(self, x: Float[Array, "n p"]) -> Float[Array, "n 2"]:
        return x @ self.coef.T + self.intercept[None, :]


@filter_jit
def _fit_ols(config: OLS, data: CausalData, checked: bool = False):
    x, t, y = binary_arrays(data, "OLS", checked=checked)

    def linear(x, y, w=None):
        if not checked:
            return learners.Linear(config.ridge).fit(x, y, key=jr.key(0), weights=w)
        # Concrete `CausalData` is finite (checked on construction) and `t` was checked binary:
        # the learner's traced checks (host callbacks, never cached by JAX) are skipped.
        w = jnp.ones_like(y) if w is None else w
        return _fit_linear(x, y, w, jnp.asarray(config.ridge, x.dtype))

    if config.interactions:
        fits = [linear(x, y, w) for w in (1.0 - t, t)]
        coef = jnp.stack([f.coef for f in fits])
        intercept = jnp.stack([f.intercept for f in fits])
    else:
        fit = linear(jnp.concatenate([x, t[:, None]], 1), y)
        coef = jnp.stack([fit.coef[:-1], fit.coef[:-1]])
        intercept = jnp.stack([fit.intercept, fit.intercept + fit.coef[-1]])
    return FittedOLS(coef, intercept)


class OLS(AbstractTEModel):
    r"""Least squares with the treatment as a regressor (the "OLS-1"/"LR-1" floor of the IHDP
    tables: one constant effect), or with one regression per arm (`interactions=True`, "OLS-2").

    Closed form (no training loop). `ridge` adds an $\ell_2$ penalty on the slopes.
    """

    interactions: bool = eqx.field(static=True, default=False)
    ridge: float = 0.0

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> FittedOLS:
        del key  # deterministic; the key keeps the common signature
        checked = check_eagerly(data, "OLS")  # eager errors before compiling
        return _fit_ols(self, data, checked=checked)


class ArmNets(eqx.Module):
    """One network per treatment arm, on the same input."""

    net0: eqx.Module
    net1: eqx.Module

    def __call__(self, x: Array) -> Float[Array, " 2"]:
        return jnp.stack([self.net0(x), self.net1(x)])


class FittedTLearner(AbstractFittedTE):
    """A fitted T-learner: one network per arm and the standardisation it was trained with."""

    nets: ArmNets
    scaler: Scaler
    best_step: Int[Array, ""]
    n_steps: Int[Array, ""]

    def potential_outcomes(self, x: Float[Array, "n p"]) -> Float[Array, "n 2"]:
        return self.scaler.y_inverse(jax.vmap(self.nets)(self.scaler.x(x)))


def _arm_loss(model, data, weights, *, key):
    x, t, y = data
    out = jax.vmap(model)(x)
    pred = jnp.where(t == 1, out[:, 1], out[:, 0])
    return train.weighted_mean((pred - y) ** 2, weights)


@filter_jit
def _fit_tlearner(config: TLearner, data: CausalData, key, checked: bool = False):
    x, t, y = binary_arrays(data, "TLearner", checked=checked)
    k0, k1, k_train = jr.split(key, 3)
    scaler = Scaler.of(x, y, jnp.ones_like(y))
    make = [nn.MLP(x.shape[1], "scalar", config.width, config.depth,
                   activation=config.activation, key=k) for k in (k0, k1)]
    nets = to_dtype(ArmNets(*make), x.dtype)
    # The two networks share no parameter, so training them on one summed loss equals fitting
    # each on its own arm (AdamW is per-parameter); one loop keeps one compiled call.
    result = run_training(_arm_loss, nets, (scaler.x(x), t, scaler.y(y)), config.training,
                          key=k_train)
    return FittedTLearner(result.model, scaler, result.best_step, result.n_steps)


class TLearner(AbstractTEModel):
    r"""T-learner: $\hat\mu_t$ is an MLP fitted on the rows with treatment $t$;
    $\hat\tau(x) = \hat\mu_1(x) - \hat\mu_0(x)$.

    **Arguments:** `width`, `depth`, `activation` of each MLP; `training`, a
    [`jaxcausal.te.Training`][].
    """

    width: int = eqx.field(static=True, default=100)
    depth: int = eqx.field(static=True, default=3)
    activation: Callable = eqx.field(static=True, default=jax.nn.elu)
    training: Training = Training()

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> FittedTLearner:
        checked = check_eagerly(data, "TLearner")  # eager errors before compiling
        return _fit_tlearner(self, data, key, checked)


class GRUArm(eqx.Module):
    """A GRU over a window followed by a linear read-out (one treatment arm)."""

    encoder: nn.GRUEncoder
    readout: eqx.nn.Linear

    def __call__(self, w: Float[Array, "window n_vars"]) -> Float[Array, ""]:
        return self.readout(self.encoder(w))


class FittedGRUTLearner(AbstractFittedTE):
    """A fitted GRU T-learner; `x` is `(n, window * n_vars)` or `(n, window, n_vars)`."""

    nets: ArmNets
    scaler: Scaler
    best_step: Int[Array, ""]
    n_steps: Int[Array, ""]
    window: int = eqx.field(static=True)
    n_vars: int = eqx.field(static=True)

    def potential_outcomes(self, x: Float[Array, "n ..."]) -> Float[Array, "n 2"]:
        w = as_windows(x, self.window, self.n_vars, "GRUTLearner")
        ws = self.scaler.x(w.reshape(w.shape[0], -1)).reshape(w.shape)
        return self.scaler.y_inverse(jax.vmap(self.nets)(ws))


@filter_jit
def _fit_gru_tlearner(config: GRUTLearner, data: CausalData, key, checked: bool = False):
    x, t, y = binary_arrays(data, "GRUTLearner", checked=checked)
    w = as_windows(x, config.window, config.n_vars, "GRUTLearner")
    ks = jr.split(key, 5)
    scaler = Scaler.of(x, y, jnp.ones_like(y))
    arms = [GRUArm(nn.GRUEncoder(config.n_vars, config.hidden, key=ka),
                   eqx.nn.Linear(config.hidden, "scalar", key=kb))
            for ka, kb in ((ks[0], ks[1]), (ks[2], ks[3]))]
    nets = to_dtype(ArmNets(*arms), x.dtype)
    ws = scaler.x(x).reshape(w.shape)
    result = run_training(_arm_loss, nets, (ws, t, scaler.y(y)), config.training, key=ks[4])
    return FittedGRUTLearner(result.model, scaler, result.best_step, result.n_steps,
                             config.window, config.n_vars)


class GRUTLearner(AbstractTEModel):
    """T-learner for windows of daily covariates: one GRU (under `lax.scan`) with a linear
    read-out per treatment arm. `x` as for [`jaxcausal.te.KGCMVAE`][]."""

    window: int = eqx.field(static=True, default=30)
    n_vars: int = eqx.field(static=True, default=5)
    hidden: int = eqx.field(static=True, default=32)
    training: Training = Training()

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> FittedGRUTLearner:
        as_windows(data.x, self.window, self.n_vars, "GRUTLearner")
        checked = check_eagerly(data, "GRUTLearner")  # eager errors before compiling
        return _fit_gru_tlearner(self, data, key, checked)
