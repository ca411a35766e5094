r"""Difference-in-differences designs with known effects, drawn from keys.

The designs are those of Sant'Anna and Zhao (2020, Section 4) for two periods and of Callaway and
Sant'Anna (2021, Appendix SC) for staggered adoption, in the versions DoubleML 0.11 ships as
`make_did_SZ2020` and `make_did_CS2021`; they are written here with `jax.random`, so that a whole
simulation study draws its data sets inside one `vmap`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from .._compile import jit
from .._data import CausalData
from .._panel import PanelData
from ._dml import _check_sizes, _toeplitz_normal

_Z_NAMES = ("Z1", "Z2", "Z3", "Z4")


def _features(key: PRNGKeyArray, n_obs: int, c: float) -> tuple[Array, Array]:
    r"""$X \sim N(0, \Sigma)$ with $\Sigma_{jk} = c^{|j-k|}$ and the transformed, standardised
    $Z$ of Kang and Schafer (2007) used by Sant'Anna and Zhao."""
    x = _toeplitz_normal(key, n_obs, 4, c)
    z = jnp.stack(
        [
            jnp.exp(0.5 * x[:, 0]),
            10.0 + x[:, 1] / (1.0 + jnp.exp(x[:, 0])),
            (0.6 + x[:, 0] * x[:, 2] / 25.0) ** 3,
            (20.0 + x[:, 1] + x[:, 3]) ** 2,
        ],
        axis=1,
    )
    return x, (z - jnp.mean(z, axis=0, keepdims=True)) / jnp.std(z, axis=0, keepdims=True)


def _select(dgp_type: int, x: Array, z: Array) -> tuple[Array | None, Array]:
    """(propensity features, regression features) of the six designs; `None`: experiment."""
    return {
        1: (z, z), 2: (x, z), 3: (z, x), 4: (x, x), 5: (None, z), 6: (None, x)
    }[dgp_type]


def _check_dgp(dgp_type: int) -> None:
    if dgp_type not in (1, 2, 3, 4, 5, 6):
        raise ValueError(f"dgp_type must be one of 1, ..., 6, got {dgp_type!r}")


def make_did_SZ2020(
    n_obs: int = 500,
    dgp_type: int = 1,
    *,
    key: PRNGKeyArray,
    theta: float = 0.0,
    cross_sectional: bool = False,
    xi: float = 0.75,
    c: float = 0.0,
    lambda_t: float = 0.5,
) -> CausalData:
    r"""The two-period DID design of Sant'Anna and Zhao (2020, Section 4.1).

    With $f_{reg}(W) = 210 + 27.4 W_1 + 13.7 (W_2 + W_3 + W_4)$ and
    $f_{ps}(W) = \xi(-W_1 + 0.5 W_2 - 0.25 W_3 - 0.1 W_4)$:
    $$D = 1\{\sigma(f_{ps}(W_{ps})) \ge U\}, \quad
    Y_0 = f_{reg}(W_{reg}) + \nu + \varepsilon_0, \quad
    Y_1(d) = 2 f_{reg}(W_{reg}) + \nu + \varepsilon_1(d) + \theta d,$$
    with $\nu \sim N(D f_{reg}(W_{reg}), 1)$ and standard normal errors. `dgp_type` 1-4 take
    $W_{reg}, W_{ps}$ from $(Z, Z), (Z, X), (X, Z), (X, X)$; 5 and 6 are experiments
    ($P(D = 1) = 1/2$) with $W_{reg} = Z$ or $X$. The covariates returned are $Z$ (so that
    designs 2-4 are misspecified for a linear learner). The ATT is $\theta$ (0 in the paper).

    **Arguments:**

    - `n_obs`: units; `dgp_type`: the design (1-6); `key`: a JAX PRNG key.
    - `theta`: the true ATT.
    - `cross_sectional`: repeated cross-sections (each unit observed once, in period
      $T \sim \text{Bernoulli}(\lambda_T)$, outcome $T Y_1 + (1 - T) Y_0$) instead of a panel
      (outcome $Y_1 - Y_0$).
    - `xi`, `c`, `lambda_t`: propensity strength, covariate correlation, post-period share.

    **Returns:** a [`jaxcausal.CausalData`][] with outcome `y`, treatment `d`, covariates
    `Z1..Z4`, and the period `time` for cross-sections; for [`jaxcausal.dml.DID`][] or
    [`jaxcausal.dml.DIDCS`][].

    *Reference:* Sant'Anna and Zhao (2020), Doubly robust difference-in-differences
    estimators, Journal of Econometrics 219(1), 101-122.
    """
    _check_sizes(n_obs=n_obs)
    _check_dgp(dgp_type)
    if not 0.0 < lambda_t < 1.0:
        raise ValueError(f"lambda_t must be in (0, 1), got {lambda_t}")
    y, d, z, t = _sz2020_arrays(key, n_obs, dgp_type, bool(cross_sectional), theta, xi,
                                float(c), lambda_t)
    return CausalData(
        y, d, z, y_name="y", t_names=("d",), x_names=_Z_NAMES,
        time=t if cross_sectional else None, time_name="t",
    )


