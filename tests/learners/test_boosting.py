"""Boosted stumps: scikit-learn's GradientBoostingRegressor(max_depth=1) exactly, a NumPy
reference of the logistic Newton boosting, weights as row masks, vmap == loop, jit == eager, and
float32 on raw covariates from 1e-3 to 1e5."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor

import jaxcausal as jc

SCALES = np.array([1e-3, 1e5, 1.0, 30.0])


def _data(seed=0, n=300, p=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    y = np.where(x[:, 0] > 0.3, 1.0, 0.0) + np.abs(x[:, 1]) + 0.3 * rng.normal(size=n)
    d = (rng.random(n) < 1 / (1 + np.exp(-(2.0 * (x[:, 0] > 0) - 1 + x[:, 2])))).astype(float)
    return (jnp.asarray(x), jnp.asarray(y), jnp.asarray(d),
            jnp.asarray(rng.normal(size=(100, p))))


def test_regression_is_sklearns_gradient_boosting_of_stumps():
    x, y, _, xt = _data()
    ours = jc.learners.Boosting(n_rounds=60, learning_rate=0.1, l2=0.0, min_leaf=1.0,
                                n_bins=None).fit(x, y)
    ref = GradientBoostingRegressor(n_estimators=60, learning_rate=0.1, max_depth=1,
                                    random_state=0).fit(np.asarray(x), np.asarray(y))
    np.testing.assert_allclose(ours(x), ref.predict(np.asarray(x)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours(xt), ref.predict(np.asarray(xt)), rtol=0, atol=1e-12)


def _numpy_logistic_boosting(x, y, rounds, lr, l2, min_leaf):
    """Newton boosting of stumps with every distinct value's midpoint as a candidate."""
    n, p = x.shape
    mean = y.mean()
    f = np.full(n, np.log(mean / (1 - mean)))
    base, stumps = f[0], []
    for _ in range(rounds):
        prob = 1 / (1 + np.exp(-f))
        g, h = y - prob, prob * (1 - prob)
        best = (-np.inf, None)
        for j in range(p):
            vals = np.unique(x[:, j])
            for t in (vals[:-1] + vals[1:]) / 2:
                left = x[:, j] <= t
                if left.sum() < min_leaf or (~left).sum() < min_leaf:
                    continue
                gl, hl, gr, hr = g[left].sum(), h[left].sum(), g[~left].sum(), h[~left].sum()
                gain = gl**2 / (hl + l2) + gr**2 / (hr + l2)
                if gain > best[0]:
                    best = (gain, (j, t, gl / (hl + l2), gr / (hr + l2)))
        j, t, vl, vr = best[1]
        stumps.append(best[1])
        f = f + lr * np.where(x[:, j] <= t, vl, vr)

    def predict(z):
        out = np.full(z.shape[0], base)
        for j, t, vl, vr in stumps:
            out = out + lr * np.where(z[:, j] <= t, vl, vr)
        return 1 / (1 + np.exp(-out))

    return predict


def test_classifier_is_newton_boosting_of_stumps():
    x, _, d, xt = _data(1, n=120, p=3)
    xt = xt[:, :3]
    ours = jc.learners.Boosting(n_rounds=15, learning_rate=0.3, l2=1.0, min_leaf=5.0,
                                n_bins=None, classifier=True).fit(x, d)
    ref = _numpy_logistic_boosting(np.asarray(x), np.asarray(d), 15, 0.3, 1.0, 5)
    np.testing.assert_allclose(ours(x), ref(np.asarray(x)), rtol=1e-10)
    np.testing.assert_allclose(ours(xt), ref(np.asarray(xt)), rtol=1e-10)
    with pytest.raises(ValueError, match="binary"):
        jc.learners.Boosting(classifier=True).fit(x, x[:, 0])


