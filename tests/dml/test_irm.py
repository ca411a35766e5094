"""IRM: exact parity with DoubleML 0.11 (same data, same folds, float64)."""

import doubleml
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

from . import _reference as ref

# With learners, the propensities come from two Newton solvers stopped at tiny tolerances (ours and
# scikit-learn's newton-cholesky), which agree to ~1e-10 relative; external predictions are exact.
RTOL = 1e-8


@pytest.fixture(scope="module")
def irm_data():
    return jc.datasets.make_irm_data(n_obs=400, dim_x=5, theta=0.5, key=jr.key(3))


SCORES = [(jc.dml.ATE(), "ATE"), (jc.dml.ATTE(), "ATTE")]


@pytest.mark.parametrize(
    "score, name, normalize", [(jc.dml.ATE(), "ATE", False), (jc.dml.ATTE(), "ATTE", True)]
)
def test_irm_matches_doubleml_with_learners(irm_data, score, name, normalize):
    est = jc.dml.IRM(jc.learners.Linear(), jc.learners.Logistic(), score=score, n_folds=3,
                     n_rep=2, normalize_ipw=normalize)
    res = est.fit(irm_data, key=jr.key(0))
    theirs = ref.fit(doubleml.DoubleMLIRM, irm_data, [ref.linear(), ref.logistic()], res.folds,
                     3, 2, score=name, normalize_ipw=normalize)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    for name_ in ("ml_g0", "ml_g1", "ml_m"):
        ours = res.predictions[name_][0].T
        if name_ == "ml_m":  # DoubleML stores the trimmed propensities, we the learner's
            ours = np.clip(ours, 0.01, 0.99)
        np.testing.assert_allclose(ours, theirs.predictions[name_][:, :, 0], rtol=1e-7)


@pytest.mark.parametrize("score, name", SCORES)
def test_irm_external_predictions_match_doubleml(irm_data, score, name):
    n, n_rep = irm_data.n_obs, 3
    rng = np.random.default_rng(1)
    ext = {"ml_g0": rng.normal(size=(n, n_rep)), "ml_g1": rng.normal(size=(n, n_rep)),
           # some propensities outside [0.05, 0.95] so that the trimming matters
           "ml_m": rng.uniform(0.01, 0.99, size=(n, n_rep))}
    folds = jc.dml.draw_folds(jr.key(5), n, 4, n_rep)
    est = jc.dml.IRM(None, None, score=score, trimming=0.05, n_folds=4, n_rep=n_rep)
    res = est.fit(irm_data, key=jr.key(0), folds=folds, external_predictions=ext)
    theirs = ref.fit(doubleml.DoubleMLIRM, irm_data, [ref.linear(), ref.logistic()], folds, 4,
                     n_rep, external={"d": ext}, score=name, trimming_threshold=0.05)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=1e-12)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=1e-12)
    np.testing.assert_allclose(res.se, theirs.se, rtol=1e-12)


@pytest.mark.parametrize("model_name", ["IRM", "DIDCS"])
def test_each_network_nuisance_is_its_own_crossfit_with_the_fold_keys(model_name):
    """IRM (g0, g1, m) and DIDCS (four outcome groups, m) cross-fit each nuisance apart with the
    same keys per fold (common random numbers): a nuisance's out-of-fold predictions do not
    depend on which other nuisances are fitted beside it, so replacing some by their own
    external predictions leaves the others bit for bit unchanged."""
    mlp = jc.learners.MLP(width=8, max_steps=30, eval_every=5)
    clf = jc.learners.MLP(width=8, max_steps=30, eval_every=5, classifier=True)
    if model_name == "IRM":
        model = jc.dml.IRM(mlp, clf, n_folds=3, n_rep=2)
        data = jc.datasets.make_irm_data(n_obs=200, dim_x=3, theta=0.5, key=jr.key(5))
    else:
        model = jc.dml.DIDCS(mlp, clf, n_folds=3, n_rep=2)
        data = jc.datasets.make_did_SZ2020(n_obs=240, cross_sectional=True, key=jr.key(5))
    full = model.fit(data, key=jr.key(1))
    names = list(full.predictions)
    given = {name: np.asarray(full.predictions[name][0]).T for name in names[::2]}
    part = model.fit(data, key=jr.key(1), external_predictions=given)
    for name in names:
        np.testing.assert_array_equal(np.asarray(part.predictions[name]),
                                      np.asarray(full.predictions[name]), err_msg=name)
    np.testing.assert_allclose(np.asarray(part.theta), np.asarray(full.theta), rtol=1e-12)


def test_irm_float32_on_badly_scaled_covariates(irm_data):
    """The float64 fit repeated in float32 (JAX's default) with the covariates scaled from 1e-3
    to 1e5, on the same folds: the learners standardise inside the fit, so theta moves by far
    less than its standard error (observed 3e-6 se; asserted 1e-3 se) and the se by less than
    1e-3 relative (observed 3e-6)."""
    x = np.asarray(irm_data.x) * np.logspace(-3, 5, irm_data.x.shape[-1])
    y, d = np.asarray(irm_data.y), np.asarray(irm_data.t)
    est = jc.dml.IRM(jc.learners.Linear(), jc.learners.Logistic(), n_folds=3, n_rep=2)
    res64 = est.fit(jc.CausalData(y, d, x), key=jr.key(0))
    folds = np.asarray(res64.folds, np.int32)
    with jax.enable_x64(False):
        data32 = jc.CausalData(y.astype(np.float32), d.astype(np.float32), x.astype(np.float32))
        res32 = est.fit(data32, key=jr.key(0), folds=folds)
        assert res32.theta_rep.dtype == jnp.float32
        theta32, se32 = np.asarray(res32.theta_rep, float), np.asarray(res32.se_rep, float)
    se64 = np.asarray(res64.se_rep)
    np.testing.assert_array_less(np.abs(theta32 - np.asarray(res64.theta_rep)), 1e-3 * se64)
    np.testing.assert_allclose(se32, se64, rtol=1e-3)
