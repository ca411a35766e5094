import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

import jaxcausal as jc

from ._helpers import (
    as_float32,
    badly_scaled,
    check_common_errors,
    count_compiles,
    weighted_scale,
)


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


# float32 on badly scaled data (columns from 1e-3 to 1e5, dollar amounts beside 0/1 indicators),
# as a user's default JAX runs it. The reference is the float64 least-squares solution. It is
# computed by scikit-learn on the weighted-standardised columns and mapped back (the same
# problem): on these raw columns scikit-learn 1.9's LinearRegression itself returns -0.2 instead
# of 2.8e5 for the 1e-3 column, even in float64. Errors are measured in standardised units
# (coefficient times the column's spread, over the target's spread), where float32 resolves
# about 1e-7 times the condition number (about 2 here): 1e-5 leaves a wide margin.
F32_TOL = 1e-5


def _std_error(coef, ref, scale, y_scale):
    return np.max(np.abs(np.asarray(coef, np.float64) - ref) * scale / y_scale)


@pytest.mark.parametrize("ridge", [0.0, 10.0, 1e4])
def test_float32_on_badly_scaled_columns_matches_float64_reference(ridge):
    x, y, _, w = badly_scaled()
    mean, scale = weighted_scale(x, w)
    y_scale = np.sqrt(np.average((y - np.average(y, weights=w)) ** 2, weights=w))
    if ridge == 0:
        ref = LinearRegression().fit((x - mean) / scale, y, sample_weight=w)
        ref_coef, ref_pred = ref.coef_ / scale, ref.predict((x - mean) / scale)
    else:  # the penalty makes scikit-learn's solve on the raw columns well-posed
        ref = Ridge(alpha=ridge, solver="cholesky").fit(x, y, sample_weight=w)
        ref_coef, ref_pred = ref.coef_, ref.predict(x)
    with jax.enable_x64(False):
        xf, yf, wf = as_float32(x, y, w)
        pred = jc.learners.Linear(ridge=ridge).fit(xf, yf, weights=wf)
        assert pred.coef.dtype == jnp.float32 and bool(pred.resolved)
        assert _std_error(pred.coef, ref_coef, scale, y_scale) < F32_TOL
        assert np.max(np.abs(np.asarray(pred(xf), np.float64) - ref_pred)) / y_scale < F32_TOL


@pytest.mark.parametrize("x64", [True, False])
def test_constant_collinear_and_huge_columns(x64):
    x, y, _, w = badly_scaled(n=200, seed=3)
    # a constant column at 1e5 (coefficient 0), a duplicate of the dollar column (the two share
    # its coefficient, as minimum norm does), and a copy of it times 1e3 (collinear at another
    # scale: predictions as scikit-learn's, coefficients split in proportion to the spreads).
    x = np.column_stack([x, np.full(200, 1e5), x[:, 6], 1e3 * x[:, 7]])
    mean, scale = weighted_scale(x[:, :10], w)
    ref = LinearRegression().fit((x[:, :10] - mean) / scale, y, sample_weight=w)
    ref_pred = ref.predict((x[:, :10] - mean) / scale)
    y_scale = np.sqrt(np.average((y - np.average(y, weights=w)) ** 2, weights=w))
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        xj, yj, wj = (jnp.asarray(a, dtype) for a in (x, y, w))
        pred = jc.learners.Linear().fit(xj, yj, weights=wj)
        coef = np.asarray(pred.coef, np.float64)
        tol = 1e-12 if x64 else F32_TOL
        assert coef[10] == 0.0 and int(pred.rank) == 10
        np.testing.assert_allclose(coef[6], coef[11], rtol=tol)
        np.testing.assert_allclose(coef[6] + coef[11], ref.coef_[6] / scale[6], rtol=10 * tol)
        np.testing.assert_allclose(coef[7] * scale[7], coef[12] * 1e3 * scale[7], rtol=10 * tol)
        np.testing.assert_allclose(coef[7] + 1e3 * coef[12], ref.coef_[7] / scale[7],
                                   rtol=10 * tol)
        assert np.max(np.abs(np.asarray(pred(xj), np.float64) - ref_pred)) / y_scale < tol


def test_float32_warns_when_a_difference_of_collinear_columns_carries_signal():
    # x2 = x1 + 1e-4 noise: float32 cannot resolve the difference, and y depends on it.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    x[:, 2] = x[:, 1] + 1e-4 * rng.normal(size=200)
    y = x[:, 1] + 1e4 * (x[:, 2] - x[:, 1]) + rng.normal(size=200)
    assert bool(jc.learners.Linear().fit(jnp.asarray(x), jnp.asarray(y)).resolved)  # float64
    with jax.enable_x64(False):
        xf, yf = as_float32(x, y)
        with pytest.warns(UserWarning, match=r"depends on a difference of nearly collinear "
                                             r"columns that float32 cannot resolve.*\[1, 2\]"):
            pred = jc.learners.Linear().fit(xf, yf)
        assert not bool(pred.resolved) and float(pred.lost) > 40


def _lapack_operand_ranks(jaxpr, names=("eigh", "cholesky", "triangular_solve")) -> list[int]:
    ranks = []
    for eqn in jaxpr.eqns:
        if any(n in eqn.primitive.name for n in names):
            ranks.append(eqn.invars[0].aval.ndim)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            ranks += _lapack_operand_ranks(sub, names)
    return ranks


def test_batched_fits_call_lapack_one_matrix_at_a_time():
    # jaxlib's batched CPU LAPACK kernels wait on XLA's thread pool from inside it: two of them at
    # once on two cores hung a vmapped CV fit forever. Under vmap (twice) the learners' eigh and
    # Cholesky calls stay unbatched, one matrix per call, with the same results as a loop.
    import jax.extend.core  # noqa: F401

    from jaxcausal.learners._base import psd_inverse
    from jaxcausal.learners._logistic import _cholesky_solve

    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 3, 40, 4))
    a = jnp.asarray(np.einsum("bcni,bcnj->bcij", z, z))
    rhs = jnp.asarray(rng.normal(size=(2, 3, 4)))
    inv = jax.vmap(jax.vmap(lambda m: psd_inverse(m).matrix))
    sol = jax.vmap(jax.vmap(_cholesky_solve))
    for fn, args in ((inv, (a,)), (sol, (a, rhs))):
        ranks = _lapack_operand_ranks(jax.make_jaxpr(fn)(*args).jaxpr)
        assert ranks and all(r == 2 for r in ranks), ranks
    loop = np.stack([[np.asarray(psd_inverse(a[i, j]).matrix) for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(np.asarray(inv(a)), loop, rtol=1e-12, atol=1e-12)
    loop = np.stack([[np.asarray(_cholesky_solve(a[i, j], rhs[i, j])) for j in range(3)]
                     for i in range(2)])
    np.testing.assert_allclose(np.asarray(sol(a, rhs)), loop, rtol=1e-12, atol=1e-12)