@pytest.mark.parametrize("n_bins", [None, 32])
def test_zero_weight_rows_do_not_influence_the_fit(n_bins):
    x, y, _, xt = _data(2)
    w = jnp.asarray((np.random.default_rng(3).random(len(y)) < 0.7).astype(float))
    learner = jc.learners.Boosting(n_rounds=40, n_bins=n_bins)
    masked = learner.fit(x, y, weights=w)
    subset = learner.fit(x[w > 0], y[w > 0])
    np.testing.assert_allclose(masked(xt), subset(xt), rtol=0, atol=1e-12)


def test_vmap_over_fold_masks_equals_a_loop_and_jit_equals_eager():
    x, y, d, xt = _data(4)
    masks = np.stack([(np.arange(len(y)) % 3 != k).astype(float) for k in range(3)])
    for learner, target in ((jc.learners.Boosting(n_rounds=30), y),
                            (jc.learners.Boosting(n_rounds=30, classifier=True), d)):
        batched = eqx.filter_vmap(lambda w, lr=learner, t=target: lr.fit(x, t, weights=w)(xt))(
            jnp.asarray(masks))
        for k in range(3):
            one = learner.fit(x, target, weights=jnp.asarray(masks[k]))(xt)
            np.testing.assert_allclose(batched[k], one, rtol=1e-12, atol=1e-12)
        jitted = eqx.filter_jit(lambda lr, t: lr.fit(x, t)(xt))(learner, target)
        np.testing.assert_allclose(jitted, learner.fit(x, target)(xt), rtol=1e-12, atol=1e-12)


def test_float32_on_badly_scaled_covariates_matches_float64():
    # Only the order of each column matters: raw covariates from 1e-3 to 1e5 in float32 give
    # the float64 fit on standardised ones, up to float32 rounding of the sums (tolerance
    # 1e-5 relative to the spread of y).
    x, y, d, xt = _data(5)
    ref = jc.learners.Boosting(n_rounds=80).fit(x, y)(xt)
    ref_c = jc.learners.Boosting(n_rounds=80, classifier=True).fit(x, d)(xt)
    with jax.enable_x64(False):
        x32 = jnp.asarray(np.asarray(x) * SCALES, jnp.float32)
        xt32 = jnp.asarray(np.asarray(xt) * SCALES, jnp.float32)
        got = jc.learners.Boosting(n_rounds=80).fit(x32, jnp.asarray(np.asarray(y), jnp.float32))(
            xt32)
        got_c = jc.learners.Boosting(n_rounds=80, classifier=True).fit(
            x32, jnp.asarray(np.asarray(d), jnp.float32))(xt32)
        assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * float(jnp.std(y)))
    np.testing.assert_allclose(got_c, ref_c, rtol=0, atol=1e-5)


def test_a_step_function_is_fitted_where_least_squares_cannot():
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.normal(size=(1000, 3)))
    truth = lambda z: 2.0 * (z[:, 0] > 0.5) - 1.0 * (z[:, 1] < -1.0)  # noqa: E731
    y = truth(x) + 0.5 * jnp.asarray(rng.normal(size=1000))
    xt = jnp.asarray(rng.normal(size=(1000, 3)))
    err = {name: np.mean((np.asarray(lr.fit(x, y)(xt)) - truth(xt)) ** 2)
           for name, lr in (("boost", jc.learners.Boosting()), ("ls", jc.learners.Linear()))}
    assert err["boost"] < 0.05 < 0.3 < err["ls"]


def test_bad_configuration():
    with pytest.raises(ValueError, match="n_rounds"):
        jc.learners.Boosting(n_rounds=0)
    with pytest.raises(ValueError, match="learning_rate"):
        jc.learners.Boosting(learning_rate=0.0)
    with pytest.raises(ValueError, match="n_bins"):
        jc.learners.Boosting(n_bins=1)
    with pytest.raises(ValueError, match="min_leaf"):
        jc.learners.Boosting(min_leaf=-1.0)
    x, y, _, _ = _data()
    with pytest.raises(ValueError, match="NaN"):
        jc.learners.Boosting().fit(jnp.where(x > 2, jnp.nan, x), y)
