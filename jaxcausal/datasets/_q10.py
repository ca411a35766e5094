"""Half-hourly synthetic ecosystem fluxes for the Q10 and flux-partitioning showcases.

The generator follows the form used by Reichstein et al. (2022) and Cohrs et al. (2024, "Causal
hybrid modeling with double machine learning") for their synthetic FLUXNET-like experiments; real
FLUXNET data cannot be downloaded here. Base respiration depends on the smoothed potential
radiation only, while air temperature shares its seasonal cycle: that shared season is the
confounding that makes a naive regression of log RECO on temperature biased.
"""

from __future__ import annotations

import functools as ft

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
from jaxtyping import PRNGKeyArray

from .._compile import jit

_STEPS_PER_DAY = 48
_SOLAR_CONSTANT = 1361.0  # W m-2


def _moving_average(x: jax.Array, window: int) -> jax.Array:
    """Centred moving average with the window shrunk at both ends (no padding bias)."""
    c = jnp.concatenate([jnp.zeros((1,), x.dtype), jnp.cumsum(x)])
    n = x.shape[0]
    i = jnp.arange(n)
    lo = jnp.clip(i - window // 2, 0, n)
    hi = jnp.clip(i - window // 2 + window, 0, n)
    return (c[hi] - c[lo]) / (hi - lo)


def _ar1(key: PRNGKeyArray, n: int, phi: float, sd: float) -> jax.Array:
    """Stationary AR(1) series with marginal standard deviation `sd`."""
    eps = jr.normal(key, (n,)) * sd * np.sqrt(1.0 - phi**2)

    def step(prev, e):
        nxt = phi * prev + e
        return nxt, nxt

    first = jr.normal(jr.fold_in(key, 1)) * sd
    _, out = jax.lax.scan(step, first, eps)
    return out


def potential_radiation(
    day_of_year: jax.Array, hour: jax.Array, latitude: float | jax.Array
) -> jax.Array:
    """Top-of-atmosphere shortwave radiation on a horizontal surface (W m-2) from solar geometry."""
    lat = jnp.deg2rad(latitude)
    decl = jnp.deg2rad(23.44) * jnp.sin(2.0 * jnp.pi * (284.0 + day_of_year) / 365.0)
    hour_angle = jnp.deg2rad(15.0 * (hour - 12.0))
    cos_zenith = jnp.sin(lat) * jnp.sin(decl) + jnp.cos(lat) * jnp.cos(decl) * jnp.cos(hour_angle)
    eccentricity = 1.0 + 0.033 * jnp.cos(2.0 * jnp.pi * day_of_year / 365.0)
    return _SOLAR_CONSTANT * eccentricity * jnp.maximum(cos_zenith, 0.0)


@ft.partial(jit, static_argnums=(1,))
def _simulate(key, n_total, q10, t_ref, noise, latitude):
    k_ta, k_cloud, k_rh, k_eps = jr.split(key, 4)
    step = jnp.arange(n_total)
    doy = (step // _STEPS_PER_DAY) % 365 + 1.0
    hour = (step % _STEPS_PER_DAY) / 2.0 + 0.25
    sw_pot = potential_radiation(doy, hour, latitude)
    window = 10 * _STEPS_PER_DAY
    sw_pot_sm = _moving_average(sw_pot, window)
    diff = jnp.concatenate([jnp.zeros((1,), sw_pot_sm.dtype), jnp.diff(sw_pot_sm)])
    sw_pot_sm_diff = _moving_average(1e4 * diff, window)

    season = -jnp.cos(2.0 * jnp.pi * (doy - 20.0) / 365.0)
    diurnal = -jnp.cos(2.0 * jnp.pi * (hour - 3.0) / 24.0)
    ta = 9.0 + 9.0 * season + 4.0 * diurnal + _ar1(k_ta, n_total, 0.995, 2.5)
    daily_cloud = _ar1(k_cloud, n_total // _STEPS_PER_DAY, 0.7, 1.0)
    clear_sky = jax.nn.sigmoid(1.2 + 1.5 * jnp.repeat(daily_cloud, _STEPS_PER_DAY))
    sw_in = sw_pot * (0.15 + 0.85 * clear_sky)
    rh = jnp.clip(0.75 - 0.2 * diurnal + 0.1 * _ar1(k_rh, n_total, 0.98, 1.0), 0.1, 0.98)
    sat = 6.1078 * jnp.exp(17.27 * ta / (ta + 237.3))  # hPa
    vpd = sat * (1.0 - rh)

    a = 0.01 * sw_pot_sm - 0.005 * sw_pot_sm_diff
    rb = 0.75 * (a - jnp.min(a) + 0.1 * jnp.pi)
    reco = rb * q10 ** ((ta - t_ref) / 10.0)
    bound = 0.95 / jnp.maximum(noise, 1e-12)
    eps = noise * jr.truncated_normal(k_eps, -bound, bound, (n_total,))
    reco_obs = reco * (1.0 + eps)
    vpd_factor = jnp.minimum(1.0, jnp.exp(-0.1 * (vpd - 10.0)))
    rue = 0.5 * jnp.exp(-((0.1 * (ta - 20.0)) ** 2)) * vpd_factor
    lue = rue / 12.011
    gpp = lue * sw_in
    nee = reco_obs - gpp

    columns = {
        "SW_POT": sw_pot,
        "SW_POT_sm": sw_pot_sm,
        "SW_POT_sm_diff": sw_pot_sm_diff,
        "TA": ta,
        "VPD": vpd,
        "SW_IN": sw_in,
        "RECO": reco_obs,
        "GPP": gpp,
        "NEE": nee,
        "doy": doy,
        "hour": hour,
    }
    hidden = {"Rb": rb, "RECO": reco, "GPP": gpp, "LUE": lue}
    return columns, hidden


def q10_arrays(
    key: PRNGKeyArray,
    *,
    n_obs: int | None = None,
    years: int = 5,
    q10: float | jax.Array = 1.5,
    t_ref: float | jax.Array = 15.0,
    noise: float | jax.Array = 0.2,
    latitude: float | jax.Array = 47.1,
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """The arrays behind [`jaxcausal.datasets.q10_synthetic`][], as a traceable function.

    Returns `(columns, hidden)`: dicts of JAX arrays with the same names as `q10_synthetic`'s
    DataFrame columns and per-row truth. Only `n_obs` and `years` are static, so the function can
    be `vmap`ped over keys (and over `q10`, `t_ref`, `noise`, `latitude`) to draw many sites in one
    call, as simulation studies do. The same key gives the same rows as `q10_synthetic`.
    """
    if years < 1:
        raise ValueError(f"years must be at least 1, got {years}")
    n_total = years * 365 * _STEPS_PER_DAY
    if n_obs is not None and not 1 <= n_obs <= n_total:
        raise ValueError(f"n_obs must be between 1 and {n_total} (years={years}), got {n_obs}")
    columns, hidden = _simulate(key, n_total, q10, t_ref, noise, latitude)
    if n_obs is not None:
        rows = jnp.sort(jr.choice(jr.fold_in(key, 7), n_total, (n_obs,), replace=False))
        columns = {k: v[rows] for k, v in columns.items()}
        hidden = {k: v[rows] for k, v in hidden.items()}
    return columns, hidden


def q10_synthetic(
    key: PRNGKeyArray,
    *,
    n_obs: int | None = None,
    years: int = 5,
    q10: float = 1.5,
    t_ref: float = 15.0,
    noise: float = 0.2,
    latitude: float = 47.1,
) -> tuple[pd.DataFrame, dict]:
    r"""A synthetic half-hourly site with known Q10, base respiration, GPP and light-use efficiency.

    **Arguments:**

    - `key`: draws the weather (temperature anomaly, clouds, humidity) and the observation noise.
    - `n_obs`: if given, a random subset of this many half-hours (drawn from `key`, kept in time
      order); default the whole series of `years * 365 * 48` rows.
    - `years`: length of the series.
    - `q10`, `t_ref`: temperature sensitivity of respiration and its reference temperature (deg C).
    - `noise`: standard deviation of the multiplicative observation noise $\varepsilon$, a normal
      truncated to $|\varepsilon| < 0.95$ so that observed RECO stays positive.
    - `latitude`: site latitude in degrees (sets the potential radiation).

    **Returns:** `(df, truth)`. `df` has columns `SW_POT`, `SW_POT_sm`, `SW_POT_sm_diff`, `TA`,
    `VPD`, `SW_IN`, `RECO` (observed), `GPP`, `NEE`, `doy`, `hour`. `truth` holds `q10`, `t_ref`,
    and per row `Rb`, `RECO` (noise-free), `GPP`, `LUE` (the radiation-use efficiency
    `RUE / 12.011`, so `GPP = LUE * SW_IN`).

    The processes, with $a = 0.01\,SW_{POT,sm} - 0.005\,SW_{POT,sm,diff}$:

    $$R_b = 0.75\,(a - \min a + 0.1\pi),\qquad RECO = R_b\,Q_{10}^{(TA - T_{ref})/10},$$
    $$RUE = 0.5\,e^{-(0.1(TA - 20))^2}\min(1, e^{-0.1(VPD - 10)}),$$
    $$GPP = RUE\,SW_{IN}/12.011,$$

    observed RECO $= RECO\,(1 + \varepsilon)$ and $NEE = RECO_{obs} - GPP$.
    """
    if years < 1:
        raise ValueError(f"years must be at least 1, got {years}")
    if q10 <= 0:
        raise ValueError(f"q10 must be positive, got {q10}")
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    if not -90.0 <= latitude <= 90.0:
        raise ValueError(f"latitude must be in [-90, 90] degrees, got {latitude}")
    columns, hidden = q10_arrays(
        key, n_obs=n_obs, years=years, q10=float(q10), t_ref=float(t_ref), noise=float(noise),
        latitude=float(latitude),
    )
    df = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in columns.items()})
    truth = {"q10": float(q10), "t_ref": float(t_ref)}
    truth.update({k: np.asarray(v, dtype=float) for k, v in hidden.items()})
    return df, truth