def _f_reg(w: Array) -> Array:
    return 210.0 + 27.4 * w[:, 0] + 13.7 * (w[:, 1] + w[:, 2] + w[:, 3])


# the covariate correlation c is static: it shapes the Cholesky factor, not the draws
@functools.partial(jit, static_argnums=(1, 2, 3, 6))
def _sz2020_arrays(key, n_obs, dgp_type, cross_sectional, theta, xi, c, lambda_t):
    k_x, k_u, k_nu, k_e0, k_e1, k_t = jr.split(key, 6)
    x, z = _features(k_x, n_obs, c)
    w_ps, w_reg = _select(dgp_type, x, z)
    if w_ps is None:
        p = jnp.full((n_obs,), 0.5, x.dtype)
    else:
        p = jax.nn.sigmoid(xi * (-w_ps[:, 0] + 0.5 * w_ps[:, 1] - 0.25 * w_ps[:, 2]
                                 - 0.1 * w_ps[:, 3]))
    d = (p >= jr.uniform(k_u, (n_obs,), x.dtype)).astype(x.dtype)
    f = _f_reg(w_reg)
    nu = d * f + jr.normal(k_nu, (n_obs,), x.dtype)
    y0 = f + nu + jr.normal(k_e0, (n_obs,), x.dtype)
    e1 = jr.normal(k_e1, (n_obs, 2), x.dtype)
    y1 = 2.0 * f + nu + jnp.where(d > 0, e1[:, 1] + theta, e1[:, 0])
    t = (jr.uniform(k_t, (n_obs,), x.dtype) <= lambda_t).astype(x.dtype)
    y = t * y1 + (1.0 - t) * y0 if cross_sectional else y1 - y0
    return y, d, z, t


