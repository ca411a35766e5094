"""Interventions as objects, and the NumPyro effect handler that applies them to a program."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array
from numpyro.primitives import Messenger

from .._checks import as_float_array, is_concrete


def _as_values(values: Any, argument: str) -> dict[str, Array] | None:
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise TypeError(
            f"{argument} must be a dict {{node name: value}}; got {type(values).__name__}"
        )
    out = {str(k): as_float_array(v, f"{argument}[{k!r}]") for k, v in values.items()}
    for k, v in out.items():
        # on the host: an eager `jnp` check would compile a program in every new process
        if is_concrete(v) and bool(np.isinf(np.asarray(v)).any()):
            raise ValueError(f"{argument}[{k!r}] is infinite; intervention values must be finite "
                             "(NaN leaves a node alone)")
    return out


class AbstractIntervention(eqx.Module):
    """An intervention on some nodes of an SCM. Subclasses say how a node's value changes."""

    @abc.abstractmethod
    def targets(self) -> tuple[str, ...]:
        """The names of the nodes this intervention acts on."""

    def process(self, name: str, fn: Any, kind: str) -> Any:
        """Hook before a site is sampled: may replace its distribution (soft interventions)."""
        return fn

    def apply(self, name: str, value: Array) -> Array:
        """Hook after a site has its value: may replace or move it (hard and shift)."""
        return value

    def __and__(self, other: AbstractIntervention) -> Joint:
        """`Do({"a": 1.0}) & Shift({"c": -0.5})`: one [`jaxcausal.scm.Joint`][] intervention."""
        return Joint(self, other)


class AbstractValueIntervention(AbstractIntervention):
    """An intervention given by one value per target node (NaN: leave the node alone), so that
    one batched call can intervene on different nodes in different rows. Subclasses say in
    `apply` how the value acts on the node's own value."""

    values: dict[str, Array] | None = None

    def __init__(self, values: Any = None):
        self.values = _as_values(values, "values")

    def targets(self) -> tuple[str, ...]:
        return tuple(self.values or ())


class Do(AbstractValueIntervention):
    """Hard intervention `do(X := v)`: the node's mechanism is replaced by the constant `v`.

    `values` maps node names to values; a NaN value leaves the node alone (so one batched call can
    intervene on different nodes in different rows). `Do()` without values is the *kind* of
    intervention that [`jaxcausal.scm.infer_interventions`][] looks for.
    """

    def apply(self, name: str, value: Array) -> Array:
        if self.values is None or name not in self.values:
            return value
        v = self.values[name]
        if _is_discrete(value):
            # A discrete site keeps its integer type (its children index tables with it); the
            # value must be one of its levels, which is checked where the value is known.
            level = jnp.round(v)
            bad = ~jnp.isnan(v) & (level != v)
            out = jnp.where(jnp.isnan(v), value, level.astype(value.dtype))
            return eqx.error_if(
                out, bad, f"Do on the discrete site {name!r} needs an integer level"
            )
        return jnp.where(jnp.isnan(v), value, v)


class Shift(AbstractValueIntervention):
    """Shift intervention `X := f(pa(X), U) + delta`: the mechanism's output moves by `delta`.

    `values` maps node names to shifts (NaN means no shift). `Shift()` without values is the kind
    of intervention that [`jaxcausal.scm.infer_interventions`][] looks for.
    """

    def apply(self, name: str, value: Array) -> Array:
        if self.values is None or name not in self.values:
            return value
        if _is_discrete(value):
            raise TypeError(
                f"cannot Shift the discrete site {name!r} (its values are levels of dtype "
                f"{value.dtype}); a shift needs a continuous variable: use Do to set a level, or "
                "Soft to change its distribution"
            )
        v = self.values[name]
        return value + jnp.where(jnp.isnan(v), 0.0, v)


