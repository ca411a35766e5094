"""The partially linear instrumental-variable regression model."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import check_binary, is_concrete
from .._data import CausalData
from ..learners import AbstractLearner
from ..learners._base import sequential_under_vmap
from ._base import (
    AbstractDML,
    Nuisance,
    all_finite,
    broadcast_to_krn,
    check_class_sizes,
    check_separation,
    fit_learner,
    learner_checks,
)
from ._crossfit import binary_strata, crossfit, nuisance_loss
from ._plr import _check_common
from ._scores import AbstractPartiallyLinearScore, PartiallingOut

# one matrix at a time under vmap: batched LAPACK kernels can deadlock XLA's CPU thread pool
_lstsq = sequential_under_vmap(jnp.linalg.lstsq)


def _project(w_hat: Float[Array, " n"], v_hat: Float[Array, "n m"]) -> Float[Array, " n"]:
    """Fitted values of the least-squares regression (with intercept) of `w_hat` on `v_hat`."""
    v_mean = jnp.mean(v_hat, axis=0)
    w_mean = jnp.mean(w_hat)
    vc = v_hat - v_mean[None, :]
    coef = _lstsq(vc, w_hat - w_mean)[0]
    return w_mean + vc @ coef


class PLIV(AbstractDML):
    r"""Partially linear IV regression: $Y = \theta D + g_0(X) + \zeta$ with
    $E[\zeta \mid Z, X] = 0$.

    The nuisances $\ell_0(X) = E[Y|X]$ (`ml_l`), $m_0(X) = E[Z|X]$ (`ml_m`, one fit per
    instrument) and $r_0(X) = E[D|X]$ (`ml_r`) are cross-fitted. With one instrument the score uses
    $Z - m(X)$; with several, DoubleML's rule: the linear projection of $D - r(X)$ on all
    instrument residuals. [`jaxcausal.dml.IVType`][] (one instrument) also needs `ml_g`. External
    prediction names are `ml_l`, `ml_m` (one instrument) or `ml_m_<instrument name>`, `ml_r`,
    `ml_g`.

    **Arguments:**

    - `ml_l`, `ml_m`, `ml_r`: learners of $E[Y|X]$, $E[Z|X]$, $E[D|X]$.
    - `ml_g`: learner of $E[Y - \theta D|X]$ for the IV-type score (default: `ml_l`).
    - `score`: `PartiallingOut()` (default) or `IVType()`.
    - `n_folds`, `n_rep`: folds and repetitions of cross-fitting.

    *Reference:* Chernozhukov et al. (2018), Section 4.2.
    """

    ml_l: AbstractLearner | None
    ml_m: AbstractLearner | None
    ml_r: AbstractLearner | None
    ml_g: AbstractLearner | None = None
    score: AbstractPartiallyLinearScore = PartiallingOut()
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        for name in ("ml_l", "ml_m", "ml_r", "ml_g"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, AbstractLearner):
                raise TypeError(f"{name} must be a jaxcausal learner or None; got {value!r}")
        if not isinstance(self.score, AbstractPartiallyLinearScore):
            raise TypeError(f"score must be PartiallingOut() or IVType(); got {self.score!r}")
        _check_common(self)

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_l", "ml_m", "ml_r", "ml_g")

    def check_data(self, data: CausalData) -> None:
        if data.z is None:
            raise ValueError("PLIV needs instruments: data.z is None (pass z= to CausalData)")
        z = data.z
        if z.ndim == 2 and is_concrete(z):
            for j, name in enumerate(data.z_names):
                col = np.asarray(z[:, j])
                if col.min() == col.max():
                    raise ValueError(
                        f"instrument '{name}' is constant (every row is {col[0]:g}); an "
                        "instrument must vary"
                    )
        for name, values, arg in (("ml_l", data.y, "y"), ("ml_m", data.z, "z"),
                                  ("ml_r", data.t, "t")):
            learner = getattr(self, name)
            if learner is not None and learner.is_classifier:
                check_binary(values, arg, f"when {name} is a classifier")
        check_class_sizes(data, self.n_folds, "PLIV", error=False)
        check_separation(data, "PLIV")
        if self.score.needs_g and data.z.shape[-1] > 1:
            raise ValueError(
                f"IVType() needs exactly one instrument; data has {data.z.shape[-1]} "
                f"({data.z_names}); use PartiallingOut()"
            )

    def strata(self, data: CausalData):
        return binary_strata(data.t)

    supports_cluster: ClassVar[bool] = True

    def nuisance(self, data, xs, test, key, external, train=None):
        k, n_rep = data.t.shape[-1], test.shape[0]
        d = data.t.T
        n_z = data.z.shape[-1]
        train = jnp.broadcast_to(1.0 - test[None] if train is None else train[None],
                                 (k, *test.shape))
        y_b = broadcast_to_krn(data.y, k, n_rep)
        d_b = broadcast_to_krn(d, k, n_rep)
        # One key for every learner of a fold (common random numbers, as in PLR).
        k_l = k_m = k_r = k_g = key

        checks, diagnostics = {}, {}

        def get(name, learner, target, key):
            return fit_learner(name, learner, xs, target, train, test, key, external, checks,
                               diagnostics)

        preds, losses = {}, {}
        preds["ml_l"] = get("ml_l", self.ml_l, y_b, k_l)
        losses["ml_l"] = nuisance_loss(y_b, preds["ml_l"], None, False)
        z_names = ["ml_m"] if n_z == 1 else [f"ml_m_{z}" for z in data.z_names]
        if all(name in external for name in z_names):
            m_all = jnp.stack([external[name] for name in z_names], axis=-1)
        else:
            if self.ml_m is None:
                raise ValueError("ml_m is None and no external predictions for it were given")
            z_b = jax.vmap(lambda zc: broadcast_to_krn(zc, k, n_rep))(data.z.T)
            m_all, status = jax.vmap(
                lambda zb, kz: crossfit(self.ml_m, xs, zb, train, test, kz, with_status=True)
            )(z_b, jnp.broadcast_to(k_m, (n_z, *k_m.shape)))
            for i, name in enumerate(z_names):
                learner_checks(name, {s: v[i] for s, v in status.items()}, checks, diagnostics)
            m_all = jnp.moveaxis(m_all, 0, -1)
        for i, name in enumerate(z_names):
            preds[name] = m_all[..., i]
            checks[f"finite:{name}"] = all_finite(m_all[..., i])
            losses[name] = nuisance_loss(
                broadcast_to_krn(data.z[:, i], k, n_rep), m_all[..., i], None, False
            )
        preds["ml_r"] = get("ml_r", self.ml_r, d_b, k_r)
        losses["ml_r"] = nuisance_loss(d_b, preds["ml_r"], None, False)
        w_hat = d_b - preds["ml_r"]
        z_res = data.z[None, None] - m_all
        if n_z == 1:
            v_hat = z_res[..., 0]
        else:
            v_hat = jax.vmap(jax.vmap(_project))(w_hat, z_res)
        g_hat = None
        if self.score.needs_g:
            if "ml_g" in external:
                g_hat, target = external["ml_g"], y_b
            else:
                a0, b0 = PartiallingOut().pliv(y_b, d_b, v_hat, w_hat, preds["ml_l"], None)
                theta0 = -jnp.mean(b0, axis=-1) / jnp.mean(a0, axis=-1)
                target = y_b - theta0[..., None] * d_b
                g_learner = self.ml_g if self.ml_g is not None else self.ml_l
                g_hat = get("ml_g", g_learner, target, k_g)
            preds["ml_g"] = g_hat
            losses["ml_g"] = nuisance_loss(target, g_hat, None, False)
        psi_a, psi_b = self.score.pliv(y_b, d_b, v_hat, w_hat, preds["ml_l"], g_hat)
        return Nuisance(psi_a=psi_a, psi_b=psi_b, predictions=preds, losses=losses,
                        checks=checks, diagnostics=diagnostics)

    # --- sensitivity analysis (issue 14) ---
    def sensitivity_elements(self, data, nuisance, theta):
        r"""jaxcausal's PLIV elements (DoubleML 0.11 has none for PLIV).

        An omitted confounder $A$ of the instrument biases $\theta$ by
        $E[(g - g_s)(\alpha_s - \alpha)]$ with the short representer
        $\alpha_s = \tilde V / E[\tilde V (D - r)]$ ($\tilde V$ the instrument residual, or
        its projection for several instruments), which gives the bound of Chernozhukov et al.
        (2022) with $\sigma^2 = E[(Y - \ell - \theta(D - r))^2]$ (IV-type:
        $E[(Y - g - \theta D)^2]$), the structural residual's variance, and
        $\nu^2 = E[\tilde V^2] / E[\tilde V(D - r)]^2$ with its delta-method influence
        function. With the treatment as its own instrument these are DoubleML's PLR elements.
        """
        preds = nuisance.predictions
        k, n_rep = theta.shape
        y = broadcast_to_krn(data.y, k, n_rep)
        d = broadcast_to_krn(data.t.T, k, n_rep)
        z_names = ["ml_m"] if data.z.shape[-1] == 1 else [f"ml_m_{z}" for z in data.z_names]
        z_res = data.z[None, None] - jnp.stack([preds[name] for name in z_names], axis=-1)
        w_hat = d - preds["ml_r"]
        if data.z.shape[-1] == 1:
            v_hat = z_res[..., 0]
        else:
            v_hat = jax.vmap(jax.vmap(_project))(w_hat, z_res)
        th = theta[..., None]
        if self.score.needs_g:
            resid = y - preds["ml_g"] - th * d
        else:
            resid = y - preds["ml_l"] - th * w_hat
        sigma2 = jnp.mean(resid**2, axis=-1)
        jac = jnp.mean(v_hat * w_hat, axis=-1, keepdims=True)
        v2 = jnp.mean(v_hat**2, axis=-1, keepdims=True)
        nu2 = v2 / jac**2
        psi_nu2 = (v_hat**2 - v2) / jac**2 - 2.0 * nu2 * (v_hat * w_hat - jac) / jac
        return {
            "sigma2": sigma2,
            "nu2": nu2[..., 0],
            "psi_sigma2": resid**2 - sigma2[..., None],
            "psi_nu2": psi_nu2,
            "riesz_rep": v_hat / jac,
        }
