r"""Calibration of the GIM's shift uncertainty by cross-fitting over perturbations.

Trained by marginal likelihood, $g_\phi$ can fit the training perturbations' shifts almost
exactly and so learns shift scales $s$ that are too small for perturbations it has not seen.
`calibrate` refits the model `F` times (one vmapped call, each fold of perturbations masked out by
zero weights) and, for each held-out perturbation $k$ and variable $j$, compares the fold model's
prior predictive for the residual mean, $\bar r_{kj} \sim \mathcal N(\mu_{kj}, s_{kj}^2 + c^2 +
\sigma_j'^2 / n_k)$, with the observed $\bar r_{kj}$, weighting each pair by the fold model's
posterior probability that $j$ was targeted. The extra scale $c$ (standardised units; additive,
because $g_\phi$'s own scales can be arbitrarily small far from the training features) solves
$\sum w\, (\bar r - \mu)^2 / (s^2 + c^2 + \sigma'^2/n) = \sum w$ (the standardised errors have
mean square 1), by bisection on $\log c$.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._compile import filter_jit
from ._objective import node_loglik, residual_sums, shift_marginal


def _fold_terms(model, groups, feats):
    """Per group and variable: weight, squared error, prior variance and noise variance."""
    causal = model.causal
    sigma0 = jnp.exp(causal.log_scale)
    heads = jax.vmap(model.net)(feats)

    def one(x, mask, n, h):
        s1, s2 = residual_sums(causal, x, mask)
        s = jnp.exp(h.log_s)
        sigma = sigma0 * jnp.exp(h.tau)
        gain = shift_marginal(n, s1, s2, h.mu, s, sigma) - node_loglik(n, s1, s2, 0.0, sigma0)
        w = jax.nn.sigmoid(h.logits + gain)
        return w, (s1 / n - h.mu) ** 2, s**2, sigma**2 / n

    return jax.vmap(one)(groups.x, groups.mask, groups.count, heads)


@filter_jit
def _calibrate_impl(gim, groups, feats, keys, fold):
    from ._gim import _fit_impl

    n_folds = keys.shape[0]
    held = fold[None, :] == jnp.arange(n_folds)[:, None]  # (F, G)
    weights = jnp.where(held, 0.0, 1.0).astype(groups.x.dtype)
    models, _ = eqx.filter_vmap(lambda k, w: _fit_impl(gim, groups, feats, k, w))(keys, weights)
    w, err, prior, noise = eqx.filter_vmap(lambda m: _fold_terms(m, groups, feats))(models)
    w = w * held[..., None]

    def excess(log_c):
        z = err / (prior + jnp.exp(2.0 * log_c) + noise)
        return jnp.sum(w * z) / jnp.sum(w) - 1.0

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        big = excess(mid) > 0.0  # errors still too large: inflate more
        return jnp.where(big, mid, lo), jnp.where(big, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, bisect, (jnp.array(-12.0), jnp.array(5.0)))
    return jnp.exp(0.5 * (lo + hi))


def calibrate(
    fitted: Any,
    data: Any,
    *,
    key: PRNGKeyArray,
    groups: Any = None,
    n_folds: int | None = None,
    prepared: Any = None,
) -> Any:
    """Returns `fitted` with the cross-fitted extra shift scale $c$ (see the module docstring;
    stored as `fitted.shift_floor`): the prior of a shift becomes $\\mathcal N(\\mu, s^2 + c^2)$.

    **Arguments:** `fitted` (a [`jaxcausal.gim.FittedGIM`][]) and the `data` it was fitted on;
    `key` (fold assignment and refits); `groups`, optional `(K,)` ids of perturbations held out
    together (e.g. one drug at all its doses, for calibration to new drugs); `n_folds` (default
    `fitted.config.calibration_folds`, else 5).
    """
    from ._gim import prepare

    gim = fitted.config
    n_folds = n_folds or gim.calibration_folds or 5
    prepared = prepare(data) if prepared is None else prepared
    k = data.n_perturbations
    ids = np.arange(k) if groups is None else np.asarray(groups)
    if ids.shape != (k,):
        raise ValueError(f"groups must have one id per perturbation ({k},); got {ids.shape}")
    uniq, inverse = np.unique(ids, return_inverse=True)
    if len(uniq) < n_folds:
        raise ValueError(
            f"calibration needs at least {n_folds} groups of perturbations; got {len(uniq)}"
        )
    k_perm, k_fit = jr.split(key)
    order = np.asarray(jr.permutation(k_perm, len(uniq)))
    fold_of_id = np.empty(len(uniq), int)
    fold_of_id[order] = np.arange(len(uniq)) % n_folds
    gctx = np.asarray(prepared.groups.context)
    fold = np.where(gctx >= 0, fold_of_id[inverse[np.maximum(gctx, 0)]], -1)
    factor = _calibrate_impl(gim, prepared.groups, prepared.feats, jr.split(k_fit, n_folds),
                             jnp.asarray(fold))
    return eqx.tree_at(lambda f: f.shift_floor, fitted, factor)