class Soft(AbstractIntervention):
    """Soft intervention: a node's mechanism is replaced by a new one built from the old.

    `fns` maps node names to functions. For a sample site the function takes the site's
    distribution given its parents (a `numpyro.distributions.Distribution`) and returns a new one,
    e.g. `lambda d: dist.Normal(d.loc, 0.5 * d.scale)`; for a `numpyro.deterministic` site it
    takes and returns the value.

    Compiled samplers are reused when the functions are the same objects: a new `lambda` at
    every call retraces and recompiles. Write the function once (module level), or make its
    parameters arrays of an `equinox.Partial` (or an Equinox module): they are traced, so
    `Soft({"x": eqx.Partial(scale_noise, jnp.asarray(s))})` compiles once for every `s`.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    # Not static: arrays inside the functions (an `eqx.Partial`'s arguments) are traced, and plain
    # functions are non-array leaves, kept static by the filtered transforms (compared by identity).
    fns: tuple[Callable, ...]

    def __init__(self, fns: Mapping[str, Any]):
        if not isinstance(fns, Mapping):
            raise TypeError(f"fns must be a dict {{node name: function}}; got {type(fns).__name__}")
        bad = [k for k, f in fns.items() if not callable(f)]
        if bad:
            raise TypeError(f"fns must map node names to callables; not callable for {bad}")
        self.names = tuple(str(k) for k in fns)
        self.fns = tuple(fns.values())

    def targets(self) -> tuple[str, ...]:
        return self.names

    def get(self, name: str) -> Callable:
        """The function that replaces the mechanism of `name`."""
        return self.fns[self.names.index(name)]

    def process(self, name: str, fn: Any, kind: str) -> Any:
        fns = dict(zip(self.names, self.fns))
        if name in fns and kind == "sample":
            new = fns[name](fn)
            if not isinstance(new, dist.Distribution):
                raise TypeError(
                    f"the soft intervention on {name!r} must return a numpyro Distribution; "
                    f"got {type(new).__name__}"
                )
            return new
        return fn

    def apply(self, name: str, value: Array) -> Array:
        return value


class Joint(AbstractIntervention):
    """Several interventions applied at once, as one intervention: `Joint(Do({"a": 1.0}),
    Shift({"c": -0.5}))`, also written `Do({"a": 1.0}) & Shift({"c": -0.5})`.

    The parts act on disjoint sets of nodes, so their order does not matter: every named node's
    mechanism changes as its part says, and all other mechanisms stay. This is the action of a
    counterfactual on several variables (DoWhy's `counterfactual_samples` with a dict of
    interventions): `scm.counterfactual(obs, Do({"a": 1.0}) & Shift({"c": -0.5}))` abducts each
    unit's noise from the unintervened model, then sets `a` and shifts `c` together.
    [`jaxcausal.scm.interventional_samples`][] accepts a `Joint` whose values have a leading
    `(m,)` axis (one joint intervention per row).

    **Arguments:** `*parts`, interventions ([`jaxcausal.scm.Do`][], [`jaxcausal.scm.Shift`][],
    [`jaxcausal.scm.Soft`][] or `Joint`, flattened) on disjoint nodes.
    """

    parts: tuple[AbstractIntervention, ...]

    def __init__(self, *parts: Any):
        flat: list[AbstractIntervention] = []
        for p in parts:
            if not isinstance(p, AbstractIntervention):
                raise TypeError(
                    "Joint takes Do, Shift, Soft or Joint interventions; got "
                    f"{type(p).__name__}"
                )
            flat.extend(p.parts if isinstance(p, Joint) else (p,))
        seen: dict[str, str] = {}
        for p in flat:
            if not p.targets():
                raise ValueError(
                    f"every part of a Joint intervention must name its nodes; got {p!r}"
                )
            for t in p.targets():
                if t in seen:
                    raise ValueError(
                        f"the parts of a Joint intervention must act on different nodes; {t!r} "
                        f"is the target of both a {seen[t]} and a {type(p).__name__} (to compose "
                        "interventions on one node in order, chain them: scm.do(...).shift(...))"
                    )
                seen[t] = type(p).__name__
        self.parts = tuple(flat)

    def targets(self) -> tuple[str, ...]:
        return tuple(t for p in self.parts for t in p.targets())

    def process(self, name: str, fn: Any, kind: str) -> Any:
        for p in self.parts:
            fn = p.process(name, fn, kind)
        return fn

    def apply(self, name: str, value: Array) -> Array:
        for p in self.parts:
            value = p.apply(name, value)
        return value


def _is_discrete(value: Array) -> bool:
    dtype = jnp.result_type(value)
    return jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_)


_LOCATION_SCALE = (
    dist.Normal, dist.Laplace, dist.Logistic, dist.Cauchy, dist.StudentT, dist.Gumbel,
)


def _standard_icdf(fn: Any, u: Array) -> Array | None:
    """Inverse CDF of the standard member of `fn`'s location-scale family (None: no closed form)."""
    if isinstance(fn, dist.Normal):
        # sqrt(2) erfinv(2u - 1) = ndtri(u), at a fraction of the cost; exact input for the
        # grid midpoints of `unit_uniforms` (2u - 1 is representable).
        return jnp.sqrt(jnp.asarray(2.0, u.dtype)) * jax.lax.erf_inv(2.0 * u - 1.0)
    if isinstance(fn, dist.Laplace):
        c = u - 0.5
        return -jnp.sign(c) * jnp.log1p(-2.0 * jnp.abs(c))
    if isinstance(fn, dist.Logistic):
        return jnp.log(u) - jnp.log1p(-u)
    if isinstance(fn, dist.Cauchy):
        return jnp.tan(jnp.pi * (u - 0.5))
    if isinstance(fn, dist.Gumbel):
        return -jnp.log(-jnp.log(u))
    return None


