"""`fit`: learns the mechanisms of an SCM over a known graph from data."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pandas as pd
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._checks import as_float_array, check_finite, check_weights, is_concrete, to_device
from .._compile import jit
from ..learners._base import sequential_under_vmap
from ..nn import MLP
from ..train import fit_ensemble, weighted_mean
from ._mechanisms import AdditiveNoiseMLPProgram, LinearGaussianProgram
from ._scm import SCM


def data_matrix(scm: SCM, data: Any, argument: str = "data") -> Float[Array, "n d"]:
    """Stacks the graph's columns of a DataFrame or dict into an `(n, d)` array (graph order)."""
    if isinstance(data, pd.DataFrame):
        cols = {c: data[c].to_numpy() for c in data.columns}
    elif isinstance(data, Mapping):
        cols = dict(data)
    else:
        raise TypeError(
            f"{argument} must be a pandas DataFrame or a dict {{name: (n,) values}}; got "
            f"{type(data).__name__}"
        )
    missing = [v for v in scm.graph.names if v not in cols]
    if missing:
        raise ValueError(f"{argument} has no columns for nodes {missing}; it has {list(cols)}")
    arrs = [as_float_array(cols[v], f"{argument}[{v!r}]") for v in scm.graph.names]
    shapes = {v: tuple(a.shape) for v, a in zip(scm.graph.names, arrs)}
    if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
        raise ValueError(f"{argument} columns must be 1-d arrays of one length; got {shapes}")
    if all(is_concrete(a) for a in arrs):
        # stacked on the host: an eager `jnp.stack` compiles a program in every new process
        x = jax.device_put(np.stack([np.asarray(a) for a in arrs], axis=1).astype(
            jnp.result_type(*arrs)))
    else:
        x = jnp.stack(arrs, axis=1)
    return check_finite(x, argument)


# one node at a time under vmap: batched LAPACK kernels can deadlock XLA's CPU thread pool
_solve = sequential_under_vmap(jnp.linalg.solve)


@jit
def _fit_linear(x, w, mask):
    # Weighted least squares per node on [1, parents]; non-parent columns get an identity row in
    # the normal equations, so their coefficients are exactly zero.
    n, d = x.shape
    design = jnp.concatenate([jnp.ones((n, 1), x.dtype), x], axis=1)

    def one(mj, y):
        keep = jnp.concatenate([jnp.ones((1,), bool), mj])
        xd = jnp.where(keep[None, :], design, 0.0)
        a = (xd * w[:, None]).T @ xd + jnp.diag(jnp.where(keep, 0.0, 1.0))
        beta = _solve(a, (xd * w[:, None]).T @ y)
        resid = y - xd @ beta
        return beta, jnp.sqrt(weighted_mean(resid**2, w))

    beta, scale = jax.vmap(one, in_axes=(1, 1))(mask, x)
    return beta[:, 1:].T, beta[:, 0], scale


class _NodeNet(eqx.Module):
    """Node `j`'s network for ensemble training: its linear row and MLP, parent mask and one-hot
    target column (booleans, so the optimiser leaves them alone); stacked over nodes."""

    mlp: MLP
    linear: Float[Array, "*nodes d"]
    mask: Bool[Array, "*nodes d"]
    target: Bool[Array, "*nodes d"]

    def predict(self, data: Array) -> Array:
        inputs = jnp.where(self.mask[None, :], data, 0.0)
        return inputs @ self.linear + jax.vmap(self.mlp)(inputs)


def _node_loss(model: _NodeNet, data: Array, weights: Array, *, key: PRNGKeyArray) -> Array:
    target = jnp.sum(jnp.where(model.target[None, :], data, 0.0), axis=1)
    return weighted_mean((target - model.predict(data)) ** 2, weights)


@functools.lru_cache(maxsize=32)
def _adamw(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    # One optimiser object per setting: a new one at every fit would recompile the loop.
    return optax.adamw(learning_rate, weight_decay=weight_decay)


def _optimiser(cfg) -> optax.GradientTransformation:
    if is_concrete(cfg.learning_rate) and is_concrete(cfg.weight_decay):
        return _adamw(float(cfg.learning_rate), float(cfg.weight_decay))
    # Traced settings (a vmapped sweep): built inside the trace, which compiles once anyway.
    return optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)


