import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import jaxcausal as jc

from ._models import linear_scm


def test_linear_counterfactual_matches_closed_form(key):
    scm, (names, w, b, s) = linear_scm(11)
    obs = scm.sample(40, key=key)
    x = np.stack([np.asarray(obs[v]) for v in names], axis=1)
    eps = x - x @ w - b[None, :]  # abduction: the additive noise of every unit
    w2 = w.copy()
    w2[:, 2] = 0.0
    e2 = eps + b[None, :]
    e2[:, 2] = -0.4
    expected = e2 @ np.linalg.inv(np.eye(len(b)) - w2)  # prediction: x' = (b' + eps') (I - W')^-1
    cf = scm.counterfactual(obs, {"x2": -0.4})
    for j, v in enumerate(names):
        np.testing.assert_allclose(cf[v], expected[:, j], atol=1e-10)
    # Shift: every unit moves by the shift times its total effect.
    cf_shift = scm.counterfactual(obs, jc.scm.Shift({"x2": 0.3}))
    a = np.linalg.inv(np.eye(len(b)) - w.T)
    for j, v in enumerate(names):
        np.testing.assert_allclose(cf_shift[v] - obs[v], 0.3 * a[j, 2], atol=1e-10)


def _explicit_noise():
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    u = numpyro.sample("u_x", dist.Normal(0.0, 1.0))
    x = numpyro.deterministic("x", 0.3 * z + jnp.exp(u) * (1.0 + z**2))
    numpyro.sample("y", dist.Laplace(2.0 * x, 0.5))


def test_explicit_noise_program_is_inverted_exactly(key):
    scm = jc.scm.SCM(_explicit_noise, noise=("u_x",))
    draws = scm.sample(30, key=key)
    obs = {v: draws[v] for v in ("z", "x", "y")}
    cf = scm.counterfactual(obs, {"z": 1.0})
    x_cf = 0.3 + jnp.exp(draws["u_x"]) * 2.0  # the unit's own noise u_x, with z set to 1
    np.testing.assert_allclose(cf["x"], x_cf, rtol=1e-9)
    np.testing.assert_allclose(cf["y"], draws["y"] + 2.0 * (x_cf - draws["x"]), rtol=1e-9)
    assert set(cf) == {"z", "x", "y"}


def _poisson_child():
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.sample("c", dist.Poisson(jnp.exp(x)))
    numpyro.sample("y", dist.Normal(x, 1.0))


def test_non_invertible_mechanism_downstream_is_a_clear_error():
    scm = jc.scm.SCM(_poisson_child)
    obs = {"x": jnp.zeros(3), "c": jnp.ones(3), "y": jnp.ones(3)}
    with pytest.raises(ValueError, match="cannot abduct the noise of 'c'.*Poisson"):
        scm.counterfactual(obs, {"x": 1.0})
    # Intervening on y leaves c out of reach: its observed value is kept, no abduction needed.
    cf = scm.counterfactual(obs, {"y": 2.0})
    np.testing.assert_allclose(cf["c"], 1.0)


def _not_monotone():
    u = numpyro.sample("u", dist.Normal(0.0, 1.0))
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.deterministic("x", z + u**2)


def test_noise_that_cannot_be_inverted_is_reported():
    scm = jc.scm.SCM(_not_monotone, noise="u")
    with pytest.raises(ValueError, match="could not invert mechanisms"):
        scm.counterfactual({"z": jnp.zeros(2), "x": jnp.array([-1.0, 1.0])}, {"z": 1.0})


def test_counterfactual_bad_input(key):
    scm, _ = linear_scm(12)
    obs = scm.sample(4, key=key)
    with pytest.raises(ValueError, match=r"observed is missing nodes \['x4'\]"):
        scm.counterfactual({k: v for k, v in obs.items() if k != "x4"}, {"x1": 0.0})
    with pytest.raises(ValueError, match="intervention names nodes"):
        scm.counterfactual(obs, {"q": 0.0})
    with pytest.raises(ValueError, match="NaN"):
        scm.counterfactual({**obs, "x0": obs["x0"].at[1].set(jnp.nan)}, {"x1": 0.0})
    with pytest.raises(ValueError, match="noise site 'x1' must be a sample site without parents"):
        jc.scm.SCM(scm.model, noise=("x1",))
    with pytest.raises(TypeError, match="intervention must be"):
        scm.counterfactual(obs, 3.0)
