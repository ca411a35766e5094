import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import jaxcausal as jc

from ._helpers import (
    as_float32,
    badly_scaled,
    check_common_errors,
    count_compiles,
    weighted_scale,
)


def _data(n=300, p=4, seed=0):
    """A logistic DGP with positive sample weights."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    eta = 0.3 + x @ np.linspace(1.0, -0.5, p)
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    w = rng.uniform(0.5, 2.0, size=n)
    return x, y, w


@pytest.mark.parametrize("l2", [0.0, 0.1, 5.0])
def test_matches_sklearn_with_sample_weights(l2):
    x, y, w = _data()
    pred = jc.learners.Logistic(l2=l2).fit(jnp.asarray(x), jnp.asarray(y), weights=jnp.asarray(w))
    # C=inf is scikit-learn's spelling of "no penalty" since `penalty=None` was deprecated in 1.8.
    ref = LogisticRegression(
        C=1.0 / l2 if l2 > 0 else np.inf, solver="newton-cholesky", tol=1e-14, max_iter=1000
    ).fit(x, y, sample_weight=w)
    assert bool(pred.converged)
    np.testing.assert_allclose(pred.coef, ref.coef_[0], atol=1e-10)
    np.testing.assert_allclose(pred.intercept, ref.intercept_[0], atol=1e-10)
    np.testing.assert_allclose(pred(jnp.asarray(x)), ref.predict_proba(x)[:, 1], atol=1e-10)


def test_is_a_classifier_returning_probabilities():
    x, y, _ = _data()
    learner = jc.learners.Logistic(l2=1.0)
    assert learner.is_classifier
    prob = learner.fit(jnp.asarray(x), jnp.asarray(y))(jnp.asarray(x))
    assert prob.shape == (x.shape[0],)
    assert bool(jnp.all((prob > 0) & (prob < 1)))


def test_zero_one_mask_equals_subset():
    x, y, _ = _data(seed=1)
    mask = (np.arange(x.shape[0]) % 3 != 0).astype(float)
    learner = jc.learners.Logistic(l2=0.5)
    masked = learner.fit(jnp.asarray(x), jnp.asarray(y), weights=jnp.asarray(mask))
    keep = mask > 0
    subset = learner.fit(jnp.asarray(x[keep]), jnp.asarray(y[keep]))
    np.testing.assert_allclose(masked.coef, subset.coef, atol=1e-12)
    np.testing.assert_allclose(masked.intercept, subset.intercept, atol=1e-12)


def test_vmap_over_keys_and_masks_equals_loop():
    x, y, _ = _data(seed=2)
    x, y = jnp.asarray(x), jnp.asarray(y)
    keys = jr.split(jr.key(0), 4)
    masks = (jnp.arange(x.shape[0])[None, :] % 4 != jnp.arange(4)[:, None]).astype(x.dtype)
    learner = jc.learners.Logistic(l2=0.2)
    batched = eqx.filter_vmap(lambda k, w: learner.fit(x, y, key=k, weights=w))(keys, masks)
    for i in range(4):
        single = learner.fit(x, y, key=keys[i], weights=masks[i])
        np.testing.assert_allclose(batched.coef[i], single.coef, atol=1e-12)
        np.testing.assert_allclose(batched.intercept[i], single.intercept, atol=1e-12)


def test_vmap_over_penalty_equals_loop():
    x, y, _ = _data(seed=3)
    x, y = jnp.asarray(x), jnp.asarray(y)
    l2s = jnp.array([0.0, 1.0, 10.0])
    coefs = jax.vmap(lambda a: jc.learners.Logistic(l2=a).fit(x, y).coef)(l2s)
    for i, a in enumerate([0.0, 1.0, 10.0]):
        np.testing.assert_allclose(coefs[i], jc.learners.Logistic(l2=a).fit(x, y).coef, atol=1e-12)


def test_second_fit_does_not_recompile():
    x, y, w = (jnp.asarray(a) for a in _data(n=123, seed=4))
    x2, y2, w2 = x + 1.0, 1.0 - y, 2.0 * w
    with count_compiles() as compiled:
        jc.learners.Logistic(l2=0.5).fit(x, y, weights=w).coef.block_until_ready()
    assert any("_fit_logistic" in name for name in compiled)  # the counter sees compilations
    with count_compiles() as compiled:
        # New values and a new penalty with the same shapes.
        jc.learners.Logistic(l2=2.0).fit(x2, y2, weights=w2).coef.block_until_ready()
    assert compiled == []


def test_separable_data_gives_finite_fit():
    # No finite optimum exists without a penalty; the fit must still stop with finite numbers.
    x = jnp.linspace(-1.0, 1.0, 50)[:, None]
    y = (x[:, 0] > 0).astype(x.dtype)
    pred = jc.learners.Logistic().fit(x, y)
    assert bool(jnp.all(jnp.isfinite(pred.coef))) and bool(jnp.isfinite(pred.intercept))
    np.testing.assert_array_equal(np.asarray(pred(x) > 0.5), np.asarray(y) == 1)
    assert int(pred.n_iter) <= 100


def test_errors(key):
    x, y, _ = _data(n=20)
    x, y = jnp.asarray(x), jnp.asarray(y)
    learner = jc.learners.Logistic()
    check_common_errors(learner, x, y, key=key)
    with pytest.raises(ValueError, match="y must be binary .*Logistic"):
        learner.fit(x, y + 0.5)
    with pytest.raises(ValueError, match="l2 must be non-negative"):
        jc.learners.Logistic(l2=-1.0)
    with pytest.raises(ValueError, match="max_iter must be at least 1"):
        jc.learners.Logistic(max_iter=0)
    with pytest.raises(ValueError, match="tol must be positive"):
        jc.learners.Logistic(tol=0.0)


def test_non_binary_target_raises_under_jit():
    x, y, _ = _data(n=20)

    @eqx.filter_jit
    def fit(x, y):
        return jc.learners.Logistic().fit(x, y).coef

    with pytest.raises(Exception, match="y must be binary"):
        fit(jnp.asarray(x), jnp.asarray(y) * 2.0)


def _newton_reference(x, d, w, l2):
    """The penalised optimum by Newton's method in NumPy float64 on standardised columns (the
    same problem, reparametrised: the penalty l2/2 |coef|^2 on the raw slopes becomes
    l2 / scale_j^2 per standardised coordinate)."""
    mean, scale = weighted_scale(x, w)
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    pen = np.concatenate([[0.0], l2 / scale**2])
    beta = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ beta))
        grad = z.T @ (w * (p - d)) + pen * beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(pen)
        beta -= np.linalg.solve(hess, grad)
    return beta[1:] / scale, 1.0 / (1.0 + np.exp(-z @ beta))


# float32 on badly scaled data (columns from 1e-3 to 1e5), as a user's default JAX runs it,
# against the float64 optimum: for l2 = 0 scikit-learn's on the weighted-standardised columns
# (the same problem; its newton-cholesky solver on these raw columns falls back to lbfgs), for
# l2 > 0 a float64 Newton solve by hand. Float32 resolves the gradient to about
# eps * sqrt(n) ~ 2e-6, so the standardised coefficients to about 1e-5 at worst (observed:
# 1e-7); the tolerances are 1e-5 for them and 2e-6 for the probabilities.
@pytest.mark.parametrize("l2", [0.0, 1.0, 100.0])
def test_float32_on_badly_scaled_columns_matches_float64_reference(l2):
    x, _, d, w = badly_scaled()
    mean, scale = weighted_scale(x, w)
    # plus a constant column at 1e5, which must get the coefficient 0
    x_const = np.column_stack([x, np.full(len(x), 1e5)])
    if l2 == 0:
        ref = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14, max_iter=1000)
        ref.fit((x - mean) / scale, d, sample_weight=w)
        ref_coef, ref_prob = ref.coef_[0] / scale, ref.predict_proba((x - mean) / scale)[:, 1]
        np.testing.assert_allclose(ref_coef, _newton_reference(x, d, w, 0.0)[0], rtol=1e-9)
    else:
        ref_coef, ref_prob = _newton_reference(x, d, w, l2)
    with jax.enable_x64(False):
        xf, df, wf = as_float32(x_const, d, w)
        pred = jc.learners.Logistic(l2=l2).fit(xf, df, weights=wf)
        assert pred.coef.dtype == jnp.float32 and bool(pred.converged) and bool(pred.resolved)
        assert float(pred.coef[-1]) == 0.0
        pred = eqx.tree_at(lambda p: p.coef, pred, pred.coef[:-1])
        xf = xf[:, :-1]
        # standardisation makes Newton's step count independent of the units
        assert int(pred.n_iter) <= 6
        assert np.max(np.abs(np.asarray(pred.coef, np.float64) - ref_coef) * scale) < 1e-5
        assert np.max(np.abs(np.asarray(pred(xf), np.float64) - ref_prob)) < 2e-6