def _zero_output_layer(mlps: MLP) -> MLP:
    last = mlps.layers[-1]
    return eqx.tree_at(
        lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlps,
        (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
    )


def _fit_mlp(program: AdditiveNoiseMLPProgram, x, w, key, cfg):
    # Branch-free in the data (no host checks), so it runs under `jit` and `vmap`.
    d = x.shape[1]
    mu = jnp.sum(x * w[:, None], axis=0) / jnp.sum(w)
    sd = jnp.sqrt(jnp.sum((x - mu[None, :]) ** 2 * w[:, None], axis=0) / jnp.sum(w))
    sd = jnp.where(sd > 0, sd, 1.0)
    xs = (x - mu[None, :]) / sd[None, :]
    k_val, k_fit = jr.split(key)
    val = jr.bernoulli(k_val, cfg.val_fraction, (x.shape[0],)) & (w > 0)
    use_val = not is_concrete(cfg.val_fraction) or cfg.val_fraction > 0
    has_val = jnp.any(val) if use_val else jnp.array(False)
    train_w = jnp.where(has_val & val, 0.0, w)
    val_w = jnp.where(has_val, jnp.where(val, w, 0.0), w)  # no held-out rows: score the fit
    # Start at the least-squares solution (on the training rows) with the MLPs' outputs at zero.
    beta, _, _ = _fit_linear(xs, train_w, jnp.asarray(program.mask.T))
    eye = jnp.eye(d, dtype=bool)
    nets = _NodeNet(_zero_output_layer(program.mlps), beta.T, program.mask, eye)
    res = fit_ensemble(
        _node_loss, nets, xs, _optimiser(cfg),
        key=k_fit,
        weights=jnp.broadcast_to(train_w, (d,) + train_w.shape),
        val_weights=jnp.broadcast_to(val_w, (d,) + w.shape) if use_val else None,
        max_steps=cfg.max_steps, batch_size=cfg.batch_size, eval_every=cfg.eval_every,
        patience=cfg.patience if use_val else None,
    )
    pred = eqx.filter_vmap(lambda net: net.predict(xs))(res.model)
    resid = xs.T - pred
    scale = jnp.sqrt(jnp.sum(resid**2 * w[None, :], axis=1) / jnp.sum(w)) * sd
    linear = jnp.where(program.mask, res.model.linear, 0.0)
    return AdditiveNoiseMLPProgram(
        graph=program.graph, mlps=res.model.mlp, linear=linear, mask=program.mask, in_loc=mu,
        in_scale=sd, out_loc=mu, out_scale=sd, scale=scale, config=program.config,
    )


def _constant_columns(xp, x, w):
    mu = xp.sum(x * w[:, None], axis=0) / xp.sum(w)
    var = xp.sum((x - mu[None, :]) ** 2 * w[:, None], axis=0) / xp.sum(w)
    return var <= (jnp.finfo(x.dtype).eps * xp.maximum(xp.abs(mu), 1.0)) ** 2


def _check_not_constant(x: Array, w: Array, names: tuple[str, ...]) -> Array:
    if is_concrete(x) and is_concrete(w):
        # on the host, in the data's precision: eager `jnp` would compile a dozen small programs
        xn = np.asarray(x)
        constant = _constant_columns(np, xn, np.asarray(w, dtype=xn.dtype))
        bad = [v for v, c in zip(names, constant) if c]
        if bad:
            raise ValueError(
                f"data columns {bad} are constant (on the rows with positive weight); a constant "
                "node has no noise to fit and makes its children's regressions singular. Drop "
                "it or condition on it"
            )
        return x
    constant = _constant_columns(jnp, x, w)
    return eqx.error_if(x, jnp.any(constant), "data has a constant column")


def fit(
    template: SCM,
    data: Any,
    *,
    key: PRNGKeyArray | None = None,
    weights: Float[Array, " n"] | None = None,
) -> SCM:
    """Learns the mechanisms of `template` (an SCM from [`jaxcausal.scm.SCM.from_graph`][]).

    **Arguments:**

    - `template`: gives the graph and the mechanism family (its parameters are the starting
      point for MLPs).
    - `data`: a DataFrame or dict with one column per node (other columns are ignored).
    - `key`: draws the validation split and minibatches of MLP mechanisms (unused for linear).
    - `weights`: optional `(n,)` row weights; rows with weight 0 do not influence the fit (fit
      to a subset, e.g. the observational blocks, with a 0/1 mask).

    **Returns:** a new SCM with fitted mechanisms and noise scales, without interventions.

    Linear-Gaussian mechanisms are fitted in closed form (weighted least squares per node);
    additive-noise MLPs are trained together as one ensemble of `d` networks, starting from the
    least-squares fit. Runs under `jax.jit` and `jax.vmap` (over keys, weights or data), so an
    SCM can be fitted inside a larger compiled model; a constant column raises (eagerly, or
    through `eqx.error_if` when traced).
    """
    if not isinstance(template, SCM):
        raise TypeError(f"template must be a jaxcausal.scm.SCM; got {type(template).__name__}")
    program = template.program
    if not isinstance(program, (LinearGaussianProgram, AdditiveNoiseMLPProgram)):
        raise TypeError(
            "template must come from jc.scm.SCM.from_graph (its mechanisms are parametric); got "
            f"an SCM whose model is {type(program).__name__}"
        )
    x = data_matrix(template, data)
    n, d = x.shape
    if n < d + 2:
        raise ValueError(f"data must have at least {d + 2} rows to fit {d} mechanisms; got {n}")
    if weights is None:
        w = to_device(np.ones((n,)), x.dtype) if is_concrete(x) else jnp.ones((n,), x.dtype)
    else:
        w = check_weights(weights, n, "weights")
    x = _check_not_constant(x, w, template.graph.names)
    if isinstance(program, LinearGaussianProgram):
        mask = jnp.asarray(np.asarray(template.graph.adjacency))
        weights_, bias, scale = _fit_linear(x, w, mask)
        fitted = LinearGaussianProgram(
            graph=program.graph, weights=weights_, bias=bias, scale=scale
        )
    else:
        if key is None:
            raise ValueError("key is required to fit AdditiveNoiseMLP mechanisms")
        fitted = _fit_mlp(program, x, w, key, program.config)
    return SCM(fitted, graph=template.graph, deterministic=())