def standardise(fn: Any, value: Array, name: str) -> Array:
    """The exogenous noise `(x - loc) / scale` of a location-scale site (abduction)."""
    if isinstance(fn, dist.Delta):
        return jnp.zeros_like(value)
    if not isinstance(fn, _LOCATION_SCALE):
        raise ValueError(
            f"cannot abduct the noise of {name!r}: its distribution is {type(fn).__name__}, "
            "which is not invertible in its noise. Counterfactuals are exact for location-scale "
            "(additive-noise) mechanisms (Normal, Laplace, Logistic, Cauchy, StudentT, Gumbel) and "
            "for programs that sample their noise explicitly (numpyro.deterministic of parents "
            "and a noise site)"
        )
    return (value - fn.loc) / fn.scale


def replay(fn: Any, eps: Array, name: str) -> Array:
    """The value of a location-scale site for standardised noise `eps` (prediction)."""
    if isinstance(fn, dist.Delta):
        return fn.v
    if not isinstance(fn, _LOCATION_SCALE):
        raise ValueError(
            f"the counterfactual mechanism of {name!r} is a {type(fn).__name__}; replaying "
            "abducted noise needs a location-scale distribution"
        )
    return fn.loc + fn.scale * eps


class Runner(Messenger):
    """Effect handler that runs an SCM program for one unit.

    Applies `interventions` in order (soft ones replace a site's distribution before it is
    sampled; hard and shift ones change its value after), replays standardised noise `noise`
    at location-scale sites (counterfactual prediction), and records every site's final value and
    distribution in `values` and `fns`.

    With `uniforms` (one uniform per node, `index` giving each node's column), a location-scale
    site draws `loc + scale * F^{-1}(u)` with `F` its standard member's CDF: all of a unit's
    randomness comes from one vector, so compiled samplers hold one RNG call instead of one per
    site; other sites are drawn by NumPyro's `seed` as usual.
    """

    def __init__(
        self,
        fn: Callable | None = None,
        interventions: tuple[AbstractIntervention, ...] = (),
        noise: Mapping[str, Array] | None = None,
        uniforms: Array | None = None,
        index: Mapping[str, int] | None = None,
    ):
        self.interventions = interventions
        self.noise = dict(noise or {})
        self.uniforms = uniforms
        self.index = dict(index or {})
        self.values: dict[str, Array] = {}
        self.fns: dict[str, Any] = {}
        super().__init__(fn)

    def process_message(self, msg: dict) -> None:
        kind = msg["type"]
        if kind != "sample":
            return
        name = msg["name"]
        for iv in self.interventions:
            msg["fn"] = iv.process(name, msg["fn"], kind)
        if msg["value"] is not None:
            return
        if name in self.noise:
            msg["value"] = replay(msg["fn"], self.noise[name], name)
        elif self.uniforms is not None and name in self.index:
            eps = _standard_icdf(msg["fn"], self.uniforms[self.index[name]])
            if eps is not None:
                msg["value"] = msg["fn"].loc + msg["fn"].scale * eps

    def postprocess_message(self, msg: dict) -> None:
        kind = msg["type"]
        if kind not in ("sample", "deterministic"):
            return
        name = msg["name"]
        value = msg["value"]
        if jnp.shape(value) != ():
            raise ValueError(
                f"site {name!r} has shape {jnp.shape(value)} for one unit; every variable of an "
                "SCM must be a scalar (write the program for one unit; jaxcausal batches units)"
            )
        if kind == "deterministic":
            for iv in self.interventions:
                for part in iv.parts if isinstance(iv, Joint) else (iv,):
                    if isinstance(part, Soft) and name in part.targets():
                        value = part.get(name)(value)
        for iv in self.interventions:
            value = iv.apply(name, value)
        msg["value"] = value
        self.values[name] = value
        self.fns[name] = msg.get("fn")
