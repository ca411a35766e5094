import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest

import jaxcausal as jc

from ._models import linear_scm


def test_linear_fit_recovers_the_mechanisms(key):
    scm, (names, w, b, s) = linear_scm(17)
    data = scm.sample(20_000, key=key)
    template = jc.scm.SCM.from_graph(scm.graph)
    fitted = jc.scm.fit(template, pd.DataFrame({k: np.asarray(v) for k, v in data.items()}))
    # Least-squares coefficients have standard errors about s / sqrt(n) ~ 0.01 here.
    np.testing.assert_allclose(fitted.model.weights, w, atol=0.05)
    np.testing.assert_allclose(fitted.model.bias, b, atol=0.05)
    np.testing.assert_allclose(fitted.model.scale, s, rtol=0.03)


def test_zero_weight_rows_do_not_influence_the_fit(key):
    scm, _ = linear_scm(18)
    data = scm.sample(500, key=key)
    spoiled = {k: v.at[:100].set(100.0) for k, v in data.items()}
    mask = jnp.ones(500).at[:100].set(0.0)
    template = jc.scm.SCM.from_graph(scm.graph)
    a = jc.scm.fit(template, spoiled, weights=mask)
    b = jc.scm.fit(template, {k: v[100:] for k, v in data.items()})
    np.testing.assert_allclose(a.model.weights, b.model.weights, atol=1e-10)
    np.testing.assert_allclose(a.model.scale, b.model.scale, atol=1e-10)


def test_mlp_fit_learns_a_nonlinear_additive_noise_model(getkey):
    truth, _ = linear_scm(19, d=3)
    graph = truth.graph
    # Nonlinear truth: z ~ N(0, 1), x = 0.8 z + N(0, 0.5^2), y = sin(2 x) + 0.5 z + N(0, 0.3^2).
    z = jr.normal(getkey(), (3000,))
    x = 0.8 * z + 0.5 * jr.normal(getkey(), (3000,))
    y = jnp.sin(2.0 * x) + 0.5 * z + 0.3 * jr.normal(getkey(), (3000,))
    data = {"x0": z, "x1": x, "x2": y}
    cfg = jc.scm.AdditiveNoiseMLP(width=16, depth=2, max_steps=600, learning_rate=1e-2)
    template = jc.scm.SCM.from_graph(graph, mechanisms=cfg, key=getkey())
    fitted = jc.scm.fit(template, data, key=getkey())
    # Noise sds (1, 0.5, 0.3) are learned to within ~12% (3000 rows, early-stopped MLPs).
    np.testing.assert_allclose(fitted.model.scale, [1.0, 0.5, 0.3], rtol=0.12)
    # E[y | do(x = 0.7)] - E[y | do(x = 0)] = sin(1.4) for the truth.
    est = jc.scm.ate(fitted, "x1", "x2", 0.0, 0.7, n=2000, key=getkey())
    assert float(est) == pytest.approx(np.sin(1.4), abs=0.1)


def test_fit_bad_input(key):
    scm, _ = linear_scm(20)
    template = jc.scm.SCM.from_graph(scm.graph)
    data = scm.sample(20, key=key)
    with pytest.raises(ValueError, match=r"no columns for nodes \['x3'\]"):
        jc.scm.fit(template, {k: v for k, v in data.items() if k != "x3"})
    with pytest.raises(TypeError, match="from_graph"):
        jc.scm.fit(jc.scm.SCM(scm.model.__call__), data)
    with pytest.raises(ValueError, match="at least 7 rows"):
        jc.scm.fit(template, {k: v[:3] for k, v in data.items()})
    with pytest.raises(ValueError, match="infinite"):
        jc.scm.fit(template, {**data, "x0": data["x0"].at[0].set(jnp.inf)})
    with pytest.raises(TypeError, match="DataFrame or a dict"):
        jc.scm.fit(template, [1, 2, 3])


def _small_mlp_problem(getkey):
    cfg = jc.scm.AdditiveNoiseMLP(width=8, depth=1, max_steps=40, batch_size=64)
    adj = np.array([[0, 1], [0, 0]])
    template = jc.scm.SCM.from_graph(adj, ["a", "b"], mechanisms=cfg, key=getkey())
    a = jr.normal(getkey(), (200,))
    data = {"a": a, "b": jnp.tanh(2.0 * a) + 0.3 * jr.normal(getkey(), (200,))}
    return template, data


def test_mlp_fit_runs_under_jit_and_vmap(getkey):
    template, data = _small_mlp_problem(getkey)
    keys = jr.split(getkey(), 2)
    eager = [jc.scm.fit(template, data, key=k).model.scale for k in keys]
    jitted = jax.jit(lambda d, k: jc.scm.fit(template, d, key=k).model.scale)(data, keys[0])
    np.testing.assert_allclose(jitted, eager[0], rtol=1e-10)
    batched = jax.vmap(lambda k: jc.scm.fit(template, data, key=k).model.scale)(keys)
    np.testing.assert_allclose(batched, np.stack(eager), rtol=1e-8)


def test_mlp_defaults_do_not_underfit_a_clean_linear_chain(getkey):
    # t -> m -> y with slopes 3 and 3.3 and noise sd 0.1: the indirect effect is 9.9 and the
    # noise scales of m and y are 0.1. The least-squares start makes this exact to the sampling
    # error of 2000 rows (sd of a slope ~0.1 / (3 * sqrt(2000)) ~ 1e-3); 5% leaves room for the
    # short MLP training moving off it.
    n = 2000
    t = 3.0 * jr.normal(getkey(), (n,))
    m = 3.0 * t + 0.1 * jr.normal(getkey(), (n,))
    y = 3.3 * m + 0.1 * jr.normal(getkey(), (n,))
    adj = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    cfg = jc.scm.AdditiveNoiseMLP(max_steps=200)
    template = jc.scm.SCM.from_graph(adj, ["t", "m", "y"], mechanisms=cfg, key=getkey())
    fitted = jc.scm.fit(template, {"t": t, "m": m, "y": y}, key=getkey())
    np.testing.assert_allclose(fitted.model.scale[1:], [0.1, 0.1], rtol=0.05)
    effect = jc.scm.ate(fitted, "t", "y", 0.0, 1.0, n=500, key=getkey())
    assert float(effect) == pytest.approx(9.9, rel=0.01)


def test_silent_cases_are_errors_or_named(key):
    scm, (names, w, b, s) = linear_scm(22)
    data = scm.sample(50, key=key)
    template = jc.scm.SCM.from_graph(scm.graph)
    with pytest.raises(ValueError, match=r"columns \['x2'\] are constant"):
        jc.scm.fit(template, {**data, "x2": jnp.ones(50)})
    with pytest.raises(ValueError, match="infinite"):
        scm.do({"x1": np.inf})
    # Weights by name, whatever order from_graph was given the nodes in.
    adj = np.array([[0, 0], [1, 0]])  # "b" -> "a": the graph sorts b first
    two = jc.scm.SCM.from_graph(adj, ["a", "b"])
    bb = jr.normal(key, (100,))
    fitted = jc.scm.fit(two, {"a": 2.0 * bb + 0.1 * jnp.sin(jnp.arange(100.0)), "b": bb})
    assert fitted.names == ("b", "a")
    frame = fitted.model.weights_frame()
    assert frame.loc["b", "a"] == pytest.approx(2.0, abs=0.02) and frame.loc["a", "b"] == 0.0
    assert list(fitted.model.node_frame().columns) == ["bias", "scale"]
