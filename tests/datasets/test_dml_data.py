"""The DML data generators: DoubleML's processes, drawn from keys, vmappable."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc


def test_plr_generator_has_the_documented_structure():
    data = jc.datasets.make_plr_CCDDHNR2018(n_obs=20_000, dim_x=5, alpha=0.7, key=jr.key(0))
    assert data.x_names == ("X1", "X2", "X3", "X4", "X5") and data.t_names == ("d",)
    x, d, y = np.asarray(data.x), np.asarray(data.t[:, 0]), np.asarray(data.y)
    # Toeplitz covariance 0.7^|j-k|: sampling error of a correlation at n=2e4 is ~0.007
    np.testing.assert_allclose(np.corrcoef(x.T)[0, 1:4], [0.7, 0.49, 0.343], atol=0.03)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    v = d - x[:, 0] - 0.25 * sig(x[:, 2])
    zeta = y - 0.7 * d - sig(x[:, 0]) - 0.25 * x[:, 2]
    # the residual noises are N(0, 1): variances within ~4 standard errors (0.01 each)
    assert abs(v.var() - 1) < 0.05 and abs(zeta.var() - 1) < 0.05
    assert abs(np.corrcoef(v, zeta)[0, 1]) < 0.03


def test_irm_generator_has_a_binary_treatment_and_known_ate():
    data = jc.datasets.make_irm_data(n_obs=50_000, dim_x=10, theta=0.8, key=jr.key(1))
    d, y = np.asarray(data.t[:, 0]), np.asarray(data.y)
    assert set(np.unique(d)) == {0.0, 1.0}
    # R2_d = 0.5 makes the propensity spread out around 1/2
    assert 0.4 < d.mean() < 0.6
    # the true ATE is theta: a correctly specified regression adjustment recovers it
    x = np.asarray(data.x)
    beta = 1 / np.arange(1, 11) ** 2
    c_y = np.sqrt(0.5 / (0.5 * beta @ (0.5 ** np.abs(np.subtract.outer(range(10), range(10))))
                         @ beta))
    resid = y - d * c_y * (x @ beta)
    treated, control = resid[d == 1], resid[d == 0]
    assert abs(treated.mean() - control.mean() - 0.8) < 0.05  # se ~ 0.009


def test_pliv_generator_has_instruments_and_endogeneity():
    data = jc.datasets.make_pliv_CHS2015(n_obs=20_000, alpha=1.0, dim_x=20, dim_z=5,
                                         key=jr.key(2))
    assert data.z.shape == (20_000, 5) and data.z_names[0] == "Z1"
    x, z = np.asarray(data.x), np.asarray(data.z)
    np.testing.assert_allclose((z - x[:, :5]).var(axis=0), 0.25, rtol=0.08)
    beta = 1 / np.arange(1, 21) ** 2
    eps = np.asarray(data.y) - np.asarray(data.t[:, 0]) - x @ beta
    u = np.asarray(data.t[:, 0]) - x @ beta - z @ (1 / np.arange(1, 6) ** 2)
    assert abs(np.corrcoef(eps, u)[0, 1] - 0.6) < 0.03


def test_generators_are_keyed_and_vmappable():
    a = jc.datasets.make_plr_CCDDHNR2018(n_obs=50, dim_x=4, key=jr.key(3))
    b = jc.datasets.make_plr_CCDDHNR2018(n_obs=50, dim_x=4, key=jr.key(3))
    np.testing.assert_array_equal(a.y, b.y)
    stacked = jax.vmap(lambda k: jc.datasets.make_irm_data(n_obs=40, dim_x=4, key=k))(
        jr.split(jr.key(4), 3))
    assert stacked.x.shape == (3, 40, 4) and stacked.t_names == ("d",)
    single = jc.datasets.make_irm_data(n_obs=40, dim_x=4, key=jr.split(jr.key(4), 3)[1])
    np.testing.assert_allclose(stacked.y[1], single.y, rtol=1e-12)
    assert jnp.all(jnp.isfinite(stacked.y))


def test_generator_arguments_are_checked():
    with pytest.raises(ValueError, match="dim_x must be at least 3"):
        jc.datasets.make_plr_CCDDHNR2018(n_obs=10, dim_x=2, key=jr.key(0))
    with pytest.raises(ValueError, match="dim_x must be at least dim_z"):
        jc.datasets.make_pliv_CHS2015(n_obs=10, dim_x=3, dim_z=5, key=jr.key(0))
    with pytest.raises(ValueError, match=r"R2_d must be in \[0, 1\)"):
        jc.datasets.make_irm_data(n_obs=10, R2_d=1.0, key=jr.key(0))
    with pytest.raises(ValueError, match="n_obs must be a positive integer"):
        jc.datasets.make_irm_data(n_obs=0, key=jr.key(0))
