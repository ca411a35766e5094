import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc
from jaxcausal.scm import Do, Shift

from ..scm._models import closed_form, linear_program, linear_scm
from ._common import exact_effects, quadratic

A = jc.attribution
ALPHAS = np.linspace(-1.5, 1.5, 7)
EFFECTS = {
    "Total": A.Total(),
    "ControlledDirect": A.ControlledDirect(),
    "Indirect": A.Indirect(),
    "NaturalDirect": A.NaturalDirect(reference=0.3),
    "NaturalIndirect": A.NaturalIndirect(reference=0.3),
}


@pytest.fixture(scope="module")
def setup():
    scm, (names, w, b, s) = linear_scm(21)
    return scm, names, w, b, s, quadratic(0)


@pytest.mark.parametrize("name", list(EFFECTS))
def test_taylor_is_exact_for_quadratic_networks(setup, name):
    scm, names, w, b, s, f = setup
    curves = A.ace(f, scm, ALPHAS, effect=EFFECTS[name], estimator=A.Taylor())
    grid = np.broadcast_to(ALPHAS, (5, 7))
    expected = exact_effects(f, w, b, s, grid, name, np.full(5, 0.3))
    # Closed-form moments of a linear-Gaussian SCM and an exact expansion: rounding only.
    np.testing.assert_allclose(curves.raw, expected, atol=1e-8)
    np.testing.assert_allclose(curves.values, expected - expected.mean(1, keepdims=True),
                               atol=1e-8)
    np.testing.assert_array_equal(curves.se, 0.0)


def test_monte_carlo_within_its_standard_error_and_total_is_nde_plus_nie(setup, key):
    scm, names, w, b, s, f = setup
    grid = np.broadcast_to(ALPHAS, (5, 7))
    curves = {}
    for name in ("Total", "NaturalDirect", "NaturalIndirect"):
        curves[name] = A.ace(f, scm, ALPHAS, effect=EFFECTS[name], estimator=A.MonteCarlo(1000),
                             key=key)
        expected = exact_effects(f, w, b, s, grid, name, np.full(5, 0.3))
        # 35 unbiased points with their own standard errors: all within 5 of them (a feature
        # without descendants has no indirect effect: exactly 0 with standard error 0).
        np.testing.assert_array_less(
            np.abs(np.asarray(curves[name].raw) - expected),
            5 * np.asarray(curves[name].se) + 1e-10,
        )
    # Exact identity: the same units in every world (common random numbers).
    np.testing.assert_allclose(
        curves["NaturalDirect"].values + curves["NaturalIndirect"].values, curves["Total"].values,
        atol=1e-10,
    )


def test_hutchinson_is_unbiased_and_compiles_once(setup, key):
    scm, names, w, b, s, f = setup
    expected = exact_effects(f, w, b, s, np.broadcast_to(ALPHAS, (5, 7)), "Indirect", None)
    est = A.Taylor(hutchinson=64)
    curves = A.ace(f, scm, ALPHAS, effect=A.Indirect(), estimator=est, key=key)
    np.testing.assert_array_less(
        np.abs(np.asarray(curves.raw) - expected), 5 * np.asarray(curves.se) + 1e-10
    )
    assert np.asarray(curves.se).max() > 0
    before = A.count_traces()
    f2 = eqx.tree_at(lambda m: m.c, f, jnp.asarray(2.0))
    again = A.ace(f2, scm, ALPHAS + 0.5, effect=A.Indirect(), estimator=est, key=jr.key(7))
    assert A.count_traces() == before
    assert again.values.shape == (5, 7)


def test_a_numpyro_program_gets_the_same_exact_moments(setup):
    scm, names, w, b, s, f = setup
    program = jc.scm.SCM(linear_program(names, w, b, s))
    ours = A.ace(f, program, ALPHAS, estimator=A.Taylor())
    ref = A.ace(f, scm, ALPHAS, estimator=A.Taylor())
    np.testing.assert_allclose(ours.raw, ref.raw, atol=1e-8)
    # Interventions the SCM carries (one joint object) hold in every world: do(x0 = 0.5) with x2
    # shifted by -1 is the SCM with x0's mechanism the constant 0.5 and bias b2 - 1.
    joint = program.intervene(Do({"x0": 0.5}) & Shift({"x2": -1.0}))
    curves = A.ace(f, joint, ALPHAS, effect=A.ControlledDirect(), estimator=A.Taylor())
    w2, b2, s2 = w.copy(), b.copy(), s.copy()
    w2[:, 0], b2[0], s2[0] = 0.0, 0.5, 0.0
    b2[2] -= 1.0
    expected = exact_effects(f, w2, b2, s2, np.broadcast_to(ALPHAS, (5, 7)), "ControlledDirect",
                             None)
    np.testing.assert_allclose(curves.raw, expected, atol=1e-8)


def test_indirect_equals_natural_indirect_only_without_interactions(setup):
    scm, names, w, b, s, _ = setup
    for interactions in (False, True):
        f = quadratic(1, interactions=interactions)
        ind = A.ace(f, scm, ALPHAS, effect=A.Indirect(), estimator=A.Taylor())
        nie = A.ace(f, scm, ALPHAS, effect=A.NaturalIndirect(reference=0.3),
                    estimator=A.Taylor())
        gap = float(jnp.max(jnp.abs(ind.values - nie.values)))
        if interactions:
            assert gap > 0.1
        else:
            assert gap < 1e-10


