import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from sklearn import linear_model

import jaxcausal as jc

from ._helpers import (
    as_float32,
    badly_scaled,
    check_common_errors,
    count_compiles,
    weighted_scale,
)


def _data(n=200, p=8, seed=0):
    """A sparse linear DGP with correlated, unevenly scaled columns and positive sample weights."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * np.linspace(0.5, 2.0, p) + 1.0
    x[:, 1] += 0.8 * x[:, 0]
    beta = np.zeros(p)
    beta[[0, 1, p - 1]] = [1.0, -0.5, 2.0]
    y = 1.0 + x @ beta + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    return x, y, w


@pytest.mark.parametrize("alpha", [0.003, 0.1, 0.5, 10.0])
def test_matches_sklearn_with_sample_weights(alpha):
    x, y, w = _data()
    pred = jc.learners.Lasso(alpha=alpha, tol=1e-14).fit(
        jnp.asarray(x), jnp.asarray(y), weights=jnp.asarray(w)
    )
    ref = linear_model.Lasso(alpha=alpha, tol=1e-14, max_iter=100_000)
    ref.fit(x, y, sample_weight=w)
    assert bool(pred.converged) and float(pred.alpha) == alpha
    np.testing.assert_allclose(pred.coef, ref.coef_, atol=1e-9)
    np.testing.assert_allclose(pred.intercept, ref.intercept_, atol=1e-9)
    np.testing.assert_allclose(pred(jnp.asarray(x)), ref.predict(x), atol=1e-9)


def test_zero_penalty_is_least_squares():
    x, y, w = (jnp.asarray(a) for a in _data(seed=1))
    lasso = jc.learners.Lasso(alpha=0.0).fit(x, y, weights=w)
    ols = jc.learners.Linear().fit(x, y, weights=w)
    assert bool(lasso.converged)
    np.testing.assert_allclose(lasso.coef, ols.coef, atol=1e-8)


def test_large_penalty_gives_zero_slopes_and_weighted_mean():
    x, y, w = (jnp.asarray(a) for a in _data(seed=1))
    pred = jc.learners.Lasso(alpha=1e3).fit(x, y, weights=w)
    np.testing.assert_array_equal(pred.coef, 0.0)
    np.testing.assert_allclose(pred.intercept, jnp.sum(w * y) / jnp.sum(w), rtol=1e-12)


def test_zero_one_mask_equals_subset():
    x, y, _ = _data(seed=2)
    mask = (np.arange(x.shape[0]) % 4 != 1).astype(float)
    learner = jc.learners.Lasso(alpha=0.05)
    masked = learner.fit(jnp.asarray(x), jnp.asarray(y), weights=jnp.asarray(mask))
    keep = mask > 0
    subset = learner.fit(jnp.asarray(x[keep]), jnp.asarray(y[keep]))
    np.testing.assert_allclose(masked.coef, subset.coef, atol=1e-10)
    np.testing.assert_allclose(masked.intercept, subset.intercept, atol=1e-10)


def _masks(n, k):
    return (jnp.arange(n)[None, :] % k != jnp.arange(k)[:, None]).astype(jnp.float64)


def test_vmap_over_keys_and_masks_equals_loop():
    x, y, _ = (jnp.asarray(a) for a in _data(seed=3))
    keys, masks = jr.split(jr.key(0), 4), _masks(x.shape[0], 4)
    learner = jc.learners.Lasso(alpha=0.1)
    batched = eqx.filter_vmap(lambda k, w: learner.fit(x, y, key=k, weights=w))(keys, masks)
    for i in range(4):
        single = learner.fit(x, y, key=keys[i], weights=masks[i])
        np.testing.assert_allclose(batched.coef[i], single.coef, atol=1e-12)
        np.testing.assert_allclose(batched.intercept[i], single.intercept, atol=1e-12)


def test_vmap_over_alpha_equals_loop():
    x, y, _ = (jnp.asarray(a) for a in _data(seed=3))
    alphas = [0.01, 0.2, 1.0]
    coefs = jax.vmap(lambda a: jc.learners.Lasso(alpha=a).fit(x, y).coef)(jnp.asarray(alphas))
    for i, a in enumerate(alphas):
        np.testing.assert_allclose(coefs[i], jc.learners.Lasso(alpha=a).fit(x, y).coef, atol=1e-12)


def _sklearn_splits(folds, n_folds):
    return [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(n_folds)]


def test_lasso_cv_matches_sklearn_on_the_same_folds():
    x, y, w = _data(n=150, seed=4)
    learner = jc.learners.LassoCV(n_alphas=30, n_folds=4, tol=1e-14)
    key = jr.key(7)
    pred = learner.fit(jnp.asarray(x), jnp.asarray(y), key=key, weights=jnp.asarray(w))
    folds = np.asarray(learner.folds(jnp.asarray(w), key=key))
    ref = linear_model.LassoCV(
        alphas=30, cv=_sklearn_splits(folds, 4), tol=1e-14, max_iter=100_000
    ).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(pred.alphas, ref.alphas_, rtol=1e-12)
    # scikit-learn stops each path fit on its own duality-gap check; 1e-6 covers that.
    np.testing.assert_allclose(pred.mse_path, ref.mse_path_.T, rtol=1e-6)
    assert float(pred.alpha) == pytest.approx(ref.alpha_, rel=1e-12)
    np.testing.assert_allclose(pred.coef, ref.coef_, atol=1e-8)
    np.testing.assert_allclose(pred.intercept, ref.intercept_, atol=1e-8)


# The tests with an explicit grid share data shapes and configuration, so they share compilations.
_GRID = [1.0, 0.003, 0.3, 0.03, 0.1]
_CV = jc.learners.LassoCV(alphas=_GRID, n_folds=3, tol=1e-14)


def test_lasso_cv_with_explicit_grid_matches_sklearn():
    x, y, _ = _data(n=120, p=6, seed=5)
    key = jr.key(3)
    pred = _CV.fit(jnp.asarray(x), jnp.asarray(y), key=key)
    folds = np.asarray(_CV.folds(jnp.ones(x.shape[0]), key=key))
    ref = linear_model.LassoCV(
        alphas=_GRID, cv=_sklearn_splits(folds, 3), tol=1e-14, max_iter=100_000
    ).fit(x, y)
    np.testing.assert_allclose(pred.alphas, sorted(_GRID, reverse=True))
    assert float(pred.alpha) == ref.alpha_
    np.testing.assert_allclose(pred.coef, ref.coef_, atol=1e-8)


def test_lasso_cv_folds_are_balanced_among_weighted_rows():
    w = jnp.ones(103).at[::5].set(0.0)
    folds = np.asarray(jc.learners.LassoCV(n_folds=4).folds(w, key=jr.key(0)))
    np.testing.assert_array_equal(folds[::5], -1)
    sizes = np.bincount(folds[folds >= 0], minlength=4)
    assert sizes.sum() == int(jnp.sum(w > 0)) and sizes.max() - sizes.min() <= 1


def test_lasso_cv_vmap_over_keys_and_masks_equals_loop():
    x, y, _ = (jnp.asarray(a) for a in _data(n=120, p=6, seed=6))
    keys, masks = jr.split(jr.key(1), 3), _masks(x.shape[0], 3)
    batched = eqx.filter_vmap(lambda k, w: _CV.fit(x, y, key=k, weights=w))(keys, masks)
    for i in range(3):
        single = _CV.fit(x, y, key=keys[i], weights=masks[i])
        np.testing.assert_allclose(batched.alpha[i], single.alpha, rtol=1e-12)
        np.testing.assert_allclose(batched.coef[i], single.coef, atol=1e-12)
        np.testing.assert_allclose(batched.mse_path[i], single.mse_path, rtol=1e-10)


def test_lasso_cv_masked_fit_equals_brute_force_cv_on_the_subset():
    # The folds are drawn among the weighted rows only; on those folds the masked fit's validation
    # MSEs and choice must equal a brute-force cross-validation over the subset of rows.
    x, y, _ = _data(n=120, p=6, seed=8)
    mask = (np.arange(120) % 4 != 0).astype(float)
    key = jr.key(2)
    pred = _CV.fit(jnp.asarray(x), jnp.asarray(y), key=key, weights=jnp.asarray(mask))
    folds = np.asarray(_CV.folds(jnp.asarray(mask), key=key))
    keep = mask > 0
    xs, ys, fs = x[keep], y[keep], folds[keep]
    grid = sorted(_GRID, reverse=True)
    mse = np.zeros((3, len(grid)))
    for k in range(3):
        for j, a in enumerate(grid):
            fit = linear_model.Lasso(alpha=a, tol=1e-14, max_iter=100_000)
            fit.fit(xs[fs != k], ys[fs != k])
            mse[k, j] = np.mean((ys[fs == k] - fit.predict(xs[fs == k])) ** 2)
    np.testing.assert_allclose(pred.mse_path, mse, rtol=1e-8)
    best = grid[int(np.argmin(mse.mean(axis=0)))]
    assert float(pred.alpha) == best
    refit = linear_model.Lasso(alpha=best, tol=1e-14, max_iter=100_000).fit(xs, ys)
    np.testing.assert_allclose(pred.coef, refit.coef_, atol=1e-8)


def test_second_fit_does_not_recompile():
    x, y, w = (jnp.asarray(a) for a in _data(n=77, p=5, seed=9))
    x2, y2, w2 = 2.0 * x, y - 1.0, w[::-1]
    with count_compiles() as compiled:
        jc.learners.Lasso(alpha=0.1).fit(x, y, weights=w).coef.block_until_ready()
    assert any("_fit_lasso" in name for name in compiled)  # the counter sees compilations
    with count_compiles() as compiled:
        jc.learners.Lasso(alpha=0.3).fit(x2, y2, weights=w2).coef.block_until_ready()
    assert compiled == []
    x, y, w = (jnp.asarray(a) for a in _data(n=120, p=6, seed=9))
    _CV.fit(x, y, key=jr.key(0), weights=w)
    # A new key, new data and a new grid of the same size.
    x2, y2, w2, key2 = -x, 2.0 * y, w[::-1], jr.key(1)
    cv = jc.learners.LassoCV(alphas=[2.0, 1.0, 0.5, 0.2, 0.1], n_folds=3, tol=1e-14)
    with count_compiles() as compiled:
        cv.fit(x2, y2, key=key2, weights=w2).coef.block_until_ready()
    assert compiled == []


def test_errors(key):
    x, y, _ = (jnp.asarray(a) for a in _data(n=20, p=3))
    check_common_errors(jc.learners.Lasso(alpha=0.1), x, y, key=key)
    check_common_errors(_CV, x, y, key=key)
    with pytest.raises(ValueError, match="alpha must be non-negative"):
        jc.learners.Lasso(alpha=-1.0)
    with pytest.raises(ValueError, match="alphas must be non-negative"):
        jc.learners.LassoCV(alphas=[0.1, -0.2])
    with pytest.raises(ValueError, match="alphas must be a non-empty vector"):
        jc.learners.LassoCV(alphas=[])
    with pytest.raises(ValueError, match="n_folds must be at least 2"):
        jc.learners.LassoCV(n_folds=1)
    with pytest.raises(ValueError, match="tol must be positive"):
        jc.learners.Lasso(tol=0.0)
    with pytest.raises(ValueError, match="needs at least n_folds=5 rows with positive weight"):
        jc.learners.LassoCV().fit(x, y, key=key, weights=jnp.zeros(20).at[:3].set(1.0))


# float32 on badly scaled data (columns from 1e-3 to 1e5), as a user's default JAX runs it,
# against scikit-learn's Lasso on the same raw columns in float64 (the penalty is not scale-free,
# so the raw problem is the reference; scikit-learn's coordinate descent converges on it). The
# descent runs on standardised columns with the penalty alpha / (scale_j * y_scale) per
# coordinate, so the answer is the same problem's. In standardised units float32 resolves about
# 1e-7 times the condition number (about 2), and its duality gap stops at 10 eps (1.2e-6) of the
# target's variance; observed errors are below 1e-7, the tolerance is 1e-5.
@pytest.mark.parametrize("alpha", [1.0, 100.0, 1000.0])
def test_float32_on_badly_scaled_columns_matches_sklearn(alpha):
    x, y, _, w = badly_scaled()
    _, scale = weighted_scale(x, w)
    y_scale = np.sqrt(np.average((y - np.average(y, weights=w)) ** 2, weights=w))
    ref = linear_model.Lasso(alpha=alpha, tol=1e-12, max_iter=1_000_000)
    ref.fit(x, y, sample_weight=w)
    with jax.enable_x64(False):
        xf, yf, wf = as_float32(x, y, w)
        pred = jc.learners.Lasso(alpha=alpha).fit(xf, yf, weights=wf)
        assert pred.coef.dtype == jnp.float32 and bool(pred.converged)
        # standardisation makes the sweeps needed independent of the units
        assert int(pred.n_iter) <= 20
        err = np.abs(np.asarray(pred.coef, np.float64) - ref.coef_) * scale / y_scale
        assert np.max(err) < 1e-5
        np.testing.assert_array_equal(np.asarray(pred.coef) == 0, ref.coef_ == 0)
        assert np.max(np.abs(np.asarray(pred(xf), np.float64) - ref.predict(x))) / y_scale < 1e-5


def test_lasso_cv_float32_on_badly_scaled_columns_matches_sklearn():
    x, y, _, _ = badly_scaled(n=150, seed=2)
    learner = jc.learners.LassoCV(n_alphas=20, n_folds=3)
    key = jr.key(7)
    _, scale = weighted_scale(x, np.ones(150))
    with jax.enable_x64(False):
        xf, yf = as_float32(x, y)
        pred = learner.fit(xf, yf, key=key)
        # (drawn in float32 too: the uniform draws, and so the folds, depend on the precision)
        folds = np.asarray(learner.folds(jnp.ones(150, jnp.float32), key=key))
        ref = linear_model.LassoCV(alphas=20, cv=_sklearn_splits(folds, 3), tol=1e-12,
                                   max_iter=1_000_000).fit(x, y)
        np.testing.assert_allclose(pred.alphas, ref.alphas_, rtol=1e-5)
        # the validation curves agree to float32 accuracy, so the same penalty is chosen
        np.testing.assert_allclose(pred.mse_path, ref.mse_path_.T, rtol=1e-4)
        assert float(pred.alpha) == pytest.approx(ref.alpha_, rel=1e-5)
        err = np.abs(np.asarray(pred.coef, np.float64) - ref.coef_) * scale / np.std(y)
        assert np.max(err) < 1e-5
