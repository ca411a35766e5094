"""DIDCS for repeated cross-sections: exact parity with DoubleML 0.11's `DoubleMLDIDCS` (same
data, same folds, float64), its sensitivity elements, float32 on badly scaled data, bad input."""

import doubleml
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

from . import _did_reference as dref, _reference as ref
from .test_did import RTOL, assert_sensitivity_matches, sensitivity

CELLS = ("ml_g_d0_t0", "ml_g_d0_t1", "ml_g_d1_t0", "ml_g_d1_t1")


@pytest.fixture(scope="module")
def cs_data():
    return jc.datasets.make_did_SZ2020(n_obs=400, key=jr.key(4), theta=1.0, cross_sectional=True)


@pytest.mark.parametrize("score, normalize", [(jc.dml.Observational(), False)])
def test_didcs_matches_doubleml_with_learners(cs_data, score, normalize):
    ml_m = jc.learners.Logistic() if score.needs_m else None
    name = "observational" if score.needs_m else "experimental"
    est = jc.dml.DIDCS(jc.learners.Linear(), ml_m, score=score, in_sample_normalization=normalize,
                       n_folds=3, n_rep=2)
    res = est.fit(cs_data, key=jr.key(0))
    theirs = dref.fit_did(doubleml.DoubleMLDIDCS, cs_data,
                          [ref.linear(), ref.logistic() if ml_m else None], res.folds, 3, 2,
                          score=name, in_sample_normalization=normalize)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    for learner in CELLS:
        np.testing.assert_allclose(res.predictions[learner][0].T,
                                   theirs.predictions[learner][:, :, 0], rtol=1e-7)
    assert_sensitivity_matches(sensitivity(est, cs_data, res), theirs, 1e-7)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("score", [jc.dml.Observational(), jc.dml.Experimental()])
def test_didcs_external_predictions_match_doubleml(cs_data, score, normalize):
    n, n_rep = cs_data.n_obs, 2
    rng = np.random.default_rng(3)
    ext = {name: rng.normal(size=(n, n_rep)) for name in CELLS}
    if score.needs_m:
        ext["ml_m"] = rng.uniform(0.01, 0.99, size=(n, n_rep))
    folds = jc.dml.draw_folds(jr.key(6), n, 3, n_rep)
    est = jc.dml.DIDCS(None, None, score=score, trimming=0.05, in_sample_normalization=normalize,
                       n_folds=3, n_rep=n_rep)
    res = est.fit(cs_data, key=jr.key(0), folds=folds, external_predictions=ext)
    name = "observational" if score.needs_m else "experimental"
    theirs = dref.fit_did(doubleml.DoubleMLDIDCS, cs_data,
                          [ref.linear(), ref.logistic() if score.needs_m else None], folds, 3,
                          n_rep, external={"d": ext}, score=name,
                          in_sample_normalization=normalize, clipping_threshold=0.05)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=1e-12)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=1e-12)
    np.testing.assert_allclose(res.se, theirs.se, rtol=1e-12)
    assert_sensitivity_matches(sensitivity(est, cs_data, res), theirs, 1e-12)


def test_didcs_float32_on_badly_scaled_covariates(cs_data):
    """As for DID: float32 with covariates from 1e-3 to 1e5 moves theta by far less than its
    standard error (observed ~2e-5 se; asserted 1e-3 se; the outcomes are levels ~400, so
    float32 rounding of y alone is ~1e-5 of an se)."""
    y, d, t = np.asarray(cs_data.y), np.asarray(cs_data.t), np.asarray(cs_data.time)
    x = dref.scale_columns(cs_data.x)
    est = jc.dml.DIDCS(jc.learners.Linear(), jc.learners.Logistic(),
                       in_sample_normalization=False, n_folds=3, n_rep=2)
    # same names and shapes as the parity test, so the float64 fit reuses its compiled code
    res64 = est.fit(eqx.tree_at(lambda a: a.x, cs_data, jnp.asarray(x)), key=jr.key(0))
    folds = np.asarray(res64.folds, np.int32)
    with jax.enable_x64(False):
        data32 = jc.CausalData(*(a.astype(np.float32) for a in (y, d, x)),
                               time=t.astype(np.float32), t_names=["d"])
        res32 = est.fit(data32, key=jr.key(0), folds=folds)
        assert res32.theta_rep.dtype == jnp.float32
        theta32, se32 = np.asarray(res32.theta_rep, float), np.asarray(res32.se_rep, float)
    se64 = np.asarray(res64.se_rep)
    np.testing.assert_array_less(np.abs(theta32 - np.asarray(res64.theta_rep)), 1e-3 * se64)
    np.testing.assert_allclose(se32, se64, rtol=1e-3)


