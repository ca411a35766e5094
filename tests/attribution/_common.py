"""A quadratic network and the closed-form effects it has on a linear-Gaussian input SCM."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..scm._models import closed_form


class Quadratic(eqx.Module):
    """f(x) = c + g.x + x'Qx / 2: the Taylor expansion is exact, E f = f(mu) + tr(Q Sigma) / 2."""

    q: jax.Array
    g: jax.Array
    c: jax.Array

    def __call__(self, x):
        return self.c + self.g @ x + 0.5 * x @ self.q @ x


def quadratic(seed: int, d: int = 5, interactions: bool = True) -> Quadratic:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(d, d))
    q = q + q.T
    if not interactions:
        q = np.diag(np.diag(q))
    return Quadratic(jnp.asarray(q), jnp.asarray(rng.normal(size=d)), jnp.asarray(0.5))


def _expect(f: Quadratic, mu, cov) -> float:
    q, g = np.asarray(f.q), np.asarray(f.g)
    return float(f.c) + g @ mu + 0.5 * mu @ q @ mu + 0.5 * np.trace(q @ cov)


def world_moments(w, b, s, world, i, alpha, ref):
    """Mean and covariance of the inputs in a world of `jaxcausal/attribution/_worlds.py`."""
    if world == "direct":
        mu, cov = closed_form(w, b, s)
    elif world == "total":
        mu, cov = closed_form(w, b, s, do={i: alpha})
    else:
        mu, cov = closed_form(w, b, s, do={i: ref})
    mu = mu.copy()
    cov = cov.copy()
    mu[i] = ref if world == "natural_ref" else alpha
    cov[i, :] = 0.0
    cov[:, i] = 0.0
    return mu, cov


def exact_effects(f, w, b, s, alphas, effect, ref):
    """The raw effect curves `(d, m)` of `effect` (a name) for the quadratic `f`."""
    d, m = alphas.shape
    ref = np.zeros(d) if ref is None else ref
    out = np.zeros((d, m))
    for i in range(d):
        for k in range(m):
            e = {
                world: _expect(f, *world_moments(w, b, s, world, i, alphas[i, k], ref[i]))
                for world in ("total", "direct", "natural", "natural_ref")
            }
            out[i, k] = {
                "Total": e["total"],
                "ControlledDirect": e["direct"],
                "Indirect": e["total"] - e["direct"],
                "NaturalDirect": e["natural"] - e["natural_ref"],
                "NaturalIndirect": e["total"] - e["natural"],
            }[effect]
    return out
