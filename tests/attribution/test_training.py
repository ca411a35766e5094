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


@pytest.mark.slow
def test_antehoc_links_learn_the_mechanisms(chain):
    x, y, graph = chain
    method = A.AnteHoc(graph, links=A.LinearLinks(), lam=5.0, phase2_fraction=0.75,
                       training=A.Training(steps=2400, batch_size=None, learning_rate=1e-2))
    fitted = method.fit(x, y, key=jr.key(0))
    program = fitted.inputs.program
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


def test_antehoc_input_scm_is_its_links(chain):
    x, y, graph = chain
    fitted = A.AnteHoc(graph, training=A.Training(steps=20, width=4)).fit(x, y, key=jr.key(0))
    program = fitted.inputs.program
    assert isinstance(program, A.LinkProgram)
    xs = {v: jnp.asarray(x[v].to_numpy()) for v in x.columns}
    for j, v in enumerate(program.graph.names):
        loc = jax.vmap(lambda *vals: program.loc(j, dict(zip(x.columns, vals))))(
            *[xs[c] for c in x.columns])
        # Additive noise with the residual scale of the training rows (roots: their own scale).
        resid = xs[v] - loc if graph.parents(v) else xs[v] - xs[v].mean()
        np.testing.assert_allclose(program.scale[j], jnp.sqrt(jnp.mean(resid**2)), rtol=1e-10)
    # Phase 1 then phase 2: one loss per step.
    assert fitted.train_loss.shape == (20,) and bool(jnp.all(jnp.isfinite(fitted.train_loss)))


def test_credo_and_effect_prior_losses_by_hand(chain):
    from jaxcausal.attribution._credo import _CredoLoss
    from jaxcausal.attribution._prior import _PriorLoss

    x, y, graph = chain
    xs, ys = jnp.asarray(x.to_numpy()), jnp.asarray(y)
    net = jc.nn.MLP(3, "scalar", 8, 1, activation=jnp.tanh, key=jr.key(0))
    weights = jnp.ones(len(y))
    task = jnp.mean((jax.vmap(net)(xs) - ys) ** 2)
    prior = lambda v: 2.0 * v  # noqa: E731
    loss = _CredoLoss(A.Regression(), jnp.asarray(0.3), ((2, prior),), None)
    grads = jax.vmap(jax.grad(net))(xs)
    by_hand = task + 0.3 * jnp.mean(jnp.abs(grads[:, 2] - 2.0 * xs[:, 2]))
    np.testing.assert_allclose(loss(net, (xs, ys), weights, key=jr.key(1)), by_hand, rtol=1e-12)
    inputs = jc.scm.fit(jc.scm.SCM.from_graph(graph), x)
    grid = jnp.broadcast_to(GRID, (3, 6))
    loss = _PriorLoss(A.Regression(), jnp.asarray(2.0), inputs, grid,
                      ((1, A.Monotone(increasing=False)), (2, A.Zero())), ("a", "b", "c"),
                      A.Total(), A.Taylor(moments=A.LinearGaussianMoments()), None)
    curves = A.ace(net, inputs, grid, features=("a", "b", "c"), estimator=A.Taylor()).values
    penalty = jnp.mean(jax.nn.relu(jnp.diff(curves[1])) ** 2) + jnp.mean(curves[2] ** 2)
    np.testing.assert_allclose(loss(net, (xs, ys), weights, key=jr.key(1)),
                               task + 2.0 * penalty, rtol=1e-10)


@pytest.mark.slow
def test_credo_and_effect_priors_pull_towards_the_priors(chain):
    x, y, graph = chain
    training = A.Training(steps=200, width=16)
    xs = jnp.asarray(x.to_numpy())
    # The penalty weights are traced: the baselines (weight 0, plain training) share the
    # compilation of the penalised fits.
    fits = {
        gamma: A.CREDO({"c": lambda v: 0.0 * v}, gamma=gamma, graph=graph,
                       training=training).fit(x, y, key=jr.key(3))
        for gamma in (0.0, 5.0)
    }

    def dc(model):
        return float(jnp.mean(jnp.abs(jax.vmap(jax.grad(model))(xs)[:, 2])))

    # CREDO: the derivative in c pulled to 0 (y = a + b c depends on c through b).
    assert dc(fits[5.0]) < 0.5 * dc(fits[0.0])
    priors = {
        weight: A.EffectPrior({"c": A.Zero()}, weight=weight, graph=graph, alphas=GRID[::2],
                              training=training).fit(x, y, key=jr.key(3))
        for weight in (0.0, 50.0)
    }

    def size(model):
        return float(jnp.abs(model.ace(GRID, estimator=A.Taylor()).values[2]).mean())

    # EffectPrior: the total effect of c pulled to zero.
    assert size(priors[50.0]) < 0.5 * size(priors[0.0])
    assert priors[0.0].train_loss.shape == (200,)


def test_seeds_in_one_vmapped_call_equal_a_loop_for_a_classifier():
    bn = jc.datasets.asia_network()
    data = bn.sample(600, key=jr.key(0))
    feats = ["smoke", "lung", "bronc", "either"]
    graph = jc.scm.Graph.from_adjacency(bn.adjacency(feats), feats)
    x, y = data[feats], data["dysp"].to_numpy()
    method = A.ERM(graph, task=A.Classification(2), training=A.Training(steps=30, width=8))
    keys = jr.split(jr.key(1), 2)
    batched = eqx.filter_vmap(lambda k: method.fit(x, y, key=k))(keys)
    one = method.fit(x, y, key=keys[1])
    leaves = jax.tree.leaves(eqx.filter(batched.network, eqx.is_array))
    for got, want in zip(leaves, jax.tree.leaves(eqx.filter(one.network, eqx.is_array))):
        np.testing.assert_allclose(got[1], want, rtol=1e-9, atol=1e-12)
    # Class probabilities, and the effects on the probability of class 0.
    probs = one.predict(x.to_numpy()[:5])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-12)
    curves = eqx.filter_vmap(
        lambda m: m.ace(jnp.array([0.0, 1.0]), output=0, estimator=A.Taylor()).values)(batched)
    assert curves.shape == (2, 4, 2)
    with pytest.raises(ValueError, match="y must hold class labels 0, ..., 1"):
        method.fit(x, y + 5, key=jr.key(0))
