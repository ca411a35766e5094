"""IRM: exact parity with DoubleML 0.11 (same data, same folds, float64)."""

import doubleml
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
