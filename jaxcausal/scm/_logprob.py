r"""Densities under interventions: the intervened program that NumPyro's tools see, and
`log_prob`, the exact log-likelihood of data under an SCM and an intervention.

An intervention acts on a node's *distribution* here (where `Runner` acts on its value when
sampling): soft interventions replace the distribution; then the value interventions, in order,
push it forward. With $x_j \sim p_j(\cdot \mid \mathrm{pa}_j)$,

- `Shift(delta)`: $x_j - \delta \sim p_j$, so $\log p'_j(x_j) = \log p_j(x_j - \delta \mid
  \mathrm{pa}_j)$ (for a Normal, `Normal(loc + delta, scale)`);
- `Do(v)`: $x_j = v$, a point mass: $\log p'_j(x_j) = 0$ if $x_j = v$ and $-\infty$ otherwise
  (the density with respect to counting measure on the intervened nodes);
- a `Shift` after a `Do` moves the point mass; a `Do` after a `Shift` replaces it.

The two views give the same distribution of every sample; this one also gives its density.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpyro.distributions as dist
import pandas as pd
from jaxtyping import Array, Float
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.primitives import Messenger

from .._checks import as_float_array, check_finite, is_concrete
from .._compile import filter_jit
from ._interventions import AbstractIntervention, Do, Shift, Soft


def value_transform(
    interventions: tuple[AbstractIntervention, ...], name: str
) -> tuple[Array, Array, Array] | None:
    """The composed value interventions on `name` as `(is_fixed, fixed_value, shift)`:
    the node's value becomes `fixed_value` where `is_fixed`, else its draw plus `shift`.
    None when no value intervention names the node."""
    fixed = value = shift = None
    for iv in interventions:
        if not isinstance(iv, (Do, Shift)) or iv.values is None or name not in iv.values:
            continue
        v = iv.values[name]
        nan = jnp.isnan(v)
        if fixed is None:
            fixed, value, shift = jnp.zeros(v.shape, bool), jnp.zeros_like(v), jnp.zeros_like(v)
        if isinstance(iv, Do):
            value = jnp.where(nan, value + shift, v)
            fixed = fixed | ~nan
            shift = jnp.where(nan, shift, 0.0)
        else:
            step = jnp.where(nan, 0.0, v)
            value = jnp.where(fixed, value + step, value)
            shift = jnp.where(fixed, shift, shift + step)
    if fixed is None:
        return None
    return fixed, value, shift


class InterventionDistribution(dist.Distribution):
    """`fixed_value` where `is_fixed`, else `base` shifted by `shift` (for traced intervention
    values, whose NaN pattern is unknown at trace time)."""

    arg_constraints = {}
    support = constraints.real
    pytree_data_fields = ("base", "is_fixed", "fixed_value", "shift")

    def __init__(self, base, is_fixed, fixed_value, shift, *, validate_args=None):
        self.base, self.is_fixed = base, is_fixed
        self.fixed_value, self.shift = fixed_value, shift
        super().__init__(batch_shape=base.batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        draw = self.base.sample(key, sample_shape) + self.shift
        return jnp.where(self.is_fixed, self.fixed_value, draw)

    def log_prob(self, value):
        point = jnp.where(value == self.fixed_value, 0.0, -jnp.inf)
        return jnp.where(self.is_fixed, point, self.base.log_prob(value - self.shift))


def intervened_distribution(fn: Any, transform: tuple[Array, Array, Array]) -> tuple[Any, bool]:
    """The distribution of a sample site after the value interventions `transform`, and whether
    the site is a fixed point (a concrete `Do`: it is then recorded as observed)."""
    fixed, value, shift = transform
    if is_concrete(fixed) and jnp.ndim(fixed) == 0:
        if bool(fixed):
            return dist.Delta(value), True
        if isinstance(fn, dist.Normal):
            return dist.Normal(fn.loc + shift, fn.scale), False
        return dist.TransformedDistribution(fn, dist.transforms.AffineTransform(shift, 1.0)), False
    return InterventionDistribution(fn, fixed, value, shift), False


class InterventionHandler(Messenger):
    """NumPyro effect handler applying `interventions` to the distributions of a program's sites
    (see the module docstring). A `Do` site becomes an observed point mass, so inference treats it
    as fixed, and a value substituted there (as `log_density` does) is scored 0 or `-inf`."""

    def __init__(self, fn: Callable | None = None, interventions: tuple = ()):
        self.interventions = tuple(interventions)
        super().__init__(fn)

    def process_message(self, msg: dict) -> None:
        kind, name = msg["type"], msg.get("name")
        if kind == "sample":
            for iv in self.interventions:
                msg["fn"] = iv.process(name, msg["fn"], kind)
            transform = value_transform(self.interventions, name)
            if transform is None:
                return
            msg["fn"], point = intervened_distribution(msg["fn"], transform)
            if point:
                msg["value"], msg["is_observed"] = msg["fn"].v, True
        elif kind == "deterministic":
            value = msg["value"]
            for iv in self.interventions:
                if isinstance(iv, Soft) and name in iv.targets():
                    value = iv.get(name)(value)
            for iv in self.interventions:
                value = iv.apply(name, value)
            msg["value"] = value


class InterventionProgram(eqx.Module):
    """The program of an intervened SCM, as NumPyro sees it: `program` run under
    `interventions` (what `scm.do(...).model` returns). `log_density`, `Predictive`, `MCMC` and
    `jaxcausal.scm.SCM` all take it like any NumPyro program."""

    program: Callable
    interventions: tuple[AbstractIntervention, ...]

    def __call__(self) -> None:
        with InterventionHandler(interventions=self.interventions):
            self.program()


def _as_interventions(intervention: Any) -> tuple[AbstractIntervention, ...]:
    if intervention is None:
        return ()
    if isinstance(intervention, AbstractIntervention):
        return (intervention,)
    if isinstance(intervention, (tuple, list)) and all(
        isinstance(iv, AbstractIntervention) for iv in intervention
    ):
        return tuple(intervention)
    raise TypeError(
        "intervention must be None, a Do/Shift/Soft object or a tuple of them; got "
        f"{type(intervention).__name__} (write Do({{'x': 1.0}}), not a dict)"
    )


@filter_jit
def _log_prob_rows(program, interventions, names, x):
    from ._scm import broadcast_interventions

    ivs = broadcast_interventions(interventions, x.shape[0])

    def one(row, iv):
        model = handlers.substitute(InterventionProgram(program, iv), data=dict(zip(names, row)))
        tr = handlers.trace(handlers.seed(model, 0)).get_trace()
        return sum(tr[v]["fn"].log_prob(tr[v]["value"]) for v in names)

    return eqx.filter_vmap(one)(x, ivs)  # a Soft's functions are non-array leaves


def log_prob(
    scm: Any,
    data: Any,
    intervention: Any = None,
    *,
    per_row: bool = True,
) -> Float[Array, " n"] | Float[Array, ""]:
    r"""Exact log-likelihood of data under an SCM and an intervention.

    $\log p(x \mid \mathrm{do}(\cdot)) = \sum_j \log p'_j(x_j \mid \mathrm{pa}_j)$ with each
    node's factor after the intervention: a `Shift(delta)` scores $x_j - \delta$ under the node's
    mechanism, a `Do(v)` is a point mass (0 where $x_j = v$, $-\infty$ elsewhere), a `Soft`
    replaces the mechanism; they compose in order, after the SCM's own interventions. It equals
    NumPyro's `log_density` of `scm.intervene(...).model` at each row, and is differentiable in
    the shift values and in the mechanisms' parameters (`jax.grad` through the SCM's arrays).

    **Arguments:**

    - `scm`: a [`jaxcausal.scm.SCM`][] whose nodes are all sample sites.
    - `data`: a DataFrame or dict with one `(n,)` column per node, or an `(n, d)` array with the
      columns in `scm.names` order.
    - `intervention`: None, a `Do`, `Shift` or `Soft` object, or a tuple of them. Values may be
      scalars or `(n,)` (one per row; NaN leaves a node alone in that row).
    - `per_row`: return the `(n,)` per-row values (default) or their sum.

    **Returns:** `(n,)` log-densities, or a scalar.
    """
    from ._fit import data_matrix
    from ._scm import SCM

    if not isinstance(scm, SCM):
        raise TypeError(f"scm must be a jaxcausal.scm.SCM; got {type(scm).__name__}")
    if scm.deterministic:
        raise ValueError(
            f"log_prob needs every node to be a sample site; {list(scm.deterministic)} are "
            "numpyro.deterministic sites (their density is a change of variables of the noise)"
        )
    ivs = scm.interventions + _as_interventions(intervention)
    for iv in ivs:
        scm.graph.check_names(iv.targets(), f"the {type(iv).__name__} intervention")
    x = _as_matrix(scm, data, data_matrix)
    out = _log_prob_rows(scm.program, ivs, scm.graph.names, x)
    return out if per_row else jnp.sum(out)


def _as_matrix(scm, data, data_matrix):
    if isinstance(data, (pd.DataFrame, Mapping)):
        return data_matrix(scm, data)
    x = as_float_array(data, "data")
    d = scm.graph.n_nodes
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(
            f"data must be a DataFrame, a dict of columns or an (n, {d}) array (columns in "
            f"scm.names order); got an array of shape {tuple(x.shape)}"
        )
    return check_finite(x, "data")
