r"""Data-generating processes of the double machine learning literature, drawn from keys.

They follow the processes of DoubleML's generators of the same names (Chernozhukov et al. 2018;
Belloni et al. 2017; Chernozhukov, Hansen and Spindler 2015), written with `jax.random` so that a
whole simulation study draws its data sets inside one `vmap`:

```python
keys = jr.split(jr.key(0), 200)
stacked = jax.vmap(lambda k: jc.datasets.make_plr_CCDDHNR2018(n_obs=500, key=k))(keys)
```
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._compile import jit
from .._data import CausalData


def _toeplitz_normal(key: PRNGKeyArray, n_obs: int, dim: int, rho: float) -> Float[Array, "n p"]:
    """Rows drawn from N(0, Sigma) with Sigma[j, k] = rho^|j - k|."""
    lags = jnp.abs(jnp.arange(dim)[:, None] - jnp.arange(dim)[None, :])
    chol = jnp.linalg.cholesky(jnp.power(rho, lags.astype(jnp.result_type(float))))
    return jr.normal(key, (n_obs, dim)) @ chol.T


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _x_names(dim: int, prefix: str = "X") -> tuple[str, ...]:
    return tuple(f"{prefix}{i + 1}" for i in range(dim))


def make_plr_CCDDHNR2018(
    n_obs: int = 500,
    dim_x: int = 20,
    alpha: float = 0.5,
    *,
    key: PRNGKeyArray,
    a_0: float = 1.0,
    a_1: float = 0.25,
    s_1: float = 1.0,
    b_0: float = 1.0,
    b_1: float = 0.25,
    s_2: float = 1.0,
) -> CausalData:
    r"""The partially linear regression of Chernozhukov et al. (2018), Figure 1.

    $$d_i = a_0 x_{i1} + a_1 \sigma(x_{i3}) + s_1 v_i, \qquad
    y_i = \alpha d_i + b_0 \sigma(x_{i1}) + b_1 x_{i3} + s_2 \zeta_i,$$

    with $\sigma$ the logistic function, $v_i, \zeta_i \sim N(0, 1)$ and
    $x_i \sim N(0, \Sigma)$, $\Sigma_{jk} = 0.7^{|j-k|}$.

    **Arguments:**

    - `n_obs`, `dim_x`: rows and covariates (`dim_x >= 3`).
    - `alpha`: the causal parameter (the true $\theta$).
    - `key`: a JAX PRNG key.
    - `a_0`, `a_1`, `s_1`, `b_0`, `b_1`, `s_2`: coefficients of the process.

    **Returns:** a [`jaxcausal.CausalData`][] with outcome `y`, treatment `d`, covariates `X1..Xp`.

    *Reference:* Chernozhukov, Chetverikov, Demirer, Duflo, Hansen, Newey and Robins (2018),
    Double/debiased machine learning for treatment and structural parameters, Econometrics
    Journal 21, C1-C68.
    """
    _check_sizes(n_obs=n_obs, dim_x=dim_x)
    if dim_x < 3:
        raise ValueError(f"dim_x must be at least 3 (the process uses X1 and X3), got {dim_x}")
    y, d, x = _plr_arrays(key, n_obs, dim_x, alpha, a_0, a_1, s_1, b_0, b_1, s_2)
    return CausalData(y, d, x, y_name="y", t_names=("d",), x_names=_x_names(dim_x))


@functools.partial(jit, static_argnums=(1, 2))
def _plr_arrays(key, n_obs, dim_x, alpha, a_0, a_1, s_1, b_0, b_1, s_2):
    k_x, k_v, k_zeta = jr.split(key, 3)
    x = _toeplitz_normal(k_x, n_obs, dim_x, 0.7)
    d = a_0 * x[:, 0] + a_1 * jax.nn.sigmoid(x[:, 2]) + s_1 * jr.normal(k_v, (n_obs,))
    g = b_0 * jax.nn.sigmoid(x[:, 0]) + b_1 * x[:, 2]
    y = alpha * d + g + s_2 * jr.normal(k_zeta, (n_obs,))
    return y, d, x


def make_irm_data(
    n_obs: int = 500,
    dim_x: int = 20,
    theta: float = 0.0,
    R2_d: float = 0.5,
    R2_y: float = 0.5,
    *,
    key: PRNGKeyArray,
) -> CausalData:
    r"""An interactive regression model with a binary treatment (Belloni et al. 2017, App. P).

    $$d_i = 1\{\sigma(c_d x_i^\top\beta) > v_i\}, \qquad
    y_i = \theta d_i + c_y d_i x_i^\top\beta + \zeta_i,$$

    with $v_i \sim U(0, 1)$, $\zeta_i \sim N(0, 1)$, $x_i \sim N(0, \Sigma)$,
    $\Sigma_{jk} = 0.5^{|j-k|}$, $\beta_j = 1/j^2$,
    $c_y = \sqrt{R_y^2 / ((1 - R_y^2)\beta^\top\Sigma\beta)}$ and
    $c_d = \sqrt{(\pi^2/3) R_d^2 / ((1 - R_d^2)\beta^\top\Sigma\beta)}$.

    The average treatment effect is $\theta$ (the interaction term has mean zero).

    **Arguments:**

    - `n_obs`, `dim_x`: rows and covariates.
    - `theta`: the average treatment effect.
    - `R2_d`, `R2_y`: shares of explained variance in the treatment and outcome equations, in
      `[0, 1)`.
    - `key`: a JAX PRNG key.

    **Returns:** a [`jaxcausal.CausalData`][] with outcome `y`, binary treatment `d`, covariates
    `X1..Xp`.
    """
    _check_sizes(n_obs=n_obs, dim_x=dim_x)
    for name, value in (("R2_d", R2_d), ("R2_y", R2_y)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    y, d, x = _irm_arrays(key, n_obs, dim_x, theta, R2_d, R2_y)
    return CausalData(y, d, x, y_name="y", t_names=("d",), x_names=_x_names(dim_x))


@functools.partial(jit, static_argnums=(1, 2))
def _irm_arrays(key, n_obs, dim_x, theta, R2_d, R2_y):
    k_v, k_zeta, k_x = jr.split(key, 3)
    dtype = jnp.result_type(float)
    v = jr.uniform(k_v, (n_obs,), dtype)
    zeta = jr.normal(k_zeta, (n_obs,), dtype)
    x = _toeplitz_normal(k_x, n_obs, dim_x, 0.5)
    beta = 1.0 / jnp.arange(1, dim_x + 1, dtype=dtype) ** 2
    lags = jnp.abs(jnp.arange(dim_x)[:, None] - jnp.arange(dim_x)[None, :]).astype(dtype)
    b_sigma_b = beta @ jnp.power(0.5, lags) @ beta
    c_y = jnp.sqrt(R2_y / ((1.0 - R2_y) * b_sigma_b))
    c_d = jnp.sqrt(math.pi**2 / 3.0 * R2_d / ((1.0 - R2_d) * b_sigma_b))
    index = x @ beta
    d = (jax.nn.sigmoid(c_d * index) > v).astype(dtype)
    y = theta * d + c_y * d * index + zeta
    return y, d, x


def make_pliv_CHS2015(
    n_obs: int,
    alpha: float = 1.0,
    dim_x: int = 200,
    dim_z: int = 150,
    *,
    key: PRNGKeyArray,
) -> CausalData:
    r"""A partially linear IV model with many controls and instruments (Chernozhukov, Hansen and
    Spindler 2015).

    $$z_i = \Pi x_i + \xi_i, \qquad d_i = x_i^\top\gamma + z_i^\top\delta + u_i, \qquad
    y_i = \alpha d_i + x_i^\top\beta + \varepsilon_i,$$

    with $(\varepsilon_i, u_i)$ normal with unit variances and correlation 0.6 (the endogeneity),
    $\xi_i \sim N(0, 0.25 I)$, $x_i \sim N(0, \Sigma)$, $\Sigma_{jk} = 0.5^{|j-k|}$,
    $\beta_j = \gamma_j = 1/j^2$, $\delta_j = 1/j^2$ and $\Pi = (I_{p_z}, 0)$.

    **Arguments:**

    - `n_obs`: rows.
    - `alpha`: the causal parameter.
    - `dim_x`, `dim_z`: covariates and instruments (`dim_x >= dim_z`).
    - `key`: a JAX PRNG key.

    **Returns:** a [`jaxcausal.CausalData`][] with outcome `y`, treatment `d`, covariates
    `X1..Xp` and instruments `Z1..Zm`.
    """
    _check_sizes(n_obs=n_obs, dim_x=dim_x, dim_z=dim_z)
    if dim_x < dim_z:
        raise ValueError(f"dim_x must be at least dim_z; got dim_x={dim_x}, dim_z={dim_z}")
    y, d, x, z = _pliv_arrays(key, n_obs, dim_x, dim_z, alpha)
    return CausalData(
        y, d, x, z,
        y_name="y", t_names=("d",), x_names=_x_names(dim_x), z_names=_x_names(dim_z, "Z"),
    )


@functools.partial(jit, static_argnums=(1, 2, 3))
def _pliv_arrays(key, n_obs, dim_x, dim_z, alpha):
    k_eu, k_x, k_xi = jr.split(key, 3)
    dtype = jnp.result_type(float)
    chol = jnp.linalg.cholesky(jnp.array([[1.0, 0.6], [0.6, 1.0]], dtype))
    eu = jr.normal(k_eu, (n_obs, 2), dtype) @ chol.T
    x = _toeplitz_normal(k_x, n_obs, dim_x, 0.5)
    xi = 0.5 * jr.normal(k_xi, (n_obs, dim_z), dtype)
    beta = 1.0 / jnp.arange(1, dim_x + 1, dtype=dtype) ** 2
    delta = 1.0 / jnp.arange(1, dim_z + 1, dtype=dtype) ** 2
    z = x[:, :dim_z] + xi
    d = x @ beta + z @ delta + eu[:, 1]
    y = alpha * d + x @ beta + eu[:, 0]
    return y, d, x, z
