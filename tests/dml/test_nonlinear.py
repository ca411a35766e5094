"""The scalar solvers of the nonlinear scores against the SciPy/statsmodels routines DoubleML
calls, on identical inputs (float64): same algorithm, so the same iterates and results."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from doubleml.utils._estimation import _default_kde, _get_bracket_guess
from scipy.optimize import brentq, minimize_scalar

from jaxcausal.dml._nonlinear import bracket_guess, brent_minimize, brent_root, kde_at_zero
from jaxcausal.dml._quantile_tools import masked_quantile


def _step_problem(seed, n=300):
    """A weighted step score like the potential-quantile score: mean(a 1{y <= t}) - q."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n) * 3 + 1
    a = rng.uniform(0.2, 3.0, size=n)
    a = a / a.mean()
    return y, a


def _np_score(y, a, q):
    return lambda t: np.mean(a * (y <= t)) - q


def _jax_score(y, a, q):
    y, a = jnp.asarray(y), jnp.asarray(a)
    return lambda t: jnp.sum(jnp.where(y <= t, a, 0.0)) / y.shape[0] - q


@pytest.mark.parametrize("seed, q", [(0, 0.3), (1, 0.5), (2, 0.9)])
def test_brent_root_matches_scipy_brentq_on_step_scores(seed, q):
    y, a = _step_problem(seed)
    lo, hi = float(y.min()), float(y.max())
    theirs = brentq(_np_score(y, a, q), lo, hi)
    ours, ok = jax.jit(lambda lo, hi: brent_root(_jax_score(y, a, q), lo, hi))(lo, hi)
    assert bool(ok)
    # the same jump and the same side of it (2e-12 is brentq's absolute tolerance)
    np.testing.assert_allclose(float(ours), theirs, rtol=0, atol=2e-12)


def test_brent_root_matches_scipy_brentq_on_a_smooth_function():
    def f(t):
        return t**3 - 2 * t - 5

    theirs = brentq(f, 0.0, 4.0)
    ours, ok = brent_root(f, jnp.asarray(0.0), jnp.asarray(4.0))
    assert bool(ok)
    np.testing.assert_allclose(float(ours), theirs, rtol=1e-15)


def test_brent_root_flags_a_missing_sign_change():
    _, ok = brent_root(lambda t: t**2 + 1.0, jnp.asarray(-1.0), jnp.asarray(2.0))
    assert not bool(ok)


@pytest.mark.parametrize("seed, q", [(3, 0.25), (4, 0.5), (5, 0.75)])
def test_brent_minimize_matches_scipy_on_absolute_step_scores(seed, q):
    # DoubleML's preliminary estimate: Brent's minimiser of |score| from a two-point bracket;
    # the minimiser lands anywhere in a flat stretch, so only replaying the iterates matches
    y, a = _step_problem(seed)
    start = float(np.quantile(y, q))
    lo, hi = start - 1.0, start + 1.0
    np_f = _np_score(y, a, q)
    theirs = minimize_scalar(lambda t: abs(np_f(t)), bracket=(lo, hi), method="brent").x
    jf = _jax_score(y, a, q)
    ours, ok = jax.jit(lambda lo, hi: brent_minimize(lambda t: jnp.abs(jf(t)), lo, hi))(lo, hi)
    assert bool(ok)
    # Score values differ from NumPy's in the last bits (a different summation order) and a
    # parabolic step divides differences of them, so x may move by ~1e-10 relative; what the
    # quantile models use, the flat stretch of the step function, is the same.
    np.testing.assert_allclose(float(ours), theirs, rtol=1e-9)
    assert np.sum(y <= float(ours)) == np.sum(y <= theirs)


def test_brent_minimize_matches_scipy_on_a_smooth_function():
    def f(t):
        return (t - 1.3) ** 2 * (1 + 0.1 * t**2)

    theirs = minimize_scalar(f, bracket=(-2.0, -1.0), method="brent").x
    ours, ok = brent_minimize(f, jnp.asarray(-2.0), jnp.asarray(-1.0))
    assert bool(ok)
    np.testing.assert_allclose(float(ours), theirs, rtol=1e-13)


@pytest.mark.parametrize("start", [-4.0, 0.5, 6.0])
def test_bracket_guess_matches_doubleml(start):
    y, a = _step_problem(6)
    bounds = (float(y.min()), float(y.max()))
    found, (lo, hi) = _get_bracket_guess(_np_score(y, a, 0.4), start, bounds)
    o_lo, o_hi, o_found = bracket_guess(
        _jax_score(y, a, 0.4), jnp.asarray(start), jnp.asarray(bounds[0]), jnp.asarray(bounds[1])
    )
    assert bool(o_found) == bool(found)
    np.testing.assert_allclose([float(o_lo), float(o_hi)], [lo, hi], rtol=1e-15)


def test_kde_matches_statsmodels_through_doubleml():
    rng = np.random.default_rng(7)
    u = rng.normal(size=400) * 2.0 + 0.3
    w = rng.uniform(0.0, 3.0, size=400) * (rng.uniform(size=400) < 0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _default_kde(u.reshape(-1, 1), w)
    ours = kde_at_zero(jnp.asarray(u), jnp.asarray(w))
    np.testing.assert_allclose(float(ours), float(theirs[0]), rtol=1e-12)


@pytest.mark.parametrize("q", [0.0, 0.1, 0.37, 0.5, 0.999, 1.0])
def test_masked_quantile_matches_numpy(q):
    rng = np.random.default_rng(8)
    y = rng.normal(size=101)
    rows = rng.uniform(size=101) < 0.4
    ours = masked_quantile(jnp.asarray(y), jnp.asarray(rows), jnp.asarray(q))
    np.testing.assert_allclose(float(ours), np.quantile(y[rows], q), rtol=1e-15)


def test_vmapped_solvers_equal_a_loop():
    y, a = _step_problem(9)
    qs = jnp.asarray([0.2, 0.5, 0.8])

    def solve(q):
        f = _jax_score(y, a, q)
        root, _ = brent_root(f, jnp.asarray(y.min()), jnp.asarray(y.max()))
        mini, _ = brent_minimize(lambda t: jnp.abs(f(t)), root - 0.5, root + 0.5)
        return root, mini

    batched = jax.jit(jax.vmap(solve))(qs)
    one = jax.jit(solve)
    looped = [one(q) for q in qs]
    for i in range(3):
        assert float(batched[0][i]) == float(looped[i][0])
        assert float(batched[1][i]) == float(looped[i][1])