def test_didcs_recovers_known_att():
    """Design 1 (linear in Z, logistic propensity): five data sets of the parity test's shape
    and settings (its compiled fit); each estimate within 4 se of theta = 1 (se ~0.3), and
    their mean within 4 se / sqrt(5)."""
    est = jc.dml.DIDCS(jc.learners.Linear(), jc.learners.Logistic(),
                       in_sample_normalization=False, n_folds=3, n_rep=2)
    thetas, ses = [], []
    for i in range(5):
        data = jc.datasets.make_did_SZ2020(n_obs=400, key=jr.key(200 + i), theta=1.0,
                                           cross_sectional=True)
        res = est.fit(data, key=jr.key(i))
        thetas.append(float(res.theta[0]))
        ses.append(float(res.se[0]))
    assert np.all(np.abs(np.array(thetas) - 1.0) < 4 * np.array(ses))
    assert abs(np.mean(thetas) - 1.0) < 4 * np.mean(ses) / np.sqrt(5)


def test_didcs_bad_input(cs_data):
    ok = (jc.learners.Linear(), jc.learners.Logistic())
    panel = jc.CausalData(cs_data.y, cs_data.t, cs_data.x)
    with pytest.raises(ValueError, match="DIDCS needs the period indicator time"):
        jc.dml.DIDCS(*ok).fit(panel, key=jr.key(0))
    with pytest.raises(ValueError, match="time must be binary"):
        jc.CausalData(cs_data.y, cs_data.t, cs_data.x, time=cs_data.time + 1.0)
    with pytest.raises(ValueError, match="t must be binary"):
        bad = jc.CausalData(cs_data.y, cs_data.t + 0.5, cs_data.x, time=cs_data.time)
        jc.dml.DIDCS(*ok).fit(bad, key=jr.key(0))
    # an empty (treatment, period) cell in a training fold names the learner that cannot be fitted
    # (the parity test's names and shapes: its compiled fit is reused)
    only_pre = eqx.tree_at(lambda d: d.time, cs_data,
                           jnp.where(cs_data.t[:, 0] > 0, 0.0, cs_data.time))
    message = r"no treated unit \(treatment 'd'.* ml_g_d1_t1 cannot be fitted"
    with pytest.raises(ValueError, match=message):
        jc.dml.DIDCS(*ok, in_sample_normalization=False, n_folds=3, n_rep=2).fit(
            only_pre, key=jr.key(0))
    with pytest.warns(UserWarning, match="ml_m is ignored"):
        jc.dml.DIDCS(*ok, score=jc.dml.Experimental())


def test_didcs_in_simulate():
    """Repeated cross-sections drawn inside the study (the period indicator traced under
    vmap); an experiment with linear outcome models, 3 replications."""
    est = jc.dml.DIDCS(jc.learners.Linear(), score=jc.dml.Experimental(), n_folds=2)

    def dgp(k):
        return jc.datasets.make_did_SZ2020(n_obs=200, dgp_type=5, theta=1.0,
                                           cross_sectional=True, key=k)

    table = jc.dml.simulate(est, dgp, key=jr.key(0), n_sims=3, truth=1.0)
    assert list(table.index) == ["d"] and int(table.loc["d", "n_failed"]) == 0
    assert abs(table.loc["d", "bias"]) < 4 * table.loc["d", "mean_se"]
