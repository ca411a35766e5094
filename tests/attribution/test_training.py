import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest

import jaxcausal as jc

A = jc.attribution
GRID = jnp.linspace(-1.5, 1.5, 6)


@pytest.fixture(scope="module")
def chain():
    """a -> b -> c, b = 0.8 a + noise, c = -0.5 b + 0.3 a + noise, y = a + b c + noise."""
    rng = np.random.default_rng(0)
    n = 400
    a = rng.normal(size=n)
    b = 0.8 * a + 0.5 * rng.normal(size=n)
    c = -0.5 * b + 0.3 * a + 0.5 * rng.normal(size=n)
    y = a + b * c + 0.1 * rng.normal(size=n)
    x = pd.DataFrame({"a": a, "b": b, "c": c})
    graph = jc.scm.Graph.from_adjacency([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["a", "b", "c"])
    return x, y, graph


def test_antehoc_links_learn_the_mechanisms(chain):
    x, y, graph = chain
    method = A.AnteHoc(graph, links=A.LinearLinks(), lam=5.0, phase2_fraction=0.75,
                       training=A.Training(steps=2400, batch_size=None, learning_rate=1e-2))
    fitted = method.fit(x, y, key=jr.key(0))
    program = fitted.inputs.model
    assert isinstance(program, jc.scm.LinearGaussianProgram)
    weights = np.asarray(program.weights)
    # Each link regresses its input on the observed parents: least squares (NumPy), up to the
    # optimiser's convergence (1800 full-batch Adam steps: 0.02).
    design = np.stack([np.ones(len(x)), x["a"], x["b"]], axis=1)
    ols_b = np.linalg.lstsq(design[:, :2], x["b"], rcond=None)[0]
    ols_c = np.linalg.lstsq(design, x["c"], rcond=None)[0]
    np.testing.assert_allclose(weights[0, 1], ols_b[1], atol=0.02)
    np.testing.assert_allclose(weights[[0, 1], 2], ols_c[1:], atol=0.02)
    # Residual scales as additive noise: the true 0.5 to 0.05 (400 rows).
    np.testing.assert_allclose(program.scale[1:], 0.5, atol=0.05)
    # The network fits y, and its effects come with the links' SCM.
    mse = float(jnp.mean((fitted.predict(x.to_numpy()) - y) ** 2))
    assert mse < 0.1 * float(np.var(y))
    curves = fitted.ace(GRID, estimator=A.Taylor())
    assert curves.values.shape == (3, 6) and curves.features == ("a", "b", "c")


def test_seeds_in_one_vmapped_call_equal_a_loop(chain):
    x, y, graph = chain
    method = A.AnteHoc(graph, links=A.LinearLinks(), training=A.Training(steps=20, width=4))
    keys = jr.split(jr.key(1), 2)
    batched = eqx.filter_vmap(lambda k: method.fit(x, y, key=k))(keys)
    one = method.fit(x, y, key=keys[1])
    leaves = jax.tree.leaves(eqx.filter(batched.network, eqx.is_array))
    for got, want in zip(leaves, jax.tree.leaves(eqx.filter(one.network, eqx.is_array))):
        np.testing.assert_allclose(got[1], want, rtol=1e-9, atol=1e-12)
    curves = eqx.filter_vmap(lambda m: m.ace(GRID, estimator=A.Taylor()).values)(batched)
    assert curves.shape == (2, 3, 6)


def test_credo_and_effect_priors_pull_towards_the_priors(chain):
    x, y, graph = chain
    training = A.Training(steps=200, width=16)
    erm = A.ERM(graph, training=training).fit(x, y, key=jr.key(3))
    # CREDO: the derivative in c pulled to 0 (y = a + b c depends on c through b).
    credo = A.CREDO({"c": lambda v: 0.0 * v}, gamma=5.0, graph=graph,
                    training=training).fit(x, y, key=jr.key(3))
    xs = jnp.asarray(x.to_numpy())

    def dc(model):
        return float(jnp.mean(jnp.abs(jax.vmap(jax.grad(model))(xs)[:, 2])))

    assert dc(credo) < 0.5 * dc(erm)
    # EffectPrior: the total effect of c pulled to zero.
    prior = A.EffectPrior({"c": A.Zero()}, weight=50.0, graph=graph, alphas=GRID[::2],
                          training=training).fit(x, y, key=jr.key(3))

    def size(model):
        return float(jnp.abs(model.ace(GRID, estimator=A.Taylor()).values[2]).mean())

    assert size(prior) < 0.5 * size(erm)
    assert erm.train_loss.shape == (200,)


def test_classification_explains_class_probabilities():
    bn = jc.datasets.asia_network()
    data = bn.sample(600, key=jr.key(0))
    feats = ["smoke", "lung", "bronc", "either"]
    graph = jc.scm.Graph.from_adjacency(bn.adjacency(feats), feats)
    fitted = A.ERM(graph, task=A.Classification(2), training=A.Training(steps=60, width=8)).fit(
        data[feats], data["dysp"].to_numpy(), key=jr.key(1))
    probs = fitted.predict(data[feats].to_numpy()[:5])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-12)
    curves = fitted.ace(jnp.array([0.0, 1.0]), output=0, estimator=A.Taylor())
    assert curves.values.shape == (4, 2)
    with pytest.raises(ValueError, match="y must hold class labels 0, ..., 1"):
        A.ERM(graph, task=A.Classification(2)).fit(data[feats], data["dysp"] + 5, key=jr.key(0))
