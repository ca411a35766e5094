r"""A location-scale model whose potential quantiles, quantile treatment effects and conditional
values at risk are known in closed form, with an optional binary instrument."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jax.scipy.stats import norm
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._data import CausalData


class LocationScaleQTE(eqx.Module):
    r"""Confounded potential outcomes with normal marginals and a treatment that shifts and
    stretches them:

    $$Y(d) = d\,\tau + c\,h(X) + \beta\sum_{j \ge 3} X_j + \sigma_d\,\varepsilon,\qquad
    h(X) = X_1 \cos X_3 + X_2 \sin X_3,$$

    with $X \sim N(0, I_p)$, $\varepsilon \sim N(0, 1)$ and
    $P(D = 1 \mid X) = \operatorname{logistic}(a\,h(X) + b X_3)$. Given $X_3$, $h$ is a rotation
    of the independent standard normals $X_1, X_2$, so $h(X) \sim N(0, 1)$ independently of
    $X_3, \dots, X_p$, and $Y(d) \sim N(d\tau, v_d)$ with
    $v_d = c^2 + (p - 2)\beta^2 + \sigma_d^2$, so the potential quantiles
    $d\tau + \sqrt{v_d}\,\Phi^{-1}(q)$ and the upper-tail conditional values at risk
    $d\tau + \sqrt{v_d}\,\varphi(\Phi^{-1}(q)) / (1 - q)$ are exact, while the outcome and the
    propensity are smooth, nonlinear functions of $X$ (through $h$) and confounded.

    With an instrument ([`jaxcausal.datasets.LocationScaleQTE.sample_iv`][]),
    $Z \sim \text{Bernoulli}(\operatorname{logistic}(X_4))$ and each unit is an always-taker,
    never-taker or complier with probabilities `always`, `never` and the rest, independently of
    $X$ and $\varepsilon$; $D = Z$ for compliers. Always-takers' outcomes are shifted by
    `+shift` and never-takers' by `-shift` (so $D$ is endogenous given $X$); compliers keep the
    distribution above, so the local potential quantiles are the potential quantiles.

    **Arguments:** `dim_x` (at least 4), `tau`, `c`, `beta`, `scale0`, `scale1`, the propensity
    slopes `a` and `b`, and for the instrument `always`, `never`, `shift`.

    ```python
    dgp = jc.datasets.LocationScaleQTE()
    data = dgp.sample(1000, key=jr.key(0))
    truth = dgp.quantile_effect(jnp.array([0.25, 0.5, 0.75]))
    ```
    """

    dim_x: int = eqx.field(static=True, default=5)
    tau: float = 1.0
    c: float = 1.0
    beta: float = 0.5
    scale0: float = 1.0
    scale1: float = 2.0
    a: float = 0.8
    b: float = 0.5
    always: float = 0.2
    never: float = 0.2
    shift: float = 1.0

    def __check_init__(self):
        if not isinstance(self.dim_x, int) or self.dim_x < 4:
            raise ValueError(f"dim_x must be an integer of at least 4, got {self.dim_x!r}")
        for name in ("scale0", "scale1"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not (0 <= self.always and 0 <= self.never and self.always + self.never < 1):
            raise ValueError(
                f"always and never must be non-negative with always + never < 1; got "
                f"{self.always} and {self.never}"
            )

    def _outcome_parts(self, key, n_obs):
        k_x, k_e = jr.split(key)
        x = jr.normal(k_x, (n_obs, self.dim_x))
        h = x[:, 0] * jnp.cos(x[:, 2]) + x[:, 1] * jnp.sin(x[:, 2])
        base = self.c * h + self.beta * jnp.sum(x[:, 2:], axis=1)
        return x, h, base, jr.normal(k_e, (n_obs,))

    def _y(self, d, base, eps):
        scale = jnp.where(d == 1, self.scale1, self.scale0)
        return d * self.tau + base + scale * eps

    def sample(self, n_obs: int, *, key: PRNGKeyArray) -> CausalData:
        """`n_obs` rows `(y, d, x)` with a confounded binary treatment."""
        k_out, k_d = jr.split(key)
        x, h, base, eps = self._outcome_parts(k_out, n_obs)
        d = jr.bernoulli(k_d, _logistic(self.a * h + self.b * x[:, 2])).astype(x.dtype)
        return CausalData(y=self._y(d, base, eps), t=d, x=x, t_names=("d",),
                          x_names=tuple(f"X{j + 1}" for j in range(self.dim_x)))

    def sample_iv(self, n_obs: int, *, key: PRNGKeyArray) -> CausalData:
        """`n_obs` rows `(y, d, x, z)` with a binary instrument and non-compliance."""
        k_out, k_z, k_type = jr.split(key, 3)
        x, _, base, eps = self._outcome_parts(k_out, n_obs)
        z = jr.bernoulli(k_z, _logistic(x[:, 3])).astype(x.dtype)
        u = jr.uniform(k_type, (n_obs,))
        always = u < self.always
        never = (u >= self.always) & (u < self.always + self.never)
        d = jnp.where(always, 1.0, jnp.where(never, 0.0, z)).astype(x.dtype)
        shift = self.shift * (always.astype(x.dtype) - never.astype(x.dtype))
        return CausalData(y=self._y(d, base, eps) + shift, t=d, x=x, z=z, t_names=("d",),
                          x_names=tuple(f"X{j + 1}" for j in range(self.dim_x)),
                          z_names=("z",))

    def _sd(self, treatment) -> Array:
        scale = jnp.where(jnp.asarray(treatment) == 1, self.scale1, self.scale0)
        return jnp.sqrt(self.c**2 + (self.dim_x - 2) * self.beta**2 + scale**2)

    def potential_quantile(self, q: Float[ArrayLike, "*q"], treatment: int) -> Array:
        r"""$Q_q(Y(d)) = d\tau + \sqrt{v_d}\,\Phi^{-1}(q)$ (also the compliers' local potential
        quantile of [`jaxcausal.datasets.LocationScaleQTE.sample_iv`][])."""
        q = jnp.asarray(q)
        return treatment * self.tau + self._sd(treatment) * norm.ppf(q)

    def quantile_effect(self, q: Float[ArrayLike, "*q"]) -> Array:
        """The quantile treatment effect $Q_q(Y(1)) - Q_q(Y(0))$."""
        return self.potential_quantile(q, 1) - self.potential_quantile(q, 0)

    def cvar(self, q: Float[ArrayLike, "*q"], treatment: int) -> Array:
        r"""$E[Y(d) \mid Y(d) \ge Q_q(Y(d))] = d\tau + \sqrt{v_d}\,\varphi(\Phi^{-1}(q))/(1-q)$."""
        q = jnp.asarray(q)
        return treatment * self.tau + self._sd(treatment) * norm.pdf(norm.ppf(q)) / (1.0 - q)

    def cvar_effect(self, q: Float[ArrayLike, "*q"]) -> Array:
        """The difference of the conditional values at risk of both levels."""
        return self.cvar(q, 1) - self.cvar(q, 0)


def _logistic(v: Array) -> Array:
    return 1.0 / (1.0 + jnp.exp(-v))
