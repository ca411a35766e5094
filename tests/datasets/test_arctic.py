import jax.numpy as jnp
import numpy as np
import pytest

import jaxcausal as jc


def test_velocity_modulated_treatment_by_hand():
    rng = np.random.default_rng(0)
    ssh, vel = rng.normal(size=50), np.abs(rng.normal(size=50))
    t0, t1 = jc.datasets.velocity_modulated_treatment(ssh, vel, a=0.5, b=2.0, k=3.0, window=5)
    roll = lambda v: np.array([v[max(0, d - 4): d + 1].mean() for d in range(50)])  # noqa: E731
    s = roll(vel)
    np.testing.assert_allclose(t0, roll(ssh) + s, rtol=1e-10)
    sig = 1 / (1 + np.exp(3.0 * (s - s.mean())))
    np.testing.assert_allclose(t1, (0.5 + 2.0 * sig) * (roll(ssh) + s), rtol=1e-10)


def test_arctic_synthetic_structure(key):
    sim = jc.datasets.arctic_synthetic(key, n_days=400)
    df = sim.to_pandas()
    assert list(df.columns[:5]) == ["uoe", "von", "total_vel", "zos", "sithick"]
    np.testing.assert_allclose(df.total_vel, np.hypot(df.uoe, df.von), rtol=1e-10)
    assert set(np.unique(sim.treatment)) == {0.0, 1.0}
    # The effect is -6 |sin(phi/2)| tanh(.), so it is bounded by 6 and heterogeneous.
    assert float(jnp.max(jnp.abs(sim.effect))) <= 6.0 and float(jnp.std(sim.effect)) > 1.0
    data, tau = sim.windows(10)
    assert data.x.shape == (390, 50) and tau.shape == (390,)
    # Unit 0 is day 10: its window is days 0..9, its outcome the ice thickness of day 10.
    np.testing.assert_array_equal(data.x[0].reshape(10, 5), sim.series[:10])
    assert data.y[0] == sim.series[10, 4]
    np.testing.assert_array_equal(tau, sim.effect[10:])


def test_arctic_errors(key):
    with pytest.raises(ValueError, match="window must be a positive number of days"):
        jc.datasets.velocity_modulated_treatment(np.zeros(5), np.zeros(5), a=1, b=1, k=1, window=0)
    with pytest.raises(ValueError, match="same length"):
        jc.datasets.velocity_modulated_treatment(np.zeros(5), np.zeros(4), a=1, b=1, k=1, window=2)
    with pytest.raises(ValueError, match="ssh contains NaN"):
        jc.datasets.velocity_modulated_treatment(np.full(5, np.nan), np.zeros(5), a=1, b=1, k=1,
                                                 window=2)
    with pytest.raises(ValueError, match="n_days must be at least 30"):
        jc.datasets.arctic_synthetic(key, n_days=10)
    with pytest.raises(ValueError, match="window must be between 1 and"):
        jc.datasets.arctic_synthetic(key, n_days=40).windows(40)
