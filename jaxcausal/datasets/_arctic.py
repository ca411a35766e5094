"""A synthetic Arctic daily series with a velocity-modulated treatment and a known effect."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import as_float_array, check_finite, check_ndim
from .._data import CausalData

ARCTIC_COLUMNS = ("uoe", "von", "total_vel", "zos", "sithick")
"""Eastward and northward sea-ice velocity, speed, sea-surface height, sea-ice thickness."""


def arctic_adjacency() -> np.ndarray:
    """The physical causal graph over `ARCTIC_COLUMNS` as a 0/1 matrix (`[i, j] = 1`: i -> j).

    Velocity components make the speed; speed drives sea-surface height; speed and height drive
    ice thickness. Used as the decoder mask of [`jaxcausal.te.KGCMVAE`][]."""
    idx = {c: i for i, c in enumerate(ARCTIC_COLUMNS)}
    adj = np.zeros((5, 5), dtype=int)
    for a, b in [("uoe", "total_vel"), ("von", "total_vel"), ("total_vel", "zos"),
                 ("total_vel", "sithick"), ("zos", "sithick")]:
        adj[idx[a], idx[b]] = 1
    return adj


def _rolling_mean(v: Array, window: int) -> Array:
    """Trailing mean over `window` days (over the days available at the start)."""
    cs = jnp.concatenate([jnp.zeros((1,), v.dtype), jnp.cumsum(v)])
    d = jnp.arange(v.shape[0])
    lo = jnp.maximum(d + 1 - window, 0)
    return (cs[d + 1] - cs[lo]) / (d + 1 - lo)


def velocity_modulated_treatment(
    ssh: ArrayLike,
    velocity: ArrayLike,
    *,
    a: float | int,
    b: float | int,
    k: float | int,
    window: int,
    velocity_weight: float | int = 1.0,
) -> tuple[Float[Array, " n_days"], Float[Array, " n_days"]]:
    r"""The velocity-modulated treatment of KGCM-VAE (Sampath, Janeja et al. 2026).

    With $s_d$ the trailing `window`-day mean of `velocity` and $\bar s$ its mean over the series:
    $T_0(d) = \overline{\mathrm{SSH}}_{\text{window}}(d) + w\,s_d$ (trailing mean of SSH plus the
    smoothed-velocity term with weight $w$ = `velocity_weight`), and
    $T_1(d) = (a + b\,\sigma(-k\,(s_d - \bar s)))\,T_0(d)$: the smoothed signal amplified by a
    sigmoid of the velocity anomaly. On real data, pass SSH transitions as `velocity` to drive
    the sigmoid by them. A binary treatment is a threshold of $T_1 - T_0$ where a model needs one.

    **Arguments:**

    - `ssh`, `velocity`: daily series `(n_days,)`.
    - `a`, `b`, `k`: baseline gain, sigmoid amplitude and steepness.
    - `window`: smoothing window in days (at least 1).
    - `velocity_weight`: weight of the smoothed velocity in $T_0$.

    **Returns:** `(t0, t1)`, each `(n_days,)`.
    """
    ssh = check_finite(as_float_array(ssh, "ssh"), "ssh")
    velocity = check_finite(as_float_array(velocity, "velocity"), "velocity")
    check_ndim(ssh, (1,), "ssh", "a daily series of shape (n_days,)")
    check_ndim(velocity, (1,), "velocity", "a daily series of shape (n_days,)")
    if ssh.shape != velocity.shape:
        raise ValueError(f"ssh and velocity must have the same length; got {ssh.shape[0]} and "
                         f"{velocity.shape[0]}")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive number of days, got {window!r}")
    s = _rolling_mean(velocity, window)
    t0 = _rolling_mean(ssh, window) + velocity_weight * s
    t1 = (a + b * jax.nn.sigmoid(-k * (s - jnp.mean(s)))) * t0
    return t0, t1


def _ar1(key: PRNGKeyArray, n: int, rho: float, sd: float) -> Array:
    eps = jr.normal(key, (n,)) * sd * np.sqrt(1 - rho**2)

    def step(prev, e):
        cur = rho * prev + e
        return cur, cur

    _, out = jax.lax.scan(step, jr.normal(jr.fold_in(key, 1)) * sd, eps)
    return out


class ArcticSynthetic(eqx.Module):
    """A synthetic daily Arctic series with its treatment and true effects.

    - `series`: `(n_days, 5)` daily values of `ARCTIC_COLUMNS`; `sithick` is the factual outcome.
    - `t0`, `t1`: the velocity-modulated signals; `treatment`: the binary treatment of each day.
    - `mu0`, `mu1`: noiseless potential outcomes (ice thickness without/with treatment);
      `effect = mu1 - mu0`, the known effect $\\delta(d)$.

    `windows(window)` gives the per-day estimation problem; `to_pandas()` a DataFrame.
    """

    series: Float[Array, "n_days 5"]
    t0: Float[Array, " n_days"]
    t1: Float[Array, " n_days"]
    treatment: Float[Array, " n_days"]
    mu0: Float[Array, " n_days"]
    mu1: Float[Array, " n_days"]

    @property
    def effect(self) -> Float[Array, " n_days"]:
        return self.mu1 - self.mu0

    def windows(self, window: int = 30) -> tuple[CausalData, Float[Array, " m"]]:
        """Units are days `d >= window`: covariates are the `window` previous days of all five
        columns, flattened day-major to `(m, window * 5)`, the treatment and outcome are those of
        day `d`. **Returns:** `(data, tau)` with the true effects `tau` `(m,)`."""
        n = self.series.shape[0]
        if not 1 <= window < n:
            raise ValueError(f"window must be between 1 and {n - 1} days, got {window}")
        days = jnp.arange(window, n)
        idx = days[:, None] - window + jnp.arange(window)[None, :]
        x = self.series[idx].reshape(days.shape[0], window * len(ARCTIC_COLUMNS))
        names = tuple(f"{c}[-{window - i}]" for i in range(window) for c in ARCTIC_COLUMNS)
        data = CausalData(self.series[days, 4], self.treatment[days], x, y_name="sithick",
                          t_names=("treatment",), x_names=names)
        return data, self.effect[days]

    def to_pandas(self) -> pd.DataFrame:
        df = pd.DataFrame(np.asarray(self.series), columns=list(ARCTIC_COLUMNS))
        for name in ("t0", "t1", "treatment", "mu0", "mu1"):
            df[name] = np.asarray(getattr(self, name))
        df["effect"] = df["mu1"] - df["mu0"]
        return df


def arctic_synthetic(
    key: PRNGKeyArray,
    *,
    n_days: int = 1620,
    a: float = 1.0,
    b: float = 1.0,
    k: float = 5.0,
    window: int = 7,
    effect_scale: float = 6.0,
    c: float = 2.0,
    treatment_sharpness: float = 2.0,
    noise_sd: float = 0.3,
) -> ArcticSynthetic:
    r"""Simulates `n_days` of Arctic sea-ice and ocean variables with a known treatment effect.

    Velocities `uoe`, `von` are seasonal cycles plus AR(1) noise, `total_vel` their norm, `zos`
    (SSH) a seasonal cycle driven by the speed plus AR(1) noise. The treatment of day $d$ comes
    from the velocity-modulated signals of day $d - 1$
    ([`jaxcausal.datasets.velocity_modulated_treatment`][] with `a`, `b`, `k`, `window`): with
    $\Delta = T_1 - T_0$ standardised, $t_d \sim \mathrm{Bernoulli}(\sigma(\gamma\,\Delta_{d-1}))$,
    $\gamma$ = `treatment_sharpness` (confounded, with overlap). Ice thickness is
    $\mu_0(d) = \cos\phi_d - 0.5\,\mathrm{zos}_{d-1} + 0.3\,\mathrm{vel}_{d-1}$ plus, when treated,
    $\delta(d) = -$`effect_scale`$\cdot|\sin(\phi_d / 2)|\cdot\tanh(c\,\Delta_{d-1})$, plus AR(1)
    noise of sd `noise_sd`; $\phi_d = 2\pi d / 365$. Both $\mu_0$ and $\delta$ are functions of
    the past, so the effect is identified from windows of earlier days (up to the season, which
    the models must read from the seasonal cycles).

    **Returns:** an [`jaxcausal.datasets.ArcticSynthetic`][].
    """
    if n_days < 30:
        raise ValueError(f"n_days must be at least 30, got {n_days}")
    ks = jr.split(key, 5)
    d = jnp.arange(n_days, dtype=float)
    phi = 2 * jnp.pi * d / 365.0
    uoe = 0.6 * jnp.sin(phi) + _ar1(ks[0], n_days, 0.8, 0.5)
    von = 0.6 * jnp.cos(phi + 0.5) + _ar1(ks[1], n_days, 0.8, 0.5)
    vel = jnp.sqrt(uoe**2 + von**2)
    zos = 0.8 * jnp.sin(phi - 1.0) + 0.6 * (vel - jnp.mean(vel)) + _ar1(ks[2], n_days, 0.9, 0.3)
    t0, t1 = velocity_modulated_treatment(zos, vel, a=a, b=b, k=k, window=window)
    delta = t1 - t0
    delta = (delta - jnp.mean(delta)) / jnp.std(delta)
    prev = lambda v: jnp.concatenate([v[:1], v[:-1]])  # noqa: E731
    p_treat = jax.nn.sigmoid(treatment_sharpness * prev(delta))
    treatment = jr.bernoulli(ks[3], p_treat).astype(d.dtype)
    mu0 = jnp.cos(phi) - 0.5 * prev(zos) + 0.3 * prev(vel)
    effect = -effect_scale * jnp.abs(jnp.sin(phi / 2)) * jnp.tanh(c * prev(delta))
    sithick = mu0 + treatment * effect + _ar1(ks[4], n_days, 0.5, noise_sd)
    series = jnp.stack([uoe, von, vel, zos, sithick], axis=1)
    return ArcticSynthetic(series, t0, t1, treatment, mu0, mu0 + effect)
