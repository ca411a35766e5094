import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import jaxcausal as jc
from jaxcausal.scm._queries import count_batched_traces
from jaxcausal.scm._scm import count_sample_traces

from ._models import closed_form, linear_scm

N = 20_000


def _moments(draws, names):
    x = np.stack([np.asarray(draws[v]) for v in names], axis=1)
    return x.mean(0), np.cov(x.T)


def _assert_moments(draws, names, mean, cov):
    m, c = _moments(draws, names)
    sd = np.sqrt(np.diag(cov))
    # 5 Monte Carlo standard errors: sd / sqrt(N) for means, sqrt((s_ii s_jj + s_ij^2) / N)
    # for covariances (Gaussian fourth moments); the +1e-12 covers nodes fixed by do().
    np.testing.assert_array_less(np.abs(m - mean), 5 * sd / np.sqrt(N) + 1e-12)
    se_cov = np.sqrt((np.outer(sd**2, sd**2) + cov**2) / N)
    np.testing.assert_array_less(np.abs(c - cov), 5 * se_cov + 1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_observational_and_do_moments_match_closed_form(seed, getkey):
    scm, (names, w, b, s) = linear_scm(seed)
    _assert_moments(scm.sample(N, key=getkey()), names, *closed_form(w, b, s))
    k = 2
    draws = scm.do({names[k]: 1.7}).sample(N, key=getkey())
    _assert_moments(draws, names, *closed_form(w, b, s, do={k: 1.7}))


def test_shift_moves_the_mean_by_the_total_effect(getkey):
    scm, (names, w, b, s) = linear_scm(3)
    key = getkey()
    base = scm.sample(N, key=key)
    moved = scm.shift({"x1": 0.5}).sample(N, key=key)
    # Same key: same noise, so the difference is exactly the total effect times the shift.
    a = np.linalg.inv(np.eye(len(b)) - w.T)
    for j, v in enumerate(names):
        np.testing.assert_allclose(moved[v] - base[v], 0.5 * a[j, 1], atol=1e-10)


def test_soft_intervention_replaces_the_mechanism(getkey):
    scm, (names, w, b, s) = linear_scm(4)
    soft = scm.soft({"x2": lambda d: dist.Normal(d.loc, 0.1)})
    w2 = w.copy()
    s2 = s.copy()
    s2[2] = 0.1
    _assert_moments(soft.sample(N, key=getkey()), names, *closed_form(w2, b, s2))


def test_interventions_compose_in_order(key):
    scm, _ = linear_scm(6)
    composed = scm.do({"x1": 1.0}).shift({"x1": 0.5})
    assert len(composed.interventions) == 2
    np.testing.assert_allclose(composed.sample(5, key=key)["x1"], 1.5)


M_VALUES = jnp.array([-1.0, jnp.nan, 2.5])


def test_interventional_samples_equals_loop_of_single_interventions(key):
    scm, _ = linear_scm(7)
    out = jc.scm.interventional_samples(scm, {"x2": M_VALUES}, 50, key=key)
    keys = jr.split(key, 3)
    for i in range(3):
        single = scm.do({"x2": M_VALUES[i]}).sample(50, key=keys[i])
        for v in single:
            np.testing.assert_allclose(out[v][i], single[v], rtol=1e-12, atol=1e-12)
    # A NaN leaves the node alone in that row: rows can target different nodes in one call.
    assert float(jnp.std(out["x2"][1])) > 0.1
    np.testing.assert_allclose(out["x2"][2], 2.5)
    means = jc.scm.interventional_means(scm, {"x2": M_VALUES}, 50, key=key)
    np.testing.assert_allclose(means["x4"], out["x4"].mean(1), rtol=1e-12)
    # common_noise: every row uses `key` itself; chunking does not change the numbers.
    common = jc.scm.interventional_means(
        scm, {"x2": M_VALUES}, 50, key=key, common_noise=True, chunk=2
    )
    single = scm.do({"x2": M_VALUES[2]}).sample(50, key=key)
    np.testing.assert_allclose(common["x4"][2], single["x4"].mean(), rtol=1e-12)


def test_no_recompilation_on_second_call(key):
    scm, _ = linear_scm(8)
    for k in range(3):
        if k == 2:
            sample_traces, batched_traces = count_sample_traces(), count_batched_traces()
        scm.do({"x2": float(k)}).sample(50, key=jr.key(k))
        jc.scm.interventional_samples(scm, {"x2": M_VALUES + k}, 50, key=jr.key(k))
    assert count_sample_traces() == sample_traces
    assert count_batched_traces() == batched_traces


def test_sample_under_jit_matches_eager(key):
    scm, _ = linear_scm(10)
    eager = scm.do({"x2": 0.7}).sample(50, key=key)
    jitted = jax.jit(lambda v: scm.do({"x2": v}).sample(50, key=key))(0.7)
    for v in eager:
        np.testing.assert_allclose(eager[v], jitted[v], rtol=1e-12)


def _two_nodes():
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(x, 1.0))


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda s, k: s.do({"w": 1.0}), ValueError, r"names nodes \['w'\] that are not"),
        (lambda s, k: s.shift({"w": 1.0}), ValueError, "not in the graph"),
        (lambda s, k: s.soft({"x": 3.0}), TypeError, "callables"),
        (lambda s, k: s.do([1.0]), TypeError, "must be a dict"),
        (lambda s, k: s.sample(0, key=k), ValueError, "positive integer"),
        (lambda s, k: jc.scm.interventional_samples(s, {"w": [1.0]}, 5, key=k), ValueError,
         "interventions names nodes"),
        (lambda s, k: jc.scm.interventional_samples(s, {"x": [[1.0]]}, 5, key=k), ValueError,
         "1-d arrays"),
        (lambda s, k: jc.scm.interventional_samples(s, {"x": [1.0]}, 5, key=k,
                                                    kind=jc.scm.Do({"x": 1.0})), TypeError,
         "without values"),
        (lambda s, k: s.soft({"x": lambda d: 1.0}).sample(3, key=k), TypeError,
         "must return a numpyro Distribution"),
    ],
)
def test_bad_input(call, err, match, key):
    scm = jc.scm.SCM(_two_nodes)
    with pytest.raises(err, match=match):
        call(scm, key)
