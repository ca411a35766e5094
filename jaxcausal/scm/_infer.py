r"""Bayesian inference over interventions: which mechanism was changed, and how strongly.

Given a fitted SCM and data after an unknown intervention, the target $t \in \{\varnothing, 1,
\dots, d\}$ (uniform prior; $\varnothing$: nothing changed) and strengths $\delta \in
\mathbb{R}^d$ are latent. With the parents observed, node $j$'s conditional density is that of
the SCM, so the likelihood of target $t$ only changes node $t$'s factor:

$$\log p(D \mid t, \delta) = \sum_j L_j(0) + [L_t(\delta_t) - L_t(0)],$$

and the discrete target is summed out exactly (a `logsumexp` factor: enumeration without
funsor), leaving a smooth posterior over $\delta$ for NUTS or SVI. Target probabilities are
Rao-Blackwellised: $p(t \mid D) \approx \frac1S \sum_s p(t \mid \delta^{(s)}, D)$.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray
from numpyro.infer import MCMC, NUTS as _NUTS, SVI as _SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from .._compile import filter_jit
from ._fit import data_matrix
from ._interventions import Do, Shift
from ._scm import SCM, run_unit


class NUTS(eqx.Module):
    """Posterior by NumPyro's NUTS over the strengths, target summed out.

    `max_tree_depth` bounds the leapfrog steps per draw (`2**depth - 1`): the posterior mixes a
    sharp direction (the target's strength) with prior-wide ones, and a bound keeps warm-up cheap.
    """

    num_warmup: int = eqx.field(static=True, default=500)
    num_samples: int = eqx.field(static=True, default=500)
    max_tree_depth: int = eqx.field(static=True, default=7)


class SVI(eqx.Module):
    """Posterior by stochastic variational inference (`AutoNormal` guide over the strengths)."""

    steps: int = eqx.field(static=True, default=2000)
    learning_rate: float = 0.02
    num_samples: int = eqx.field(static=True, default=500)


class InterventionPosterior(eqx.Module):
    """What [`jaxcausal.scm.infer_interventions`][] returns.

    - `names`: node names (graph order).
    - `target_probs`: `(d,)` posterior probability that each node was the intervened one.
    - `target_log_probs`: `(d,)` their logarithms, computed stably (they rank nodes whose
      probabilities underflow to 0).
    - `none_prob`: posterior probability that nothing was intervened on
      (`none_prob + sum(target_probs) = 1`).
    - `strength`: `(S, d)` posterior samples of each node's strength (the shift, or the new mean
      for `Do()`); a node's column is informative where it is the target.
    - `target_weights`: `(S, d)`, `p(t = j | strength sample s, data)`; weight the strength samples
      of node `j` by its column for its posterior given that it is the target.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    target_probs: Float[Array, " d"]
    target_log_probs: Float[Array, " d"]
    none_prob: Float[Array, ""]
    strength: Float[Array, "S d"]
    target_weights: Float[Array, "S d"]

    def summary(self) -> pd.DataFrame:
        """Nodes ranked by posterior target probability, with the posterior mean strength given
        that the node is the target (NaN where a node has no posterior mass)."""
        w = self.target_weights
        total = jnp.sum(w, axis=0)
        num = jnp.sum(w * self.strength, axis=0)
        mean = jnp.where(total > 0, num / jnp.where(total > 0, total, 1.0), jnp.nan)
        df = pd.DataFrame(
            {
                "target_prob": jax.device_get(self.target_probs),
                "log_prob": jax.device_get(self.target_log_probs),
                "strength": jax.device_get(mean),
            },
            index=list(self.names),
        )
        return df.sort_values("log_prob", ascending=False)


@filter_jit
def _node_densities(scm: SCM, x: Array):
    """Each node's conditional distribution given its observed parents, one per row."""
    names = scm.graph.names

    def one(row):
        subs = dict(zip(names, row))
        _, fns = run_unit(scm.program, scm.interventions, jr.key(0), substitute=subs)
        return tuple(fns[v] for v in names)

    return jax.vmap(one)(x)


def _loglik_shift(fns, x, delta):
    cols = [jnp.sum(jax.vmap(lambda f, v, j=j: f.log_prob(v - delta[j]))(fn, x[:, j]))
            for j, fn in enumerate(fns)]
    return jnp.stack(cols)


def _loglik_do(x, mu, sigma):
    lp = dist.Normal(mu[None, :], sigma[None, :]).log_prob(x)
    return jnp.sum(lp, axis=0)


