"""Kernel ridge regression: the closed form with an unpenalised intercept (a NumPy reference of
the least-squares-SVM system) on standardised columns, weights as row masks, the Nyström
approximation, vmap == loop, jit == eager, and float32 on raw covariates from 1e-3 to 1e5."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

SCALES = np.array([1e-3, 1.0, 1e2, 1e5])


def _data(seed=0, n=120, p=4):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, p))
    y = np.sin(2.0 * z[:, 0]) + z[:, 1] ** 2 + 5.0 + 0.1 * rng.normal(size=n)
    zt = rng.normal(size=(40, p))
    return z, y, zt


def _reference(x, y, alpha, gamma):
    """min_{b, c} |y - b - K c|^2 + alpha c'Kc on columns standardised with the training rows'
    means and (population) standard deviations: (K + alpha I) c = y - b with sum(c) = 0."""
    mu, sd = x.mean(0), x.std(0)
    z = (x - mu) / sd
    p = x.shape[1]

    def kernel(a, b):
        return np.exp(-gamma * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / p)

    a = kernel(z, z) + alpha * np.eye(len(y))
    ones = np.linalg.solve(a, np.ones(len(y)))
    b = np.linalg.solve(a, y).sum() / ones.sum()
    c = np.linalg.solve(a, y - b)
    return lambda xn: kernel((xn - mu) / sd, z) @ c + b


@pytest.mark.parametrize("alpha, gamma", [(1.0, 1.0), (0.1, 0.5), (10.0, 4.0), (0.01, 0.25)])
def test_exact_fit_equals_the_closed_form(alpha, gamma):
    z, y, zt = _data()
    x, xt = z * SCALES, zt * SCALES
    pred = jc.learners.KernelRidge(alpha=alpha, gamma=gamma).fit(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(pred(jnp.asarray(xt)), _reference(x, y, alpha, gamma)(xt),
                               rtol=0, atol=1e-10)


def test_zero_weight_rows_do_not_influence_the_fit():
    z, y, zt = _data(1)
    w = (np.random.default_rng(2).random(len(y)) < 0.6).astype(float)
    learner = jc.learners.KernelRidge(alpha=0.3, gamma=2.0)
    masked = learner.fit(jnp.asarray(z), jnp.asarray(y), weights=jnp.asarray(w))
    np.testing.assert_allclose(masked(jnp.asarray(zt)),
                               _reference(z[w > 0], y[w > 0], 0.3, 2.0)(zt), rtol=0, atol=1e-10)


def test_nystroem_draws_landmarks_among_weighted_rows_and_approaches_the_exact_fit():
    z, y, zt = _data(3, n=400, p=3)
    w = jnp.asarray((np.arange(400) % 4 != 0).astype(float))
    exact = jc.learners.KernelRidge(alpha=1.0, n_components=400).fit(
        jnp.asarray(z), jnp.asarray(y), weights=w)(jnp.asarray(zt))
    errors = []
    for m in (50, 200):
        pred = jc.learners.KernelRidge(alpha=1.0, n_components=m).fit(
            jnp.asarray(z), jnp.asarray(y), weights=w, key=jr.key(0))
        assert pred.landmarks.shape == (m, 3)
        # every landmark is a weighted training row, in standardised coordinates
        zs = (z - np.asarray(pred.mean)) / np.asarray(pred.scale)
        dist = np.min(((np.asarray(pred.landmarks)[:, None] - zs[None]) ** 2).sum(-1), axis=1)
        hit = np.argmin(((np.asarray(pred.landmarks)[:, None] - zs[None]) ** 2).sum(-1), axis=1)
        assert np.all(dist < 1e-20) and np.all(np.asarray(w)[hit] > 0)
        errors.append(float(jnp.sqrt(jnp.mean((pred(jnp.asarray(zt)) - exact) ** 2))))
    # more landmarks, closer to the exact fit; 200 of 300 training rows within 2 % of sd(y)
    assert errors[1] < errors[0] and errors[1] < 0.02 * np.std(y)


def test_vmap_over_fold_masks_equals_a_loop_and_jit_equals_eager():
    z, y, zt = _data(4, n=150)
    x, xt, yj = jnp.asarray(z), jnp.asarray(zt), jnp.asarray(y)
    masks = jnp.asarray(np.stack([(np.arange(150) % 3 != k).astype(float) for k in range(3)]))
    for learner in (jc.learners.KernelRidge(alpha=0.5),
                    jc.learners.KernelRidge(alpha=0.5, n_components=60)):
        batched = eqx.filter_vmap(lambda w, lr=learner: lr.fit(x, yj, weights=w, key=jr.key(1))(
            xt))(masks)
        for k in range(3):
            one = learner.fit(x, yj, weights=masks[k], key=jr.key(1))(xt)
            np.testing.assert_allclose(batched[k], one, rtol=1e-10, atol=1e-10)
        jitted = eqx.filter_jit(lambda lr: lr.fit(x, yj, key=jr.key(1))(xt))(learner)
        np.testing.assert_allclose(jitted, learner.fit(x, yj, key=jr.key(1))(xt), rtol=1e-10,
                                   atol=1e-10)
    # the hyperparameters are array fields: a grid is one vmapped program
    grid = jnp.asarray([0.1, 1.0, 10.0])
    swept = jax.vmap(lambda a: jc.learners.KernelRidge(alpha=a).fit(x, yj)(xt))(grid)
    for i, a in enumerate((0.1, 1.0, 10.0)):
        np.testing.assert_allclose(swept[i], jc.learners.KernelRidge(alpha=a).fit(x, yj)(xt),
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("alpha, gamma", [(1.0, 1.0), (0.1, 0.5), (0.01, 0.25)])
def test_float32_on_badly_scaled_covariates_matches_float64(alpha, gamma):
    # Raw columns from 1e-3 to 1e5 (and a target offset of 5) in float32 give the float64 fit
    # within 1e-2 of the target's spread: the fit standardises inside, and the kernel
    # directions below float32's resolution are dropped (rounding, not the units, limits it).
    z, y, zt = _data(5)
    x, xt = z * SCALES, zt * SCALES
    ref = _reference(x, y, alpha, gamma)(xt)
    with jax.enable_x64(False):
        pred = jc.learners.KernelRidge(alpha=alpha, gamma=gamma).fit(
            jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
        got = pred(jnp.asarray(xt, jnp.float32))
        assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-2 * np.std(y))


def test_a_constant_column_is_ignored():
    z, y, zt = _data(6)
    x = np.column_stack([z, np.full(len(y), 3.0)])
    xt = np.column_stack([zt, np.full(len(zt), 7.0)])
    got = jc.learners.KernelRidge(alpha=0.5).fit(jnp.asarray(x), jnp.asarray(y))(jnp.asarray(xt))
    # the constant column contributes 0 in standardised coordinates; only p (in gamma / p) sees it
    ref = jc.learners.KernelRidge(alpha=0.5, gamma=4 / 5).fit(jnp.asarray(z), jnp.asarray(y))(
        jnp.asarray(zt))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_a_smooth_function_is_fitted_better_than_by_least_squares():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 3))
    truth = lambda z: np.sin(2 * z[:, 0]) + z[:, 1] ** 2  # noqa: E731
    y = truth(x) + 0.5 * rng.normal(size=300)
    xt = rng.normal(size=(1000, 3))
    err = {name: np.mean((np.asarray(lr.fit(jnp.asarray(x), jnp.asarray(y))(jnp.asarray(xt)))
                          - truth(xt)) ** 2)
           for name, lr in (("krr", jc.learners.KernelRidge()), ("ls", jc.learners.Linear()))}
    assert err["krr"] < 0.3 < 2.0 < err["ls"]


def test_bad_configuration():
    with pytest.raises(ValueError, match="alpha must be positive"):
        jc.learners.KernelRidge(alpha=0.0)
    with pytest.raises(ValueError, match="gamma must be positive"):
        jc.learners.KernelRidge(gamma=-1.0)
    with pytest.raises(ValueError, match="n_components"):
        jc.learners.KernelRidge(n_components=0)
    z, y, _ = _data()
    with pytest.raises(ValueError, match="NaN"):
        jc.learners.KernelRidge().fit(jnp.asarray(np.where(z > 2, np.nan, z)), jnp.asarray(y))
