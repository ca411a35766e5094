"""Convex combinations of candidate predictions: the weights that `Stacked` fits.

Both solvers run a fixed number of branch-free iterations, so they batch under `vmap` (one problem
per cross-fitting fold) and cost next to nothing beside the fits that produced the predictions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


def project_to_simplex(v: Float[Array, " c"], valid: Bool[Array, " c"]) -> Float[Array, " c"]:
    r"""Euclidean projection of `v` onto $\{a : a \ge 0, \sum_c a_c = 1, a_c = 0 \text{ where not
    valid}\}$ (the sort-based algorithm of Held, Wolfe and Crowder 1974)."""
    v = jnp.where(valid, v, -jnp.inf)
    u = -jnp.sort(-v)
    css = jnp.cumsum(jnp.where(jnp.isfinite(u), u, 0.0))
    j = jnp.arange(1, v.shape[0] + 1, dtype=v.dtype)
    active = jnp.isfinite(u) & (u - (css - 1.0) / j > 0)
    rho = jnp.max(jnp.where(active, j, 1.0))
    tau = (jnp.sum(jnp.where(j == rho, css, 0.0)) - 1.0) / rho
    return jnp.where(valid, jnp.maximum(v - tau, 0.0), 0.0)


def _uniform(valid: Bool[Array, " c"], dtype) -> Float[Array, " c"]:
    count = jnp.maximum(jnp.sum(valid), 1)
    return jnp.where(valid, 1.0 / count, 0.0).astype(dtype)


def squared_error_weights(
    preds: Float[Array, "c n"],
    y: Float[Array, " n"],
    w: Float[Array, " n"],
    valid: Bool[Array, " c"],
    max_iter: int,
) -> Float[Array, " c"]:
    r"""Simplex weights $a$ minimising $\sum_i w_i (y_i - \sum_c a_c \hat y_{ci})^2$.

    The quadratic programme is solved by accelerated projected gradient (FISTA) on the $c \times c$
    Gram matrix of the predictions, with the step $1/L$ from its largest eigenvalue. Because the
    weights sum to one, the target's weighted mean and scale are removed from targets and
    predictions first (the same problem, better conditioned in float32).
    """
    total = jnp.sum(w)
    y_mean = jnp.sum(w * y) / total
    y_scale = jnp.sqrt(jnp.sum(w * (y - y_mean) ** 2) / total)
    y_scale = jnp.where(y_scale > 0, y_scale, 1.0)
    p = jnp.where(valid[:, None], (preds - y_mean) / y_scale, 0.0)
    t = (y - y_mean) / y_scale
    gram = (p * w[None, :]) @ p.T / total
    lin = p @ (w * t) / total
    lipschitz = jnp.max(jnp.linalg.eigvalsh(gram))
    step = 1.0 / jnp.where(lipschitz > 0, lipschitz, 1.0)

    def body(_, carry):
        a, z, k = carry
        a_new = project_to_simplex(z - step * (gram @ z - lin), valid)
        k_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * k**2))
        return a_new, a_new + ((k - 1.0) / k_new) * (a_new - a), k_new

    a0 = _uniform(valid, preds.dtype)
    a, _, _ = jax.lax.fori_loop(0, max_iter, body, (a0, a0, jnp.ones((), preds.dtype)))
    return a


def log_loss_weights(
    probs: Float[Array, "c n"],
    y: Float[Array, " n"],
    w: Float[Array, " n"],
    valid: Bool[Array, " c"],
    max_iter: int,
) -> Float[Array, " c"]:
    r"""Simplex weights $a$ maximising $\sum_i w_i \log \sum_c a_c L_{ci}$, the log-likelihood of
    the mixture of the candidates' probabilities, $L_{ci} = \hat p_{ci}^{y_i}
    (1 - \hat p_{ci})^{1 - y_i}$.

    Solved by the EM iteration for mixture weights, $a_c \leftarrow a_c \sum_i w_i L_{ci} /
    (W \sum_{c'} a_{c'} L_{c'i})$: every iterate stays on the simplex and the likelihood never
    decreases, with no step size to choose.
    """
    eps = jnp.finfo(probs.dtype).eps
    p = jnp.clip(jnp.where(valid[:, None], probs, 0.5), eps, 1.0 - eps)
    lik = jnp.where(y[None, :] > 0.5, p, 1.0 - p)
    total = jnp.sum(w)

    def body(_, a):
        mix = a @ lik
        return a * ((lik * (w / mix)[None, :]).sum(axis=1) / total)

    return jax.lax.fori_loop(0, max_iter, body, _uniform(valid, probs.dtype))
