r"""Estimation and inference for linear scores: the pooled (DML2) solution, its standard error,
the aggregation over repeated cross-fitting, and the multiplier bootstrap.

All follow DoubleML 0.11 term for term:

- $\hat\theta = -\overline{\psi_b} / \overline{\psi_a}$ over all rows (DML2);
- $\hat\sigma^2 = \overline{\psi^2} / (n\,\overline{\psi_a}^2)$ with
  $\psi = \psi_a\hat\theta + \psi_b$;
- over repetitions, $\tilde\theta = \operatorname{median}_r \hat\theta_r$ and
  $\tilde\sigma = (\operatorname{median}_r(\hat\theta_r + 1.96\,\hat\sigma_r) - \tilde\theta)
  / 1.96$;
- bootstrap t-statistics
  $t^*_{bjr} = \sum_i \xi_{bi}\,\psi_{jri} / (\overline{\psi_a}_{jr}\, n\,\hat\sigma_{jr})$
  with multipliers $\xi$ drawn independently per repetition.
"""

from __future__ import annotations

import abc
import statistics

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import is_concrete, to_device
from .._compile import jit

# DoubleML aggregates standard errors through the upper bound of a 95% interval with this value.
_AGG_CRITICAL = 1.96


def solve_linear_score(
    psi_a: Float[Array, "*b n"], psi_b: Float[Array, "*b n"]
) -> tuple[Float[Array, "*b"], Float[Array, "*b"], Float[Array, "*b n"]]:
    """The DML2 estimate, its standard error and the score at the estimate."""
    n = psi_a.shape[-1]
    mean_a = jnp.mean(psi_a, axis=-1)
    theta = -jnp.mean(psi_b, axis=-1) / mean_a
    psi = psi_a * theta[..., None] + psi_b
    var = jnp.mean(psi**2, axis=-1) / (n * mean_a**2)
    return theta, jnp.sqrt(var), psi


def on_host(*arrays) -> bool:
    """Whether every argument holds concrete values (the small summaries of a result are then
    computed with NumPy: eager JAX operations, or a `jit`, would compile in every new process)."""
    return all(is_concrete(a) for a in arrays)


def _aggregate(xp, theta_rep, se_rep):
    theta = xp.median(theta_rep, axis=-1)
    upper = xp.median(theta_rep + _AGG_CRITICAL * se_rep, axis=-1)
    return theta, (upper - theta) / _AGG_CRITICAL


_aggregate_jit = jit(lambda theta_rep, se_rep: _aggregate(jnp, theta_rep, se_rep))


def aggregate(
    theta_rep: Float[Array, "*b n_rep"], se_rep: Float[Array, "*b n_rep"]
) -> tuple[Float[Array, "*b"], Float[Array, "*b"]]:
    """Median aggregation over repetitions with DoubleML's standard-error rule (with NumPy in the
    results' precision on concrete values, one compiled call on traced ones)."""
    if on_host(theta_rep, se_rep):
        dtype = jnp.result_type(theta_rep, se_rep)
        t, s = np.asarray(theta_rep, dtype), np.asarray(se_rep, dtype)
        return tuple(to_device(v, dtype) for v in _aggregate(np, t, s))
    return _aggregate_jit(theta_rep, se_rep)


def normal_quantile(level: float) -> float:
    """The two-sided critical value of the standard normal for a confidence `level`."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    # On the host: an eager JAX call would compile on first use.
    return statistics.NormalDist().inv_cdf(0.5 + level / 2.0)


class AbstractBootstrap(eqx.Module):
    """A multiplier distribution for the score bootstrap."""

    @abc.abstractmethod
    def multipliers(self, key: PRNGKeyArray, shape: tuple[int, ...]) -> Array:
        """Draws centred, unit-variance multipliers of `shape`."""


class NormalBootstrap(AbstractBootstrap):
    """Gaussian multipliers $\\xi \\sim N(0, 1)$."""

    def multipliers(self, key, shape):
        return jr.normal(key, shape)


class WildBootstrap(AbstractBootstrap):
    """Mammen-type wild multipliers $\\xi = u/\\sqrt 2 + (v^2 - 1)/2$ with $u, v \\sim N(0, 1)$."""

    def multipliers(self, key, shape):
        k_u, k_v = jr.split(key)
        u, v = jr.normal(k_u, shape), jr.normal(k_v, shape)
        return u / jnp.sqrt(2.0) + (v**2 - 1.0) / 2.0


class BayesBootstrap(AbstractBootstrap):
    """Bayesian bootstrap multipliers $\\xi = E - 1$ with $E \\sim \\text{Exp}(1)$."""

    def multipliers(self, key, shape):
        return jr.exponential(key, shape) - 1.0


def bootstrap_t_stats(
    psi: Float[Array, "k n_rep n"],
    psi_a: Float[Array, "k n_rep n"],
    se_rep: Float[Array, "k n_rep"],
    method: AbstractBootstrap,
    n_rep_boot: int,
    key: PRNGKeyArray,
) -> Float[Array, "n_rep_boot k n_rep"]:
    """Bootstrap t-statistics for every treatment and repetition (multipliers shared across
    treatments, independent across repetitions)."""
    _, n_rep, n = psi.shape
    xi = jax.vmap(lambda k: method.multipliers(k, (n_rep_boot, n)))(jr.split(key, n_rep))
    scaled = psi / jnp.mean(psi_a, axis=-1, keepdims=True)
    return jnp.einsum("rbi,kri->bkr", xi.astype(psi.dtype), scaled) / (n * se_rep[None])
