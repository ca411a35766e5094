"""`SCM`: a NumPyro program read as a structural causal model, with interventions that compose."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray, Real
from numpyro import handlers

from .._compile import filter_jit
from .._philox import philox_uniform, uniform_from_words
from ._graph import Graph
from ._interventions import AbstractIntervention, Do, Runner, Shift, Soft


def run_unit(
    model: Callable,
    interventions: tuple[AbstractIntervention, ...],
    key: PRNGKeyArray,
    substitute: Mapping[str, Array] | None = None,
    noise: Mapping[str, Array] | None = None,
    uniforms: Array | None = None,
    index: Mapping[str, int] | None = None,
) -> tuple[dict[str, Array], dict[str, Any]]:
    """Runs `model` once (one unit) under `interventions`; returns its site values and
    distributions. `substitute` fixes sample sites (NumPyro's `substitute`), `noise` replays
    standardised noise at location-scale sites, `uniforms` drives them (see `Runner`)."""
    from ._logprob import InterventionProgram

    if isinstance(model, InterventionProgram):
        # `scm.model` of an intervened SCM already applies its interventions: pass `scm.program`.
        raise TypeError("run_unit takes an SCM's base program (scm.program), not scm.model")
    runner = Runner(model, interventions, noise, uniforms, index)
    fn = runner if not substitute else handlers.substitute(runner, data=dict(substitute))
    handlers.seed(fn, rng_seed=key)()
    return runner.values, runner.fns


def broadcast_interventions(
    interventions: tuple[AbstractIntervention, ...], n: int
) -> tuple[AbstractIntervention, ...]:
    """Gives every intervention value a leading unit axis of size `n` (values may be per unit).

    Array leaves only: the functions of a `Soft` stay as they are (map with `eqx.filter_vmap`),
    and arrays inside them (an `eqx.Partial`'s arguments) are broadcast like values."""
    def to_n(v):
        if not eqx.is_array_like(v):
            return v
        v = jnp.asarray(v)
        if v.ndim == 0:
            return jnp.broadcast_to(v, (n,))
        if v.shape != (n,):
            raise ValueError(
                f"intervention values must be scalars or have one value per unit ({n},); "
                f"got shape {tuple(v.shape)}"
            )
        return v
    return jax.tree.map(to_n, interventions)


BULK_NOISE_IMPL = "philox4x32"
"""The generator of the bulk noise of `sample` (the `(n, d)` uniforms): Philox4x32-10.

`benchmarks/scm_noise_prng.py` compares the candidates on the 1000-intervention query of
`scm_interventions.py`. On a CPU the bulk noise is most of a sampling query's time, and JAX's
threefry costs 6-7 ns per float32 word (drawn one key at a time; 7x more for a `vmap`ped batch of
keys), `rbg`/`unsafe_rbg` (XLA's `RngBitGenerator`) more. Philox4x32-10 written as elementwise
32-bit arithmetic (`jaxcausal/_philox.py`) costs 3-5 ns per word and stays fast under `vmap`, so
batched queries draw the noise of a chunk of interventions in one batch. Its numbers are a pure
function of the key and the shape (the same in a loop, under `vmap` or sharded) and it passes
BigCrush (Salmon et al. 2011). The name of a JAX PRNG implementation (`"threefry2x32"`, `"rbg"`,
`"unsafe_rbg"`) selects that one instead (benchmarks only; its noise is then drawn one key at a
time in batched queries).
"""


def noise_vmaps() -> bool:
    """Whether batched queries draw their noise under `vmap` (fast for Philox) or one key at a
    time with `lax.map` (faster for JAX's threefry on a CPU)."""
    return BULK_NOISE_IMPL == "philox4x32"


def unit_uniforms(key: PRNGKeyArray, n: int, d: int) -> Float[Array, "n d"]:
    """The `(n, d)` uniforms in `(0, 1)` that drive the location-scale sites of `n` units: the
    midpoints of a grid of `2^23` (float32) or `2^52` (float64) cells (`uniform_from_words`), from
    `BULK_NOISE_IMPL`'s words for `key`."""
    if BULK_NOISE_IMPL == "philox4x32":
        return philox_uniform(key, (n, d))
    dtype = jnp.result_type(float)
    k = key if BULK_NOISE_IMPL == "threefry2x32" else jr.wrap_key_data(
        jr.bits(key, (4,), jnp.uint32), impl=BULK_NOISE_IMPL)
    words = jr.bits(k, (n * d * (2 if dtype == jnp.float64 else 1),), jnp.uint32)
    return uniform_from_words(words, (n, d), dtype)


def unit_keys(key: PRNGKeyArray) -> tuple[PRNGKeyArray, PRNGKeyArray]:
    """`(k_sites, k_noise)`: NumPyro's per-unit keys (non-location-scale sites) and the bulk
    noise key of `unit_uniforms`."""
    return tuple(jr.split(key))


@eqx.debug.assert_max_traces(max_traces=None)
def _sample_impl(
    scm: SCM, n: int, key: PRNGKeyArray, u: Float[Array, "n d"] | None = None
) -> dict[str, Array]:
    k_sites, k_unif = unit_keys(key)
    keys = jr.split(k_sites, n)
    names = scm.graph.names
    if u is None:
        u = unit_uniforms(k_unif, n, len(names))
    ivs = broadcast_interventions(scm.interventions, n)
    index = {v: j for j, v in enumerate(names)}

    def one(k, uu, iv):
        values, _ = run_unit(scm.program, iv, k, uniforms=uu, index=index)
        return {v: values[v] for v in names}

    return eqx.filter_vmap(one)(keys, u, ivs)


sample_jit = filter_jit(_sample_impl)


def count_sample_traces() -> int:
    """How many times sampling has been traced (for no-recompilation tests)."""
    return eqx.debug.get_num_traces(_sample_impl)


class SCM(eqx.Module):
    """A structural causal model given by a NumPyro program.

    Every sample site and every `numpyro.deterministic` site of the program is a variable (a node);
    the graph is read from the program by tracing (see [`jaxcausal.scm.Graph.from_model`][]). Write
    the program for one unit with scalar sites; jaxcausal batches units with `vmap`.

    **Arguments:**

    - `model`: a NumPyro program taking no arguments (bind data with `functools.partial`), or an
      Equinox module with a `__call__()` (its arrays are then traced, not baked in). The `model`
      of an intervened SCM is accepted too (its interventions are taken over).
    - `interventions`: interventions applied, in order, every time the program runs (normally
      built with `do`, `shift` and `soft`).
    - `noise`: names of sample sites that are explicit exogenous noise (a program that writes
      `u = numpyro.sample("u_x", ...)` and `x = numpyro.deterministic("x", f(z, u))` passes
      `noise=("u_x",)`); counterfactuals abduct them instead of observing them.
    - `graph`, `deterministic`: the graph and the names of `numpyro.deterministic` sites, when
      already known (then the program is not traced again; `from_graph` and `intervene` use it).

    ```python
    def model():
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        x = numpyro.sample("x", dist.Normal(0.8 * z, 1.0))
        y = numpyro.sample("y", dist.Normal(1.5 * x - z, 0.5))

    scm = jc.scm.SCM(model)
    draws = scm.do({"x": 1.0}).sample(1000, key=jr.key(0))   # dict name -> (1000,)
    ```
    """

    program: Callable
    graph: Graph
    deterministic: tuple[str, ...] = eqx.field(static=True)
    noise_sites: tuple[str, ...] = eqx.field(static=True)
    interventions: tuple[AbstractIntervention, ...]

    def __init__(
        self,
        model: Any,
        interventions: tuple[Any, ...] = (),
        *,
        noise: str | tuple[str, ...] = (),
        graph: Graph | None = None,
        deterministic: tuple[str, ...] | None = None,
    ):
        from ._logprob import InterventionProgram

        if isinstance(model, InterventionProgram):
            interventions = model.interventions + tuple(interventions)
            model = model.program
        if graph is None or deterministic is None:
            graph = Graph.from_model(model)
            values, fns = run_unit(model, (), jr.key(0))
            deterministic = tuple(v for v in graph.names if fns.get(v) is None)
        for iv in interventions:
            if not isinstance(iv, AbstractIntervention):
                raise TypeError(
                    f"interventions must be Do, Shift or Soft objects; got {type(iv).__name__}"
                )
            graph.check_names(iv.targets(), f"the {type(iv).__name__} intervention")
        noise = (noise,) if isinstance(noise, str) else tuple(noise)
        graph.check_names(noise, "noise")
        det = set(deterministic)
        for u in noise:
            if u in det or graph.parents(u):
                raise ValueError(
                    f"noise site {u!r} must be a sample site without parents (exogenous noise)"
                )
        self.program = model
        self.graph = graph
        self.deterministic = tuple(deterministic)
        self.noise_sites = noise
        self.interventions = tuple(interventions)

    @property
    def model(self) -> Callable:
        """The program as NumPyro's tools should see it: the base program when there are no
        interventions, else an [`jaxcausal.scm.InterventionProgram`][] that applies them (so
        `numpyro.infer.util.log_density`, `Predictive` and `MCMC` see the intervened model).
        `program` is the base program without them."""
        if not self.interventions:
            return self.program
        from ._logprob import InterventionProgram

        return InterventionProgram(self.program, self.interventions)

    @property
    def names(self) -> tuple[str, ...]:
        return self.graph.names

    @classmethod
    def from_graph(
        cls,
        adjacency: Any,
        names: Any = None,
        mechanisms: Any = None,
        *,
        key: PRNGKeyArray | None = None,
        noise_scale: Any = None,
    ) -> SCM:
        """An SCM over a given graph with parametric mechanisms.

        **Arguments:**

        - `adjacency`: `(d, d)` 0/1 matrix (`adjacency[i, j]`: `names[i] -> names[j]`), or a
          [`jaxcausal.scm.Graph`][] (then `names` is ignored).
        - `names`: the `d` node names.
        - `mechanisms`: [`jaxcausal.scm.LinearGaussian`][] (default) or
          [`jaxcausal.scm.AdditiveNoiseMLP`][].
        - `key`: initialises the parameters (linear weights `N(0, 1)` on the edges; MLP weights).
        - `noise_scale`: optional noise standard deviation(s), scalar or `(d,)`.

        **Returns:** an SCM whose `model` is the program (its parameters are arrays, learned by
        [`jaxcausal.scm.fit`][]).
        """
        from ._mechanisms import LinearGaussian, from_graph

        mechanisms = LinearGaussian() if mechanisms is None else mechanisms
        program = from_graph(adjacency, names, mechanisms, key=key, noise_scale=noise_scale)
        return cls(program, graph=program.graph, deterministic=())

    def intervene(self, intervention: AbstractIntervention) -> SCM:
        """A new SCM with `intervention` applied after the ones already there."""
        return SCM(
            self.program, self.interventions + (intervention,), noise=self.noise_sites,
            graph=self.graph, deterministic=self.deterministic,
        )

    def do(self, values: Any) -> SCM:
        """Hard intervention `do(X := v)` for each `{name: v}`; returns a new SCM."""
        return self.intervene(Do(values))

    def shift(self, values: Any) -> SCM:
        """Shift intervention `X := f(pa, U) + delta` per `{name: delta}`; returns a new SCM."""
        return self.intervene(Shift(values))

    def soft(self, fns: Mapping[str, Any]) -> SCM:
        """Soft intervention replacing each named mechanism (see [`jaxcausal.scm.Soft`][])."""
        return self.intervene(Soft(fns))

    def sample(self, n: int, *, key: PRNGKeyArray) -> dict[str, Real[Array, " n"]]:
        """Draws `n` units from the (intervened) model.

        **Arguments:**

        - `n`: number of units.
        - `key`: a JAX PRNG key. Location-scale sites draw their noise from one `(n, d)` array
          of uniforms (inverse-CDF), other sites from NumPyro's `seed`; the same key gives the
          same noise to every unit whatever the interventions (common random numbers).

        **Returns:** a dict `{name: (n,) array}` over the nodes in topological order.

        Compiled once per `n` and program; intervention values are traced, so `scm.do({"x": 1.0})`
        and `scm.do({"x": 2.0})` share one compilation.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        out = sample_jit(self, n, key)
        return {v: out[v] for v in self.graph.names}

    def counterfactual(
        self,
        observed: Mapping[str, Any],
        intervention: Any,
    ) -> dict[str, Float[Array, " n"]]:
        """Per-unit counterfactuals: abduction, action, prediction.

        See [`jaxcausal.scm.counterfactual`][].
        """
        from ._counterfactual import counterfactual

        return counterfactual(self, observed, intervention)
