r"""The interventional worlds of the input SCM that the estimands contrast.

For feature $i$, intervention value $\alpha$ and reference $a_0$:

- `total`: $do(X_i = \alpha)$;
- `direct`: the observational world with $X_i$ replaced by $\alpha$ in the network's input only;
- `natural`: the world $do(X_i = a_0)$ with $X_i$ replaced by $\alpha$ in the network's input
  (`natural_ref` is the same world at $\alpha = a_0$).

Sampled worlds draw units from the SCM (common random numbers: one key for every world). Linear-
Gaussian worlds are Gaussian with exact moments: with $x = \mu + G\varepsilon$ the observational
structural map and $a_i$ the total effects of $X_i$ on the inputs ($a_{ii} = 1$), a unit's inputs
under $do(X_i = v)$ are $x + a_i (v - x_i)$, so the mean is $\mu + a_i (v - \mu_i)$ and the factor
$(I - a_i e_i^\top) G$.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..scm import SCM, Do, LinearGaussianProgram, linearise


class LinearWorlds(eqx.Module):
    """Exact moments of the inputs of a linear-Gaussian SCM (restricted to the features).

    - `mean`: `(d,)` observational mean; `factor`: `(d, r)` with covariance `factor @ factor.T`.
    - `total`: `(d, d)`, row `i` the total effects of feature `i` on every feature.
    """

    mean: Float[Array, " d"]
    factor: Float[Array, "d r"]
    total: Float[Array, "d d"]


def _do_values(names: tuple[str, ...], i: Int[Array, ""], v: Array) -> dict[str, Array]:
    # One intervention object for every feature: NaN leaves a node alone (vmappable over i).
    return {nm: jnp.where(k == i, v, jnp.nan) for k, nm in enumerate(names)}


def linear_worlds(inputs: SCM, names: tuple[str, ...]) -> LinearWorlds:
    """The exact moments: in closed form for a `LinearGaussianProgram` without interventions,
    else from the Jacobians of the program (exact for affine-Normal mechanisms)."""
    idx = jnp.asarray([inputs.graph.index(v) for v in names])
    program = inputs.program
    if isinstance(program, LinearGaussianProgram) and not inputs.interventions:
        w = program.weights
        n_nodes = w.shape[0]
        eye = jnp.eye(n_nodes, dtype=w.dtype)
        # Nodes are in topological order, so I - W^T is lower triangular.
        a = jax.scipy.linalg.solve_triangular(eye - w.T, eye, lower=True)
        mean = a @ program.bias
        factor = a * program.scale[None, :]
        return LinearWorlds(mean=mean[idx], factor=factor[idx], total=a[idx][:, idx].T)
    lin = linearise(inputs)
    dtype = lin.mean.dtype

    def effects(i):
        def mean_do(v):
            return linearise(inputs.intervene(Do(_do_values(names, i, v)))).mean[idx]

        return jax.jvp(mean_do, (jnp.zeros((), dtype),), (jnp.ones((), dtype),))[1]

    total = jax.vmap(effects)(jnp.arange(len(names)))
    return LinearWorlds(mean=lin.mean[idx], factor=lin.factor[idx], total=total)


def linear_mean(lw: LinearWorlds, world: str, i: Array, alpha: Array, ref: Array) -> Array:
    """The mean of the inputs in `world` (see the module docstring)."""
    d = lw.mean.shape[0]
    e_i = jnp.arange(d) == i
    a_i = lw.total[i]
    if world == "direct":
        return jnp.where(e_i, alpha, lw.mean)
    v = alpha if world == "total" else ref
    mean = lw.mean + a_i * (v - lw.mean[i])
    return jnp.where(e_i, alpha if world in ("total", "natural") else ref, mean)


def linear_factor(lw: LinearWorlds, world: str, i: Array, base: Array) -> Array:
    """The factor (or probes `factor @ z`) of the inputs' covariance in `world`; `base` is the
    observational factor or its probes, `(d, r)`."""
    if world == "direct":
        return base.at[i].set(0.0)
    return base - lw.total[i][:, None] * base[i][None, :]


def linear_cov(lw: LinearWorlds, world: str, i: Array, cov: Array) -> Array:
    """The covariance in `world` from the observational covariance `cov` (dense route)."""
    d = cov.shape[0]
    if world == "direct":
        keep = jnp.arange(d) != i
        return cov * (keep[:, None] & keep[None, :])
    p = jnp.eye(d, dtype=cov.dtype) - lw.total[i][:, None] * (jnp.arange(d) == i)[None, :]
    return p @ cov @ p.T


def draw(
    inputs: SCM, names: tuple[str, ...], i: Array, v: Array, n: int, key: PRNGKeyArray
) -> Float[Array, "n d"]:
    """`n` units of the features under `do(names[i] = v)` (`i = -1`: observational), drawn with
    `key` (the same key in every world: common random numbers)."""
    dtype = jnp.result_type(v)
    draws = inputs.intervene(Do(_do_values(names, i, v))).sample(n, key=key)
    return jnp.stack([jnp.asarray(draws[nm], dtype) for nm in names], axis=1)


def sampled_world(
    inputs: SCM, names: tuple[str, ...], world: str, i: Array, alpha: Array, ref: Array,
    n: int, key: PRNGKeyArray,
) -> Float[Array, "n d"]:
    """Units of the network's inputs in `world`."""
    if world == "direct":
        x = draw(inputs, names, jnp.asarray(-1), alpha, n, key)
    elif world == "total":
        x = draw(inputs, names, i, alpha, n, key)
    else:
        x = draw(inputs, names, i, ref, n, key)
    value = ref if world == "natural_ref" else alpha
    return jnp.where((jnp.arange(len(names)) == i)[None, :], value, x)
