"""Model selection (`CV`) and stacking (`Stacked`) of nuisance learners.

The learners below are built once at module level and every test fits them on data of the same
shapes, so each compiled program is built once for the whole file.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from jaxtyping import TypeCheckError

import jaxcausal as jc
from jaxcausal.learners import CV, MLP, Lasso, Linear, Logistic, Stacked
from jaxcausal.learners._cv import draw_inner_folds, trace_count
from jaxcausal.learners._stacking import log_loss_weights, squared_error_weights

N, P = 300, 4
_MLP = dict(width=16, depth=1, learning_rate=1e-2, max_steps=300, batch_size=None, patience=10)
CANDIDATES = (Linear(), Lasso(alpha=0.05), MLP(weight_decay=1e-3, **_MLP))
# Least squares, a network and a Lasso: three families, three vmapped calls.
REG = CV(CANDIDATES, n_folds=2)
# Only linear fits (cheap to compile) where a test is about the plumbing, not the network: two
# ridge penalties form one family, the Lasso another.
LIN_CANDIDATES = (Linear(), Linear(ridge=30.0), Lasso(alpha=0.05))
LIN = CV(LIN_CANDIDATES, n_folds=2)
CLF = CV((Logistic(l2=1e-3), Logistic(l2=30.0)), n_folds=2)


@eqx.filter_jit
def _fit_batched(learner, x, y, masks, keys):
    return eqx.filter_vmap(
        lambda w, k: learner.fit(x, y, key=k, weights=w), in_axes=(0, 0)
    )(masks, keys)


def _x(key):
    return jr.normal(key, (N, P))


def _linear_data(key):
    kx, ke = jr.split(key)
    x = _x(kx)
    return x, x @ jnp.array([1.0, -2.0, 0.5, 0.0]) + 0.5 * jr.normal(ke, (N,))


def _nonlinear_data(key):
    kx, ke = jr.split(key)
    x = _x(kx)
    return x, 2.0 * jnp.sin(3.0 * x[:, 0]) + x[:, 1] ** 2 + 0.3 * jr.normal(ke, (N,))


def _mask(key, share=0.7):
    return (jr.uniform(key, (N,)) < share).astype(jnp.float64)


def test_picks_linear_on_linear_truth_and_mlp_on_nonlinear_truth():
    x, y = _linear_data(jr.key(0))
    pred = REG.fit(x, y, key=jr.key(1))
    # A linear truth with Gaussian noise: least squares (or the nearly unpenalised Lasso) has the
    # smallest out-of-fold error; the network can only approach it.
    assert int(pred.best) in (0, 1)
    assert float(pred.losses[2]) > float(jnp.min(pred.losses[:2]))
    x, y = _nonlinear_data(jr.key(2))
    pred = REG.fit(x, y, key=jr.key(3))
    assert int(pred.best) == 2
    # sin(3 x) + x^2 is far from linear: the linear fits explain little, the network most of it.
    assert float(pred.losses[2]) < 0.5 * float(jnp.min(pred.losses[:2]))
    np.testing.assert_array_equal(np.asarray(pred.weights), [0.0, 0.0, 1.0])


def test_losses_are_the_pooled_out_of_fold_errors_computed_by_hand():
    x, y = _linear_data(jr.key(4))
    w = _mask(jr.key(5))
    key = jr.key(6)
    pred = REG.fit(x, y, key=key, weights=w)
    folds = np.asarray(draw_inner_folds(jr.fold_in(key, 1), w, y, 2, False))
    xn, yn, wn = np.asarray(x), np.asarray(y), np.asarray(w)
    assert (folds[wn == 0] == -1).all() and set(folds[wn > 0]) == {0, 1}
    design = np.column_stack([np.ones(N), xn])
    sq = np.zeros(N)
    for f in (0, 1):
        train = (folds != f) & (wn > 0)
        beta = np.linalg.lstsq(design[train], yn[train], rcond=None)[0]
        sq[folds == f] = (yn - design @ beta)[folds == f] ** 2
    np.testing.assert_allclose(float(pred.losses[0]), sq[wn > 0].mean(), rtol=1e-10)
    per_fold = [sq[folds == f].mean() for f in (0, 1)]
    np.testing.assert_allclose(np.asarray(pred.fold_losses[:, 0]), per_fold, rtol=1e-10)
    # The winner (a linear fit on these data) is refitted on all weighted rows with the key.
    assert int(pred.best) in (0, 1)
    refit = CANDIDATES[int(pred.best)].fit(x, y, key=key, weights=w)
    np.testing.assert_allclose(np.asarray(pred(x)), np.asarray(refit(x)), rtol=1e-12, atol=1e-12)


def test_one_candidate_equals_its_own_fit():
    x, y = _linear_data(jr.key(7))
    w, key = _mask(jr.key(8)), jr.key(9)
    pred = CV((Linear(),), n_folds=2).fit(x, y, key=key, weights=w)
    direct = Linear().fit(x, y, key=key, weights=w)
    assert float(pred.weights[0]) == 1.0
    # the same solve, batched by vmap beside the inner folds: equal up to the summation order
    np.testing.assert_allclose(np.asarray(pred(x)), np.asarray(direct(x)), rtol=1e-12)


def test_the_winning_network_is_refitted_with_the_learners_key():
    x, y = _nonlinear_data(jr.key(35))
    w, key = _mask(jr.key(36)), jr.key(37)
    pred = REG.fit(x, y, key=key, weights=w)
    assert int(pred.best) == 2
    direct = CANDIDATES[2].fit(x, y, key=key, weights=w)
    # the network's own fit on all weighted rows, run as one more mask of the family's vmap
    np.testing.assert_allclose(np.asarray(pred(x)), np.asarray(direct(x)), rtol=1e-9, atol=1e-9)
    assert int(pred.models[2].n_steps[0]) == int(direct.n_steps)


def test_one_candidate_equals_its_own_fit_float32_badly_scaled():
    scales = jnp.array([1e-3, 1.0, 1e2, 1e5], jnp.float32)
    with jax.enable_x64(False):
        x = jr.normal(jr.key(10), (N, P), jnp.float32) * scales[None, :]
        y = (x / scales[None, :]) @ jnp.array([1.0, -2.0, 0.5, 3.0], jnp.float32) + 1e4
        w = (jr.uniform(jr.key(11), (N,)) < 0.7).astype(jnp.float32)
        pred = CV((Linear(),), n_folds=2).fit(x, y, key=jr.key(12), weights=w)
        direct = Linear().fit(x, y, key=jr.key(12), weights=w)
        assert pred.losses.dtype == jnp.float32
        # float32 round-off of predictions near 1e4 (eps * 1e4 ~ 1e-3), nothing more.
        np.testing.assert_allclose(np.asarray(pred(x)), np.asarray(direct(x)), atol=5e-3)


def test_rows_with_weight_zero_cannot_change_the_fit():
    x, y = _nonlinear_data(jr.key(13))
    w, key = _mask(jr.key(14)), jr.key(15)
    out = jnp.asarray(w == 0)
    x2 = jnp.where(out[:, None], 100.0 * jr.normal(jr.key(16), (N, P)), x)
    y2 = jnp.where(out, -50.0, y)
    a, b = REG.fit(x, y, key=key, weights=w), REG.fit(x2, y2, key=key, weights=w)
    np.testing.assert_allclose(np.asarray(a.losses), np.asarray(b.losses), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(a(x)), np.asarray(b(x)), rtol=1e-9, atol=1e-9)


def test_vmap_over_fold_masks_equals_a_loop_and_does_not_recompile():
    x, y = _nonlinear_data(jr.key(17))
    masks = jnp.stack([_mask(k) for k in jr.split(jr.key(18), 3)])
    keys = jr.split(jr.key(19), 3)
    batched = _fit_batched(LIN, x, y, masks, keys)
    for i, (w, k) in enumerate(zip(masks, keys)):
        one = LIN.fit(x, y, key=k, weights=w)
        np.testing.assert_allclose(np.asarray(batched.losses[i]), np.asarray(one.losses), rtol=1e-9)
        np.testing.assert_array_equal(np.asarray(batched.weights[i]), np.asarray(one.weights))
    before = trace_count()
    LIN.fit(x + 1.0, y, key=jr.key(20), weights=masks[1])
    _fit_batched(LIN, x, y - 1.0, masks[::-1], keys)
    assert trace_count() == before
    table = batched.summary()
    assert isinstance(table, pd.DataFrame) and "best_share" in table.columns
    np.testing.assert_allclose(table["best_share"].sum(), 1.0)
    np.testing.assert_allclose(table["loss"], np.asarray(batched.losses).mean(axis=0))


def test_stacked_weights_are_a_convex_combination_that_beats_every_candidate():
    x, y = _nonlinear_data(jr.key(21))
    pred = Stacked(LIN_CANDIDATES, n_folds=2).fit(x, y + 0.5 * x[:, 2], key=jr.key(22))
    a = np.asarray(pred.weights)
    assert (a >= 0).all()
    np.testing.assert_allclose(a.sum(), 1.0, rtol=1e-12)
    # every candidate is a vertex of the simplex, so the optimum is at least as good as the best
    assert float(pred.combined_loss) <= float(jnp.min(pred.losses)) * (1 + 1e-9)
    table = pred.summary()
    assert list(table.columns) == ["loss", "weight", "best"]
    assert table.index.tolist() == list(pred.names)


def _simplex_reference(objective, c):
    cons = ({"type": "eq", "fun": lambda a: a.sum() - 1.0},)
    res = scipy.optimize.minimize(
        objective, np.full(c, 1.0 / c), bounds=[(0, 1)] * c, constraints=cons, method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    return res.x


def _stacking_problem(key, c=4, n=200):
    k1, k2 = jr.split(key)
    y = jr.normal(k1, (n,))
    noise = jr.normal(k2, (c, n)) * jnp.array([0.3, 0.6, 1.0, 2.0])[:, None]
    return y, y[None, :] + noise + jnp.array([0.2, -0.1, 0.0, 0.5])[:, None]


def test_squared_error_stacking_matches_scipy_and_ignores_invalid_candidates():
    y, preds = _stacking_problem(jr.key(23))
    w = jnp.ones(y.shape)
    valid = jnp.array([True, True, True, False])
    a = squared_error_weights(preds, y, w, valid, 2000)
    yn, pn = np.asarray(y), np.asarray(preds)[:3]
    ref = _simplex_reference(lambda b: np.mean((yn - b @ pn) ** 2), 3)
    np.testing.assert_allclose(np.asarray(a[:3]), ref, atol=1e-5)
    assert float(a[3]) == 0.0 and abs(float(a.sum()) - 1.0) < 1e-12


def test_squared_error_stacking_float32_on_badly_scaled_targets():
    y, preds = _stacking_problem(jr.key(24))
    # dollar-like targets: an offset of 1e4 beside a spread of 10
    a64 = squared_error_weights(10 * preds + 1e4, 10 * y + 1e4, jnp.ones(y.shape),
                                jnp.ones(4, bool), 2000)
    with jax.enable_x64(False):
        p32 = jnp.asarray(10 * np.asarray(preds) + 1e4, jnp.float32)
        y32 = jnp.asarray(10 * np.asarray(y) + 1e4, jnp.float32)
        a32 = squared_error_weights(p32, y32, jnp.ones(y.shape, jnp.float32), jnp.ones(4, bool),
                                    2000)
        assert a32.dtype == jnp.float32
    # float32 keeps about 4 digits of the residuals around 1e4 (eps * 1e4 ~ 1e-3 against a
    # spread of 10); removing the mean inside the solver keeps that from costing more
    np.testing.assert_allclose(np.asarray(a32), np.asarray(a64), atol=1e-2)
    np.testing.assert_allclose(float(np.sum(np.asarray(a32))), 1.0, atol=1e-5)


def test_log_loss_stacking_matches_scipy():
    k1, k2 = jr.split(jr.key(25))
    p_true = jax.nn.sigmoid(2.0 * jr.normal(k1, (300,)))
    y = (jr.uniform(k2, (300,)) < p_true).astype(jnp.float64)
    probs = jnp.stack([p_true, 0.5 + 0.0 * p_true, jnp.clip(p_true**2, 0.01, 0.99)])
    w = jnp.ones(y.shape)
    a = log_loss_weights(probs, y, w, jnp.ones(3, bool), 5000)
    pn, yn = np.asarray(probs), np.asarray(y)

    def nll(b):
        mix = b @ pn
        return -np.mean(yn * np.log(mix) + (1 - yn) * np.log1p(-mix))

    ref = _simplex_reference(nll, 3)
    assert nll(np.asarray(a)) <= nll(ref) + 1e-8
    np.testing.assert_allclose(np.asarray(a), ref, atol=1e-3)


def test_classifier_uses_log_loss_and_stratified_inner_folds():
    kx, ky = jr.split(jr.key(26))
    x = _x(kx)
    y = (jr.uniform(ky, (N,)) < jax.nn.sigmoid(3.0 * jnp.sin(2.0 * x[:, 0]))).astype(jnp.float64)
    pred = CLF.fit(x, y, key=jr.key(27))
    p = np.asarray(pred(x))
    assert ((p > 0) & (p < 1)).all()
    # log-loss of the logistic candidate out of fold, by hand with the same inner folds
    folds = np.asarray(draw_inner_folds(jr.fold_in(jr.key(27), 1), jnp.ones(N), y, 2, True))
    oof = np.zeros(N)
    for f in (0, 1):
        fit = Logistic(l2=1e-3).fit(x, y, weights=jnp.asarray(folds != f, jnp.float64))
        oof[folds == f] = np.asarray(fit(x))[folds == f]
    yn = np.asarray(y)
    ll = -np.mean(yn * np.log(oof) + (1 - yn) * np.log1p(-oof))
    np.testing.assert_allclose(float(pred.losses[0]), ll, rtol=1e-8)
    # a rare class (6 of 300 rows) is spread evenly over 3 inner folds
    rare = jnp.zeros(N).at[jnp.arange(0, 60, 10)].set(1.0)
    ids = np.asarray(draw_inner_folds(jr.key(28), jnp.ones(N), rare, 3, True))
    assert np.bincount(ids[np.asarray(rare) == 1], minlength=3).tolist() == [2, 2, 2]
    # stacked probabilities: a mixture, fitted by log-likelihood
    st = Stacked(CLF.candidates, n_folds=2).fit(x, y, key=jr.key(27))
    np.testing.assert_allclose(float(jnp.sum(st.weights)), 1.0, rtol=1e-12)
    assert float(jnp.min(st.weights)) >= 0.0
    assert float(st.combined_loss) <= float(jnp.min(st.losses)) * (1 + 1e-9)
    with pytest.raises(ValueError, match="y must be binary"):
        CLF.fit(x, x[:, 0], key=jr.key(0))


def test_bad_configurations_raise_clear_errors():
    with pytest.raises(ValueError, match="candidates of CV is empty"):
        CV(())
    with pytest.raises(ValueError, match="mix classifiers and regressors"):
        CV((Linear(), Logistic()))
    with pytest.raises(ValueError, match="n_folds must be an integer of at least 2, got 1"):
        CV((Linear(),), n_folds=1)
    with pytest.raises(ValueError, match="n_folds must be an integer of at least 2"):
        Stacked((Linear(),), n_folds=0)
    # (under the test suite's jaxtyping hook the annotation refuses it first; both name it)
    with pytest.raises((TypeError, TypeCheckError), match="candidates"):
        CV((Linear(), "lasso"))
    with pytest.raises(ValueError, match="classifier=True but the candidates are regressors"):
        CV((Linear(),), classifier=True)
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        Stacked((Linear(),), max_iter=0)
    x, y = _linear_data(jr.key(29))
    w = jnp.zeros(N).at[0].set(1.0)
    with pytest.raises(ValueError, match="needs at least n_folds=2 rows with positive weight"):
        REG.fit(x, y, key=jr.key(0), weights=w)
    # traced weights (a vmapped fold mask): the same check inside the compiled fit
    with pytest.raises(Exception, match="needs at least n_folds=2 rows with positive weight"):
        _fit_batched(LIN, x, y, w[None], jr.key(0)[None])


def test_default_grid_and_names():
    reg, clf = CV(), CV(classifier=True)
    assert not reg.is_classifier and clf.is_classifier
    assert all(c.is_classifier for c in clf.candidates)
    assert reg.names[0] == "Linear()" and len(set(reg.names)) == len(reg.names)
    assert CV((Linear(ridge=2.0),)).names == ("Linear(ridge=2)",)


def test_plr_with_cv_nuisances_recovers_theta():
    # Chernozhukov et al.'s PLR (theta = 0.5), nuisances chosen among least squares, ridge and a
    # Lasso inside every cross-fitting fold (vmapped over the folds by PLR); n = 300 gives
    # se ~ 0.06, and the estimate must lie within 3 se of the truth.
    data = jc.datasets.make_plr_CCDDHNR2018(n_obs=N, dim_x=P, alpha=0.5, key=jr.key(33))
    res = jc.dml.PLR(LIN, LIN, n_folds=3).fit(data, key=jr.key(34))
    theta, se = float(res.theta[0]), float(res.se[0])
    assert abs(theta - 0.5) < 3 * se and se < 0.1