def test_curves_are_differentiable_in_the_network(setup, key):
    scm, names, *_ = setup
    net = jc.nn.MLP(5, "scalar", 8, 1, activation=jnp.tanh, key=key)
    weights = jnp.arange(35.0).reshape(5, 7) / 35.0

    def loss(network, est):
        curves = A.ace(network, scm, ALPHAS, effect=A.Total(), estimator=est, key=jr.key(1))
        return jnp.sum(weights * curves.values)

    w0 = net.layers[0].weight
    for est in (A.Taylor(),):
        grad = eqx.filter_grad(loss)(net, est).layers[0].weight
        eps = 1e-6
        for a, c in [(0, 0), (5, 3)]:
            up = eqx.tree_at(lambda m: m.layers[0].weight, net, w0.at[a, c].add(eps))
            down = eqx.tree_at(lambda m: m.layers[0].weight, net, w0.at[a, c].add(-eps))
            fd = (loss(up, est) - loss(down, est)) / (2 * eps)
            # Central differences in float64: truncation ~eps^2, rounding ~1e-16 / eps.
            np.testing.assert_allclose(grad[a, c], fd, rtol=1e-6, atol=1e-9)


def test_jit_equals_eager(setup, key):
    scm, names, w, b, s, f = setup
    eager = A.ace(f, scm, ALPHAS, effect=A.Total(), estimator=A.Taylor())
    jitted = eqx.filter_jit(lambda g: A.ace(g, scm, ALPHAS, estimator=A.Taylor()).values)(f)
    np.testing.assert_allclose(jitted, eager.values, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_hutchinson_scales_to_many_inputs(key):
    d = 100
    rng = np.random.default_rng(0)
    adj = np.triu(rng.random((d, d)) < 3.0 / d, 1).astype(int)
    scm = jc.scm.SCM.from_graph(adj, [f"v{k}" for k in range(d)], key=jr.key(1))
    net = jc.nn.MLP(d, "scalar", 16, 1, activation=jnp.tanh, key=jr.key(2))
    grid = jnp.linspace(-1.0, 1.0, 2)
    exact = A.ace(net, scm, grid, estimator=A.Taylor())
    probes = A.ace(net, scm, grid, estimator=A.Taylor(hutchinson=32), key=key)
    # 200 unbiased points, each within 5 of its standard errors (over the probes).
    np.testing.assert_array_less(np.abs(np.asarray(probes.raw - exact.raw)),
                                 5 * np.asarray(probes.se))


def test_float32_on_badly_scaled_inputs():
    # Columns from 1e-3 to 1e5: a linear chain whose scales grow by 1e2 per node, and a network
    # that is O(1) on that scale.
    d = 5
    scales = 10.0 ** np.arange(-3, 7, 2)[:d]
    w = np.zeros((d, d))
    for k in range(d - 1):
        w[k, k + 1] = 0.8 * scales[k + 1] / scales[k]
    b, s = 2.0 * scales, 0.5 * scales
    f64 = quadratic(2)
    f64 = eqx.tree_at(lambda m: (m.q, m.g), f64,
                      (f64.q / np.outer(scales, scales), f64.g / scales))
    grid = np.stack([np.linspace(1.0, 3.0, 4) * sc for sc in scales])
    names = [f"x{k}" for k in range(d)]
    expected = exact_effects(f64, w, b, s, grid, "Total", None)
    with jax.enable_x64(False):
        to32 = lambda t: jax.tree.map(  # noqa: E731
            lambda a: jnp.asarray(a, jnp.float32) if eqx.is_inexact_array(a) else a, t)
        scm = jc.scm.SCM.from_graph(np.triu(np.ones((d, d)), 1), names)
        program = eqx.tree_at(lambda p: (p.weights, p.bias, p.scale), scm.program,
                              (jnp.asarray(w), jnp.asarray(b), jnp.asarray(s)))
        scm = to32(jc.scm.SCM(program, graph=scm.graph, deterministic=()))
        curves = A.ace(to32(f64), scm, jnp.asarray(grid, jnp.float32), estimator=A.Taylor())
        assert curves.raw.dtype == jnp.float32
    # float32 rounding of O(1) terms, amplified by the 1e2 ratios of the chain: 1e-4 relative.
    np.testing.assert_allclose(curves.raw, expected, rtol=1e-4, atol=1e-4)


def test_a_fitted_learner_is_explained_row_by_row(setup, key):
    scm, names, w, b, s, _ = setup
    draws = scm.sample(200, key=key)
    x = jnp.stack([draws[v] for v in names[:4]], axis=1)
    predictor = jc.learners.Linear().fit(x, draws["x4"], key=key)
    curves = A.ace(predictor, scm, ALPHAS, features=names[:4], estimator=A.Taylor())
    # A linear predictor: E f = f(mu) exactly, mu the interventional mean (closed form).
    coef = np.linalg.lstsq(np.c_[np.ones(200), np.asarray(x)], np.asarray(draws["x4"]),
                           rcond=None)[0]
    expected = np.array([[coef[0] + coef[1:] @ closed_form(w, b, s, do={i: a})[0][:4]
                          for a in ALPHAS] for i in range(4)])
    np.testing.assert_allclose(curves.raw, expected, rtol=1e-8, atol=1e-8)
