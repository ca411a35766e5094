"""LocationScaleQTE: the closed-form potential quantiles and CVaRs against a large Monte Carlo
sample of the potential outcomes, and the sampled data's shapes."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

QS = np.array([0.1, 0.25, 0.5, 0.75, 0.9])


def test_closed_form_truths_match_monte_carlo():
    dgp = jc.datasets.LocationScaleQTE()
    n = 200_000
    _, _, base, eps = dgp._outcome_parts(jr.key(0), n)
    for d in (0, 1):
        y = np.asarray(dgp._y(jnp.full((n,), float(d)), base, eps))
        # Monte Carlo error of a quantile with n = 2e5: sd ~ sqrt(q(1-q)/n)/f ~ 0.007
        np.testing.assert_allclose(np.quantile(y, QS), dgp.potential_quantile(QS, d), atol=0.02)
        tails = [y[y >= np.quantile(y, q)].mean() for q in QS]
        np.testing.assert_allclose(tails, dgp.cvar(QS, d), atol=0.03)
    np.testing.assert_allclose(dgp.quantile_effect(QS),
                               dgp.potential_quantile(QS, 1) - dgp.potential_quantile(QS, 0))


def test_samples_have_the_documented_shapes_and_confounding():
    dgp = jc.datasets.LocationScaleQTE(dim_x=6)
    data = dgp.sample(2000, key=jr.key(1))
    assert data.x.shape == (2000, 6) and data.z is None
    assert set(np.unique(np.asarray(data.t))) == {0.0, 1.0}
    iv = dgp.sample_iv(2000, key=jr.key(2))
    assert iv.z.shape == (2000, 1)
    d, z = np.asarray(iv.t[:, 0]), np.asarray(iv.z[:, 0])
    # first stage: P(D=1|Z=1) - P(D=1|Z=0) is the complier share 1 - always - never = 0.6
    assert abs(d[z == 1].mean() - d[z == 0].mean() - 0.6) < 0.06


@pytest.mark.parametrize("kwargs, match", [
    ({"dim_x": 3}, "dim_x must be an integer of at least 4"),
    ({"scale1": 0.0}, "scale1 must be positive"),
    ({"always": 0.6, "never": 0.5}, "always and never"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jc.datasets.LocationScaleQTE(**kwargs)