def _model(fns, x, base, kind_do: bool, prior_scale):
    n, d = x.shape
    centre = jnp.mean(x, axis=0)
    spread = jnp.std(x, axis=0) + 1e-12
    z = numpyro.sample("z", dist.Normal(jnp.zeros(d), 1.0).to_event(1))
    if kind_do:
        strength = centre + prior_scale * spread * z
        log_sigma = numpyro.sample(
            "log_sigma", dist.Normal(jnp.log(spread), 2.0).to_event(1)
        )
        gain = _loglik_do(x, strength, jnp.exp(log_sigma)) - base
    else:
        strength = prior_scale * spread * z
        gain = _loglik_shift(fns, x, strength) - base
    numpyro.deterministic("strength", strength)
    logits = jnp.concatenate([jnp.zeros((1,), gain.dtype), gain])
    numpyro.deterministic("logits", logits)
    numpyro.factor("target_marginal", jax.nn.logsumexp(logits) - jnp.log(d + 1.0))


def _posterior(samples, names):
    logits = samples["logits"]
    probs = jax.nn.softmax(logits, axis=-1)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    log_mean = jax.nn.logsumexp(log_probs, axis=0) - jnp.log(logits.shape[0])
    return InterventionPosterior(
        names=names,
        target_probs=jnp.mean(probs[:, 1:], axis=0),
        target_log_probs=log_mean[1:],
        none_prob=jnp.mean(probs[:, 0]),
        strength=samples["strength"],
        target_weights=probs[:, 1:],
    )


def infer_interventions(
    scm: SCM,
    data_after: Any,
    *,
    key: PRNGKeyArray,
    kind: Any = Shift(),
    method: Any = NUTS(),
    prior_scale: float = 5.0,
) -> InterventionPosterior:
    """Posterior over which node an unknown intervention targeted, and its strength.

    **Arguments:**

    - `scm`: the fitted model of the unperturbed system (every node a sample site).
    - `data_after`: DataFrame or dict with one column per node, drawn after the intervention.
    - `key`: for the sampler.
    - `kind`: `Shift()` (the target's mechanism moves by `strength`) or `Do()` (the target's
      mechanism is replaced by `Normal(strength, sigma)`, independent of its parents).
    - `method`: [`jaxcausal.scm.NUTS`][] (default) or [`jaxcausal.scm.SVI`][].
    - `prior_scale`: prior sd of the strength in units of each node's sd in `data_after`.

    **Returns:** a [`jaxcausal.scm.InterventionPosterior`][].
    """
    if not isinstance(scm, SCM):
        raise TypeError(f"scm must be a jaxcausal.scm.SCM; got {type(scm).__name__}")
    if isinstance(kind, str):
        raise TypeError('kind must be an object, Shift() or Do(); got the string ' + repr(kind))
    if not isinstance(kind, (Shift, Do)) or kind.values is not None:
        raise TypeError(f"kind must be Shift() or Do() without values; got {kind!r}")
    if scm.deterministic:
        raise ValueError(
            f"infer_interventions needs every node to be a sample site; {list(scm.deterministic)} "
            "are numpyro.deterministic sites"
        )
    x = data_matrix(scm, data_after, "data_after")
    if x.shape[0] < 2:
        raise ValueError(f"data_after must have at least 2 rows; got {x.shape[0]}")
    fns = _node_densities(scm, x)
    base = _loglik_shift(fns, x, jnp.zeros((x.shape[1],), x.dtype))  # L_j(0): no intervention
    args = (fns, x, base, isinstance(kind, Do), prior_scale)
    if isinstance(method, NUTS):
        mcmc = MCMC(
            _NUTS(_model, max_tree_depth=method.max_tree_depth), num_warmup=method.num_warmup,
            num_samples=method.num_samples, progress_bar=False,
        )
        mcmc.run(key, *args)
        samples = mcmc.get_samples()
    elif isinstance(method, SVI):
        k_fit, k_draw = jr.split(key)
        guide = AutoNormal(_model)
        svi = _SVI(_model, guide, numpyro.optim.Adam(method.learning_rate), Trace_ELBO())
        result = svi.run(k_fit, method.steps, *args, progress_bar=False)
        predictive = numpyro.infer.Predictive(
            _model, guide=guide, params=result.params, num_samples=method.num_samples
        )
        samples = predictive(k_draw, *args)
    else:
        raise TypeError(
            f"method must be jc.scm.NUTS() or jc.scm.SVI(); got {type(method).__name__}"
        )
    return _posterior(samples, scm.graph.names)
