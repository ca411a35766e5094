r"""Doubly robust difference-in-differences scores (Sant'Anna and Zhao 2020), term for term as
DoubleML 0.11's `DoubleMLDID` and `DoubleMLDIDCS` compute them, with their Riesz representers
for the sensitivity analysis.

A score is chosen by passing an object: [`jaxcausal.dml.Observational`][] (treatment assignment
depends on the covariates; needs a propensity model) or [`jaxcausal.dml.Experimental`][] (an A/B
setting; the propensity is the treated share).

Every function takes an optional `rows` mask over the last axis: the estimation sample of a
group-time cell of [`jaxcausal.dml.DIDMulti`][]. Means are then taken over those rows and the
score is zero elsewhere, which is DoubleML's rule of padding a cell's score with zeros to the
number of units: the estimate and its standard error equal those on the subsample.
"""

from __future__ import annotations

import abc

import jax.numpy as jnp
from jaxtyping import Array

from ._scores import AbstractScore

Elements = tuple[Array, Array]


def masked_mean(v: Array, rows: Array | None) -> Array:
    """The mean over the last axis (over `rows` only when given), keeping the axis."""
    if rows is None:
        return jnp.mean(v, axis=-1, keepdims=True)
    v = jnp.where(rows > 0, v, 0.0)
    return jnp.sum(v, axis=-1, keepdims=True) / jnp.sum(rows, axis=-1, keepdims=True)


def _on_rows(v: Array, rows: Array | None) -> Array:
    return v if rows is None else jnp.where(rows > 0, v, 0.0)


class AbstractDIDScore(AbstractScore):
    """A score of [`jaxcausal.dml.DID`][], [`jaxcausal.dml.DIDCS`][] and
    [`jaxcausal.dml.DIDMulti`][]; linear in the ATT with $\\psi_a$ not depending on it."""

    @property
    @abc.abstractmethod
    def needs_m(self) -> bool:
        """Whether the score uses the propensity model `ml_m`."""

    @abc.abstractmethod
    def panel(
        self, y: Array, d: Array, g0: Array, g1: Array, m: Array | None, normalize: bool,
        rows: Array | None = None,
    ) -> Elements:
        """$(\\psi_a, \\psi_b)$ for panel data with outcome difference `y`."""

    @abc.abstractmethod
    def panel_riesz(
        self, d: Array, m: Array | None, normalize: bool, rows: Array | None = None
    ) -> tuple[Array, Array]:
        """The Riesz representer $\\alpha$ and $m(W, \\alpha)$ of the panel score."""

    @abc.abstractmethod
    def cross_section(
        self, y: Array, d: Array, t: Array, g: dict[str, Array], m: Array | None,
        normalize: bool, rows: Array | None = None,
    ) -> Elements:
        """$(\\psi_a, \\psi_b)$ for repeated cross-sections; `g` maps `"d0_t0"`, ... to the
        outcome regressions of the four treatment-period cells."""

    @abc.abstractmethod
    def cross_section_riesz(
        self, d: Array, t: Array, m: Array | None, normalize: bool, rows: Array | None = None
    ) -> tuple[Array, Array]:
        """The Riesz representer $\\alpha$ and $m(W, \\alpha)$ of the cross-section score."""


def _cells(d: Array, t: Array) -> dict[str, Array]:
    return {
        "d1_t1": d * t, "d1_t0": d * (1.0 - t),
        "d0_t1": (1.0 - d) * t, "d0_t0": (1.0 - d) * (1.0 - t),
    }


# Signs of the four cells in the DID contrast (g11 - g10) - (g01 - g00).
_SIGN = {"d1_t1": 1.0, "d1_t0": -1.0, "d0_t1": -1.0, "d0_t0": 1.0}


def _g_contrast(g: dict[str, Array]) -> Array:
    return g["d1_t1"] - g["d1_t0"] - g["d0_t1"] + g["d0_t0"]


