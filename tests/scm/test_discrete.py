"""Discrete sample sites: sampling, hard interventions, and clear errors where noise is needed."""

import itertools

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import jaxcausal as jc

P_A = np.array([0.6, 0.4])
P_B = np.array([[0.9, 0.1], [0.3, 0.7]])  # P(b | a)
P_C = np.array([[[0.8, 0.2], [0.5, 0.5]], [[0.4, 0.6], [0.1, 0.9]]])  # P(c | a, b)


def _bn():
    a = numpyro.sample("a", dist.Categorical(probs=jnp.asarray(P_A)))
    b = numpyro.sample("b", dist.Categorical(probs=jnp.asarray(P_B)[a]))
    c = numpyro.sample("c", dist.Categorical(probs=jnp.asarray(P_C)[a, b]))
    numpyro.sample("y", dist.Normal(1.0 * b + 2.0 * c, 1.0))


def _exact_c(do_a=None):
    """P(c = 1) by enumeration, optionally under do(a = do_a)."""
    total = 0.0
    for a, b in itertools.product(range(2), range(2)):
        pa = (1.0 if a == do_a else 0.0) if do_a is not None else P_A[a]
        total += pa * P_B[a, b] * P_C[a, b, 1]
    return total


N = 20_000


def test_sampling_and_hard_interventions_on_discrete_sites(key):
    scm = jc.scm.SCM(_bn)
    assert scm.graph.parents("c") == ("a", "b")
    obs = scm.sample(N, key=key)
    fixed = scm.do({"a": 1.0}).sample(N, key=key)
    for draws, p in [(obs, _exact_c()), (fixed, _exact_c(1))]:
        # A frequency: 5 binomial standard errors.
        assert abs(float(jnp.mean(draws["c"])) - p) < 5 * np.sqrt(p * (1 - p) / N)
    # A hard intervention keeps the site's integer levels (its children index tables with it).
    assert jnp.issubdtype(fixed["a"].dtype, jnp.integer) and bool(jnp.all(fixed["a"] == 1))
    # Batched: NaN leaves the node alone in a row; per-row levels.
    out = jc.scm.interventional_means(scm, {"a": jnp.array([0.0, 1.0, jnp.nan])}, N, key=key)
    np.testing.assert_allclose(
        out["c"], [_exact_c(0), _exact_c(1), _exact_c()], atol=5 * 0.5 / np.sqrt(N)
    )


def test_discrete_sites_errors(key):
    scm = jc.scm.SCM(_bn)
    with pytest.raises(eqx.EquinoxRuntimeError, match="discrete site 'a' needs an integer level"):
        scm.do({"a": 0.5}).sample(4, key=key)
    with pytest.raises(TypeError, match="cannot Shift the discrete site 'b'"):
        scm.shift({"b": 1.0}).sample(4, key=key)
    obs = scm.sample(4, key=key)
    with pytest.raises(ValueError, match="cannot abduct the noise of 'b': its distribution is Cat"):
        scm.counterfactual(obs, {"a": 1})


def _nonlinear():
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(z**2, 1.0))


def test_linearise_is_exact_for_linear_gaussian_programs():
    from ._models import closed_form, linear_program, random_linear

    names, w, b, s = random_linear(5)
    scm = jc.scm.SCM(linear_program(names, w, b, s))
    assert jc.scm.is_linear_gaussian(scm)
    lin = jc.scm.linearise(scm.do({"x2": 0.4}))
    mean, cov = closed_form(w, b, s, do={2: 0.4})
    np.testing.assert_allclose(lin.mean, mean, atol=1e-12)
    np.testing.assert_allclose(lin.cov, cov, atol=1e-12)
    assert not jc.scm.is_linear_gaussian(jc.scm.SCM(_nonlinear))
    assert not jc.scm.is_linear_gaussian(jc.scm.SCM(_bn))
    with pytest.raises(ValueError, match="cannot linearise the SCM: sample site 'a'"):
        jc.scm.linearise(jc.scm.SCM(_bn))
