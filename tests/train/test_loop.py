import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import jaxcausal as jc
from jaxcausal.train._loop import _sample_rows


class Affine(eqx.Module):
    w: jax.Array
    b: jax.Array

    def __call__(self, x):
        return x @ self.w + self.b


def squared_loss(model, data, weights, *, key):
    x, y = data
    return jc.train.weighted_mean((jax.vmap(model)(x) - y) ** 2, weights)


def mlp_loss(model, data, weights, *, key):
    x, y = data
    pred = jax.vmap(lambda xi, k: model(xi, key=k))(x, jr.split(key, x.shape[0]))
    return jc.train.weighted_mean((pred - y) ** 2, weights)


def _linear_data(n=40, p=3):
    x = jr.normal(jr.key(10), (n, p))
    y = x @ jnp.arange(1.0, p + 1.0) + 0.5 + 0.1 * jr.normal(jr.key(11), (n,))
    return x, y


def test_full_batch_gradient_descent_matches_a_hand_written_loop(key):
    x, y = _linear_data()
    model = Affine(jnp.zeros(3), jnp.zeros(()))
    lr, steps = 0.1, 25
    res = jc.train.fit(
        squared_loss, model, (x, y), optax.sgd(lr), key=key, max_steps=steps, eval_every=5
    )
    w, b = np.zeros(3), 0.0
    xn, yn = np.asarray(x), np.asarray(y)
    for _ in range(steps):
        r = xn @ w + b - yn
        w, b = w - lr * 2 * xn.T @ r / len(yn), b - lr * 2 * r.mean()
    np.testing.assert_allclose(res.model.w, w, rtol=1e-12)
    np.testing.assert_allclose(res.model.b, b, rtol=1e-12)
    assert int(res.n_steps) == steps and res.train_loss.shape == (steps,)
    assert not bool(res.stopped_early)


def test_a_zero_one_mask_equals_training_on_the_subset(key):
    x, y = _linear_data()
    mask = (jnp.arange(40) % 3 != 0).astype(float)
    keep = np.asarray(mask, bool)
    model = Affine(jnp.zeros(3), jnp.zeros(()))
    opt = optax.adam(0.05)
    masked = jc.train.fit(squared_loss, model, (x, y), opt, key=key, weights=mask, max_steps=50)
    subset = jc.train.fit(squared_loss, model, (x[keep], y[keep]), opt, key=key, max_steps=50)
    np.testing.assert_allclose(masked.model.w, subset.model.w, rtol=1e-10)


def test_minibatches_only_draw_weighted_rows_in_proportion():
    w = jnp.array([0.0, 1.0, 3.0, 0.0, 4.0])
    rows = _sample_rows(jr.key(0), w, 80_000)
    counts = np.bincount(np.asarray(rows), minlength=5) / 80_000
    assert counts[0] == counts[3] == 0.0
    # binomial s.e. of a frequency near 0.5 with 80k draws is below 0.002; 0.01 is 5 s.e.
    np.testing.assert_allclose(counts[[1, 2, 4]], [1 / 8, 3 / 8, 4 / 8], atol=0.01)


def test_minibatch_training_ignores_rows_with_zero_weight(key):
    x, y = _linear_data(200)
    poisoned = y.at[::2].set(1e6)
    mask = (jnp.arange(200) % 2 == 1).astype(float)
    model = Affine(jnp.zeros(3), jnp.zeros(()))
    res = jc.train.fit(
        squared_loss,
        model,
        (x, poisoned),
        optax.adam(0.05),
        key=key,
        weights=mask,
        max_steps=400,
        batch_size=16,
    )
    # The poisoned rows would drag the intercept towards 1e6; the clean fit is near the truth.
    np.testing.assert_allclose(res.model.w, [1.0, 2.0, 3.0], atol=0.1)
    assert abs(float(res.model.b) - 0.5) < 0.1


def test_early_stopping_keeps_the_best_parameters(key):
    # Few rows, many features: a linear model overfits, so validation loss rises after a while.
    x = jr.normal(jr.key(1), (60, 40))
    y = x[:, 0] + jr.normal(jr.key(2), (60,))
    val = (jnp.arange(60) >= 30).astype(float)
    model = Affine(jnp.zeros(40), jnp.zeros(()))
    res = jc.train.fit(
        squared_loss,
        model,
        (x, y),
        optax.adam(0.05),
        key=key,
        weights=1.0 - val,
        val_weights=val,
        max_steps=2000,
        eval_every=5,
        patience=10,
    )
    hist = np.asarray(res.val_loss)
    seen = hist[~np.isnan(hist)]
    assert bool(res.stopped_early) and int(res.n_steps) < 2000
    assert int(res.best_step) == 5 * (int(np.argmin(seen)) + 1)
    best_val = squared_loss(res.model, (x, y), val, key=key)
    np.testing.assert_allclose(best_val, seen.min(), rtol=1e-10)
    assert seen[-1] > seen.min()
    assert np.isnan(np.asarray(res.train_loss)[int(res.n_steps) :]).all()


def _make_mlp(k):
    return jc.nn.MLP(3, "scalar", width=16, depth=2, key=k)