def make_did_CS2021(
    n_obs: int = 1000,
    dgp_type: int = 1,
    *,
    key: PRNGKeyArray,
    n_periods: int = 5,
    n_pre_treat_periods: int = 2,
    include_never_treated: bool = True,
    xi: float = 0.75,
    c: float = 0.0,
) -> PanelData:
    r"""A staggered-adoption panel after Callaway and Sant'Anna (2021, Appendix SC), in the
    variant of DoubleML's `make_did_CS2021`: periods $t = 0, \dots, T - 1$, groups first treated
    in each period from `n_pre_treat_periods` on, plus (optionally) never-treated units.

    Units join group $k$ (of $K$, never-treated last) with probabilities from a softmax of the
    logits $\xi(1 - k/K)(-W_1 + 0.5W_2 - 0.25W_3 - 0.2W_4)$ clipped to $[-2.5, 2.5]$, then
    clipped to $[0.05, 0.95]$ and renormalised (equal probabilities for `dgp_type` 5-6). Then
    $$Y_{it}(0) = 210 + \tfrac{t + 1}{T}(27.4W_1 + 13.7(W_2 + W_3 + W_4)) + t + \eta_i
    + \varepsilon_{0,it}, \qquad \eta_i \sim N(k_i, 1),$$
    and treated units get $Y_{it} = Y_{it}(0) + e_{it} + \varepsilon_{1,it} - \varepsilon_{0,it}$
    with exposure $e_{it} = \max(t - g_i + 1, 0)$. Unlike DoubleML's version, the effect does
    not vary with $X_1$, so the true group-time effect is known exactly:
    $ATT(g, t) = \max(t - g + 1, 0)$ (zero before treatment).

    **Arguments:**

    - `n_obs`: units; `dgp_type`: the design (1-6, as in
      [`jaxcausal.datasets.make_did_SZ2020`][]); `key`: a JAX PRNG key.
    - `n_periods`, `n_pre_treat_periods`: periods, and periods before the first group is
      treated (at least 1).
    - `include_never_treated`: whether some units are never treated (else use
      `jc.dml.NotYetTreated()` controls).
    - `xi`, `c`: propensity strength and covariate correlation.

    **Returns:** a [`jaxcausal.PanelData`][] with covariates `Z1..Z4` (time-invariant).

    *Reference:* Callaway and Sant'Anna (2021), Difference-in-differences with multiple time
    periods, Journal of Econometrics 225(2), 200-230.
    """
    _check_sizes(n_obs=n_obs, n_periods=n_periods, n_pre_treat_periods=n_pre_treat_periods)
    _check_dgp(dgp_type)
    if n_pre_treat_periods >= n_periods:
        raise ValueError(
            f"n_pre_treat_periods must be below n_periods={n_periods}, got {n_pre_treat_periods}"
        )
    y, g, z = _cs2021_arrays(key, n_obs, dgp_type, n_periods, n_pre_treat_periods,
                             bool(include_never_treated), xi, float(c))
    return PanelData(
        y, g, z,
        t_values=tuple(float(t) for t in range(n_periods)),
        g_values=tuple(float(t) for t in range(n_pre_treat_periods, n_periods)),
        y_name="y", g_name="d", time_name="t", id_name="id", x_names=_Z_NAMES,
    )


def did_cs2021_att(g: float | int, t: float | int) -> float:
    """The true $ATT(g, t) = \\max(t - g + 1, 0)$ of [`jaxcausal.datasets.make_did_CS2021`][]."""
    return float(max(t - g + 1.0, 0.0))


@functools.partial(jit, static_argnums=(1, 2, 3, 4, 5, 7))
def _cs2021_arrays(key, n_obs, dgp_type, n_periods, n_pre, never, xi, c):
    k_x, k_g, k_eta, k_e0, k_e1 = jr.split(key, 5)
    x, z = _features(k_x, n_obs, c)
    w_ps, w_reg = _select(dgp_type, x, z)
    dtype = x.dtype
    n_treated_groups = n_periods - n_pre
    n_groups = n_treated_groups + int(never)
    if w_ps is None:
        logp = jnp.full((n_obs, n_groups), -jnp.log(n_groups), dtype)
    else:
        scale = 1.0 - jnp.arange(n_groups, dtype=dtype) / n_groups
        index = w_ps @ jnp.asarray([-1.0, 0.5, -0.25, -0.2], dtype)
        logits = jnp.clip(xi * index[:, None] * scale[None, :], -2.5, 2.5)
        p = jnp.clip(jax.nn.softmax(logits, axis=1), 0.05, 0.95)
        logp = jnp.log(p / jnp.sum(p, axis=1, keepdims=True))
    k = jr.categorical(k_g, logp, axis=1)
    periods = jnp.arange(n_periods, dtype=dtype)
    g = jnp.where(k < n_treated_groups, n_pre + k.astype(dtype), jnp.inf)
    eta = k.astype(dtype) + jr.normal(k_eta, (n_obs,), dtype)
    slope = w_reg @ jnp.asarray([27.4, 13.7, 13.7, 13.7], dtype)
    f_reg = 210.0 + slope[:, None] * (periods[None, :] + 1.0) / n_periods
    e0 = jr.normal(k_e0, (n_obs, n_periods), dtype)
    e1 = jr.normal(k_e1, (n_obs, n_periods), dtype)
    y0 = f_reg + periods[None, :] + eta[:, None] + e0
    exposure = jnp.maximum(periods[None, :] - g[:, None] + 1.0, 0.0)
    y = jnp.where(exposure > 0, y0 + exposure + e1 - e0, y0)
    return y, g, z
