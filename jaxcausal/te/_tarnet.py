"""TARNet and counterfactual regression (CFR) of Shalit, Johansson and Sontag (2017)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
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
from ._ipm import MMD, AbstractIPM


class RepresentationNet(eqx.Module):
    """A shared representation `phi(x)` and one outcome head per treatment arm."""

    rep: nn.MLP
    head0: nn.MLP
    head1: nn.MLP
    activation: Callable = eqx.field(static=True)

    def __init__(self, in_size, rep_width, rep_depth, head_width, head_depth, activation, *, key):
        k_rep, k0, k1 = jr.split(key, 3)
        self.rep = nn.MLP(in_size, rep_width, rep_width, rep_depth - 1, activation=activation,
                          key=k_rep)
        self.head0 = nn.MLP(rep_width, "scalar", head_width, head_depth, activation=activation,
                            key=k0)
        self.head1 = nn.MLP(rep_width, "scalar", head_width, head_depth, activation=activation,
                            key=k1)
        self.activation = activation

    def represent(self, x: Float[Array, " p"]) -> Float[Array, " d"]:
        return self.activation(self.rep(x))

    def outcomes(self, h: Float[Array, " d"]) -> Float[Array, " 2"]:
        return jnp.stack([self.head0(h), self.head1(h)])


class FittedRepresentationNet(AbstractFittedTE):
    """A fitted TARNet or CFR: the network and the standardisation it was trained with.

    `representation(x)` gives the learned representation `(n, d)` (to check its balance).
    """

    net: RepresentationNet
    scaler: Scaler
    best_step: Int[Array, ""]
    n_steps: Int[Array, ""]

    def representation(self, x: Float[Array, "n p"]) -> Float[Array, "n d"]:
        return jax.vmap(self.net.represent)(self.scaler.x(x))

    def potential_outcomes(self, x: Float[Array, "n p"]) -> Float[Array, "n 2"]:
        h = self.representation(x)
        return self.scaler.y_inverse(jax.vmap(self.net.outcomes)(h))


def _factual(outcomes: Array, t: Array) -> Array:
    return jnp.where(t == 1, outcomes[:, 1], outcomes[:, 0])


def _cfr_loss(model, data, weights, *, key):
    net, ipm, alpha = model
    x, t, y, arm_weight = data
    h = jax.vmap(net.represent)(x)
    sq = (_factual(jax.vmap(net.outcomes)(h), t) - y) ** 2
    err = train.weighted_mean(sq, weights * arm_weight)
    if ipm is None:
        return err
    return err + alpha * ipm(h, t, weights)


def _arm_weights(t: Array) -> Array:
    r"""$w_i = t_i / (2u) + (1 - t_i) / (2(1 - u))$ with $u$ the treated share (Shalit et al.
    2017, Algorithm 1): both arms weigh the same in the factual loss."""
    u = jnp.mean(t)
    return t / (2.0 * u) + (1.0 - t) / (2.0 * (1.0 - u))


@filter_jit
def _fit_cfr(config: CFR, data: CausalData, key, checked: bool = False):
    x, t, y = binary_arrays(data, type(config).__name__, checked=checked)
    k_init, k_train = jr.split(key)
    scaler = Scaler.of(x, y, jnp.ones_like(y))
    net = RepresentationNet(
        x.shape[1], config.rep_width, config.rep_depth, config.head_width, config.head_depth,
        config.activation, key=k_init,
    )
    net = to_dtype(net, x.dtype)
    arm_weight = _arm_weights(t) if config.reweight else jnp.ones_like(y)
    arrays = (scaler.x(x), t, scaler.y(y), arm_weight)
    # The penalty's settings (Python floats) ride along as static leaves of the "model" pytree.
    model = (net, config.ipm, float(config.alpha))
    result = run_training(_cfr_loss, model, arrays, config.training, key=k_train)
    fitted_net = result.model[0]
    return FittedRepresentationNet(fitted_net, scaler, result.best_step, result.n_steps)


class CFR(AbstractTEModel):
    r"""Counterfactual regression (Shalit et al. 2017): a shared representation $\Phi(x)$, one
    outcome head per arm, and an integral probability metric that pulls the treated and control
    distributions of $\Phi$ together.

    Minimises $\frac1n\sum_i w_i\,(h_{t_i}(\Phi(x_i)) - y_i)^2
    + \alpha\,\mathrm{IPM}(\{\Phi(x_i)\}_{t_i=1}, \{\Phi(x_i)\}_{t_i=0})$
    with AdamW (weight decay) on standardised covariates and outcome, on
    minibatches, with early stopping on the factual loss of a validation split; $w_i = 1$ unless
    `reweight`. `alpha=0` (or `ipm=None`) is TARNet.

    **Arguments:**

    - `ipm`: [`jaxcausal.te.MMD`][] or [`jaxcausal.te.Wasserstein`][] (or `None`).
    - `alpha`: weight of the imbalance penalty.
    - `rep_width`, `rep_depth`: width and number of layers of the representation (default 200, 3).
    - `head_width`, `head_depth`: width and hidden layers of each outcome head (default 100, 2).
    - `activation`: hidden activation (ELU as in the paper).
    - `reweight`: weigh the factual loss by $w_i = t_i/(2u) + (1-t_i)/(2(1-u))$, $u$ the treated
      share, so both arms count equally (the paper's Algorithm 1). Off by default: on IHDP
      validation replications it did not help TARNet and hurt CFR-MMD
      (`benchmarks/te_ihdp_validation.py`).
    - `training`: a [`jaxcausal.te.Training`][].

    `fit(data, *, key)` needs a binary treatment and returns a
    [`jaxcausal.te.FittedRepresentationNet`][].

    **Reference:** Shalit, Johansson and Sontag (2017), *Estimating individual treatment effect:
    generalization bounds and algorithms*, ICML.
    """

    ipm: AbstractIPM | None = MMD()
    alpha: float = 1.0
    rep_width: int = eqx.field(static=True, default=200)
    rep_depth: int = eqx.field(static=True, default=3)
    head_width: int = eqx.field(static=True, default=100)
    head_depth: int = eqx.field(static=True, default=2)
    activation: Callable = eqx.field(static=True, default=jax.nn.elu)
    reweight: bool = eqx.field(static=True, default=False)
    training: Training = Training()

    def __check_init__(self):
        if self.alpha < 0:
            raise ValueError(f"alpha must be non-negative, got {self.alpha}")
        if self.rep_depth < 1 or self.head_depth < 0:
            raise ValueError(f"rep_depth must be >= 1 and head_depth >= 0; got {self.rep_depth}, "
                             f"{self.head_depth}")
        if self.ipm is not None and not isinstance(self.ipm, AbstractIPM):
            raise TypeError(f"ipm must be jaxcausal.te.MMD(...), Wasserstein(...) or None; got "
                            f"{type(self.ipm).__name__}")

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> FittedRepresentationNet:
        checked = check_eagerly(data, type(self).__name__)  # eager errors before compiling
        return _fit_cfr(self, data, key, checked)


class TARNet(AbstractTEModel):
    """Treatment-agnostic representation network (Shalit et al. 2017): [`jaxcausal.te.CFR`][]
    without the imbalance penalty. Same arguments as `CFR` except `ipm` and `alpha`."""

    rep_width: int = eqx.field(static=True, default=200)
    rep_depth: int = eqx.field(static=True, default=3)
    head_width: int = eqx.field(static=True, default=100)
    head_depth: int = eqx.field(static=True, default=2)
    activation: Callable = eqx.field(static=True, default=jax.nn.elu)
    reweight: bool = eqx.field(static=True, default=False)
    training: Training = Training()

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> FittedRepresentationNet:
        cfr = CFR(ipm=None, alpha=0.0, rep_width=self.rep_width, rep_depth=self.rep_depth,
                  head_width=self.head_width, head_depth=self.head_depth,
                  activation=self.activation, reweight=self.reweight, training=self.training)
        checked = check_eagerly(data, "TARNet")  # eager errors before compiling
        return _fit_cfr(cfr, data, key, checked)
