r"""The Bayesian GIM: posterior over the targets and shifts of a new perturbation from a few of
its cells, with $g_\phi(\gamma)$ as the prior, under the learned causal model.

With the residual sums $S_{1j}, S_{2j}$ of the $n$ new cells the posterior is conjugate and
exact (`method=None`):

$$\mathrm{logit}\, p(b_j = 1 \mid D) = \mathrm{logit}\, \pi_j + \log E_{\psi_j} e^{L_j(\psi_j)} -
L_j(0), \qquad \psi_j \mid b_j = 1, D \sim \mathcal N\!\Big(\frac{\mu_j/s_j^2 + S_{1j}/\sigma_j'^2}
{1/s_j^2 + n/\sigma_j'^2},\ \frac{1}{1/s_j^2 + n/\sigma_j'^2}\Big),$$

(the same closed forms as the training objective), independently over variables. `method=
jc.scm.NUTS(...)` samples the shifts with NumPyro's NUTS instead, targets summed out in the
density and Rao-Blackwellised afterwards; it agrees with the exact posterior (a test checks) and
is there for models one may extend beyond the conjugate case. With no cells the posterior is the
prior: the zero-shot GIM.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array, check_finite
from .._compile import filter_jit
from ..scm import NUTS
from ._objective import node_loglik, residual_sums, shift_marginal, shift_posterior


class GIMPosterior(eqx.Module):
    """Posterior of a new perturbation's intervention (data units).

    - `target_probs`: `(d,)` posterior probability that each variable is targeted.
    - `strength_mean`, `strength_sd`: `(d,)` posterior of each variable's shift given that it
      is targeted.
    - `strength`: `(S, d)` posterior draws of the shift $\\delta_j = b_j \\psi_j$ (0 where not
      targeted in that draw).
    - `n_cells`: how many cells it was computed from.
    """

    target_probs: Float[Array, " d"]
    strength_mean: Float[Array, " d"]
    strength_sd: Float[Array, " d"]
    strength: Float[Array, "S d"]
    n_cells: int = eqx.field(static=True)
    fitted: Any

    def interval(self, level: float = 0.9) -> tuple[Array, Array]:
        """Central credible interval `(lower, upper)`, each `(d,)`, of each shift given that the
        variable is targeted."""
        z = jax.scipy.special.ndtri(0.5 + level / 2)
        return self.strength_mean - z * self.strength_sd, self.strength_mean + z * self.strength_sd

    def predictive(self, n: int, *, key: PRNGKeyArray) -> Float[Array, "n d"]:
        """`n` cells of the posterior predictive distribution (each cell draws its intervention
        from the posterior)."""
        f = self.fitted
        c = f.causal
        k_b, k_p, k_e = jr.split(key, 3)
        d = self.target_probs.shape[0]
        b = jr.bernoulli(k_b, jnp.broadcast_to(self.target_probs, (n, d))).astype(c.bias.dtype)
        z = jr.normal(k_p, (n, d), c.bias.dtype)
        psi = (self.strength_mean[None, :] + self.strength_sd[None, :] * z) / f.x_scale[None, :]
        tau = f.heads(self._features).tau
        sigma = jnp.exp(c.log_scale)[None, :] * jnp.exp(b * tau)
        u = c.bias[None, :] + b * psi + sigma * jr.normal(k_e, (n, d), c.bias.dtype)
        return f.x_loc[None, :] + f.x_scale[None, :] * c.solve(u)

    _features: Array = eqx.field(default=None)


def _suff(fitted, x):
    xs = (x - fitted.x_loc[None, :]) / fitted.x_scale[None, :]
    s1, s2 = residual_sums(fitted.causal, xs, jnp.ones(xs.shape[0], bool))
    return jnp.asarray(xs.shape[0], xs.dtype), s1, s2


@filter_jit
def _exact(fitted, features, x, key, n_draws):
    h = jax.tree.map(lambda a: a[0], fitted.heads(features))
    n, s1, s2 = _suff(fitted, x)
    sigma = jnp.exp(fitted.causal.log_scale) * jnp.exp(h.tau)
    s = jnp.exp(h.log_s)
    if x.shape[0] == 0:
        probs, mean, sd = jax.nn.sigmoid(h.logits), h.mu, s
    else:
        sigma0 = jnp.exp(fitted.causal.log_scale)
        gain = shift_marginal(n, s1, s2, h.mu, s, sigma) - node_loglik(n, s1, s2, 0.0, sigma0)
        probs = jax.nn.sigmoid(h.logits + gain)
        mean, sd = shift_posterior(n, s1, h.mu, s, sigma)
    k_b, k_p = jr.split(key)
    d = probs.shape[0]
    b = jr.bernoulli(k_b, jnp.broadcast_to(probs, (n_draws, d)))
    psi = mean[None, :] + sd[None, :] * jr.normal(k_p, (n_draws, d), mean.dtype)
    scale = fitted.x_scale
    return probs, mean * scale, sd * scale, jnp.where(b, psi * scale[None, :], 0.0)


def _nuts_model(n, s1, s2, sigma0, sigma, h):
    s = jnp.exp(h.log_s)
    psi = numpyro.sample("psi", dist.Normal(h.mu, s).to_event(1))
    l1 = node_loglik(n, s1, s2, psi, sigma)
    l0 = node_loglik(n, s1, s2, 0.0, sigma0)
    numpyro.deterministic("gain", l1 - l0)
    numpyro.factor("targets", jnp.sum(jnp.logaddexp(
        jax.nn.log_sigmoid(-h.logits) + l0, jax.nn.log_sigmoid(h.logits) + l1)))


def _nuts(fitted, features, x, key, method: NUTS):
    h = jax.tree.map(lambda a: a[0], fitted.heads(features))
    n, s1, s2 = _suff(fitted, x)
    sigma0 = jnp.exp(fitted.causal.log_scale)
    sigma = sigma0 * jnp.exp(h.tau)
    k_run, k_b = jr.split(key)
    mcmc = numpyro.infer.MCMC(
        numpyro.infer.NUTS(_nuts_model, max_tree_depth=method.max_tree_depth),
        num_warmup=method.num_warmup, num_samples=method.num_samples, progress_bar=False,
    )
    mcmc.run(k_run, n, s1, s2, sigma0, sigma, h)
    draws = mcmc.get_samples()
    # p(b_j = 1 | psi, D) per draw; its average is the Rao-Blackwellised target probability, and
    # weighting the draws by it gives psi's posterior given the target.
    w = jax.nn.sigmoid(h.logits[None, :] + draws["gain"])
    probs = jnp.mean(w, axis=0)
    total = jnp.sum(w, axis=0)
    mean = jnp.sum(w * draws["psi"], axis=0) / total
    sd = jnp.sqrt(jnp.sum(w * (draws["psi"] - mean[None, :]) ** 2, axis=0) / total)
    b = jr.bernoulli(k_b, w)
    scale = fitted.x_scale
    return probs, mean * scale, sd * scale, jnp.where(b, draws["psi"] * scale[None, :], 0.0)


def posterior(
    fitted: Any,
    features: Any,
    x: Any,
    *,
    key: PRNGKeyArray | None = None,
    method: Any = None,
    n_draws: int = 1000,
) -> GIMPosterior:
    """Posterior over the intervention of one new perturbation.

    **Arguments:**

    - `fitted`: a [`jaxcausal.gim.FittedGIM`][].
    - `features`: the perturbation's `(p,)` (or `(1, p)`) features; $g_\\phi$ gives the prior.
    - `x`: `(n, d)` of its cells (`n` may be 0: the prior).
    - `key`: for the posterior draws (default `jr.key(0)`).
    - `method`: `None` (exact, conjugate) or `jc.scm.NUTS(...)`.
    - `n_draws`: posterior draws kept in `strength` (exact method).

    **Returns:** a [`jaxcausal.gim.GIMPosterior`][].
    """
    fitted._check()
    f = as_float_array(features, "features")
    if f.ndim == 2 and f.shape[0] != 1:
        raise ValueError(f"features must be one perturbation's (p,) features; got {f.shape}")
    f = f.reshape(1, -1)
    xa = as_float_array(x, "x")
    d = fitted.x_loc.shape[0]
    if xa.ndim != 2 or xa.shape[1] != d:
        raise ValueError(f"x must be (n, {d}) cells of the new perturbation; got {xa.shape}")
    xa = check_finite(xa, "x")
    key = jr.key(0) if key is None else key
    if method is None:
        probs, mean, sd, draws = _exact(fitted, f, xa, key, n_draws)
    elif isinstance(method, NUTS):
        if xa.shape[0] == 0:
            raise ValueError("NUTS needs at least one cell; with none the posterior is the prior")
        probs, mean, sd, draws = _nuts(fitted, f, xa, key, method)
    else:
        raise TypeError(f"method must be None (exact) or jc.scm.NUTS(...); got {method!r}")
    return GIMPosterior(
        target_probs=probs, strength_mean=mean, strength_sd=sd, strength=draws,
        n_cells=int(xa.shape[0]), fitted=fitted, _features=f,
    )
