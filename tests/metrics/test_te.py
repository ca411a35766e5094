import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc


def _mmd_by_hand(x, y, s, unbiased, paired=False):
    def k(a, b):
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d / (2 * s**2))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    if not unbiased:
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    off = lambda a: (a.sum() - np.trace(a)) / (a.shape[0] * (a.shape[0] - 1))  # noqa: E731
    if paired:
        return off(kxx + kyy - kxy - kxy.T)
    return off(kxx) + off(kyy) - 2 * kxy.sum() / (m * n)


def test_pehe_and_ate_error_by_hand():
    tau = np.array([1.0, 2.0, 3.0, -1.0])
    est = np.array([1.5, 2.0, 2.0, 0.0])
    assert jc.metrics.pehe(tau, est) == pytest.approx(np.sqrt(np.mean((est - tau) ** 2)))
    assert jc.metrics.pehe(tau, est, squared=True) == pytest.approx(np.mean((est - tau) ** 2))
    assert jc.metrics.ate_error(tau, est) == pytest.approx(abs(est.mean() - tau.mean()))


@pytest.mark.parametrize("unbiased,paired", [(False, False), (True, False), (True, True)])
def test_mmd_matches_by_hand(getkey, unbiased, paired):
    x = np.asarray(jr.normal(getkey(), (30, 3)))
    y = np.asarray(jr.normal(getkey(), (30 if paired else 25, 3))) + 0.3
    got = jc.metrics.mmd(x, y, bandwidth=1.3, unbiased=unbiased, paired=paired)
    assert got == pytest.approx(_mmd_by_hand(x, y, 1.3, unbiased, paired), rel=1e-10)


def test_mmd_identical_and_shifted_samples(key):
    x = jr.normal(key, (200, 2))
    # Only the V-statistic and the paired U-statistic vanish for one sample compared with itself;
    # the unpaired U-statistic keeps k(x_i, x_i) = 1 in its cross term and is negative there.
    assert jc.metrics.mmd(x, x) == pytest.approx(0.0, abs=1e-12)
    assert jc.metrics.mmd(x, x, unbiased=True, paired=True) == pytest.approx(0.0, abs=1e-12)
    assert jc.metrics.mmd(x, x, unbiased=True) < 0
    shifted = x + jnp.array([1.0, 0.0])[None, :]
    # A shift by one kernel width gives a population MMD^2 of 2(1 - e^{-1/4}/...) > 0.1;
    # 0.05 is far above the estimator's noise at n = 200.
    for unbiased in (False, True):
        assert jc.metrics.mmd(x, shifted, unbiased=unbiased) > 0.05


def test_u_statistic_is_unbiased_and_v_statistic_is_not(key):
    # 400 pairs of independent samples from one distribution: the true MMD^2 is zero. The mean
    # of the U-statistic must be within 4 standard errors of 0; the V-statistic's mean is
    # positive by many standard errors (its bias is of order 1/m).
    keys = jr.split(key, 400)

    def both(k):
        kx, ky = jr.split(k)
        x, y = jr.normal(kx, (20, 2)), jr.normal(ky, (20, 2))
        return jnp.stack([jc.metrics.mmd(x, y, unbiased=True), jc.metrics.mmd(x, y)])

    vals = np.asarray(jax.vmap(both)(keys))
    u, v = vals[:, 0], vals[:, 1]
    se_u, se_v = u.std() / np.sqrt(len(u)), v.std() / np.sqrt(len(v))
    assert abs(u.mean()) < 4 * se_u
    assert v.mean() > 10 * se_v


def test_metric_errors():
    with pytest.raises(ValueError, match="same shape"):
        jc.metrics.pehe(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="tau must be a vector"):
        jc.metrics.ate_error(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same number of columns"):
        jc.metrics.mmd(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="paired=True needs samples of equal size"):
        jc.metrics.mmd(np.zeros((3, 2)), np.zeros((4, 2)), unbiased=True, paired=True)
    with pytest.raises(ValueError, match="needs unbiased=True"):
        jc.metrics.mmd(np.zeros((3, 2)), np.zeros((3, 2)), paired=True)
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        jc.metrics.mmd(np.zeros((3, 2)), np.zeros((3, 2)), bandwidth=0.0)
