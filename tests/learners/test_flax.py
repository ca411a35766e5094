import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from flax import linen, nnx

import jaxcausal as jc

from ._helpers import check_common_errors, count_compiles


class _LinenNet(linen.Module):
    width: int = 32

    @linen.compact
    def __call__(self, x):
        return linen.Dense(1)(linen.gelu(linen.Dense(self.width)(x)))


class _NnxNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(2, 32, rngs=rngs)
        self.out = nnx.Linear(32, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.gelu(self.hidden(x)))[:, 0]


def _make_nnx(rngs: nnx.Rngs) -> nnx.Module:
    return _NnxNet(rngs)


_SETTINGS = dict(max_steps=200, learning_rate=1e-2, batch_size=128)
_LINEN = jc.learners.FlaxLearner(_LinenNet(), **_SETTINGS, eval_every=20, patience=5)
# Without a validation split, a 0/1 mask and the subset give the same fit (see test_mlp.py).
_NNX = jc.learners.FlaxLearner(_make_nnx, **_SETTINGS, val_fraction=0.0, eval_every=50)


def _regression(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    f = np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 1] ** 2
    return jnp.asarray(x), jnp.asarray(f + 0.1 * rng.normal(size=n)), f


def test_linen_module_learns_a_smooth_function():
    x, y, _ = _regression(400, 0)
    x_test, _, f_test = _regression(2000, 1)
    pred = _LINEN.fit(x, y, key=jr.key(0))
    r2 = 1.0 - np.mean((np.asarray(pred(x_test)) - f_test) ** 2) / np.var(f_test)
    # The same network as test_mlp.py's MLP regressor (R^2 about 0.95-0.99 across keys).
    assert r2 > 0.9
    assert 0 < int(pred.best_step) <= int(pred.n_steps) <= 200


def test_nnx_zero_one_mask_equals_subset():
    x, y, f = _regression(300, 2)
    mask = (np.arange(300) % 3 != 0).astype(float)
    masked = _NNX.fit(x, y, key=jr.key(1), weights=jnp.asarray(mask))
    subset = _NNX.fit(x[mask > 0], y[mask > 0], key=jr.key(1))
    np.testing.assert_allclose(masked(x[:50]), subset(x[:50]), atol=1e-8)
    # And the nnx model learns too (R^2 on the training function values; 0.9 as above).
    r2 = 1.0 - np.mean((np.asarray(masked(x)) - f) ** 2) / np.var(f)
    assert r2 > 0.9


def test_vmap_over_keys_and_masks_equals_loop():
    x, y, _ = _regression(400, 0)
    keys = jr.split(jr.key(5), 3)
    masks = (jnp.arange(400)[None, :] % 3 != jnp.arange(3)[:, None]).astype(x.dtype)
    batched = eqx.filter_vmap(lambda k, w: _LINEN.fit(x, y, key=k, weights=w))(keys, masks)
    batched_out = eqx.filter_vmap(lambda p: p(x[:50]))(batched)
    for i in range(3):
        single = _LINEN.fit(x, y, key=keys[i], weights=masks[i])
        assert int(batched.best_step[i]) == int(single.best_step)
        np.testing.assert_allclose(batched_out[i], single(x[:50]), atol=1e-8)


def test_second_fit_does_not_recompile():
    x, y, _ = _regression(400, 0)
    x2, y2, key2, w2 = 2.0 * x, -y, jr.key(9), jnp.ones(400).at[:7].set(0.0)
    # An equal (not identical) linen module is the same static configuration.
    learner = jc.learners.FlaxLearner(_LinenNet(), **_SETTINGS, eval_every=20, patience=5)
    _LINEN.fit(x, y, key=jr.key(0))
    traces = jc.train.count_traces()
    with count_compiles() as compiled:
        learner.fit(x2, y2, key=key2, weights=w2).y_mean.block_until_ready()
    assert compiled == []
    assert jc.train.count_traces() == traces


def test_errors(key):
    x, y, _ = _regression(20, 4)
    check_common_errors(_LINEN, x, y, key=key)
    classifier = jc.learners.FlaxLearner(_LinenNet(), classifier=True)
    assert classifier.is_classifier and not _LINEN.is_classifier
    with pytest.raises(ValueError, match=r"y must be binary .*FlaxLearner"):
        classifier.fit(x, y, key=key)
    with pytest.raises(TypeError, match="module must be a flax.linen.Module"):
        jc.learners.FlaxLearner(3)
    with pytest.raises(TypeError, match="not an nnx.Module instance"):
        jc.learners.FlaxLearner(_NnxNet(nnx.Rngs(0)))
    with pytest.raises(ValueError, match="val_fraction must be in"):
        jc.learners.FlaxLearner(_LinenNet(), val_fraction=-0.1)
    with pytest.raises(ValueError, match="patience must be at least 1"):
        jc.learners.FlaxLearner(_LinenNet(), patience=0)


def test_wrong_output_shape_is_refused():
    class TwoOutputs(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(2)(x)

    x, y, _ = _regression(20, 4)
    learner = jc.learners.FlaxLearner(TwoOutputs(), max_steps=1, batch_size=None)
    with pytest.raises(ValueError, match=r"must map a batch of shape \(\d+, 2\) to shape"):
        learner.fit(x, y, key=jr.key(0))
