"""`FittedGIM`: predictions for (unseen) perturbations from their features, and the learned SCM."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array, check_finite
from .._compile import filter_jit
from ._causal import AbstractCausalParams, LinearParams, MLPParams
from ._objective import Heads


class ShiftPrediction(NamedTuple):
    """Predicted shift of each variable's mechanism if it is targeted, in data units: the shift
    is Normal with `mean` and `scale`, each `(m, d)`."""

    mean: Float[Array, "m d"]
    scale: Float[Array, "m d"]


def check_features(features: Any, p: int, argument: str = "features") -> Array:
    f = as_float_array(features, argument)
    f = f[None, :] if f.ndim == 1 else f
    if f.ndim != 2 or f.shape[1] != p:
        raise ValueError(
            f"{argument} must have shape (m, {p}) (one row of {p} features per perturbation, as "
            f"in training); got {tuple(f.shape)}"
        )
    return check_finite(f, argument)


def _draw_cells(causal, heads: Heads, n: int, key, per_cell: bool) -> Array:
    """Standardised cells for one perturbation: `(n, d)`."""
    d = heads.logits.shape[-1]
    k_b, k_p, k_e = jr.split(key, 3)
    rows = n if per_cell else 1
    probs = jnp.broadcast_to(jax.nn.sigmoid(heads.logits), (rows, d))
    b = jr.bernoulli(k_b, probs).astype(heads.mu.dtype)
    psi = heads.mu[None, :] + jnp.exp(heads.log_s)[None, :] * jr.normal(k_p, (rows, d),
                                                                          heads.mu.dtype)
    sigma = jnp.exp(causal.log_scale)[None, :] * jnp.exp(b * heads.tau[None, :])
    u = causal.bias[None, :] + b * psi + sigma * jr.normal(k_e, (n, d), heads.mu.dtype)
    return causal.solve(u)


@filter_jit
def _sample(causal, heads, n, key, per_cell):
    keys = jr.split(key, heads.logits.shape[0])
    return jax.vmap(lambda h, k: _draw_cells(causal, h, n, k, per_cell))(heads, keys)


class FittedGIM(eqx.Module):
    """A fitted [`jaxcausal.gim.GIM`][]: predictions for perturbations given their features.

    - `causal`: the learned causal model's parameters (on standardised variables).
    - `net`: $g_\\phi$. `config`: the GIM. `names`: variable names. `train_loss`: per step.
    - `x_loc`, `x_scale`, `f_loc`, `f_scale`: standardisation of cells (by the control cells)
      and of features (by the training perturbations).
    - `shift_floor`: extra shift scale $c$ from the calibration: shifts are $\\mathcal N(\\mu,
      s^2 + c^2)$ (0: none).

    Features of new perturbations are `(m, p)` (or `(p,)` for one).
    """

    causal: AbstractCausalParams
    net: eqx.Module
    config: Any
    x_loc: Float[Array, " d"]
    x_scale: Float[Array, " d"]
    f_loc: Float[Array, " p"]
    f_scale: Float[Array, " p"]
    names: tuple[str, ...] = eqx.field(static=True)
    train_loss: Float[Array, "*batch steps"]
    batched: bool = eqx.field(static=True, default=False)
    shift_floor: Float[Array, ""] | float = 0.0

    def member(self, i: int) -> FittedGIM:
        """The `i`-th fit of a [`jaxcausal.gim.fit_batch`][] result."""
        if not self.batched:
            raise ValueError("member() is for results of jc.gim.fit_batch")
        causal, net, loss = jax.tree.map(
            lambda a: a[i] if eqx.is_array(a) else a, (self.causal, self.net, self.train_loss)
        )
        # the member's own setting of a hyperparameter sweep (array fields with one entry per fit)
        config = jax.tree.map(lambda a: a[i] if eqx.is_array(a) and a.ndim >= 1 else a,
                              self.config)
        return FittedGIM(
            causal=causal, net=net, config=config, x_loc=self.x_loc, x_scale=self.x_scale,
            f_loc=self.f_loc, f_scale=self.f_scale, names=self.names, train_loss=loss,
            shift_floor=self.shift_floor,
        )

    def _check(self):
        if self.batched:
            raise ValueError("this is a batch of fits; pick one with .member(i)")

    def heads(self, features: Any) -> Heads:
        """$g_\\phi$'s outputs for each row of `features` (standardised units)."""
        self._check()
        f = check_features(features, self.f_loc.shape[0])
        h = jax.vmap(self.net)((f - self.f_loc[None, :]) / self.f_scale[None, :])
        log_s = 0.5 * jnp.logaddexp(2.0 * h.log_s, 2.0 * jnp.log(self.shift_floor))
        return eqx.tree_at(lambda t: t.log_s, h, log_s)

    def target_probs(self, features: Any) -> Float[Array, "m d"]:
        """Probability that each variable's mechanism is targeted, `(m, d)`."""
        return jax.nn.sigmoid(self.heads(features).logits)

    def shift(self, features: Any) -> ShiftPrediction:
        """Distribution of each variable's shift if targeted, in data units."""
        h = self.heads(features)
        s = self.x_scale[None, :]
        return ShiftPrediction(h.mu * s, jnp.exp(h.log_s) * s)

    def sample(
        self, features: Any, n: int, *, key: PRNGKeyArray, per_cell: bool = True
    ) -> Float[Array, "m n d"]:
        """`n` cells of each predicted perturbed distribution, `(m, n, d)`.

        With `per_cell=True` (default) every cell draws its own intervention from $g_\\phi$: the
        predictive distribution of one cell, uncertainty about the intervention included. With
        `per_cell=False` one intervention is drawn per row and shared by its `n` cells: one
        plausible population.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        x = _sample(self.causal, self.heads(features), n, key, bool(per_cell))
        return self.x_loc[None, None, :] + self.x_scale[None, None, :] * x

    def mean(self, features: Any, *, n: int = 2000, key: PRNGKeyArray | None = None):
        """Predicted mean of each perturbed distribution, `(m, d)`: exact for the linear model
        ($(b + \\pi \\odot \\mu)(I - W)^{-1}$), else a Monte Carlo average of `n` cells (a fixed
        key by default, so repeated calls agree)."""
        h = self.heads(features)
        if isinstance(self.causal, LinearParams):
            u = self.causal.bias[None, :] + jax.nn.sigmoid(h.logits) * h.mu
            return self.x_loc[None, :] + self.x_scale[None, :] * self.causal.solve(u)
        key = jr.key(0) if key is None else key
        return jnp.mean(self.sample(features, n, key=key), axis=1)

    def posterior(self, features: Any, x: Any, *, key: PRNGKeyArray | None = None,
                  method: Any = None):
        """Few-shot posterior over the targets and shifts of a new perturbation given a few of
        its cells; see [`jaxcausal.gim.posterior`][]."""
        from ._posterior import posterior

        return posterior(self, features, x, key=key, method=method)

    @property
    def scm(self):
        """The learned causal model as a [`jaxcausal.scm.SCM`][] in data units.

        Edges with strength below `config.causal.edge_threshold` are left out; if the rest has a
        cycle (a cyclic `LinearSCM`, or an acyclicity penalty not yet at zero), the weakest edges on
        cycles are dropped, with a warning. Linear: `LinearGaussian` mechanisms; MLP:
        `AdditiveNoiseMLP` mechanisms with the soft gates folded into the weights.
        """
        self._check()
        return to_scm(self)


def dag_adjacency(strength: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Greedy maximal DAG: edges above `threshold`, strongest first, each kept unless it closes a
    cycle. Returns the 0/1 adjacency and how many edges above the threshold were dropped."""
    d = strength.shape[0]
    adj = np.zeros((d, d), dtype=int)
    reach = np.eye(d, dtype=bool)  # reach[i, j]: a path i -> ... -> j
    order = np.argsort(-strength, axis=None)
    dropped = 0
    for flat in order:
        i, j = divmod(int(flat), d)
        if strength[i, j] <= threshold or i == j:
            continue
        if reach[j, i]:
            dropped += 1
            continue
        adj[i, j] = 1
        reach = reach | (reach[:, i:i + 1] & reach[j:j + 1, :])
    return adj, dropped


