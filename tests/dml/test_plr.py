"""PLR: exact parity with DoubleML 0.11 (same data, same folds, float64)."""

import doubleml
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

from . import _reference as ref

# DoubleML's confint/summary call pandas' set_index(inplace=True), deprecated in pandas 3.1.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

RTOL = 1e-8  # both sides solve the same least-squares problems; only rounding differs


@pytest.fixture(scope="module")
def plr_data():
    return jc.datasets.make_plr_CCDDHNR2018(n_obs=300, dim_x=6, key=jr.key(11))


def _learners(score):
    lin = jc.learners.Linear()
    return jc.dml.PLR(lin, lin, lin if isinstance(score, jc.dml.IVType) else None, score=score,
                      n_folds=4, n_rep=3)


@pytest.mark.parametrize("score, name", [(jc.dml.PartiallingOut(), "partialling out"),
                                         (jc.dml.IVType(), "IV-type")])
def test_plr_matches_doubleml_with_linear_learners(plr_data, score, name):
    res = _learners(score).fit(plr_data, key=jr.key(0))
    learners = [ref.linear(), ref.linear()] + ([ref.linear()] if name == "IV-type" else [])
    theirs = ref.fit(doubleml.DoubleMLPLR, plr_data, learners, res.folds, 4, 3, score=name)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    np.testing.assert_allclose(res.pval, theirs.pval, rtol=1e-7, atol=1e-300)
    np.testing.assert_allclose(res.confint(0.9), theirs.confint(level=0.9).to_numpy(), rtol=RTOL)
    pred = theirs.predictions
    np.testing.assert_allclose(res.predictions["ml_m"][0].T, pred["ml_m"][:, :, 0], rtol=1e-7)


def test_plr_external_predictions_match_doubleml(plr_data):
    n, n_rep = plr_data.n_obs, 2
    rng = np.random.default_rng(0)
    ext = {"ml_l": rng.normal(size=(n, n_rep)), "ml_m": rng.normal(size=(n, n_rep)),
           "ml_g": rng.normal(size=(n, n_rep))}
    folds = jc.dml.draw_folds(jr.key(1), n, 5, n_rep)
    est = jc.dml.PLR(None, None, score=jc.dml.IVType(), n_rep=n_rep)
    res = est.fit(plr_data, key=jr.key(0), folds=folds, external_predictions=ext)
    theirs = ref.fit(doubleml.DoubleMLPLR, plr_data, [ref.linear(), ref.linear(), ref.linear()],
                     folds, 5, n_rep, external={"d": ext}, score="IV-type")
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)


def test_plr_two_treatments_match_doubleml(plr_data, getkey):
    # A second treatment: for each, the other one joins the covariates (DoubleML's default).
    d2 = plr_data.x[:, 1] + jr.normal(getkey(), (plr_data.n_obs,))
    y = plr_data.y - 0.3 * d2
    data = jc.CausalData(y, jnp.stack([plr_data.t[:, 0], d2], 1), plr_data.x,
                         t_names=("d", "d2"), x_names=plr_data.x_names)
    res = jc.dml.PLR(jc.learners.Linear(), jc.learners.Linear(), n_folds=3, n_rep=2).fit(
        data, key=getkey())
    theirs = ref.fit(doubleml.DoubleMLPLR, data, [ref.linear(), ref.linear()], res.folds, 3, 2)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    summary = res.summary()
    assert list(summary.index) == ["d", "d2"]
    assert list(summary.columns) == list(theirs.summary.columns)
    np.testing.assert_allclose(summary[["coef", "std err", "t"]].to_numpy(),
                               theirs.summary[["coef", "std err", "t"]].to_numpy(), rtol=RTOL)


def test_plr_classifier_for_binary_treatment_matches_doubleml(getkey):
    data = jc.datasets.make_irm_data(n_obs=300, dim_x=4, theta=0.5, key=getkey())
    res = jc.dml.PLR(jc.learners.Linear(), jc.learners.Logistic(), n_folds=3).fit(
        data, key=getkey())
    theirs = ref.fit(doubleml.DoubleMLPLR, data, [ref.linear(), ref.logistic()], res.folds, 3, 1)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
