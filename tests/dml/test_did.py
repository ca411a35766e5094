"""DID for two-period panels: exact parity with DoubleML 0.11's `DoubleMLDID` (same data, same
folds, float64), its sensitivity elements, float32 on badly scaled data, and bad input."""

import doubleml
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc
from jaxcausal.dml._base import Nuisance, trace_count

from . import _did_reference as dref, _reference as ref

# With learners the propensities come from two Newton solvers stopped at tiny tolerances (ours
# and scikit-learn's newton-cholesky), which agree to ~1e-10 relative; external predictions are
# exact up to summation order.
RTOL = 1e-8
SENSITIVITY = ("sigma2", "nu2", "psi_sigma2", "psi_nu2", "riesz_rep")


@pytest.fixture(scope="module")
def did_data():
    return jc.datasets.make_did_SZ2020(n_obs=300, key=jr.key(3), theta=1.0)


def sensitivity(est, data, res):
    """The model's sensitivity elements from a fitted result (what the compiled fit stores)."""
    nuisance = Nuisance(psi_a=res.psi_a, psi_b=res.psi_b, predictions=res.predictions,
                        losses=res.losses, checks=res.checks)
    return est.sensitivity_elements(data, nuisance, res.theta_rep)


def assert_sensitivity_matches(ours, theirs, rtol):
    """DoubleML stores `(1 or n_obs, n_rep, n_treatments)`; ours `(k, n_rep[, n_obs])`.

    Where nu2 <= 0 DoubleML re-estimates it from the Riesz representer after the fit (its
    `_validate_sensitivity_elements`), for all repetitions of a treatment when any repetition
    has nu2 <= 0; the sensitivity framework does that for us, so the raw elements of the model
    are compared after the same rule.
    """
    ours = dict(ours)
    bad = np.broadcast_to((np.asarray(ours["nu2"]) <= 0).any(axis=-1, keepdims=True),
                          np.shape(ours["nu2"]))
    rr = np.asarray(ours["riesz_rep"])
    ours["nu2"] = np.where(bad, np.mean(rr**2, axis=-1), ours["nu2"])
    ours["psi_nu2"] = np.where(bad[..., None], rr**2, ours["psi_nu2"])
    for name in SENSITIVITY:
        mine = np.asarray(ours[name])
        mine = mine[0].T if mine.ndim == 3 else mine
        np.testing.assert_allclose(mine, theirs.sensitivity_elements[name][:, :, 0], rtol=rtol,
                                   atol=rtol * np.abs(mine).max(), err_msg=name)


def score_case(score):
    return (jc.learners.Logistic() if score.needs_m else None,
            "observational" if score.needs_m else "experimental")


# With learners one case (the experimental score differs only in the score, which the
# external-predictions cases check exactly for all four score/normalisation pairs).
@pytest.mark.parametrize("score, normalize", [(jc.dml.Observational(), True)])
def test_did_matches_doubleml_with_learners(did_data, score, normalize):
    ml_m, name = score_case(score)
    est = jc.dml.DID(jc.learners.Linear(), ml_m, score=score, in_sample_normalization=normalize,
                     n_folds=3, n_rep=2)
    res = est.fit(did_data, key=jr.key(0))
    theirs = dref.fit_did(doubleml.DoubleMLDID, did_data,
                          [ref.linear(), ref.logistic() if ml_m else None], res.folds, 3, 2,
                          score=name, in_sample_normalization=normalize)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    for learner in est.learner_names:
        ours = np.asarray(res.predictions[learner][0].T)
        if learner == "ml_m":  # DoubleML stores the clipped propensities, we the learner's
            ours = np.clip(ours, 0.01, 0.99)
        np.testing.assert_allclose(ours, theirs.predictions[learner][:, :, 0], rtol=1e-7)
    assert_sensitivity_matches(sensitivity(est, did_data, res), theirs, 1e-7)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("score", [jc.dml.Observational(), jc.dml.Experimental()])
def test_did_external_predictions_match_doubleml(did_data, score, normalize):
    n, n_rep = did_data.n_obs, 2
    rng = np.random.default_rng(1)
    ext = {"ml_g0": rng.normal(size=(n, n_rep)), "ml_g1": rng.normal(size=(n, n_rep))}
    if score.needs_m:  # some propensities outside [0.05, 0.95] so that the trimming matters
        ext["ml_m"] = rng.uniform(0.01, 0.99, size=(n, n_rep))
    folds = jc.dml.draw_folds(jr.key(5), n, 4, n_rep)
    est = jc.dml.DID(None, None, score=score, trimming=0.05, in_sample_normalization=normalize,
                     n_folds=4, n_rep=n_rep)
    res = est.fit(did_data, key=jr.key(0), folds=folds, external_predictions=ext)
    ml_m, name = score_case(score)
    ml_m = ref.logistic() if ml_m else None
    theirs = dref.fit_did(doubleml.DoubleMLDID, did_data, [ref.linear(), ml_m], folds, 4, n_rep,
                          external={"d": ext}, score=name, in_sample_normalization=normalize,
                          clipping_threshold=0.05)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=1e-12)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=1e-12)
    np.testing.assert_allclose(res.se, theirs.se, rtol=1e-12)
    assert_sensitivity_matches(sensitivity(est, did_data, res), theirs, 1e-12)