class Observational(AbstractDIDScore):
    r"""The doubly robust DID score for observational data (Sant'Anna and Zhao 2020, eq. 3.1 and
    3.4), with the outcome regressions of the controls and the propensity $m(X) = P(D = 1 | X)$.

    Panel data ($Y$ the outcome difference, $p = \overline{D}$), with in-sample normalisation
    (DoubleML's default)
    $$\psi = -\frac{D}{p}\theta + \Bigl(\frac{D}{p}
    - \frac{(1-D)\,m/(1-m)}{\overline{(1-D)\,m/(1-m)}}\Bigr)\bigl(Y - g_0(X)\bigr),$$
    and without it the weight of the residual is $(D - m)/(p(1 - m))$.

    Repeated cross-sections ($T$ the period, $\lambda = \overline{T}$): $\psi_a = -D/p$ and
    $\psi_b = \frac{D}{p}(g_{11} - g_{10} - g_{01} + g_{00}) + \sum_{d,t} \pm w_{dt}(Y - g_{dt})$
    with $w_{1t} = 1\{D=1,T=t\} / \overline{1\{D=1,T=t\}}$ and
    $w_{0t} = 1\{D=0,T=t\}\,m/(1-m)$ normalised to mean one (or divided by $p\lambda$,
    $p(1-\lambda)$ without in-sample normalisation).

    *Reference:* Sant'Anna and Zhao (2020), Doubly robust difference-in-differences estimators,
    Journal of Econometrics 219(1), 101-122.
    """

    @property
    def needs_m(self) -> bool:
        return True

    def panel(self, y, d, g0, g1, m, normalize, rows=None):
        p = masked_mean(d, rows)
        if normalize:
            weight = (1.0 - d) * m / (1.0 - m)
            w_res = d / p - weight / masked_mean(weight, rows)
        else:
            w_res = (d - m) / (p * (1.0 - m))
        return _on_rows(-d / p, rows), _on_rows(w_res * (y - g0), rows)

    def panel_riesz(self, d, m, normalize, rows=None):
        p = masked_mean(d, rows)
        odds = m / (1.0 - m)
        if normalize:
            weight = (1.0 - d) * odds
            mean_w = masked_mean(weight, rows)
            return d / p - weight / mean_w, d / p * (1.0 / p + odds / mean_w)
        return d / p - (1.0 - d) / p * odds, d / p**2 * (1.0 + odds)

    def cross_section(self, y, d, t, g, m, normalize, rows=None):
        p, lam = masked_mean(d, rows), masked_mean(t, rows)
        cells = _cells(d, t)
        odds = m / (1.0 - m)
        if normalize:
            unscaled = {
                "d1_t1": cells["d1_t1"], "d1_t0": cells["d1_t0"],
                "d0_t1": cells["d0_t1"] * odds, "d0_t0": cells["d0_t0"] * odds,
            }
            w = {k: u / masked_mean(u, rows) for k, u in unscaled.items()}
        else:
            w = {
                "d1_t1": cells["d1_t1"] / (p * lam),
                "d1_t0": cells["d1_t0"] / (p * (1.0 - lam)),
                "d0_t1": cells["d0_t1"] / (p * lam) * odds,
                "d0_t0": cells["d0_t0"] / (p * (1.0 - lam)) * odds,
            }
        psi_b = d / p * _g_contrast(g) + sum(_SIGN[k] * w[k] * (y - g[k]) for k in _SIGN)
        return _on_rows(-d / p, rows), _on_rows(psi_b, rows)

    def cross_section_riesz(self, d, t, m, normalize, rows=None):
        p, lam = masked_mean(d, rows), masked_mean(t, rows)
        cells = _cells(d, t)
        odds = m / (1.0 - m)
        if normalize:
            mean = {k: masked_mean(c, rows) for k, c in cells.items() if k.startswith("d1")}
            mean_01 = masked_mean(cells["d0_t1"] * odds, rows)
            mean_00 = masked_mean(cells["d0_t0"] * odds, rows)
            m_alpha = d / p * (
                1.0 / mean["d1_t1"] + 1.0 / mean["d1_t0"] + odds / mean_01 + odds / mean_00
            )
            alpha = (
                cells["d1_t1"] / mean["d1_t1"] - cells["d1_t0"] / mean["d1_t0"]
                - cells["d0_t1"] * odds / mean_01 + cells["d0_t0"] * odds / mean_00
            )
            return alpha, m_alpha
        m_alpha = d / p**2 * (1.0 / lam + 1.0 / (1.0 - lam)) * (1.0 + odds)
        alpha = (t / (p * lam) + (1.0 - t) / (p * (1.0 - lam))) * (d + (1.0 - d) * odds)
        return alpha, m_alpha


