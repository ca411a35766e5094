r"""Baselines with the GIM's interface (`fit(data, *, key)`; `sample`, `mean`):

- [`jaxcausal.gim.Unstructured`][]: a conditional Gaussian, $x \mid \gamma \sim \mathcal
  N(\mu(\gamma), D(\gamma) C D(\gamma))$ with $\mu$ and the scales $D$ from an MLP of the features
  and a shared correlation factor $C = L L^\top$; no causal structure.
- [`jaxcausal.gim.TwoStage`][]: free interventions per training perturbation, inferred jointly
  with the causal model (a GIM on one-hot perturbation ids), then regressed on the features.
- [`jaxcausal.gim.Control`][]: predicts no effect (the control cells).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._compile import filter_jit
from ..nn import MLP
from ..train import run, weighted_mean
from ._causal import AbstractCausal, LinearSCM
from ._data import PerturbationData
from ._fitted import FittedGIM, check_features
from ._gim import GIM, prepare
from ._objective import Heads

_LOG_2PI = float(np.log(2.0 * np.pi))


class _Gaussian(eqx.Module):
    mlp: MLP
    chol: Float[Array, "d d"]

    def factor(self) -> Array:
        lower = jnp.tril(self.chol, -1)
        return lower + jnp.diag(jnp.exp(jnp.diag(self.chol)))

    def __call__(self, f: Array) -> tuple[Array, Array]:
        out = self.mlp(f)
        d = self.chol.shape[0]
        return out[:d], out[d:]


def _gaussian_loss(model: _Gaussian, data, weights, *, key):
    groups, inputs = data
    lower = model.factor()
    log_det_l = jnp.sum(jnp.log(jnp.diag(lower)))

    def one(x, mask, n, f):
        mu, log_d = model(f)
        z = (x - mu[None, :]) / jnp.exp(log_d)[None, :]
        z = jax.scipy.linalg.solve_triangular(lower, z.T, lower=True).T
        quad = jnp.sum(jnp.sum(z**2, axis=1) * mask)
        d = x.shape[1]
        return -0.5 * (n * d * _LOG_2PI + 2.0 * n * (jnp.sum(log_d) + log_det_l) + quad)

    ll = jax.vmap(one)(groups.x, groups.mask, groups.count, inputs)
    return -jnp.sum(weights * ll) / jnp.sum(weights * groups.count)


class FittedUnstructured(eqx.Module):
    """A fitted [`jaxcausal.gim.Unstructured`][] model."""

    model: _Gaussian
    x_loc: Array
    x_scale: Array
    f_loc: Array
    f_scale: Array

    def _heads(self, features):
        f = check_features(features, self.f_loc.shape[0])
        f = (f - self.f_loc[None, :]) / self.f_scale[None, :]
        f = jnp.concatenate([f, jnp.zeros((f.shape[0], 1), f.dtype)], axis=1)
        return jax.vmap(self.model)(f)

    def mean(self, features) -> Float[Array, "m d"]:
        mu, _ = self._heads(features)
        return self.x_loc[None, :] + self.x_scale[None, :] * mu

    def sample(self, features, n: int, *, key: PRNGKeyArray) -> Float[Array, "m n d"]:
        mu, log_d = self._heads(features)
        eps = jr.normal(key, (mu.shape[0], n, mu.shape[1]), mu.dtype)
        z = mu[:, None, :] + jnp.exp(log_d)[:, None, :] * (eps @ self.model.factor().T)
        return self.x_loc[None, None, :] + self.x_scale[None, None, :] * z


@filter_jit
def _fit_gaussian(cfg, groups, inputs, key):
    k_init, k_fit = jr.split(key)
    d, p = groups.x.shape[2], inputs.shape[1]
    mlp = MLP(p, 2 * d, cfg.width, cfg.depth, activation=jax.nn.gelu, key=k_init)
    model = _Gaussian(mlp, jnp.zeros((d, d), groups.x.dtype))
    res = run(
        _gaussian_loss, model, (groups, inputs), optax.adam(cfg.learning_rate), key=k_fit,
        weights=jnp.ones(groups.x.shape[0], groups.x.dtype), max_steps=cfg.max_steps,
        batch_size=cfg.batch_size, eval_every=max(1, min(50, cfg.max_steps)),
    )
    return res.model


class Unstructured(eqx.Module):
    """Conditional Gaussian baseline (see the module docstring): MLP `width`, `depth`; trained by
    maximum likelihood with Adam (`learning_rate`, `max_steps`, `batch_size` groups per step)."""

    width: int = eqx.field(static=True, default=64)
    depth: int = eqx.field(static=True, default=2)
    learning_rate: float = 0.005
    max_steps: int = eqx.field(static=True, default=1500)
    batch_size: int | None = eqx.field(static=True, default=None)

    def fit(self, data: PerturbationData, *, key: PRNGKeyArray) -> FittedUnstructured:
        prep = prepare(data)
        is_control = (prep.groups.context < 0).astype(prep.feats.dtype)[:, None]
        inputs = jnp.concatenate([prep.feats, is_control], axis=1)
        model = _fit_gaussian(self, prep.groups, inputs, key)
        return FittedUnstructured(model, prep.x_loc, prep.x_scale, prep.f_loc, prep.f_scale)


class FittedControl(eqx.Module):
    """Predicts the control distribution for every perturbation."""

    cells: Float[Array, "n0 d"]
    p: int = eqx.field(static=True)

    def mean(self, features) -> Float[Array, "m d"]:
        m = check_features(features, self.p).shape[0]
        return jnp.broadcast_to(jnp.mean(self.cells, axis=0), (m, self.cells.shape[1]))

    def sample(self, features, n: int, *, key: PRNGKeyArray) -> Float[Array, "m n d"]:
        m = check_features(features, self.p).shape[0]
        rows = jr.randint(key, (m, n), 0, self.cells.shape[0])
        return self.cells[rows]


class Control(eqx.Module):
    """The no-effect baseline: every perturbation is predicted to leave the cells as in control
    (samples are control cells drawn with replacement)."""

    def fit(self, data: PerturbationData, *, key: PRNGKeyArray | None = None) -> FittedControl:
        if not isinstance(data, PerturbationData):
            raise TypeError(f"data must be a jc.gim.PerturbationData; got {type(data).__name__}")
        return FittedControl(data.cells(-1), data.n_features)


class _Regressed(eqx.Module):
    """Stage two: an MLP from features to the stage-one heads."""

    mlp: MLP
    d: int = eqx.field(static=True)

    def __call__(self, f: Array) -> Heads:
        out = self.mlp(f)
        d = self.d
        return Heads(out[:d], out[d:2 * d], out[2 * d:3 * d], out[3 * d:])


def _regression_loss(model: _Regressed, data, weights, *, key):
    f, target = data
    pred = jax.vmap(model.mlp)(f)
    return weighted_mean(jnp.mean((pred - target) ** 2, axis=1), weights)


@filter_jit
def _fit_regression(cfg, f, target, key):
    k_init, k_fit = jr.split(key)
    mlp = MLP(f.shape[1], target.shape[1], cfg.width, cfg.depth, activation=jax.nn.gelu,
              key=k_init)
    res = run(
        _regression_loss, _Regressed(mlp, target.shape[1] // 4), (f, target),
        optax.adamw(cfg.learning_rate, weight_decay=1e-3), key=k_fit,
        weights=jnp.ones(f.shape[0], f.dtype), max_steps=cfg.max_steps,
        eval_every=max(1, min(50, cfg.max_steps)),
    )
    return res.model


class TwoStage(eqx.Module):
    """Two-stage baseline: stage one is a GIM whose $g$ is a free table (one-hot perturbation ids,
    a linear map), so each training perturbation gets its own intervention, learned jointly with
    the causal model; stage two regresses those interventions (target logits, shift means and
    scales) on the features with an MLP (`width`, `depth`). Returns a
    [`jaxcausal.gim.FittedGIM`][] (same queries as the GIM)."""

    causal: AbstractCausal = LinearSCM()
    width: int = eqx.field(static=True, default=32)
    depth: int = eqx.field(static=True, default=2)
    learning_rate: float = 0.01
    max_steps: int = eqx.field(static=True, default=1500)
    stage_one: GIM | None = None

    def fit(self, data: PerturbationData, *, key: PRNGKeyArray) -> FittedGIM:
        k1, k2 = jr.split(key)
        k = data.n_perturbations
        ids = PerturbationData(data.x, data.context, np.eye(k), names=data.names)
        gim = self.stage_one or GIM(causal=self.causal, depth=0, max_steps=self.max_steps,
                                    calibration_folds=None)
        first = gim.fit(ids, key=k1)
        heads = first.heads(np.eye(k))
        target = jnp.concatenate([heads.logits, heads.mu, heads.log_s, heads.tau], axis=1)
        prep = prepare(data)
        f = (data.features - prep.f_loc[None, :]) / prep.f_scale[None, :]
        net = _fit_regression(self, f, target, k2)
        return FittedGIM(
            causal=first.causal, net=net, config=first.config, x_loc=first.x_loc,
            x_scale=first.x_scale, f_loc=prep.f_loc, f_scale=prep.f_scale, names=data.names,
            train_loss=first.train_loss,
        )
