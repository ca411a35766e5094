"""Unit-level counterfactuals: abduction of each unit's noise, action, prediction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_float_array, check_finite, is_concrete
from .._compile import filter_jit
from ._interventions import AbstractIntervention, Do, Joint, standardise
from ._scm import SCM, broadcast_interventions, run_unit

_NEWTON_STEPS = 30


def _plan(scm: SCM, intervention: AbstractIntervention):
    """Static bookkeeping: which nodes the action can change and which noise must be inverted.

    A hard target downstream of no other target keeps its observed value where its `Do` value is
    NaN and takes the `Do` value elsewhere, so its own noise is never needed (it may be discrete).
    """
    g = scm.graph
    targets = intervention.targets()
    below: set[str] = set()
    for t in targets:
        below.update(g.descendants(t))
    parts = intervention.parts if isinstance(intervention, Joint) else (intervention,)
    hard = {t for p in parts if isinstance(p, Do) for t in p.targets()}
    affected = below | {t for t in targets if t not in hard}
    noise = scm.noise_sites
    inverted = []
    for u in noise:
        children = g.children(u)
        if not any(c in affected for c in children):
            continue
        if len(children) != 1 or [p for p in g.parents(children[0]) if p in noise] != [u]:
            raise ValueError(
                f"cannot abduct the explicit noise {u!r}: counterfactuals need each noise site to "
                "feed exactly one deterministic variable that has no other noise parent; "
                f"{u!r} feeds {list(children)}"
            )
        inverted.append((u, children[0]))
    return affected, inverted


def _unit(scm, ivs, endo, affected, inverted, obs):
    """Counterfactual of one unit. `obs` holds the observed endogenous values."""
    key = jr.key(0)  # every sample site is substituted or replayed: the key draws nothing used
    det = set(scm.deterministic)
    obs_sample = {v: obs[v] for v in endo if v not in det}

    def factual(u):
        subs = {**obs_sample, **{name: u[i] for i, (name, _) in enumerate(inverted)}}
        return run_unit(scm.program, scm.interventions, key, substitute=subs)

    def resid(u):
        values, _ = factual(u)
        return jnp.stack([values[c] - obs[c] for _, c in inverted])

    u = jnp.zeros((len(inverted),), dtype=jnp.result_type(float))
    if inverted:
        def newton(_, u):
            return u - jnp.linalg.solve(jax.jacfwd(resid)(u), resid(u))

        u = jax.lax.fori_loop(0, _NEWTON_STEPS, newton, u)
        err = jnp.abs(resid(u)) / (1.0 + jnp.abs(jnp.stack([obs[c] for _, c in inverted])))
    else:
        err = jnp.zeros((0,), u.dtype)
    _, fns = factual(u)
    eps = {
        v: standardise(fns[v], obs[v], v)
        for v in endo if v in affected and v not in det
    }
    subs = {v: obs[v] for v in endo if v not in affected}
    subs.update({name: u[i] for i, (name, _) in enumerate(inverted)})
    values, _ = run_unit(scm.program, ivs, key, substitute=subs, noise=eps)
    return {v: values[v] for v in endo}, err


@filter_jit
def _counterfactual_impl(scm, ivs, endo, affected, inverted, observed):
    n = observed[endo[0]].shape[0]
    ivs = broadcast_interventions(ivs, n)
    return eqx.filter_vmap(lambda iv, o: _unit(scm, iv, endo, affected, inverted, o))(ivs, observed)


def _discrete_levels(scm: SCM, obs: dict) -> dict:
    """Observed values of discrete sites as their levels (integers), so that the program can
    index its tables with them; abducting a discrete site's noise then fails with a clear error
    naming its distribution."""
    shapes = jax.eval_shape(lambda k: scm.sample(1, key=k), jr.key(0))
    return {
        v: a if jnp.issubdtype(shapes[v].dtype, jnp.inexact)
        else jnp.round(a).astype(shapes[v].dtype)
        for v, a in obs.items()
    }


def _targets(interventions) -> list[str]:
    return [t for iv in interventions for t in iv.targets()]


def counterfactual(
    scm: SCM,
    observed: Mapping[str, Any],
    intervention: Any,
) -> dict[str, Float[Array, " n"]]:
    r"""What each observed unit would have been under `intervention` (Pearl's three steps).

    1. *Abduction*: each unit's exogenous noise is recovered from its observed values: for a
       location-scale site $x \sim \mathcal{L}(\mu(\mathrm{pa}), \sigma(\mathrm{pa}))$ (Normal,
       Laplace, Logistic, Cauchy, StudentT, Gumbel: additive noise, possibly heteroscedastic)
       $\varepsilon = (x - \mu) / \sigma$; for a program that samples its noise `u` explicitly
       and computes `x = numpyro.deterministic("x", f(pa, u))`, `u` solves $f(\mathrm{pa}, u) = x$
       by Newton's method (exact for additive noise, and for any $f$ strictly monotone in `u`).
    2. *Action*: the intervention is applied on top of the SCM's own interventions.
    3. *Prediction*: the program runs again with each unit's noise, in topological order.

    Nodes that the intervention cannot reach keep their observed values, so only mechanisms
    downstream of the targets must be invertible; others raise a `ValueError` saying why.

    **Arguments:**

    - `scm`: the factual model, without interventions of its own (an SCM that carries some is
      ambiguous, see below, and raises).
    - `observed`: `{name: (n,) values}` for every endogenous node (all nodes but explicit noise).
    - `intervention`: `{name: value}` (a hard intervention; values scalar or `(n,)`), or a
      `Do`, `Shift`, `Soft` or [`jaxcausal.scm.Joint`][] object. Several nodes with different
      kinds of intervention are one joint intervention: `Do({"a": 1.0}) & Shift({"c": -0.5})`
      sets `a` and shifts `c` in the same counterfactual world (DoWhy's
      `gcm.counterfactual_samples` with `{"a": lambda a: 1.0, "c": lambda c: c - 0.5}`).

    `scm.do({"a": 1.0}).counterfactual(obs, Shift({"c": -0.5}))` raises a `ValueError`: it could
    mean that the data were observed under `do(a = 1)` or that both changes are the
    counterfactual action, and the two differ (the first abducts the noise of `a`'s descendants
    as if `a` had been 1). Pass the joint intervention for the second meaning.

    **Returns:** `{name: (n,) counterfactual values}` for the endogenous nodes.
    """
    if isinstance(intervention, Mapping):
        intervention = Do(intervention)
    if not isinstance(intervention, AbstractIntervention):
        raise TypeError(
            "intervention must be a dict {name: value} or a Do/Shift/Soft/Joint object; got "
            f"{type(intervention).__name__}"
        )
    if scm.interventions:
        kinds = " then ".join(type(iv).__name__ for iv in scm.interventions)
        raise ValueError(
            f"scm carries interventions ({kinds} on {_targets(scm.interventions)}): a "
            "counterfactual abducts each unit's noise under the unintervened model and then "
            "applies one intervention, so it is ambiguous whether these belong to the factual "
            "world. To intervene on several nodes at once, call the counterfactual of the "
            "unintervened SCM with one joint intervention, e.g. "
            "scm.counterfactual(obs, jc.scm.Do({'a': 1.0}) & jc.scm.Shift({'c': -0.5})); if the "
            "data were observed under an intervention, write it into the model"
        )
    scm.graph.check_names(intervention.targets(), "intervention")
    if not isinstance(observed, Mapping):
        raise TypeError(
            f"observed must be a dict {{name: (n,) values}}; got {type(observed).__name__}"
        )
    scm.graph.check_names(list(observed), "observed")
    noise = set(scm.noise_sites)
    endo = tuple(v for v in scm.graph.names if v not in noise)
    missing = [v for v in endo if v not in observed]
    if missing:
        raise ValueError(
            f"observed is missing nodes {missing}; abduction needs every endogenous variable "
            f"({list(endo)})"
        )
    obs = {}
    for v in endo:
        arr = check_finite(as_float_array(observed[v], f"observed[{v!r}]"), f"observed[{v!r}]")
        if arr.ndim != 1:
            raise ValueError(f"observed[{v!r}] must be a 1-d array (n,); got shape {arr.shape}")
        obs[v] = arr
    sizes = {v: a.shape[0] for v, a in obs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"observed arrays must share one length; got {sizes}")
    affected, inverted = _plan(scm, intervention)
    obs = _discrete_levels(scm, obs)
    out, err = _counterfactual_impl(
        scm, scm.interventions + (intervention,), endo, frozenset(affected), tuple(inverted), obs
    )
    if inverted:
        bad = ~(err <= 1e-6)  # NaN (a singular Newton step) counts as failure
        if is_concrete(bad):
            if np.asarray(bad).any():
                cols = np.flatnonzero(np.asarray(bad).any(axis=0))
                which = [inverted[i] for i in cols]
                raise ValueError(
                    f"could not invert mechanisms {[c for _, c in which]} in their noise "
                    f"{[u for u, _ in which]} for {int(np.asarray(bad).any(axis=1).sum())} units; "
                    "counterfactuals need each mechanism strictly monotone in its noise"
                )
        else:
            out = eqx.error_if(out, bad.any(), "could not invert a mechanism in its noise")
    return {v: out[v] for v in endo}
