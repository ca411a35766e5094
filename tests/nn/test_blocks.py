import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import jaxcausal as jc


def test_mlp_shapes_and_linear_at_depth_zero(key):
    mlp = jc.nn.MLP(3, 2, width=8, depth=2, key=key)
    assert mlp(jnp.ones(3)).shape == (2,)
    assert jc.nn.MLP(3, "scalar", depth=0, key=key)(jnp.ones(3)).shape == ()
    lin = jc.nn.MLP(3, 1, depth=0, key=key)
    x1, x2 = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.5, -1.0, 2.0])
    # depth 0 is affine: f(a x1 + (1-a) x2) = a f(x1) + (1-a) f(x2)
    assert jnp.allclose(lin(0.3 * x1 + 0.7 * x2), 0.3 * lin(x1) + 0.7 * lin(x2))


def test_mlp_dropout_is_random_in_training_and_off_in_inference(key):
    mlp = jc.nn.MLP(4, 1, width=32, depth=1, dropout=0.5, key=key)
    x = jnp.ones(4)
    a, b = mlp(x, key=jr.key(1)), mlp(x, key=jr.key(2))
    assert not jnp.allclose(a, b)
    inf = eqx.nn.inference_mode(mlp)
    assert jnp.allclose(inf(x, key=jr.key(1)), inf(x, key=jr.key(2)))
    assert jnp.allclose(mlp(x), inf(x))  # no key means deterministic


def test_mlp_rejects_bad_config(key):
    with pytest.raises(ValueError, match="dropout must be in"):
        jc.nn.MLP(2, 1, dropout=1.0, key=key)
    with pytest.raises(ValueError, match="depth must be non-negative"):
        jc.nn.MLP(2, 1, depth=-1, key=key)


def _adjacency():
    return np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]])  # 4 inputs -> 3 outputs


def test_masked_mlp_output_depends_only_on_allowed_inputs(key):
    adj = _adjacency()
    net = jc.nn.MaskedMLP(adj, width=16, depth=2, key=key)
    jac = jax.jacobian(net)(jr.normal(jr.key(3), (4,)))  # (out, in)
    assert jac.shape == (3, 4)
    assert jnp.all(jnp.where(adj.T == 0, jac, 0.0) == 0.0)
    assert jnp.all(jnp.abs(jnp.where(adj.T == 1, jac, 1.0)) > 0.0)


def _masked_loss(model, data, weights, *, key):
    x, y = data
    pred = jax.vmap(model)(x)
    return jc.train.weighted_mean(jnp.sum((pred - y) ** 2, axis=1), weights)


def test_masked_weights_stay_exactly_zero_through_training(key):
    adj = _adjacency()
    net = jc.nn.MaskedMLP(adj, width=8, depth=1, key=key)
    x = jr.normal(jr.key(1), (64, 4))
    y = jnp.stack([x[:, 0] + x[:, 1], x[:, 1] * x[:, 3], jnp.sin(x[:, 2])], axis=1)
    opt = optax.adamw(1e-2, weight_decay=1e-2)
    res = jc.train.fit(_masked_loss, net, (x, y), opt, key=key, max_steps=100)
    trained = res.model
    masked = ~trained.mask[:, None, :] & jnp.ones_like(trained.first_weight, dtype=bool)
    assert jnp.all(trained.first_weight[masked] == 0.0)
    assert not jnp.allclose(trained.first_weight, net.first_weight)  # it did train
    assert res.train_loss[-1] < res.train_loss[0]


def test_masked_mlp_rejects_bad_adjacency(key):
    with pytest.raises(ValueError, match="adjacency must be a matrix"):
        jc.nn.MaskedMLP(np.ones(3), key=key)
    with pytest.raises(ValueError, match="only 0/1"):
        jc.nn.MaskedMLP(np.full((2, 2), 0.5), key=key)


def test_heads_and_gru(key):
    loc, scale = jc.nn.GaussianHead(5, 3, key=key)(jnp.ones(5))
    assert loc.shape == scale.shape == (3,) and jnp.all(scale > 0)
    assert jc.nn.BernoulliHead(5, key=key)(jnp.ones(5)).shape == ()
    heads = jc.nn.TwoHeads(jc.nn.BernoulliHead(5, key=key), jc.nn.BernoulliHead(5, key=jr.key(9)))
    assert heads(jnp.ones(5)).shape == (2,)
    gru = jc.nn.GRUEncoder(3, 4, key=key)
    xs = jr.normal(jr.key(2), (7, 3))
    h = gru(xs)
    manual = jnp.zeros(4)
    for x in xs:
        manual = gru.cell(x, manual)
    assert jnp.allclose(h, manual)
    # Under the jaxtyping check the annotation rejects it first; both messages say "time".
    with pytest.raises((ValueError, TypeError), match="time"):
        gru(jnp.ones(3))
