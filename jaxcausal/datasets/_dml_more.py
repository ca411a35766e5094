r"""More DML data-generating processes with known effects: a binary instrument (LATE), a
discrete treatment (average potential outcomes) and two-way clustered data, drawn from keys."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import PRNGKeyArray

from .._compile import jit
from .._data import CausalData
from ._dml import _check_sizes, _toeplitz_normal, _x_names


def make_iivm_data(
    n_obs: int = 500,
    dim_x: int = 20,
    theta: float = 1.0,
    alpha_x: float = 1.0,
    *,
    key: PRNGKeyArray,
) -> CausalData:
    r"""An interactive IV model with a binary instrument and an endogenous binary treatment (the
    process of DoubleML's `make_iivm_data`, after Farbmacher et al. 2020), with covariates that
    also shift the instrument and the take-up:

    $$z_i \sim \text{Bernoulli}(\sigma(x_{i1})),\quad
    d_i = 1\{\alpha_x z_i + 0.5 x_{i2} + v_i > 0\},\quad y_i = \theta d_i + x_i^\top\beta + u_i,$$

    with $(u_i, v_i)$ normal, unit variances, correlation 0.3 (the endogeneity),
    $x_i \sim N(0, \Sigma)$, $\Sigma_{jk} = 0.5^{|j-k|}$, $\beta_j = 1/j^2$. The effect is
    homogeneous, so the local average treatment effect is $\theta$. There are always-takers and
    never-takers.

    **Arguments:** `n_obs`, `dim_x` (at least 2), `theta` (the LATE), `alpha_x` (the
    instrument's strength), `key`.

    **Returns:** a [`jaxcausal.CausalData`][] with outcome `y`, treatment `d`, covariates
    `X1..Xp` and instrument `z`.
    """
    _check_sizes(n_obs=n_obs, dim_x=dim_x)
    if dim_x < 2:
        raise ValueError(f"dim_x must be at least 2, got {dim_x}")
    y, d, x, z = _iivm_arrays(key, n_obs, dim_x, theta, alpha_x)
    return CausalData(y, d, x, z, y_name="y", t_names=("d",), x_names=_x_names(dim_x),
                      z_names=("z",))


@functools.partial(jit, static_argnums=(1, 2))
def _iivm_arrays(key, n_obs, dim_x, theta, alpha_x):
    k_uv, k_x, k_z = jr.split(key, 3)
    dtype = jnp.result_type(float)
    chol = jnp.linalg.cholesky(jnp.array([[1.0, 0.3], [0.3, 1.0]], dtype))
    uv = jr.normal(k_uv, (n_obs, 2), dtype) @ chol.T
    x = _toeplitz_normal(k_x, n_obs, dim_x, 0.5)
    beta = 1.0 / jnp.arange(1, dim_x + 1, dtype=dtype) ** 2
    z = jr.bernoulli(k_z, jax.nn.sigmoid(x[:, 0])).astype(dtype)
    d = (alpha_x * z + 0.5 * x[:, 1] + uv[:, 1] > 0).astype(dtype)
    y = theta * d + x @ beta + uv[:, 0]
    return y, d, x, z


def make_apo_data(
    n_obs: int = 500,
    dim_x: int = 5,
    n_levels: int = 3,
    effect: float = 0.5,
    *,
    key: PRNGKeyArray,
) -> CausalData:
    r"""A discrete treatment with `n_levels` levels, confounded by the covariates:

    $$P(d_i = l \mid x_i) \propto \exp\bigl(l\,(0.5 x_{i1} - 0.5 x_{i2})\bigr),\qquad
    y_i = \text{effect}\cdot d_i + 0.5 x_{i1} + \sin(x_{i2}) + 0.25 x_{i3}^2 + \varepsilon_i,$$

    with $x_i \sim N(0, I)$, $\varepsilon_i \sim N(0, 1)$. The average potential outcome of level
    $l$ is $E[Y(l)] = 0.25 + \text{effect}\cdot l$ (the $\sin$ and linear terms have mean zero),
    so contrasts between levels $l$ and $0$ are $\text{effect}\cdot l$.

    **Arguments:** `n_obs`, `dim_x` (at least 3), `n_levels` (at least 2), `effect`, `key`.

    **Returns:** a [`jaxcausal.CausalData`][] with outcome `y`, treatment `d` in
    `{0, ..., n_levels - 1}` and covariates `X1..Xp`.
    """
    _check_sizes(n_obs=n_obs, dim_x=dim_x, n_levels=n_levels)
    if dim_x < 3:
        raise ValueError(f"dim_x must be at least 3, got {dim_x}")
    if n_levels < 2:
        raise ValueError(f"n_levels must be at least 2, got {n_levels}")
    y, d, x = _apo_arrays(key, n_obs, dim_x, n_levels, effect)
    return CausalData(y, d, x, y_name="y", t_names=("d",), x_names=_x_names(dim_x))


@functools.partial(jit, static_argnums=(1, 2, 3))
def _apo_arrays(key, n_obs, dim_x, n_levels, effect):
    k_x, k_d, k_e = jr.split(key, 3)
    dtype = jnp.result_type(float)
    x = jr.normal(k_x, (n_obs, dim_x), dtype)
    levels = jnp.arange(n_levels, dtype=dtype)
    logits = levels[None, :] * (0.5 * x[:, :1] - 0.5 * x[:, 1:2])
    d = jr.categorical(k_d, logits, axis=-1).astype(dtype)
    g = 0.5 * x[:, 0] + jnp.sin(x[:, 1]) + 0.25 * x[:, 2] ** 2
    y = effect * d + g + jr.normal(k_e, (n_obs,), dtype)
    return y, d, x


def make_plr_twoway_cluster(
    n_clusters_1: int = 25,
    n_clusters_2: int = 20,
    dim_x: int = 10,
    theta: float = 0.5,
    *,
    key: PRNGKeyArray,
    omega: float = 0.25,
) -> CausalData:
    r"""A partially linear model on a two-way clustered panel (a grid of `n_clusters_1` x
    `n_clusters_2` cells, e.g. firms x years), in the spirit of Chiang, Kato, Ma and Sasaki
    (2022): every component is the sum of a first-way effect, a second-way effect and an
    idiosyncratic term,

    $$x_{ij} = \sqrt{\omega}(a_i + b_j) + \sqrt{1 - 2\omega}\,e_{ij},\quad
    d_{ij} = x_{ij1} + 0.5\sin(x_{ij2}) + \sqrt{\omega}(a^d_i + b^d_j) + v_{ij},$$
    $$y_{ij} = \theta d_{ij} + \sigma(x_{ij1}) + 0.5 x_{ij3} + \sqrt{\omega}(a^y_i + b^y_j)
    + \zeta_{ij},$$

    all terms standard normal; $\omega$ is the share of each cluster dimension. Errors are
    correlated within clusters, so naive standard errors are too small.

    **Returns:** a [`jaxcausal.CausalData`][] with `n_clusters_1 * n_clusters_2` rows and the two
    cluster variables `cluster_1`, `cluster_2`.
    """
    _check_sizes(n_clusters_1=n_clusters_1, n_clusters_2=n_clusters_2, dim_x=dim_x)
    if dim_x < 3:
        raise ValueError(f"dim_x must be at least 3, got {dim_x}")
    if not 0.0 <= omega < 0.5:
        raise ValueError(f"omega must be in [0, 0.5), got {omega}")
    y, d, x, c = _cluster_arrays(key, n_clusters_1, n_clusters_2, dim_x, theta, omega)
    return CausalData(y, d, x, y_name="y", t_names=("d",), x_names=_x_names(dim_x), cluster=c,
                      cluster_names=("cluster_1", "cluster_2"))


@functools.partial(jit, static_argnums=(1, 2, 3))
def _cluster_arrays(key, n1, n2, dim_x, theta, omega):
    dtype = jnp.result_type(float)
    ks = jr.split(key, 9)
    s, r = jnp.sqrt(omega), jnp.sqrt(1.0 - 2.0 * omega)
    i = jnp.repeat(jnp.arange(n1), n2)
    j = jnp.tile(jnp.arange(n2), n1)

    def two_way(ka, kb, ke, shape=()):
        a = jr.normal(ka, (n1, *shape), dtype)[i]
        b = jr.normal(kb, (n2, *shape), dtype)[j]
        return s * (a + b) + r * jr.normal(ke, (n1 * n2, *shape), dtype)

    x = two_way(ks[0], ks[1], ks[2], (dim_x,))
    d = x[:, 0] + 0.5 * jnp.sin(x[:, 1]) + two_way(ks[3], ks[4], ks[5])
    y = theta * d + jax.nn.sigmoid(x[:, 0]) + 0.5 * x[:, 2] + two_way(ks[6], ks[7], ks[8])
    return y, d, x, jnp.stack([i, j], axis=1)