def test_ensemble_of_50_masked_mlps_equals_fitting_them_one_by_one(key):
    n, members = 120, 50
    x = jr.normal(jr.key(1), (n, 3))
    y = jnp.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * jr.normal(jr.key(2), (n,))
    masks = (jr.uniform(jr.key(3), (members, n)) < 0.7).astype(float)
    val = (1.0 - masks) * (jr.uniform(jr.key(4), (members, n)) < 0.5)
    models = eqx.filter_vmap(_make_mlp)(jr.split(jr.key(5), members))
    opt = optax.adamw(1e-2, weight_decay=1e-4)
    settings = dict(max_steps=60, batch_size=32, eval_every=10, patience=3)
    ens = jc.train.fit_ensemble(
        mlp_loss, models, (x, y), opt, key=key, weights=masks, val_weights=val, **settings
    )
    traces = jc.train.count_traces()
    keys = jr.split(key, members)
    for e in range(members):
        model_e = jax.tree.map(lambda a: a[e] if eqx.is_array(a) else a, models)
        one = jc.train.fit(
            mlp_loss,
            model_e,
            (x, y),
            opt,
            key=keys[e],
            weights=masks[e],
            val_weights=val[e],
            **settings,
        )
        pred_one = jax.vmap(eqx.nn.inference_mode(one.model))(x)
        pred_ens = jax.vmap(
            eqx.nn.inference_mode(jax.tree.map(lambda a: a[e] if eqx.is_array(a) else a, ens.model))
        )(x)
        np.testing.assert_allclose(pred_ens, pred_one, rtol=1e-8, atol=1e-8)
        assert int(one.best_step) == int(ens.best_step[e])
    # The single fits compiled once (the first of them); the loop did not recompile per member.
    assert jc.train.count_traces() == traces + 1
    # Members stop independently, and the ensemble call itself does not recompile.
    assert len(set(np.asarray(ens.n_steps).tolist())) > 1
    jc.train.fit_ensemble(
        mlp_loss, models, (x, y), opt, key=jr.key(7), weights=masks, val_weights=val, **settings
    )
    assert jc.train.count_traces() == traces + 1


def test_progress_bar_does_not_change_the_result(key, capsys):
    x, y = _linear_data()
    model = Affine(jnp.zeros(3), jnp.zeros(()))
    opt = optax.adam(0.1)
    quiet = jc.train.fit(squared_loss, model, (x, y), opt, key=key, max_steps=30)
    loud = jc.train.fit(squared_loss, model, (x, y), opt, key=key, max_steps=30, progress=True)
    np.testing.assert_allclose(quiet.model.w, loud.model.w, rtol=1e-12)
    assert "training" in capsys.readouterr().err


def test_bad_arguments_raise_naming_them(key):
    x, y = _linear_data()
    model = Affine(jnp.zeros(3), jnp.zeros(()))
    opt = optax.adam(0.1)
    with pytest.raises(ValueError, match="same leading"):
        jc.train.fit(squared_loss, model, (x, y[:5]), opt, key=key)
    with pytest.raises(ValueError, match=r"weights must have shape \(40,\)"):
        jc.train.fit(squared_loss, model, (x, y), opt, key=key, weights=jnp.ones(3))
    with pytest.raises(ValueError, match="weights must be non-negative"):
        jc.train.fit(squared_loss, model, (x, y), opt, key=key, weights=-jnp.ones(40))
    with pytest.raises(ValueError, match="val_weights contains NaN"):
        jc.train.fit(squared_loss, model, (x, y), opt, key=key, val_weights=jnp.full(40, jnp.nan))
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        jc.train.fit(squared_loss, model, (x, y), opt, key=key, max_steps=0)
    with pytest.raises(ValueError, match="models must carry a leading member axis of size 4"):
        jc.train.fit_ensemble(squared_loss, model, (x, y), opt, key=key, weights=jnp.ones((4, 40)))


@pytest.mark.parametrize(
    ("row", "message"),
    [(jnp.full(40, jnp.nan), r"weights\[2\] contains NaN"),
     (-jnp.ones(40), r"weights\[2\] must be non-negative"),
     (jnp.zeros(40), r"weights\[2\] must have at least one positive entry")],
)
def test_fit_ensemble_names_the_first_bad_member_of_weights(key, row, message):
    x, y = _linear_data()
    models = eqx.filter_vmap(lambda _: Affine(jnp.zeros(3), jnp.zeros(())))(jnp.arange(4))
    weights = jnp.ones((4, 40)).at[2].set(row).at[3].set(-jnp.ones(40))
    with pytest.raises(ValueError, match=message):
        jc.train.fit_ensemble(squared_loss, models, (x, y), optax.adam(0.1), key=key,
                              weights=weights)


def _stepped_loss(model, data, weights, *, key, step):
    # A second term switches on at update 50: the parameter follows the changing objective.
    late = jnp.where(step >= 50, (model["w"] - 3.0) ** 2, 0.0)
    return jc.train.weighted_mean((data - model["w"]) ** 2, weights) + late


def test_run_passes_the_step_index_for_schedules():
    data = jnp.zeros((10,))
    run = jax.jit(lambda m: jc.train.run(
        _stepped_loss, m, data, optax.sgd(0.1), key=jr.key(0), weights=jnp.ones(10),
        max_steps=200, eval_every=10, with_step=True,
    ))
    res = run({"w": jnp.array(0.0)})
    # After step 50 the loss is w^2 + (w - 3)^2, minimised at 1.5; before, at 0.
    assert float(res.model["w"]) == pytest.approx(1.5, abs=1e-3)
    assert float(res.train_loss[0]) == pytest.approx(0.0, abs=1e-12)
