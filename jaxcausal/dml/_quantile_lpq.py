"""The local potential quantile score (compliers, binary instrument), as DoubleML's
`DoubleMLLPQ`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array

from .._data import CausalData
from ._quantile_scores import (
    AbstractQuantileScore,
    Cells,
    external_cells,
    fit_outcome,
    per_rep,
    preliminary_estimates,
    rows_like,
    setup,
    solve_step_score,
    vmap_nested,
)
from ._quantile_tools import fit_batch, log_loss, normalize_ipw, out_of_fold, stack_weights


class LocalPotentialQuantile(AbstractQuantileScore):
    r"""The local (complier) potential quantile with a binary instrument $Z$: $\theta_q^d$ with
    $P(Y(d) \le \theta \mid \text{complier}) = q$ (DoubleML's `DoubleMLLPQ`). With
    $s = 2d - 1$, $m_z(X) = P(Z = 1 \mid X)$, $m_{d,z}(X) = P(D = 1 \mid X, Z = z)$,
    $g_{z}(X, \theta) = P(D = d, Y \le \theta \mid X, Z = z)$ and the complier share
    $\pi = \overline{m_{d,1} - m_{d,0} + \frac{Z}{m_z}(D - m_{d,1})
    - \frac{1 - Z}{1 - m_z}(D - m_{d,0})}$:

    $$\psi = \frac{s}{\pi}\Bigl(g_1 - g_0 + \frac{Z}{m_z}\bigl(1\{D = d\}1\{Y \le \theta\}
    - g_1\bigr) - \frac{1 - Z}{1 - m_z}\bigl(1\{D = d\}1\{Y \le \theta\} - g_0\bigr)\Bigr) - q.$$

    `ml_m` fits $m_z$, $m_{d,0}$ and $m_{d,1}$; `ml_g` (a classifier) fits $g_0$ and $g_1$.
    The splits are stratified by $D + 2Z$.
    """

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_m_z", "ml_g_du_z0", "ml_g_du_z1", "ml_m_d_z0", "ml_m_d_z1")

    @property
    def needs_instrument(self) -> bool:
        return True

    def strata(self, data: CausalData) -> tuple[Array, int]:
        return (data.t[:, 0] + 2 * data.z[:, 0]).astype(jnp.int32), 4

    def cells(self, model, data, folds, inner, key, external, quantiles, levels) -> Cells:
        s = setup(self, model, data, folds, inner, quantiles, levels)
        z = data.z[:, 0]
        R, K, n = s.test.shape
        L, Q = s.start0.shape
        sign = 2.0 * s.levels - 1.0
        z0, z1 = 1.0 - z, z
        checks = {}
        if external:
            mz_fin, md0_fin, md1_fin = (external[k] for k in ("ml_m_z", "ml_m_d_z0", "ml_m_d_z1"))
            g0 = external_cells(external, "ml_g_du_z0", (R, L, Q, n))
            g1 = external_cells(external, "ml_g_du_z1", (R, L, Q, n))
            start = jnp.broadcast_to(s.start0, (R, L, Q))
        else:
            k_m, k_g = jr.split(key)
            first = s.first
            weights = stack_weights(
                s.prelim_train, first * z0[None, None], first * z1[None, None], s.train,
                s.train * z0[None, None], s.train * z1[None, None],
            )
            n_pre = R * K * K
            targets = jnp.concatenate([
                jnp.broadcast_to(z, (n_pre, n)), jnp.broadcast_to(s.d, (2 * R * K, n)),
                jnp.broadcast_to(z, (R * K, n)), jnp.broadcast_to(s.d, (2 * R * K, n)),
            ])
            preds = fit_batch(model.ml_m, s.x, targets, weights, k_m)
            mz_pre = out_of_fold(preds[:n_pre].reshape(R, K, K, n), s.prelim_test)
            md0_pre, md1_pre, mz_f, md0_f, md1_f = (
                preds[n_pre + i * R * K : n_pre + (i + 1) * R * K].reshape(R, K, n)
                for i in range(5)
            )
            mz_fin, md0_fin, md1_fin = (out_of_fold(p, s.test) for p in (mz_f, md0_f, md1_f))

            def prelim(mz, md0, md1, first_rf):
                mz = _instrument_propensity(model, mz, z, first_rf)
                comp = _complier_share(mz, md0, md1, z, s.d, first_rf)
                return (z / mz - z0 / (1.0 - mz)) / comp * first_rf

            base = vmap_nested(prelim, (0, 0, 0, 0), (0, 0, 0, 0))(mz_pre, md0_pre, md1_pre, first)
            a_pre = sign[None, None, :, None] * base[:, :, None, :] * s.ind[None, None]
            ipw, ok_pre = preliminary_estimates(model, s, a_pre, quantiles)
            y5 = s.y[None, None, None, None]
            du = s.ind[None, None, :, None, :] * (y5 <= ipw[..., None])
            second = s.second[:, :, None, None, :]
            rows0 = jnp.broadcast_to(second * z0[None, None, None, None], du.shape)
            rows1 = jnp.broadcast_to(second * z1[None, None, None, None], du.shape)
            both = fit_outcome(
                model.ml_g, s, jnp.concatenate([du, du], axis=2),
                jnp.concatenate([rows0, rows1], axis=2), k_g,
            )
            g0, g1 = both[:, :L], both[:, L:]
            start = jnp.mean(ipw, axis=1)
            checks["root:preliminary"] = jnp.all(ok_pre, axis=1)
            has = lambda rows: jnp.all(jnp.sum(rows, axis=-1) > 0, axis=1)  # noqa: E731
            checks["level:ml_g"] = has(rows0) & has(rows1)
        ones = jnp.ones_like(s.y)
        mz = jax.vmap(lambda m: _instrument_propensity(model, m, z, ones))(mz_fin)
        comp = jax.vmap(lambda a, b, c: _complier_share(a, b, c, z, s.d, ones))(
            mz, md0_fin, md1_fin
        )
        w1 = (z[None] / mz) / comp[:, None]  # (R, n)
        w0 = (z0[None] / (1.0 - mz)) / comp[:, None]
        a = sign[None, :, None] * (w1 - w0)[:, None, :] * s.ind[None]
        sg = sign[None, :, None, None]
        b = sg * ((g1 - g0) / comp[:, None, None, None] - w1[:, None, None] * g1
                  + w0[:, None, None] * g0) - quantiles[None, None, :, None]
        theta, psi, deriv, ok = solve_step_score(s, a, b, start)
        checks["root:final"] = ok
        checks["density:kde"] = jnp.isfinite(deriv) & (deriv != 0)
        shape = g0.shape
        bcast = lambda m: jnp.broadcast_to(m[:, None, None], shape)  # noqa: E731
        predictions = {
            "ml_m_z": bcast(mz_fin), "ml_g_du_z0": g0, "ml_g_du_z1": g1,
            "ml_m_d_z0": bcast(md0_fin), "ml_m_d_z1": bcast(md1_fin),
        }
        for name, p in predictions.items():
            checks[f"finite:{name}"] = jnp.all(jnp.isfinite(p), axis=-1)
        losses = {
            "ml_m_z": per_rep(log_loss(rows_like(z, mz_fin), mz_fin, None), theta),
            "ml_m_d_z0": per_rep(
                log_loss(rows_like(s.d, md0_fin), md0_fin, rows_like(z0, md0_fin)), theta
            ),
            "ml_m_d_z1": per_rep(
                log_loss(rows_like(s.d, md1_fin), md1_fin, rows_like(z1, md1_fin)), theta
            ),
        }
        du_final = s.ind[None, :, None, :] * (s.y[None, None, None] <= theta[..., None])
        losses["ml_g_du_z0"] = log_loss(du_final, g0, jnp.broadcast_to(z0, shape))
        losses["ml_g_du_z1"] = log_loss(du_final, g1, jnp.broadcast_to(z1, shape))
        return Cells(theta=theta, psi=psi, deriv=deriv, predictions=predictions, losses=losses,
                     checks=checks)


def _instrument_propensity(model, mz, z, rows):
    mz = jnp.clip(mz, model.trimming, 1.0 - model.trimming)
    return normalize_ipw(mz, z, rows) if model.normalize_ipw else mz


def _complier_share(mz, md0, md1, z, d, rows):
    terms = md1 - md0 + z / mz * (d - md1) - (1.0 - z) / (1.0 - mz) * (d - md0)
    return jnp.sum(rows * terms) / jnp.sum(rows)
