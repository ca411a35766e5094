r"""Neyman-orthogonal scores, linear in the parameter: $\psi = \psi_a\,\theta + \psi_b$.

A score is chosen by passing an object (`PartiallingOut()`, `IVType()`, `ATE()`, `ATTE()`), each of
which computes the elements $\psi_a$ and $\psi_b$ for the models it applies to. The elements are
DoubleML 0.11's, term for term.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

Elements = tuple[Array, Array]


class AbstractScore(eqx.Module):
    r"""A Neyman-orthogonal score, linear in the parameter:
    $\psi(W; \theta, \eta) = \psi_a(W; \eta)\theta + \psi_b(W; \eta)$."""


class AbstractPartiallyLinearScore(AbstractScore):
    """A score of the partially linear models ([`jaxcausal.dml.PLR`][] and
    [`jaxcausal.dml.PLIV`][])."""

    @property
    @abc.abstractmethod
    def needs_g(self) -> bool:
        """Whether the score needs the learner `ml_g` of $E[Y - \\theta D \\mid X]$."""

    @abc.abstractmethod
    def plr(self, y: Array, d: Array, l_hat: Array, m_hat: Array, g_hat: Array | None) -> Elements:
        """Elements for the PLR with $\\ell(X) = E[Y|X]$, $m(X) = E[D|X]$, $g(X)$."""

    @abc.abstractmethod
    def pliv(
        self, y: Array, d: Array, v_hat: Array, w_hat: Array, l_hat: Array, g_hat: Array | None
    ) -> Elements:
        """Elements for the PLIV given the instrument residual `v_hat` (projected for several
        instruments) and the treatment residual `w_hat`."""


class PartiallingOut(AbstractPartiallyLinearScore):
    r"""The partialling-out score of Robinson (1988) and Chernozhukov et al. (2018).

    PLR: $\psi = (D - m(X))\bigl(Y - \ell(X) - \theta (D - m(X))\bigr)$, so
    $\psi_a = -(D - m)^2$ and $\psi_b = (D - m)(Y - \ell)$.

    PLIV: $\psi_a = -\tilde V (D - r(X))$ and $\psi_b = \tilde V (Y - \ell(X))$ with
    $\tilde V = Z - m(X)$ (one instrument) or its linear projection of $D - r(X)$ (several).
    """

    @property
    def needs_g(self) -> bool:
        return False

    def plr(self, y, d, l_hat, m_hat, g_hat):
        v = d - m_hat
        return -v * v, v * (y - l_hat)

    def pliv(self, y, d, v_hat, w_hat, l_hat, g_hat):
        return -w_hat * v_hat, v_hat * (y - l_hat)


class IVType(AbstractPartiallyLinearScore):
    r"""The IV-type score of Chernozhukov et al. (2018).

    PLR: $\psi_a = -(D - m(X))D$ and $\psi_b = (D - m(X))(Y - g(X))$, where $g$ is fitted to
    $Y - \hat\theta_0 D$ with a preliminary partialling-out estimate $\hat\theta_0$.
    PLIV (one instrument): $\psi_a = -(Z - m(X))D$ and $\psi_b = (Z - m(X))(Y - g(X))$.
    """

    @property
    def needs_g(self) -> bool:
        return True

    def plr(self, y, d, l_hat, m_hat, g_hat):
        v = d - m_hat
        return -v * d, v * (y - g_hat)

    def pliv(self, y, d, v_hat, w_hat, l_hat, g_hat):
        return -v_hat * d, v_hat * (y - g_hat)


class AbstractIRMScore(AbstractScore):
    """A score of the interactive regression model ([`jaxcausal.dml.IRM`][])."""

    @abc.abstractmethod
    def weights(self, d: Array, m_hat: Array) -> tuple[Array, Array]:
        """The weights $\\omega$ and $\\bar\\omega$ defining the target parameter."""

    def irm(
        self,
        y: Float[Array, "*b n"],
        d: Float[Array, "*b n"],
        g0: Float[Array, "*b n"],
        g1: Float[Array, "*b n"],
        m_hat: Float[Array, "*b n"],
    ) -> Elements:
        r"""$\psi_b = \omega (g_1 - g_0)
        + \bar\omega\bigl(D(Y - g_1)/m - (1-D)(Y - g_0)/(1-m)\bigr)$,
        $\psi_a = -\omega / \overline{\omega}$."""
        w, w_bar = self.weights(d, m_hat)
        ipw = d * (y - g1) / m_hat - (1.0 - d) * (y - g0) / (1.0 - m_hat)
        psi_b = w * (g1 - g0) + w_bar * ipw
        psi_a = -w / jnp.mean(w, axis=-1, keepdims=True)
        return psi_a, psi_b


class ATE(AbstractIRMScore):
    r"""The average treatment effect $E[g_1(X) - g_0(X)]$ with the doubly robust (AIPW) score:
    $\omega = \bar\omega = 1$."""

    def weights(self, d, m_hat):
        one = jnp.ones_like(m_hat)
        return one, one


class ATTE(AbstractIRMScore):
    r"""The average treatment effect on the treated $E[g_1(X) - g_0(X) \mid D = 1]$:
    $\omega = D / p$ and $\bar\omega = m(X) / p$ with $p = \overline{D}$."""

    def weights(self, d, m_hat):
        p = jnp.mean(d, axis=-1, keepdims=True)
        return jnp.broadcast_to(d / p, m_hat.shape), m_hat / p
