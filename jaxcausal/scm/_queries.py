"""Interventional queries: many interventions in one compiled call, average effects, mediation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray, Real

from .._checks import as_float_array
from .._compile import filter_jit
from ._interventions import AbstractIntervention, Do, Shift
from ._scm import SCM, _sample_impl, noise_vmaps, unit_keys, unit_uniforms


@eqx.debug.assert_max_traces(max_traces=None)
def _batched_impl(
    scm: SCM,
    values: AbstractIntervention,
    n: int,
    key: PRNGKeyArray,
    means: bool,
    chunk: int | None,
    common_noise: bool,
):
    # `values` is one intervention object whose arrays carry a leading (m,) axis: row i is the
    # intervention with the i-th entries.
    m = jax.tree.leaves(values)[0].shape[0]
    d = scm.graph.n_nodes

    def one(row, k, u):
        draws = _sample_impl(scm.intervene(row), n, k, u)
        return jax.tree.map(lambda a: jnp.mean(a), draws) if means else draws

    if common_noise:
        # The key is not batched, so the noise is drawn once and shared by every intervention.
        u = unit_uniforms(unit_keys(key)[1], n, d)

        def body(row):
            return one(row, key, u)

        if chunk is None:
            return jax.vmap(body)(values)
        return jax.lax.map(body, values, batch_size=chunk)

    keys = jr.split(key, m)

    def noise(k):
        return unit_uniforms(unit_keys(k)[1], n, d)

    def block(args):
        # Philox noise is drawn for the whole block at once (`vmap`); JAX's threefry one row at
        # a time (a `lax.map`): its bits for a vmapped batch of keys are slower on a CPU.
        rows, ks = args
        u = jax.vmap(noise)(ks) if noise_vmaps() else jax.lax.map(noise, ks)
        return jax.vmap(one)(rows, ks, u)

    if chunk is None or chunk >= m:
        return block((values, keys))
    # `vmap` over blocks of `chunk` interventions, a loop over blocks: bounded memory. The last
    # block is padded by repeating its last row, and the padding is dropped.
    n_blocks = -(-m // chunk)
    pad = n_blocks * chunk - m

    def blocks(a):
        if pad:
            a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)], axis=0)
        return a.reshape(n_blocks, chunk, *a.shape[1:])

    out = jax.lax.map(block, (jax.tree.map(blocks, values), blocks(keys)))
    return jax.tree.map(lambda a: a.reshape(n_blocks * chunk, *a.shape[2:])[:m], out)


_batched_jit = filter_jit(_batched_impl)


def count_batched_traces() -> int:
    """How many times `interventional_samples`/`interventional_means` were traced."""
    return eqx.debug.get_num_traces(_batched_impl)


def _check_batch(
    scm: SCM, interventions: Any, kind: AbstractIntervention, n: int, chunk: int | None
):
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer or None; got {chunk!r}")
    if not isinstance(scm, SCM):
        raise TypeError(f"scm must be a jaxcausal.scm.SCM; got {type(scm).__name__}")
    if not isinstance(kind, (Do, Shift)) or kind.values is not None:
        raise TypeError(f"kind must be Do() or Shift() (without values); got {kind!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if isinstance(interventions, AbstractIntervention):
        # Joint (or single) intervention objects with (m,) values: one intervention per row.
        scm.graph.check_names(interventions.targets(), "interventions")
        leaves = jax.tree.leaves(interventions)
        shapes = [tuple(jnp.shape(v)) for v in leaves]
        if not leaves or len(shapes[0]) != 1 or any(s != shapes[0] for s in shapes):
            raise ValueError(
                "an intervention object passed as interventions must hold 1-d value arrays of "
                f"one common length (m,), one row per intervention; got shapes {shapes}"
            )
        return jax.tree.map(lambda v: as_float_array(v, "interventions"), interventions)
    if not isinstance(interventions, Mapping) or not interventions:
        raise TypeError(
            "interventions must be a non-empty dict {node name: (m,) values} or an "
            "intervention object (e.g. Do({...}) & Shift({...})) with (m,) values"
        )
    scm.graph.check_names(list(interventions), "interventions")
    values = {k: as_float_array(v, f"interventions[{k!r}]") for k, v in interventions.items()}
    shapes = {k: tuple(v.shape) for k, v in values.items()}
    m = next(iter(shapes.values()))
    if len(m) != 1 or any(s != m for s in shapes.values()):
        raise ValueError(
            f"interventions must map names to 1-d arrays of one common length (m,); got {shapes}"
        )
    return type(kind)(values)


def _ordered(scm: SCM, out: dict) -> dict:
    return {v: out[v] for v in scm.graph.names}


def interventional_samples(
    scm: SCM,
    interventions: Mapping[str, Any] | AbstractIntervention,
    n: int,
    *,
    key: PRNGKeyArray,
    kind: AbstractIntervention = Do(),
    chunk: int | None = None,
    common_noise: bool = False,
) -> dict[str, Real[Array, "m n"]]:
    """Samples of `m` interventions at once, in one compiled, `vmap`ped call.

    **Arguments:**

    - `scm`: the [`jaxcausal.scm.SCM`][] (its own interventions stay in force).
    - `interventions`: `{name: (m,) values}`; row `i` intervenes on every named node with its
      `i`-th value. A NaN leaves that node alone in that row, so different rows can target
      different nodes. Or an intervention object with `(m,)` values, such as the joint
      `Do({"a": a_values}) & Shift({"c": c_shifts})` (then `kind` is ignored).
    - `n`: samples per intervention.
    - `key`: intervention `i` uses `jr.split(key, m)[i]`, so row `i` equals
      `scm.do({name: values[i]}).sample(n, key=jr.split(key, m)[i])`.
    - `common_noise`: if true, every intervention uses `key` itself (row `i` equals
      `scm.do({name: values[i]}).sample(n, key=key)`): the same units under every intervention
      (common random numbers). Differences between interventions then have far less Monte Carlo
      noise, and the noise is drawn once instead of `m` times, which is most of the cost.
    - `kind`: `Do()` (hard, default) or `Shift()` (values are shifts).
    - `chunk`: evaluate this many interventions at a time (a `lax.map` over chunks of a `vmap`)
      to bound memory; `None` vmaps all `m` at once. Results do not depend on it.

    **Returns:** `{name: (m, n) array}` for every node.

    Placing the values on a device mesh (`jax.device_put` with a `NamedSharding` over the first
    axis) shards the interventions across devices: the call is one `jit` of a `vmap`.
    """
    values = _check_batch(scm, interventions, kind, n, chunk)
    out = _batched_jit(scm, values, n, key, False, chunk, bool(common_noise))
    return _ordered(scm, out)


def interventional_means(
    scm: SCM,
    interventions: Mapping[str, Any] | AbstractIntervention,
    n: int,
    *,
    key: PRNGKeyArray,
    kind: AbstractIntervention = Do(),
    chunk: int | None = None,
    common_noise: bool = False,
) -> dict[str, Float[Array, " m"]]:
    """Like [`jaxcausal.scm.interventional_samples`][] but returns the `(m,)` Monte Carlo means
    (same keys, same draws), without keeping the `(m, n)` samples in memory (with `chunk`, at
    most `chunk * n` units are alive at once)."""
    values = _check_batch(scm, interventions, kind, n, chunk)
    out = _batched_jit(scm, values, n, key, True, chunk, bool(common_noise))
    return _ordered(scm, out)


def ate(
    scm: SCM,
    treatment: str,
    outcome: str,
    a: float | Array = 0.0,
    b: float | Array = 1.0,
    *,
    n: int = 10_000,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    r"""Average treatment effect $E[Y \mid do(T=b)] - E[Y \mid do(T=a)]$ by simulation.

    Both arms use the same key (common random numbers: every unit keeps its exogenous noise in
    both arms), so for additive-noise models the noise cancels unit by unit.
    """
    scm.graph.check_names([treatment], "treatment")
    scm.graph.check_names([outcome], "outcome")
    ya = scm.do({treatment: a}).sample(n, key=key)[outcome]
    yb = scm.do({treatment: b}).sample(n, key=key)[outcome]
    return jnp.mean(yb - ya)


class Mediation(eqx.Module):
    r"""Effects of `treatment` on `outcome` split by `mediator` (changing the treatment from `a`
    to `b`).

    - `total`: $TE = E[Y(b)] - E[Y(a)]$.
    - `nde`: natural direct effect $E[Y(b, M(a))] - E[Y(a)]$.
    - `nie`: natural indirect effect $E[Y(b)] - E[Y(b, M(a))]$, so `total = nde + nie`.
    - `cde`: controlled direct effect $E[Y(b, m)] - E[Y(a, m)]$ at the mediator level `m`.
    - `mediator_value`: the `m` used for `cde`.

    Nested counterfactuals $Y(b, M(a))$ share each unit's exogenous noise across worlds (same
    key), the SCM semantics of Pearl (2001).
    """

    total: Float[Array, ""]
    nde: Float[Array, ""]
    nie: Float[Array, ""]
    cde: Float[Array, ""]
    mediator_value: Float[Array, ""]

    def summary(self) -> pd.DataFrame:
        """A one-column table of the four effects."""
        names = ["total", "nde", "nie", "cde"]
        return pd.DataFrame({"effect": [float(getattr(self, k)) for k in names]}, index=names)


@filter_jit
def _mediation_impl(scm, treatment, mediator, outcome, a, b, m, n, key):
    wa = _sample_impl(scm.do({treatment: a}), n, key)
    wb = _sample_impl(scm.do({treatment: b}), n, key)
    # do(M := M_i(a)) with one value per unit: the mediator keeps its treatment-a value.
    wba = _sample_impl(scm.do({treatment: b, mediator: wa[mediator]}), n, key)
    m = jnp.where(jnp.isnan(m), jnp.mean(wa[mediator]), m)
    ca = _sample_impl(scm.do({treatment: a, mediator: m}), n, key)
    cb = _sample_impl(scm.do({treatment: b, mediator: m}), n, key)
    ya, yb, yba = wa[outcome], wb[outcome], wba[outcome]
    return Mediation(
        total=jnp.mean(yb - ya),
        nde=jnp.mean(yba - ya),
        nie=jnp.mean(yb - yba),
        cde=jnp.mean(cb[outcome] - ca[outcome]),
        mediator_value=m,
    )


def mediation(
    scm: SCM,
    *,
    treatment: str,
    mediator: str,
    outcome: str,
    a: float | Array = 0.0,
    b: float | Array = 1.0,
    mediator_value: float | Array | None = None,
    n: int = 10_000,
    key: PRNGKeyArray,
) -> Mediation:
    """Total, natural direct, natural indirect and controlled direct effects by simulation.

    **Arguments:**

    - `scm`: the model; `treatment`, `mediator`, `outcome`: node names.
    - `a`, `b`: reference and new treatment values.
    - `mediator_value`: the mediator level of the controlled direct effect (default: the mean of
      the mediator under `do(treatment=a)`).
    - `n`: simulated units; `key`: shared by all worlds (common random numbers).

    **Returns:** a [`jaxcausal.scm.Mediation`][]. Exact in expectation for linear models, where
    every unit's difference is the path-coefficient formula.
    """
    names = {"treatment": treatment, "mediator": mediator, "outcome": outcome}
    for arg, v in names.items():
        scm.graph.check_names([v], arg)
    if len(set(names.values())) != 3:
        raise ValueError(
            f"treatment, mediator and outcome must be three different nodes; got {names}"
        )
    if mediator not in scm.graph.descendants(treatment):
        raise ValueError(f"mediator {mediator!r} is not a descendant of treatment {treatment!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    m = jnp.nan if mediator_value is None else mediator_value
    return _mediation_impl(
        scm, treatment, mediator, outcome,
        as_float_array(a, "a"), as_float_array(b, "b"), as_float_array(m, "mediator_value"), n, key,
    )
