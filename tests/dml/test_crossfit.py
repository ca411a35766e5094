"""Cross-fitting as one batched computation: vmap over folds equals a loop over folds, the fit
compiles once, and jit/vmap of the whole fit equal eager calls."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import jaxcausal as jc
from jaxcausal.dml._base import trace_count
from jaxcausal.dml._crossfit import crossfit, holdout_masks


def _loop_crossfit(learner, x, y, folds, n_folds, key):
    """One fit per fold in a Python loop, with the keys `crossfit` gives each fold."""
    n_rep, n = folds.shape
    keys = jr.split(key, n_rep * n_folds)
    out = np.zeros((n_rep, n))
    for r in range(n_rep):
        for f in range(n_folds):
            train = (folds[r] != f).astype(float)
            pred = learner.fit(x, y, key=keys[r * n_folds + f], weights=train)(x)
            out[r] = np.where(np.asarray(folds[r]) == f, pred, out[r])
    return out


def test_draw_folds_are_balanced_and_keyed():
    folds = jc.dml.draw_folds(jr.key(0), 103, 5, 4)
    assert folds.shape == (4, 103)
    for r in range(4):
        counts = np.bincount(np.asarray(folds[r]), minlength=5)
        assert counts.max() - counts.min() <= 1
    assert not np.array_equal(folds[0], folds[1])
    assert np.array_equal(folds, jc.dml.draw_folds(jr.key(0), 103, 5, 4))


def test_vmap_over_folds_equals_loop_over_folds(getkey):
    data = jc.datasets.make_plr_CCDDHNR2018(n_obs=60, dim_x=3, key=getkey())
    folds = jc.dml.draw_folds(getkey(), 60, 2, 2)
    test = holdout_masks(folds, 2)
    train = (1.0 - test)[None]
    key = getkey()
    for learner, rtol in ((jc.learners.Linear(ridge=0.5), 1e-10),
                          (jc.learners.MLP(width=4, max_steps=20, batch_size=16), 1e-6)):
        y = jnp.broadcast_to(data.y[None, None], (1, 2, 60))
        batched = crossfit(learner, data.x[None], y, train, test, key)[0]
        looped = _loop_crossfit(learner, data.x, data.y, folds, 2, key)
        np.testing.assert_allclose(batched, looped, rtol=rtol, atol=1e-8)


def test_second_fit_with_same_shapes_does_not_recompile(getkey):
    est = jc.dml.PLR(jc.learners.MLP(width=4, max_steps=10), jc.learners.Linear(ridge=1.0),
                     n_folds=3, n_rep=2)
    first = jc.datasets.make_plr_CCDDHNR2018(n_obs=90, dim_x=4, key=getkey())
    second = jc.datasets.make_plr_CCDDHNR2018(n_obs=90, dim_x=4, alpha=1.0, key=getkey())
    est.fit(first, key=getkey())
    before = trace_count()
    res = est.fit(second, key=getkey())
    # new data, new key and a new penalty value (an array field): same shapes, no new trace
    est2 = eqx.tree_at(lambda e: e.ml_m.ridge, est, jnp.asarray(3.0))
    est2.fit(first, key=getkey())
    assert trace_count() == before
    assert np.isfinite(res.theta).all()


def test_jit_and_vmap_of_fit_equal_eager_calls(getkey):
    est = jc.dml.PLR(jc.learners.Linear(), jc.learners.Linear(), n_folds=3, n_rep=2)
    keys = jr.split(getkey(), 3)
    datasets = [jc.datasets.make_plr_CCDDHNR2018(n_obs=80, dim_x=4, key=k) for k in keys]
    fit_keys = jr.split(getkey(), 3)
    eager = [est.fit(d, key=k) for d, k in zip(datasets, fit_keys)]
    jitted = eqx.filter_jit(lambda d, k: est.fit(d, key=k))(datasets[0], fit_keys[0])
    np.testing.assert_allclose(jitted.theta_rep, eager[0].theta_rep, rtol=1e-12)
    batched = eqx.filter_vmap(lambda d, k: est.fit(d, key=k))(
        jc.CausalData.stack(datasets), fit_keys)
    np.testing.assert_allclose(batched.theta, jnp.stack([r.theta for r in eager]), rtol=1e-10)
    np.testing.assert_allclose(batched.se, jnp.stack([r.se for r in eager]), rtol=1e-10)
    assert batched.theta_rep.shape == (3, 1, 2)


def test_explicit_folds_are_used(getkey):
    data = jc.datasets.make_plr_CCDDHNR2018(n_obs=60, dim_x=3, key=getkey())
    folds = jc.dml.draw_folds(getkey(), 60, 4, 2)
    est = jc.dml.PLR(jc.learners.Linear(), jc.learners.Linear(), n_folds=4, n_rep=2)
    a = est.fit(data, key=getkey(), folds=folds)
    b = est.fit(data, key=getkey(), folds=np.asarray(folds))
    np.testing.assert_array_equal(a.folds, folds)
    np.testing.assert_allclose(a.theta_rep, b.theta_rep, rtol=1e-12)


def test_stratified_folds_spread_every_label_evenly_and_are_keyed():
    labels = (np.arange(103) % 17 == 0).astype(int)  # 7 rows of label 1 among 103
    folds = jc.dml.draw_folds(jr.key(0), 103, 5, 4, stratify=labels)
    assert folds.shape == (4, 103)
    for r in range(4):
        f = np.asarray(folds[r])
        sizes = np.bincount(f, minlength=5)
        assert sizes.max() - sizes.min() <= 1
        for label in (0, 1):
            counts = np.bincount(f[labels == label], minlength=5)
            assert counts.max() - counts.min() <= 1
    assert not np.array_equal(folds[0], folds[1])
    np.testing.assert_array_equal(folds, jc.dml.draw_folds(jr.key(0), 103, 5, 4,
                                                           stratify=labels))
    # traceable: the same folds under jit
    jitted = eqx.filter_jit(lambda k, s: jc.dml.draw_folds(k, 103, 5, 4, stratify=s))
    np.testing.assert_array_equal(jitted(jr.key(0), jnp.asarray(labels)), folds)


def test_rare_treatment_leaves_no_training_fold_without_treated_rows():
    # 6 treated rows in 5 folds: an unstratified split often puts two in one fold and none in
    # another; stratified, every training fold keeps at least 4 treated rows, for every key.
    rng = np.random.default_rng(0)
    n = 120
    d = np.zeros(n)
    d[rng.choice(n, 6, replace=False)] = 1.0
    x = rng.normal(size=(n, 2))
    data = jc.CausalData(x[:, 0] + d + rng.normal(size=n), d, x)
    unstratified_empty = 0
    for i in range(20):
        plain = np.asarray(jc.dml.draw_folds(jr.key(i), n, 5, 1))[0]
        unstratified_empty += int(np.bincount(plain[d == 1], minlength=5).min() == 0)
        strat = np.asarray(jc.dml.draw_folds(jr.key(i), n, 5, 1, stratify=d))[0]
        assert np.bincount(strat[d == 1], minlength=5).min() == 1
    assert unstratified_empty > 0
    est = jc.dml.IRM(jc.learners.Linear(), jc.learners.Logistic(l2=1.0), n_folds=5, n_rep=2)
    res = est.fit(data, key=jr.key(3))
    for r in range(2):
        assert np.bincount(np.asarray(res.folds[r])[d == 1], minlength=5).min() == 1
    assert bool(res.checks["treated:ml_g"].all())
