"""The structural map of an SCM linearised in its noise: exact moments of linear-Gaussian SCMs."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit
from ._scm import SCM, run_unit


class Linearisation(eqx.Module):
    r"""The structural map $x = \Phi(\varepsilon)$ of an SCM to first order at $\varepsilon = 0$:
    $x \approx \mu + G\varepsilon$ with $\varepsilon \sim \mathcal{N}(0, I)$ the standardised noise
    of its sample sites.

    - `mean`: `(d,)` $\mu = \Phi(0)$, over `names`.
    - `factor`: `(d, r)` $G = \partial\Phi / \partial\varepsilon$ at 0, one column per sample site
      (`noise_names`); the covariance is $G G^\top$.

    Exact (mean and covariance of the SCM) when every mechanism is affine in its parents with
    Normal noise of a fixed scale; see [`jaxcausal.scm.is_linear_gaussian`][].
    """

    mean: Float[Array, " d"]
    factor: Float[Array, "d r"]
    names: tuple[str, ...] = eqx.field(static=True)
    noise_names: tuple[str, ...] = eqx.field(static=True)

    @property
    def cov(self) -> Float[Array, "d d"]:
        return self.factor @ self.factor.T


def _sample_sites(scm: SCM) -> tuple[str, ...]:
    det = set(scm.deterministic)
    return tuple(v for v in scm.graph.names if v not in det)


def _check_location_scale(scm: SCM, normal: bool) -> str | None:
    """The first sample site whose distribution is not Normal (or not location-scale)."""
    _, fns = run_unit(scm.program, scm.interventions, jr.key(0))
    for v in _sample_sites(scm):
        fn = fns.get(v)
        ok = isinstance(fn, dist.Normal) if normal else hasattr(fn, "loc") and hasattr(fn, "scale")
        if not ok:
            return f"{v!r} ({type(fn).__name__})"
    return None


def _structural(scm: SCM, eps: Array) -> Array:
    sites = _sample_sites(scm)
    values, _ = run_unit(
        scm.program, scm.interventions, jr.key(0), noise={s: eps[k] for k, s in enumerate(sites)}
    )
    dtype = jnp.result_type(float)
    return jnp.stack([jnp.asarray(values[v], dtype) for v in scm.graph.names])


def linearise(scm: SCM) -> Linearisation:
    r"""Linearises the structural map of `scm` (with its interventions) in its noise.

    Runs the program with the standardised noise $\varepsilon$ replayed at every sample site and
    differentiates with respect to $\varepsilon$ (forward mode, one pass per site). Every sample
    site must have a location-scale distribution (Normal for exact moments).

    **Returns:** a [`jaxcausal.scm.Linearisation`][]. Traceable: works under `jit` and `vmap`, e.g.
    over the values of an intervention (`linearise(scm.do({"x": v}))`).
    """
    if not isinstance(scm, SCM):
        raise TypeError(f"scm must be a jaxcausal.scm.SCM; got {type(scm).__name__}")
    bad = _check_location_scale(scm, normal=False)
    if bad is not None:
        raise ValueError(
            f"cannot linearise the SCM: sample site {bad} has no location-scale noise; the "
            "structural map in the noise needs continuous additive noise at every sample site"
        )
    sites = _sample_sites(scm)
    zero = jnp.zeros((len(sites),), jnp.result_type(float))
    mean = _structural(scm, zero)
    factor = jax.jacfwd(lambda e: _structural(scm, e))(zero)
    return Linearisation(mean=mean, factor=factor, names=scm.graph.names, noise_names=sites)


@filter_jit
def _affine_gap(scm: SCM, key: PRNGKeyArray) -> Array:
    lin = linearise(scm)
    eps = jr.normal(key, (2, len(lin.noise_names)), lin.mean.dtype)
    pred = lin.mean[None, :] + eps @ lin.factor.T
    out = jax.vmap(lambda e: _structural(scm, e))(eps)
    return jnp.max(jnp.abs(out - pred) / (1.0 + jnp.abs(out)))


def is_linear_gaussian(scm: SCM, *, key: PRNGKeyArray | None = None) -> bool:
    """Whether every sample site of `scm` is Normal with a location affine in its parents and a
    fixed scale (so that [`jaxcausal.scm.linearise`][] gives its exact mean and covariance).

    The distribution types are read from one run of the program; affinity is checked numerically:
    the structural map at two random noise vectors (from `key`, default `jr.key(0)`) must equal its
    linearisation to 1e-8 (relative). Needs concrete parameters (not inside `jit`); a
    [`jaxcausal.scm.LinearGaussianProgram`][] is linear-Gaussian by construction.
    """
    if not isinstance(scm, SCM):
        raise TypeError(f"scm must be a jaxcausal.scm.SCM; got {type(scm).__name__}")
    if _check_location_scale(scm, normal=True) is not None:
        return False
    leaves = jax.tree.leaves(eqx.filter(scm, eqx.is_array))
    if not all(is_concrete(a) for a in leaves):
        raise ValueError(
            "is_linear_gaussian needs the SCM's parameters as concrete values; it was called on "
            "traced values (inside jit or vmap)"
        )
    gap = _affine_gap(scm, jr.key(0) if key is None else key)
    return bool(np.asarray(gap) <= 1e-8)