class Experimental(AbstractDIDScore):
    r"""The DID score for an experiment (treatment independent of the covariates): the
    propensity is the treated share $p = \overline{D}$ and no `ml_m` is needed.

    Panel data, with in-sample normalisation:
    $$\psi = -\theta + \Bigl(\frac{D}{p} - 1\Bigr)g_0 + \Bigl(1 - \frac{D}{p}\Bigr)g_1
    + \Bigl(\frac{D}{p} - \frac{1 - D}{\overline{1 - D}}\Bigr)(Y - g_0),$$
    and without it the residual weight is $(D - p)/(p(1 - p))$.

    Repeated cross-sections: $\psi_a = -1$, $\psi_b = (g_{11} - g_{10} - g_{01} + g_{00})
    + \sum_{d,t} \pm w_{dt}(Y - g_{dt})$ with $w_{dt} = 1\{D=d,T=t\}$ over its mean (or over
    $P(D=d)P(T=t)$ without in-sample normalisation).
    """

    @property
    def needs_m(self) -> bool:
        return False

    def panel(self, y, d, g0, g1, m, normalize, rows=None):
        p = masked_mean(d, rows)
        w_g0, w_g1 = d / p - 1.0, 1.0 - d / p
        if normalize:
            w_res = d / p - (1.0 - d) / masked_mean(1.0 - d, rows)
        else:
            w_res = (d - p) / (p * (1.0 - p))
        psi_b = w_g0 * g0 + w_g1 * g1 + w_res * (y - g0)
        return _on_rows(-jnp.ones_like(psi_b), rows), _on_rows(psi_b, rows)

    def panel_riesz(self, d, m, normalize, rows=None):
        # the same with or without in-sample normalisation (as in DoubleML)
        p = masked_mean(d, rows)
        alpha = d / p - (1.0 - d) / (1.0 - p)
        return alpha, jnp.broadcast_to(1.0 / p + 1.0 / (1.0 - p), alpha.shape)

    def cross_section(self, y, d, t, g, m, normalize, rows=None):
        cells = _cells(d, t)
        if normalize:
            w = {k: c / masked_mean(c, rows) for k, c in cells.items()}
        else:
            w = {k: c / _cell_share(k, d, t, rows) for k, c in cells.items()}
        psi_b = _g_contrast(g) + sum(_SIGN[k] * w[k] * (y - g[k]) for k in _SIGN)
        return _on_rows(-jnp.ones_like(psi_b), rows), _on_rows(psi_b, rows)

    def cross_section_riesz(self, d, t, m, normalize, rows=None):
        cells = _cells(d, t)
        if normalize:
            share = {k: masked_mean(c, rows) for k, c in cells.items()}
        else:
            share = {k: _cell_share(k, d, t, rows) for k in cells}
        alpha = sum(_SIGN[k] * cells[k] / share[k] for k in _SIGN)
        m_alpha = sum(1.0 / share[k] for k in _SIGN)
        return alpha, jnp.broadcast_to(m_alpha, alpha.shape)


def _cell_share(k: str, d: Array, t: Array, rows: Array | None) -> Array:
    """$P(D = d)P(T = t)$ from the marginal shares (DoubleML's product without normalisation)."""
    p, lam = masked_mean(d, rows), masked_mean(t, rows)
    p_d = p if k[1] == "1" else 1.0 - p
    p_t = lam if k[-1] == "1" else 1.0 - lam
    return p_d * p_t


def sensitivity_from_riesz(
    y: Array, g_hat: Array, alpha: Array, m_alpha: Array, rows: Array | None = None
) -> dict[str, Array]:
    r"""DoubleML's sensitivity elements from the outcome residual and the Riesz representer:
    $\sigma^2 = \overline{(Y - \hat g)^2}$, $\nu^2 = \overline{2 m(W, \alpha) - \alpha^2}$, their
    centred score elements and $\alpha$ itself.

    With `rows` (a group-time cell) the means are over the cell's rows, and the per-row elements
    are zero outside the cell and scaled by $n / n_{cell}$ (DoubleML's `DoubleMLDIDBinary`).
    """
    sigma2_el = (y - g_hat) ** 2
    nu2_el = 2.0 * m_alpha - alpha**2
    sigma2, nu2 = masked_mean(sigma2_el, rows), masked_mean(nu2_el, rows)
    psi_sigma2, psi_nu2 = sigma2_el - sigma2, nu2_el - nu2
    if rows is not None:
        scale = rows.shape[-1] / jnp.sum(rows, axis=-1, keepdims=True)
        psi_sigma2, psi_nu2, alpha = (
            scale * _on_rows(v, rows) for v in (psi_sigma2, psi_nu2, alpha)
        )
    return {
        "sigma2": sigma2[..., 0],
        "nu2": nu2[..., 0],
        "psi_sigma2": psi_sigma2,
        "psi_nu2": psi_nu2,
        "riesz_rep": alpha,
    }
