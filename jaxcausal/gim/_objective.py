r"""The GIM objective: the marginal likelihood of each perturbation's cells under the causal model,
with the intervention drawn from $g_\phi(\gamma)$.

For a perturbation with $n$ cells and per-variable residual sums $S_{1j} = \sum_i r_{ij}$,
$S_{2j} = \sum_i r_{ij}^2$ ($r = x - f_\theta(x) - b$, which no shift changes), a shift
$\delta_j = b_j \psi_j$ and noise scale $\sigma'_j$ give

$$L_j(\delta_j, \sigma'_j) = -\tfrac n2 \log(2\pi\sigma_j'^2) - \frac{S_{2j} - 2\delta_j S_{1j} +
n\delta_j^2}{2\sigma_j'^2},$$

and $\log p_\theta(D \mid b, \psi) = \sum_j L_j + n \log|\det(I - \partial f/\partial x)|$. As
$g_\phi$ draws the $(b_j, \psi_j)$ independently across variables, the expectation factorises
exactly: $\log E_{b, \psi} p(D \mid b, \psi) = \sum_j \log E_{b_j, \psi_j} e^{L_j} + n\log|\det|$.

- **Exact** (`n_samples=None`, default): $b_j \sim \mathrm{Bernoulli}(\pi_j)$ is summed out and
  $\psi_j \sim \mathcal N(\mu_j, s_j^2)$ integrated in closed form,
  $E_\psi e^{L_j(\psi)} = e^{L^*_j} \sqrt{2\pi\sigma'^2/n}\; \mathcal N(\bar r_j; \mu_j, s_j^2 +
  \sigma'^2/n)$ with $\bar r_j = S_{1j}/n$, $L^*_j = -\frac n2\log(2\pi\sigma'^2) - (S_{2j} -
  n\bar r_j^2)/(2\sigma'^2)$. No Monte Carlo error.
- **Monte Carlo** (`n_samples=S`): the paper's estimator, with relaxed-Bernoulli (concrete)
  targets at a temperature annealed from `temperature[0]` to `temperature[1]` and
  reparameterised shifts, $\log \frac1S \sum_s e^{L_j(b_{sj}\psi_{sj})}$ per variable.

**Energy distance** (`objective="energy"`; the default for an `MLPSCM(acyclic=False)`, whose
likelihood would need the Jacobian determinant of a cyclic nonlinear map): each step simulates
`n_samples` (default 64) cells per group from the causal model under interventions drawn from
$g_\phi$ (relaxed-Bernoulli targets, reparameterised shifts, fresh noise; `solve` maps the
exogenous inputs to cells) and minimises the squared energy distance (Székely and Rizzo) between
the simulated and the observed cells of each group, weighted by the group's cell count. It needs
no density, only samples; it is noisier than the exact likelihood and fits the graph less well,
so it is used only where the likelihood is not available or when asked for.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..metrics._distribution import _distances
from ._causal import AbstractCausalParams, acyclicity

_LOG_2PI = jnp.log(2.0 * jnp.pi)


def node_loglik(n, s1, s2, shift, sigma):
    """$L_j$ for a fixed shift and noise scale (arrays broadcast over variables)."""
    return -0.5 * n * (_LOG_2PI + 2.0 * jnp.log(sigma)) - (
        s2 - 2.0 * shift * s1 + n * shift**2
    ) / (2.0 * sigma**2)


def shift_marginal(n, s1, s2, mu, s, sigma):
    r"""$\log E_{\psi \sim N(\mu, s^2)} e^{L_j(\psi, \sigma)}$ in closed form ($n > 0$)."""
    rbar = s1 / n
    var = sigma**2
    l_star = -0.5 * n * (_LOG_2PI + jnp.log(var)) - (s2 - n * rbar**2) / (2.0 * var)
    v = s**2 + var / n
    log_normal = -0.5 * (_LOG_2PI + jnp.log(v)) - (rbar - mu) ** 2 / (2.0 * v)
    return l_star + 0.5 * (_LOG_2PI + jnp.log(var / n)) + log_normal


def shift_posterior(n, s1, mu, s, sigma):
    """Mean and sd of $\\psi_j$ given that $j$ is targeted (Normal prior, Gaussian residuals)."""
    precision = 1.0 / s**2 + n / sigma**2
    mean = (mu / s**2 + s1 / sigma**2) / precision
    return mean, 1.0 / jnp.sqrt(precision)


def residual_sums(causal: AbstractCausalParams, x: Array, mask: Array):
    r = causal.residuals(x)
    m = mask[:, None].astype(r.dtype)
    return jnp.sum(r * m, axis=0), jnp.sum(r * r * m, axis=0)


class Heads(eqx.Module):
    """What $g_\\phi$ says about one perturbation: target logits, shift mean and log scale, and
    the log noise-scale change of a targeted variable (zeros unless `scale_change`)."""

    logits: Float[Array, "*m d"]
    mu: Float[Array, "*m d"]
    log_s: Float[Array, "*m d"]
    tau: Float[Array, "*m d"]


def exact_target_loglik(n, s1, s2, sigma, h: Heads):
    """Per-variable $\\log E e^{L_j}$ with the target summed out exactly."""
    l0 = node_loglik(n, s1, s2, 0.0, sigma)
    l1 = shift_marginal(n, s1, s2, h.mu, jnp.exp(h.log_s), sigma * jnp.exp(h.tau))
    return jnp.logaddexp(jax.nn.log_sigmoid(-h.logits) + l0, jax.nn.log_sigmoid(h.logits) + l1)


def mc_target_loglik(n, s1, s2, sigma, h: Heads, key, n_samples, temperature):
    """The concrete-relaxation Monte Carlo estimate of the same, per variable."""
    d = s1.shape[0]
    k_u, k_z = jr.split(key)
    tiny = jnp.finfo(s1.dtype).tiny
    u = jr.uniform(k_u, (n_samples, d), s1.dtype, minval=tiny, maxval=1.0 - 1e-7)
    b = jax.nn.sigmoid((h.logits[None, :] + jnp.log(u) - jnp.log1p(-u)) / temperature)
    psi = h.mu[None, :] + jnp.exp(h.log_s)[None, :] * jr.normal(k_z, (n_samples, d), s1.dtype)
    sig = jnp.broadcast_to(sigma, (d,))[None, :] * jnp.exp(b * h.tau[None, :])
    ll = node_loglik(n, s1[None, :], s2[None, :], b * psi, sig)
    return jax.nn.logsumexp(ll, axis=0) - jnp.log(n_samples)


def masked_energy(sim: Array, x: Array, mask: Array) -> Array:
    """Squared energy distance (V-statistic) between simulated cells `sim` `(m, d)` and the
    observed cells `x` `(n_max, d)` where `mask` is true."""
    w = mask.astype(x.dtype)
    w = w / jnp.maximum(jnp.sum(w), 1.0)
    m = sim.shape[0]
    xy = jnp.sum(jnp.mean(_distances(sim, x), axis=0) * w)
    xx = jnp.sum(_distances(sim, sim)) / m**2
    yy = w @ _distances(x, x) @ w
    return 2.0 * xy - xx - yy


def energy_group(causal: AbstractCausalParams, x, mask, ctx, h: Heads, key, n_samples,
                 temperature):
    """Energy distance between one group's cells and `n_samples` cells simulated under an
    intervention drawn from the heads `h` (none for a control group)."""
    d = x.shape[1]
    k_u, k_z, k_e = jr.split(key, 3)
    tiny = jnp.finfo(x.dtype).tiny
    u = jr.uniform(k_u, (n_samples, d), x.dtype, minval=tiny, maxval=1.0 - 1e-7)
    b = jax.nn.sigmoid((h.logits[None, :] + jnp.log(u) - jnp.log1p(-u)) / temperature)
    b = jnp.where(ctx >= 0, b, 0.0)
    psi = h.mu[None, :] + jnp.exp(h.log_s)[None, :] * jr.normal(k_z, (n_samples, d), x.dtype)
    sigma = jnp.exp(causal.log_scale)[None, :] * jnp.exp(b * h.tau[None, :])
    eps = jr.normal(k_e, (n_samples, d), x.dtype)
    sim = causal.solve(causal.bias[None, :] + b * psi + sigma * eps)
    return masked_energy(sim, x, mask)


class Hyper(eqx.Module):
    """Hyperparameters inside the trained pytree (arrays, so a sweep can `vmap` them; never
    trained: the filter spec leaves them out)."""

    sparsity: Array
    target_penalty: Array
    acyclicity: Array
    net_l2: Array
    temperature: Array
    max_steps: int = eqx.field(static=True)
    n_samples: int | None = eqx.field(static=True)
    acyclic: bool = eqx.field(static=True)
    objective: str = eqx.field(static=True, default="likelihood")


class Trainable(eqx.Module):
    """What the loop trains (`causal`, `net`) and carries untrained (`hyper`). Untyped fields:
    the same class holds the filter spec (`is_inexact_array`, `False`) of its own partition."""

    causal: Any
    net: Any
    hyper: Any


def _is_linear(m) -> bool:
    return isinstance(m, eqx.nn.Linear)


def gim_loss(model: Trainable, data, weights, *, key: PRNGKeyArray, step) -> Float[Array, ""]:
    """Negative log marginal likelihood per cell plus the penalties (a module-level function, so
    the compiled training loop is reused across fits)."""
    groups, feats = data
    causal, hyper = model.causal, model.hyper
    sigma = jnp.exp(causal.log_scale)
    log_det = causal.log_det()
    heads = jax.vmap(model.net)(feats)
    frac = jnp.minimum(step / hyper.max_steps, 1.0)
    t0, t1 = hyper.temperature[0], hyper.temperature[1]
    temperature = t0 * (t1 / t0) ** frac
    keys = jr.split(key, groups.x.shape[0])

    if hyper.objective == "energy":
        m = 64 if hyper.n_samples is None else hyper.n_samples
        energy = jax.vmap(
            lambda x, mask, ctx, h, k: energy_group(causal, x, mask, ctx, h, k, m, temperature)
        )(groups.x, groups.mask, groups.context, heads, keys)
        ll = -groups.count * energy
        n_targets = jnp.where(groups.context >= 0, jnp.sum(jax.nn.sigmoid(heads.logits), -1), 0.0)
        return _penalised(model, ll, n_targets, groups.count, weights, frac)

    def one(x, mask, n, ctx, h, k):
        s1, s2 = residual_sums(causal, x, mask)
        if hyper.n_samples is None:
            lp = exact_target_loglik(n, s1, s2, sigma, h)
        else:
            lp = mc_target_loglik(n, s1, s2, sigma, h, k, hyper.n_samples, temperature)
        control = node_loglik(n, s1, s2, 0.0, sigma)
        ll = jnp.where(ctx >= 0, jnp.sum(lp), jnp.sum(control)) + n * log_det
        n_targets = jnp.where(ctx >= 0, jnp.sum(jax.nn.sigmoid(h.logits)), 0.0)
        return ll, n_targets

    ll, n_targets = jax.vmap(one)(groups.x, groups.mask, groups.count, groups.context, heads, keys)
    return _penalised(model, ll, n_targets, groups.count, weights, frac)


def _penalised(model: Trainable, ll, n_targets, count, weights, frac):
    """Per-cell fit term (`ll` per group: a log-likelihood, or minus count x energy) plus the
    target, sparsity, acyclicity and L2 penalties."""
    causal, hyper = model.causal, model.hyper
    cells = jnp.sum(weights * count)
    fit = -(jnp.sum(weights * ll) - hyper.target_penalty * jnp.sum(weights * n_targets)) / cells
    edges = causal.edge_weights()
    penalty = hyper.sparsity * jnp.sum(jnp.abs(edges))
    if hyper.acyclic:
        penalty = penalty + hyper.acyclicity * frac * acyclicity(edges)
    linear = [m for m in jax.tree.leaves(model.net, is_leaf=_is_linear) if _is_linear(m)]
    penalty = penalty + hyper.net_l2 * sum(jnp.sum(m.weight**2) for m in linear)
    return fit + penalty