def test_did_float32_on_badly_scaled_covariates(did_data):
    """The float64 parity fit repeated in float32 (as a user's default JAX runs it) with the
    covariates scaled from 1e-3 to 1e5: the learners standardise inside the fit, so theta moves
    by far less than its standard error (observed ~3e-6 se; asserted 1e-3 se)."""
    y, d, x = np.asarray(did_data.y), np.asarray(did_data.t), dref.scale_columns(did_data.x)
    est = jc.dml.DID(jc.learners.Linear(), jc.learners.Logistic(), n_folds=3, n_rep=2)
    # same names and shapes as the parity test, so the float64 fit reuses its compiled code
    res64 = est.fit(eqx.tree_at(lambda a: a.x, did_data, jnp.asarray(x)), key=jr.key(0))
    folds = np.asarray(res64.folds, np.int32)
    with jax.enable_x64(False):
        data32 = jc.CausalData(y.astype(np.float32), d.astype(np.float32), x.astype(np.float32),
                               t_names=["d"])
        res32 = est.fit(data32, key=jr.key(0), folds=folds)
        assert res32.theta_rep.dtype == jnp.float32
        theta32, se32 = np.asarray(res32.theta_rep, float), np.asarray(res32.se_rep, float)
    se64 = np.asarray(res64.se_rep)
    np.testing.assert_array_less(np.abs(theta32 - np.asarray(res64.theta_rep)), 1e-3 * se64)
    np.testing.assert_allclose(se32, se64, rtol=1e-3)


def test_did_recovers_known_att():
    """Design 1 of Sant'Anna and Zhao is linear in Z with a logistic propensity, so linear
    learners are correctly specified. Five data sets of the parity test's shape and settings
    (reusing its compiled fit): every estimate within 4 se of theta = 1 (se ~0.15), and their
    mean within 4 se / sqrt(5)."""
    est = jc.dml.DID(jc.learners.Linear(), jc.learners.Logistic(), n_folds=3, n_rep=2)
    thetas, ses = [], []
    for i in range(5):
        data = jc.datasets.make_did_SZ2020(n_obs=300, key=jr.key(100 + i), theta=1.0)
        res = est.fit(data, key=jr.key(i))
        thetas.append(float(res.theta[0]))
        ses.append(float(res.se[0]))
    assert np.all(np.abs(np.array(thetas) - 1.0) < 4 * np.array(ses))
    assert abs(np.mean(thetas) - 1.0) < 4 * np.mean(ses) / np.sqrt(5)
    table = res.summary()
    assert list(table.index) == ["d"] and "97.5 %" in table.columns


def test_did_second_fit_does_not_recompile(did_data):
    n = did_data.n_obs
    rng = np.random.default_rng(2)
    ext = {"ml_g0": rng.normal(size=(n, 2)), "ml_g1": rng.normal(size=(n, 2)),
           "ml_m": rng.uniform(0.2, 0.8, size=(n, 2))}
    # the settings of an external-predictions parity case: compiled there already
    est = jc.dml.DID(None, None, trimming=0.05, n_folds=4, n_rep=2)
    folds = jc.dml.draw_folds(jr.key(5), n, 4, 2)
    est.fit(did_data, key=jr.key(0), folds=folds, external_predictions=ext)
    before = trace_count()
    ext["ml_g0"] = ext["ml_g0"] + 1.0
    est.fit(did_data, key=jr.key(1), folds=folds, external_predictions=ext)
    assert trace_count() == before


def test_did_bad_input(did_data):
    x = did_data.x
    ok = (jc.learners.Linear(), jc.learners.Logistic())
    with pytest.raises(ValueError, match="t must be binary"):
        jc.dml.DID(*ok).fit(jc.CausalData(did_data.y, did_data.t * 2.0, x), key=jr.key(0))
    with pytest.raises(ValueError, match="exactly one binary treatment"):
        two = jnp.stack([did_data.t[:, 0]] * 2, axis=1)
        jc.dml.DID(*ok).fit(jc.CausalData(did_data.y, two, x), key=jr.key(0))
    with pytest.raises(ValueError, match="period indicator time"):
        cs = jc.CausalData(did_data.y, did_data.t, x, time=did_data.t[:, 0])
        jc.dml.DID(*ok).fit(cs, key=jr.key(0))
    with pytest.raises(ValueError, match="takes no instruments"):
        jc.dml.DID(*ok).fit(jc.CausalData(did_data.y, did_data.t, x, z=2.0 * x[:, 0]),
                            key=jr.key(0))
    # (under the suite's beartype checks the annotation catches these first; both name the field)
    with pytest.raises(TypeError, match="score"):
        jc.dml.DID(*ok, score="observational")
    with pytest.raises(ValueError, match="trimming must be in"):
        jc.dml.DID(*ok, trimming=0.5)
    with pytest.raises(TypeError, match="in_sample_normalization"):
        jc.dml.DID(*ok, in_sample_normalization=1)
    with pytest.warns(UserWarning, match="ml_m is ignored"):
        jc.dml.DID(*ok, score=jc.dml.Experimental())
    with pytest.raises(ValueError, match="ml_m is None"):
        jc.dml.DID(jc.learners.Linear(), None).fit(did_data, key=jr.key(0))
