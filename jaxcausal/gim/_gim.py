r"""`GIM`: a generative intervention model (Schneider, Lorch, Kilbertus, Schölkopf and Krause,
ICML 2025). $g_\phi$ maps a perturbation's features $\gamma$ to a distribution over atomic
interventions (targets $b \in \{0,1\}^d$, shifts $\psi$) in a causal model $p_\theta$ learned
jointly; the MAP objective is

$$\max_{\theta, \phi} \sum_k \log E_{b, \psi \sim g_\phi(\gamma_k)} p_\theta(D_k \mid b, \psi) +
\log p_\theta(D_0) - \lambda_G \lVert W \rVert_1 - \lambda_T \sum_k \sum_j \pi_{kj} - \rho\, h(W)$$

($D_0$ the control cells, $h$ NOTEARS' acyclicity; see `jaxcausal.gim._objective` for the exact
and the Monte Carlo expectation). All contexts, the expectation and the optimiser steps run in
one compiled `jaxcausal.train` loop; [`jaxcausal.gim.fit_batch`][] trains several seeds or
hyperparameter settings in one vmapped call.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Key, PRNGKeyArray

from .._compile import filter_jit
from ..nn import MLP
from ..train import run
from ._causal import MLPSCM, AbstractCausal, LinearSCM
from ._data import Groups, PerturbationData, make_groups
from ._fitted import FittedGIM
from ._objective import Heads, Hyper, Trainable, gim_loss


class Net(eqx.Module):
    """$g_\\phi$: an MLP from standardised features to the [`Heads`][] of each variable."""

    mlp: MLP
    d: int = eqx.field(static=True)
    scale_change: bool = eqx.field(static=True)

    def __call__(self, f: Float[Array, " p"]) -> Heads:
        out = self.mlp(f)
        d = self.d
        tau = out[3 * d:] if self.scale_change else jnp.zeros((d,), out.dtype)
        return Heads(logits=out[:d], mu=out[d:2 * d], log_s=out[2 * d:3 * d], tau=tau)


def _init_net(p: int, d: int, width: int, depth: int, scale_change: bool, key) -> Net:
    n_out = (4 if scale_change else 3) * d
    mlp = MLP(p, n_out, width, depth, activation=jax.nn.gelu, key=key)
    last = mlp.layers[-1]
    # Start from "rarely a target (pi = 0.05), shift N(0, 1)": zero output weights, these biases.
    bias = jnp.zeros((n_out,)).at[:d].set(jnp.log(0.05 / 0.95))
    mlp = eqx.tree_at(
        lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp,
        (jnp.zeros_like(last.weight), bias),
    )
    return Net(mlp, d, scale_change)


class GIM(eqx.Module):
    """Generative intervention model: configuration; `fit(data, *, key)` returns a
    [`jaxcausal.gim.FittedGIM`][].

    **Arguments:**

    - `causal`: [`jaxcausal.gim.LinearSCM`][] (default) or [`jaxcausal.gim.MLPSCM`][].
    - `objective`: `"likelihood"` (the marginal likelihood of each perturbation's cells),
      `"energy"` (the energy distance between simulated and observed cells, for models
      without a tractable likelihood), or `"auto"` (default): the likelihood, except for an
      `MLPSCM(acyclic=False)`, whose likelihood would need the Jacobian determinant of a
      cyclic nonlinear map. The module docs of `jaxcausal.gim._objective` give both.
    - `n_samples`: with the likelihood, `None` (default) sums the targets out and integrates
      the shifts exactly; an integer uses that many relaxed-Bernoulli Monte Carlo samples per
      variable (the paper's estimator), with the concrete temperature annealed geometrically
      over `temperature`. With the energy distance: cells simulated per group and step
      (`None`: 64).
    - `sparsity`: L1 weight on the graph's edge strengths (per cell).
    - `target_penalty`: cost in nats of each expected target per perturbation (a log prior odds
      against targets; it breaks the tie between "no target" and "a target shifted by 0").
    - `acyclicity`: final weight of NOTEARS' penalty, ramped up linearly from 0 during training
      (used when `causal.acyclic`).
    - `net_l2`: weight of an L2 penalty on $g_\\phi$'s weights (per cell), for smooth maps
      from features to interventions that carry over to unseen perturbations.
    - `width`, `depth`: of $g_\\phi$'s MLP. `scale_change`: a target's noise scale may change
      too (by $e^{\\tau_j}$, $\\tau$ from $g_\\phi$).
    - `learning_rate`, `max_steps`, `batch_size` (perturbation groups per step; `None`: all).
    - `calibration_folds`: after the fit, this many models are refitted without one fold of
      perturbations each (one vmapped call) to scale $g_\\phi$'s shift uncertainty so that
      held-out perturbations are covered at the stated rate; `None` skips it.
    """

    causal: AbstractCausal = LinearSCM()
    objective: str = eqx.field(static=True, default="auto")
    n_samples: int | None = eqx.field(static=True, default=None)
    sparsity: float | Array = 0.002
    target_penalty: float | Array = 2.0
    acyclicity: float | Array = 5.0
    net_l2: float | Array = 1e-3
    temperature: tuple[float, float] = (1.0, 0.2)
    width: int = eqx.field(static=True, default=32)
    depth: int = eqx.field(static=True, default=2)
    scale_change: bool = eqx.field(static=True, default=False)
    learning_rate: float | Array = 0.01
    max_steps: int = eqx.field(static=True, default=1500)
    batch_size: int | None = eqx.field(static=True, default=None)
    calibration_folds: int | None = eqx.field(static=True, default=5)

    def __check_init__(self):
        if not isinstance(self.causal, AbstractCausal):
            raise TypeError(
                "causal must be jc.gim.LinearSCM() or jc.gim.MLPSCM(); got "
                f"{type(self.causal).__name__}"
            )
        if self.objective not in ("auto", "likelihood", "energy"):
            raise ValueError(
                f"objective must be 'auto', 'likelihood' or 'energy'; got {self.objective!r}"
            )
        if self.n_samples is not None and (not isinstance(self.n_samples, int)
                                           or self.n_samples < 1):
            raise ValueError(f"n_samples must be None or a positive integer; got {self.n_samples}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1; got {self.max_steps}")
        if self.width < 1 or self.depth < 0:
            raise ValueError(f"width must be >= 1 and depth >= 0; got {self.width}, {self.depth}")

    @property
    def resolved_objective(self) -> str:
        """The objective `fit` uses (`"auto"` resolved)."""
        if self.objective != "auto":
            return self.objective
        cyclic_mlp = isinstance(self.causal, MLPSCM) and not self.causal.acyclic
        return "energy" if cyclic_mlp else "likelihood"

    def fit(
        self, data: PerturbationData, *, key: PRNGKeyArray, groups: Any = None
    ) -> FittedGIM:
        """Fits the GIM to `data` (a [`jaxcausal.gim.PerturbationData`][]), then calibrates its
        shift scales by cross-fitting over `calibration_folds` folds of perturbations (see
        [`jaxcausal.gim.calibrate`][]); `groups` (`(K,)` ids, e.g. the drug of each
        perturbation) keeps perturbations that belong together in one fold."""
        from ._calibrate import calibrate

        prepared = prepare(data)
        fitted = _finish(self, prepared, _fit_jit(self, prepared.groups, prepared.feats, key))
        if self.calibration_folds is None:
            return fitted
        return calibrate(fitted, data, key=jr.fold_in(key, 1), groups=groups, prepared=prepared)


class Prepared(eqx.Module):
    """Standardised data and the constants to map back (host-side, once per data set)."""

    groups: Groups
    feats: Float[Array, "G p"]
    x_loc: Float[Array, " d"]
    x_scale: Float[Array, " d"]
    f_loc: Float[Array, " p"]
    f_scale: Float[Array, " p"]
    names: tuple[str, ...] = eqx.field(static=True)


def prepare(data: PerturbationData) -> Prepared:
    if not isinstance(data, PerturbationData):
        raise TypeError(f"data must be a jc.gim.PerturbationData; got {type(data).__name__}")
    x, ctx, f = np.asarray(data.x), np.asarray(data.context), np.asarray(data.features)
    control = x[ctx == -1]
    loc = control.mean(0)
    scale = control.std(0) if control.shape[0] > 1 else x.std(0)
    scale = np.where(scale > 0, scale, np.where(x.std(0) > 0, x.std(0), 1.0))
    f_loc, f_scale = f.mean(0), f.std(0)
    f_scale = np.where(f_scale > 0, f_scale, 1.0)
    groups = make_groups((x - loc) / scale, ctx, data.n_perturbations)
    fs = (f - f_loc) / f_scale
    gctx = np.asarray(groups.context)
    feats = np.where(gctx[:, None] >= 0, fs[np.maximum(gctx, 0)], 0.0)
    dt = data.x.dtype
    return Prepared(
        groups=groups, feats=jnp.asarray(feats, dt), x_loc=jnp.asarray(loc, dt),
        x_scale=jnp.asarray(scale, dt), f_loc=jnp.asarray(f_loc, dt),
        f_scale=jnp.asarray(f_scale, dt), names=data.names,
    )


def _trainable(gim: GIM, d: int, p: int, key) -> Trainable:
    k_c, k_n = jr.split(key)
    hyper = Hyper(
        sparsity=jnp.asarray(gim.sparsity, float), target_penalty=jnp.asarray(gim.target_penalty,
                                                                              float),
        acyclicity=jnp.asarray(gim.acyclicity, float), net_l2=jnp.asarray(gim.net_l2, float),
        temperature=jnp.asarray(gim.temperature, float), max_steps=gim.max_steps,
        n_samples=gim.n_samples, acyclic=gim.causal.acyclic,
        objective=gim.resolved_objective,
    )
    return Trainable(
        causal=gim.causal.init(d, key=k_c),
        net=_init_net(p, d, gim.width, gim.depth, gim.scale_change, k_n), hyper=hyper,
    )


_FILTER = Trainable(causal=eqx.is_inexact_array, net=eqx.is_inexact_array, hyper=False)


@eqx.debug.assert_max_traces(max_traces=None)
def _fit_impl(gim: GIM, groups: Groups, feats: Array, key: PRNGKeyArray, weights=None):
    k_init, k_train = jr.split(key)
    d, p = groups.x.shape[2], feats.shape[1]
    model = _trainable(gim, d, p, k_init)
    weights = jnp.ones(groups.x.shape[0], groups.x.dtype) if weights is None else weights
    res = run(
        gim_loss, model, (groups, feats), optax.adam(gim.learning_rate), key=k_train,
        weights=weights, max_steps=gim.max_steps,
        batch_size=gim.batch_size, eval_every=max(1, min(50, gim.max_steps)),
        filter_spec=_FILTER, with_step=True,
    )
    return res.model, res.train_loss


_fit_jit = filter_jit(_fit_impl)


def count_fit_traces() -> int:
    """How many times the GIM fit has been traced (for no-recompilation tests)."""
    return eqx.debug.get_num_traces(_fit_impl)


def _finish(gim: GIM, prepared: Prepared, out) -> FittedGIM:
    model, losses = out
    return FittedGIM(
        causal=model.causal, net=model.net, config=gim, x_loc=prepared.x_loc,
        x_scale=prepared.x_scale, f_loc=prepared.f_loc, f_scale=prepared.f_scale,
        names=prepared.names, train_loss=losses,
    )


def _batch_axes(gim: GIM) -> Any:
    return jax.tree.map(lambda a: 0 if eqx.is_array(a) and a.ndim >= 1 else None, gim)


def fit_batch(gim: GIM, data: PerturbationData, *, keys: Key[Array, " S"]) -> FittedGIM:
    """Fits several GIMs in one compiled, vmapped call: one per key in `keys` (`(S,)`), and,
    where `sparsity`, `target_penalty`, `acyclicity` or `learning_rate` is an `(S,)` array, one
    per setting. Returns a [`jaxcausal.gim.FittedGIM`][] whose arrays carry the leading axis of
    size `S`; `fitted.member(i)` is the `i`-th fit (equal to fitting it alone with
    `calibration_folds=None`). The members are not calibrated: their shift scales are those
    $g_\\phi$ learned, too small for unseen perturbations (see [`jaxcausal.gim.calibrate`][]);
    calibrate the member you keep with `jc.gim.calibrate(fitted.member(i), data, key=k)` before
    reading its intervals."""
    prepared = prepare(data)
    keys = jnp.asarray(keys)
    out = _fit_many(gim, _batch_axes(gim), prepared.groups, prepared.feats, keys)
    model, losses = out
    fitted = FittedGIM(
        causal=model.causal, net=model.net, config=gim, x_loc=prepared.x_loc,
        x_scale=prepared.x_scale, f_loc=prepared.f_loc, f_scale=prepared.f_scale,
        names=prepared.names, train_loss=losses, batched=True,
    )
    return fitted


@filter_jit
def _fit_many(gim, axes, groups, feats, keys):
    return eqx.filter_vmap(_fit_impl, in_axes=(axes, None, None, 0))(gim, groups, feats, keys)
