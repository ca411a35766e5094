"""`true_effects`: the effect curves of an SCM's own outcome, the ground truth for attributions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit
from ..scm import SCM, Do
from ._ace import _alphas, _check_levels, _discrete, _features, _reference
from ._curves import Curves
from ._effects import AbstractEffect, Total


def _units(scm: SCM, names, outcome, values: dict[str, Array], n: int, key) -> tuple:
    draws = scm.intervene(Do(values)).sample(n, key=key)
    dtype = jnp.result_type(float)
    x = jnp.stack([jnp.asarray(draws[v], dtype) for v in names], axis=1)
    return x, draws[outcome]


@eqx.debug.assert_max_traces(max_traces=None)
def _truth_impl(scm, names, outcome, output, alphas, reference, effect, n, key, chunk):
    d, m = alphas.shape
    dtype = alphas.dtype
    nan = jnp.full((n,), jnp.nan, dtype)
    x_obs, _ = _units(scm, names, outcome, {v: nan for v in names}, n, key)
    ref = x_obs.mean(0) if reference is None else jnp.broadcast_to(reference.astype(dtype), (d,))

    def y_of(y):
        return jnp.asarray(y, dtype) if output is None else (y == output).astype(dtype)

    def world(w, i, a, r):
        on_i = jnp.arange(d) == i
        if w == "total":
            vals = {v: jnp.where(on_i[k], a, nan) for k, v in enumerate(names)}
            return y_of(_units(scm, names, outcome, vals, n, key)[1])
        if w == "direct":
            held = x_obs
        else:
            vals = {v: jnp.where(on_i[k], r, nan) for k, v in enumerate(names)}
            held, y_ref = _units(scm, names, outcome, vals, n, key)
            if w == "natural_ref":
                return y_of(y_ref)
        # Every other feature keeps its value from the held world, unit by unit; the outcome's
        # own noise is the same (same key).
        vals = {v: jnp.where(on_i[k], a, held[:, k]) for k, v in enumerate(names)}
        return y_of(_units(scm, names, outcome, vals, n, key)[1])

    def row(args):
        i, a, r = args
        units = effect.combine({w: world(w, i, a, r) for w in effect.worlds()})
        return jnp.mean(units), jnp.std(units, ddof=1) / jnp.sqrt(n)

    rows = (jnp.repeat(jnp.arange(d), m), alphas.reshape(-1), jnp.repeat(ref, m))
    raw, se = jax.lax.map(row, rows, batch_size=chunk) if chunk else jax.vmap(row)(rows)
    return raw.reshape(d, m), se.reshape(d, m)


_truth_jit = filter_jit(_truth_impl)


def true_effects(
    scm: Any,
    *,
    outcome: str,
    features: Sequence[str],
    alphas: Any,
    effect: Any = Total(),
    key: PRNGKeyArray,
    n: int = 100_000,
    output: int | None = None,
    chunk: int | None = None,
) -> Curves:
    r"""The effect curves of the SCM's own `outcome`: the truth that attributions of a network
    trained to predict it are judged against.

    The same estimands as [`jaxcausal.attribution.ace`][], with the outcome's mechanism in place
    of the network: `Total()` is $\mathbb{E}[Y \mid do(X_i = \alpha)]$; `ControlledDirect()`
    sets $X_i = \alpha$ in the outcome's mechanism only, every other feature keeping its
    observational value unit by unit; the natural effects hold the other features at their
    values in the world $do(X_i = a_0)$. Every world shares each unit's exogenous noise (the
    outcome's included), so the contrasts are paired. Variables that are neither features nor
    the outcome (latent causes) respond to the interventions as the SCM says.

    The grid and the outcome are on the SCM's own scale: build the SCM on the scale of the
    network's inputs and output (e.g. min-max scaled, as the datasets of
    [`jaxcausal.datasets.attribution_synthetic`][] are).

    **Arguments:**

    - `scm`: the SCM, with the features and the outcome among its variables.
    - `outcome`: the outcome's name; `features`: the features' names.
    - `alphas`: `(m,)` or `(d, m)` grid; `effect`: the estimand; `key`: the units.
    - `n`: Monte Carlo units per world (standard errors in `Curves.se`).
    - `output`: for a discrete outcome, the level `c` whose probability $P(Y = c)$ is the effect's
      outcome (the quantity a classifier's `output=c` probability estimates).
    - `chunk`: rows evaluated together (memory); default from a budget of about 2^22 values.

    **Returns:** [`jaxcausal.attribution.Curves`][].
    """
    if not isinstance(scm, SCM):
        raise TypeError(f"scm must be a jaxcausal.scm.SCM; got {type(scm).__name__}")
    scm.graph.check_names([outcome], "outcome")
    names = _features(scm, features)
    if outcome in names:
        raise ValueError(f"outcome {outcome!r} must not be one of the features")
    if not isinstance(effect, AbstractEffect):
        raise TypeError(f"effect must be an effect object such as Total(); got {effect!r}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer of at least 2; got {n!r}")
    d = len(names)
    grid = _alphas(alphas, d)
    reference = _reference(effect, d)
    discrete = _discrete(scm, names + (outcome,))
    if outcome in discrete:
        if output is None:
            raise ValueError(
                f"outcome {outcome!r} is discrete: pass output=c for the probability of level c"
            )
        discrete.remove(outcome)
    elif output is not None:
        raise ValueError(f"output is for a discrete outcome; {outcome!r} is continuous")
    if discrete:
        _check_levels(grid, names, discrete, reference, effect)
    if chunk is None:
        rows = max(1, 2**22 // (n * (scm.graph.n_nodes + d) * 4))
        chunk = None if rows >= grid.size else rows
    raw, se = _truth_jit(scm, names, outcome, output, grid, reference, effect, n, key, chunk)
    values = raw - jnp.mean(raw, axis=1, keepdims=True)
    if is_concrete(values):
        values = jax.block_until_ready(values)
    return Curves(values=values, raw=raw, se=se, alphas=grid, features=names, effect=effect)
