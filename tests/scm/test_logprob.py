"""`jc.scm.log_prob` and the `.model` of intervened SCMs against closed-form Gaussian densities."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer.util import log_density
from scipy.stats import multivariate_normal

import jaxcausal as jc

from ._models import closed_form, linear_scm


def _dense(x, w, b, s, do=None, shift=None):
    """Reference: the Gaussian log-density of the non-intervened coordinates of x under the
    linear SCM (W, b + shift, s) after do({index: value}), by NumPy/SciPy."""
    b = b + (0.0 if shift is None else shift)
    mean, cov = closed_form(w, b, s, do=do)
    keep = [j for j in range(len(b)) if j not in (do or {})]
    return multivariate_normal(mean[keep], cov[np.ix_(keep, keep)]).logpdf(x[:, keep])


@pytest.fixture(scope="module")
def model_and_rows():
    scm, (names, w, b, s) = linear_scm(31)
    x = np.asarray(jnp.stack(list(scm.sample(7, key=jr.key(0)).values()), axis=1))
    return scm, (names, w, b, s), x


def test_observational_log_prob_equals_the_dense_gaussian(model_and_rows):
    scm, (names, w, b, s), x = model_and_rows
    got = jc.scm.log_prob(scm, x)
    np.testing.assert_allclose(got, _dense(x, w, b, s), rtol=1e-10)
    np.testing.assert_allclose(jc.scm.log_prob(scm, x, per_row=False), got.sum(), rtol=1e-12)


def test_shift_do_and_their_combination_match_closed_forms(model_and_rows):
    scm, (names, w, b, s), x = model_and_rows
    delta = np.zeros(5)
    delta[1], delta[3] = 0.7, -2.0
    shift = jc.scm.Shift({"x1": 0.7, "x3": -2.0})
    np.testing.assert_allclose(
        jc.scm.log_prob(scm, x, shift), _dense(x, w, b, s, shift=delta), rtol=1e-10
    )
    xd = x.copy()
    xd[:, 2] = 1.5  # rows consistent with do(x2 = 1.5)
    np.testing.assert_allclose(
        jc.scm.log_prob(scm, xd, jc.scm.Do({"x2": 1.5})),
        _dense(xd, w, b, s, do={2: 1.5}), rtol=1e-10,
    )
    # Combination, in order: shift x1 and x3, then do(x2); and the SCM's own interventions count.
    both = jc.scm.log_prob(scm.shift({"x1": 0.7, "x3": -2.0}), xd, jc.scm.Do({"x2": 1.5}))
    np.testing.assert_allclose(both, _dense(xd, w, b, s, do={2: 1.5}, shift=delta), rtol=1e-10)
    # A Shift after a Do moves the point mass: do(x2 = 1) then shift by 0.5 is do(x2 = 1.5).
    moved = jc.scm.log_prob(scm, xd, (jc.scm.Do({"x2": 1.0}), jc.scm.Shift({"x2": 0.5})))
    np.testing.assert_allclose(moved, _dense(xd, w, b, s, do={2: 1.5}), rtol=1e-10)
    # Rows that contradict a hard intervention have zero density.
    assert np.all(np.isneginf(jc.scm.log_prob(scm, x, jc.scm.Do({"x2": 1.5}))))


def test_per_row_values_and_nan_leave_nodes_alone(model_and_rows):
    scm, (names, w, b, s), x = model_and_rows
    per_row = jnp.where(jnp.arange(7) % 2 == 0, 1.0, jnp.nan)
    got = jc.scm.log_prob(scm, x, jc.scm.Shift({"x0": per_row}))
    delta = np.zeros(5)
    delta[0] = 1.0
    want = np.where(np.arange(7) % 2 == 0, _dense(x, w, b, s, shift=delta), _dense(x, w, b, s))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_numpyro_sees_the_intervention_through_model(model_and_rows):
    scm, _, x = model_and_rows
    row = {k: jnp.asarray(v) for k, v in zip(scm.names, x[0])}
    values = [float(log_density(scm.shift({"x1": v}).model, (), {}, row)[0]) for v in (0, 0.7, 5)]
    assert len(set(values)) == 3  # the intervention is no longer ignored
    want = jc.scm.log_prob(scm, x[:1], jc.scm.Shift({"x1": 0.7}))[0]
    assert values[1] == pytest.approx(float(want), rel=1e-12)
    # Predictive samples the intervened program; do() sites are fixed points.
    draws = numpyro.infer.Predictive(scm.do({"x0": 2.0}).model, num_samples=5)(jr.key(1))
    np.testing.assert_array_equal(draws["x0"], 2.0)
    # An intervened program is a program: wrapping it again keeps its intervention.
    again = jc.scm.SCM(scm.shift({"x1": 0.7}).model)
    np.testing.assert_allclose(jc.scm.log_prob(again, x), jc.scm.log_prob(scm, x, jc.scm.Shift(
        {"x1": 0.7})), rtol=1e-12)


def test_gradients_in_shift_and_in_mechanism_parameters(model_and_rows):
    scm, _, x = model_and_rows

    def f(delta, program):
        s = jc.scm.SCM(program, graph=scm.graph, deterministic=())
        return jc.scm.log_prob(s, x, jc.scm.Shift({"x3": delta}), per_row=False)

    g_delta, g_prog = jax.grad(f, argnums=(0, 1))(0.3, scm.program)
    h = 1e-6
    fd = (f(0.3 + h, scm.program) - f(0.3 - h, scm.program)) / (2 * h)
    assert float(g_delta) == pytest.approx(float(fd), rel=1e-6)
    bump = eqx.tree_at(lambda p: p.weights, scm.program, scm.program.weights.at[1, 3].add(h))
    dump = eqx.tree_at(lambda p: p.weights, scm.program, scm.program.weights.at[1, 3].add(-h))
    fd_w = (f(0.3, bump) - f(0.3, dump)) / (2 * h)
    assert float(g_prog.weights[1, 3]) == pytest.approx(float(fd_w), rel=1e-6)


def test_nonlinear_program_with_soft_intervention():
    def model():
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(jnp.sin(z), 0.5))

    scm = jc.scm.SCM(model)
    z, y = jnp.array([0.3, -1.0]), jnp.array([0.1, 0.4])
    soft = jc.scm.Soft({"y": lambda d: dist.Normal(d.loc, 2.0)})
    got = jc.scm.log_prob(scm, {"z": z, "y": y}, (soft, jc.scm.Shift({"y": 0.2})))
    want = dist.Normal(0.0, 1.0).log_prob(z) + dist.Normal(jnp.sin(z) + 0.2, 2.0).log_prob(y)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_float32_on_badly_scaled_data():
    # Columns from 1e-3 to 1e5: x_j = c_j z_j with z a unit-scale linear SCM, so the weights
    # rescale to W_ij c_j / c_i. float32 keeps ~7 digits of the residuals; per-row log-densities
    # (about -5 + sum log(1/c_j)) agree with float64 to 1e-4 relative.
    scm, (names, w, b, s) = linear_scm(32)
    c = np.array([1e-3, 1e-1, 1e1, 1e3, 1e5])
    w2, b2, s2 = w * c[None, :] / c[:, None], b * c, s * c
    z = np.asarray(jnp.stack(list(scm.sample(20, key=jr.key(3)).values()), axis=1))
    x = z * c[None, :]
    want = _dense(z, w, b, s) - np.sum(np.log(c))  # change of variables x = c * z
    with jax.enable_x64(False):
        program = eqx.tree_at(
            lambda p: (p.weights, p.bias, p.scale), scm.program,
            tuple(jnp.asarray(a, jnp.float32) for a in (w2, b2, s2)),
        )
        scaled = jc.scm.SCM(program, graph=scm.graph, deterministic=())
        got = jc.scm.log_prob(scaled, jnp.asarray(x, jnp.float32))
        assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_log_prob_bad_input(model_and_rows):
    scm, _, x = model_and_rows
    with pytest.raises(ValueError, match=r"an \(n, 5\) array"):
        jc.scm.log_prob(scm, x[:, :3])
    with pytest.raises(TypeError, match="not a dict"):
        jc.scm.log_prob(scm, x, {"x1": 1.0})
    with pytest.raises(ValueError, match="not in the graph"):
        jc.scm.log_prob(scm, x, jc.scm.Shift({"nope": 1.0}))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        jc.scm.log_prob(scm, bad)
    with pytest.raises(ValueError, match="infinite"):
        scm.do({"x1": jnp.inf})
    with pytest.raises(ValueError, match="deterministic"):
        jc.scm.log_prob(jc.scm.SCM(_explicit_noise), {"u": [0.0], "x": [0.0]})


def _explicit_noise():
    u = numpyro.sample("u", dist.Normal(0.0, 1.0))
    numpyro.deterministic("x", 2.0 * u)
