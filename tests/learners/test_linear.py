import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

import jaxcausal as jc

from ._helpers import check_common_errors, count_compiles


def _data(n=200, p=5, seed=0):
    """A linear DGP with noise and positive sample weights."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * np.linspace(0.5, 3.0, p) + 1.0
    y = 2.0 + x @ np.linspace(-1.0, 1.0, p) + rng.normal(size=n)
    w = rng.uniform(0.2, 3.0, size=n)
    return x, y, w


@pytest.mark.parametrize("ridge", [0.0, 0.5, 20.0])
def test_matches_sklearn_with_sample_weights(ridge):
    x, y, w = _data()
    pred = jc.learners.Linear(ridge=ridge).fit(
        jnp.asarray(x), jnp.asarray(y), weights=jnp.asarray(w)
    )
    ref = LinearRegression() if ridge == 0 else Ridge(alpha=ridge, solver="cholesky")
    ref.fit(x, y, sample_weight=w)
    np.testing.assert_allclose(pred.coef, ref.coef_, atol=1e-10)
    np.testing.assert_allclose(pred.intercept, ref.intercept_, atol=1e-10)
    np.testing.assert_allclose(pred(jnp.asarray(x)), ref.predict(x), atol=1e-10)


def test_collinear_columns_give_minimum_norm_solution():
    x, y, _ = _data(p=3)
    x = np.concatenate([x, x[:, :1]], axis=1)
    pred = jc.learners.Linear().fit(jnp.asarray(x), jnp.asarray(y))
    ref = LinearRegression().fit(x, y)
    np.testing.assert_allclose(pred.coef, ref.coef_, atol=1e-8)
    np.testing.assert_allclose(pred(jnp.asarray(x)), ref.predict(x), atol=1e-8)


@pytest.mark.parametrize("ridge", [0.0, 3.0])
def test_zero_one_mask_equals_subset(ridge):
    x, y, _ = _data(seed=1)
    mask = (np.arange(x.shape[0]) % 5 != 2).astype(float)
    learner = jc.learners.Linear(ridge=ridge)
    masked = learner.fit(jnp.asarray(x), jnp.asarray(y), weights=jnp.asarray(mask))
    keep = mask > 0
    subset = learner.fit(jnp.asarray(x[keep]), jnp.asarray(y[keep]))
    np.testing.assert_allclose(masked.coef, subset.coef, atol=1e-10)
    np.testing.assert_allclose(masked.intercept, subset.intercept, atol=1e-10)


def test_vmap_over_keys_and_masks_equals_loop():
    x, y, _ = _data(seed=2)
    x, y = jnp.asarray(x), jnp.asarray(y)
    keys = jr.split(jr.key(0), 5)
    masks = (jnp.arange(x.shape[0])[None, :] % 5 != jnp.arange(5)[:, None]).astype(x.dtype)
    learner = jc.learners.Linear(ridge=1.0)
    batched = eqx.filter_vmap(lambda k, w: learner.fit(x, y, key=k, weights=w))(keys, masks)
    for i in range(5):
        single = learner.fit(x, y, key=keys[i], weights=masks[i])
        np.testing.assert_allclose(batched.coef[i], single.coef, atol=1e-10)
        np.testing.assert_allclose(batched.intercept[i], single.intercept, atol=1e-10)


def test_vmap_over_ridge_equals_loop():
    x, y, _ = _data(seed=3)
    x, y = jnp.asarray(x), jnp.asarray(y)
    ridges = [0.0, 1.0, 100.0]
    coefs = jax.vmap(lambda r: jc.learners.Linear(ridge=r).fit(x, y).coef)(jnp.asarray(ridges))
    for i, r in enumerate(ridges):
        np.testing.assert_allclose(coefs[i], jc.learners.Linear(ridge=r).fit(x, y).coef, atol=1e-10)


def test_second_fit_does_not_recompile():
    x, y, w = (jnp.asarray(a) for a in _data(n=131, seed=4))
    x2, y2, w2 = 2.0 * x, y + 1.0, w[::-1]
    with count_compiles() as compiled:
        jc.learners.Linear(ridge=0.5).fit(x, y, weights=w).coef.block_until_ready()
    assert any("_fit_linear" in name for name in compiled)  # the counter sees compilations
    with count_compiles() as compiled:
        jc.learners.Linear(ridge=2.0).fit(x2, y2, weights=w2).coef.block_until_ready()
    assert compiled == []


def test_errors(key):
    x, y, _ = _data(n=20)
    x, y = jnp.asarray(x), jnp.asarray(y)
    check_common_errors(jc.learners.Linear(), x, y, key=key)
    with pytest.raises(ValueError, match="ridge must be non-negative"):
        jc.learners.Linear(ridge=-0.1)