def to_scm(fitted: FittedGIM):
    from .. import scm as jscm

    c = fitted.causal
    names = list(fitted.names)
    loc, scale = np.asarray(fitted.x_loc), np.asarray(fitted.x_scale)
    strength = np.abs(np.asarray(c.edge_weights()))
    adj, dropped = dag_adjacency(strength, float(fitted.config.causal.edge_threshold))
    if dropped:
        warnings.warn(
            f"the learned graph has cycles: {dropped} edge(s) were dropped to make "
            "FittedGIM.scm acyclic (the GIM's own predictions keep them)", UserWarning,
            stacklevel=3,
        )
    template = jscm.SCM.from_graph(adj, names)
    perm = [names.index(v) for v in template.graph.names]
    sigma = np.exp(np.asarray(c.log_scale)) * scale
    if isinstance(c, LinearParams):
        w = np.asarray(c.edge_weights()) * adj * scale[None, :] / scale[:, None]
        bias = loc + scale * np.asarray(c.bias) - loc @ w
        program = eqx.tree_at(
            lambda p: (p.weights, p.bias, p.scale), template.program,
            tuple(jnp.asarray(a) for a in (w[np.ix_(perm, perm)], bias[perm], sigma[perm])),
        )
    elif isinstance(c, MLPParams):
        program = _mlp_program(fitted, c, adj, perm, loc, scale, sigma, template.graph)
    else:  # pragma: no cover - the two causal models above are the only ones
        raise TypeError(f"no SCM conversion for {type(c).__name__}")
    return jscm.SCM(program, graph=template.graph, deterministic=())


def _mlp_program(fitted, c, adj, perm, loc, scale, sigma, graph):
    from ..scm import AdditiveNoiseMLP, AdditiveNoiseMLPProgram

    gates = np.asarray(c.gates()) * adj  # gates[i, j] for i -> j; hard graph
    p = np.asarray(perm)
    mlps = jax.tree.map(lambda a: a[p] if eqx.is_array(a) else a, c.mlps)
    g_in = jnp.asarray(gates.T[np.ix_(p, p)])  # [node j, input i] in graph order
    first = mlps.layers[0]
    w0 = first.weight[:, :, p] * g_in[:, None, :]
    mlps = eqx.tree_at(lambda m: m.layers[0].weight, mlps, w0)
    linear = np.asarray(c.linear).T[np.ix_(p, p)] * np.asarray(g_in)
    cfg = fitted.config.causal
    mech = AdditiveNoiseMLP(width=cfg.width, depth=cfg.depth, activation=cfg.activation)
    return AdditiveNoiseMLPProgram(
        graph=graph, mlps=mlps, linear=jnp.asarray(linear), mask=jnp.asarray(adj.T[np.ix_(p, p)]
                                                                                 .astype(bool)),
        in_loc=jnp.asarray(loc[p]), in_scale=jnp.asarray(scale[p]),
        out_loc=jnp.asarray((loc + scale * np.asarray(c.bias))[p]),
        out_scale=jnp.asarray(scale[p]), scale=jnp.asarray(sigma[p]), config=mech,
    )
