"""APO and APOS: exact parity with DoubleML 0.11 (estimates, sensitivity, causal contrasts),
known potential outcomes, errors, simulate and a float32 run."""

import warnings

import doubleml
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

from . import _reference as ref
from .test_sensitivity import assert_analysis, assert_elements

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

RTOL = 1e-8  # Newton-solved logistic propensities agree to ~1e-10 with scikit-learn's
N, N_FOLDS, N_REP = 400, 3, 2


@pytest.fixture(scope="module")
def apo_data():
    return jc.datasets.make_apo_data(n_obs=N, dim_x=4, n_levels=3, effect=0.5, key=jr.key(1))


def test_apo_matches_doubleml(apo_data):
    est = jc.dml.APO(jc.learners.Linear(), jc.learners.Logistic(), treatment_level=1,
                     n_folds=N_FOLDS, n_rep=N_REP)
    res = est.fit(apo_data, key=jr.key(0))
    theirs = ref.fit(doubleml.DoubleMLAPO, apo_data, [ref.linear(), ref.logistic()], res.folds,
                     N_FOLDS, N_REP, treatment_level=1)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    for name in ("ml_g_d_lvl0", "ml_g_d_lvl1"):
        np.testing.assert_allclose(res.predictions[name][0].T, theirs.predictions[name][:, :, 0],
                                   rtol=1e-7)
    assert_elements(res, theirs)
    assert_analysis(res, theirs, 0.03, 0.03, 1.0, 0.95, 0.5)


def test_apo_external_predictions_and_normalisation_match_doubleml(apo_data):
    rng = np.random.default_rng(0)
    ext = {"ml_g_d_lvl0": rng.normal(size=(N, N_REP)),
           "ml_g_d_lvl1": 0.7 + rng.normal(size=(N, N_REP)),
           "ml_m": rng.uniform(0.05, 0.7, size=(N, N_REP))}
    folds = jc.dml.draw_folds(jr.key(3), N, N_FOLDS, N_REP)
    est = jc.dml.APO(None, None, treatment_level=2, trimming=0.1, normalize_ipw=True,
                     n_folds=N_FOLDS, n_rep=N_REP)
    res = est.fit(apo_data, key=jr.key(0), folds=folds, external_predictions=ext)
    theirs = ref.fit(doubleml.DoubleMLAPO, apo_data, [ref.linear(), ref.logistic()], folds,
                     N_FOLDS, N_REP, external={"d": ext}, treatment_level=2,
                     trimming_threshold=0.1, normalize_ipw=True)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=1e-12)
    assert_elements(res, theirs, rtol=1e-12)


def test_apos_and_causal_contrasts_match_doubleml(apo_data):
    est = jc.dml.APOS(jc.learners.Linear(), jc.learners.Logistic(), treatment_levels=[0, 1, 2],
                      n_folds=N_FOLDS, n_rep=N_REP)
    res = est.fit(apo_data, key=jr.key(0))
    assert res.t_names == ("0", "1", "2") and res.levels == (0.0, 1.0, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = doubleml.DoubleMLAPOS(ref.dml_data(apo_data), ref.linear(), ref.logistic(),
                                       treatment_levels=[0, 1, 2], n_folds=N_FOLDS, n_rep=N_REP,
                                       draw_sample_splitting=False)
        theirs.set_sample_splitting(ref.splits(res.folds, N_FOLDS))
        theirs.fit()
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.confint(0.9), theirs.confint(level=0.9).to_numpy(), rtol=RTOL)
    assert_analysis(res, theirs, 0.04, 0.02, 1.0, 0.95, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = theirs.sensitivity_benchmark(["X1"])
    ours = res.sensitivity_benchmark(apo_data, benchmarking_set=["X1"])
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-7)
    # contrasts against two reference levels, as DoubleML orders them
    contrast = res.causal_contrast(reference_levels=[0, 1])
    expected = theirs.causal_contrast([0, 1])
    assert contrast.t_names == ("1 vs 0", "2 vs 0", "2 vs 1")
    np.testing.assert_allclose(contrast.theta_rep, expected.all_thetas, rtol=RTOL)
    np.testing.assert_allclose(contrast.se_rep, expected.all_ses, rtol=RTOL)
    np.testing.assert_allclose(contrast.confint(), expected.confint().to_numpy(), rtol=RTOL)
    assert_analysis(contrast, expected, 0.05, 0.02, 0.8, 0.9, 0.6)
    with pytest.raises(ValueError, match=r"reference_levels \['5'\] are not treatment levels"):
        res.causal_contrast(reference_levels=5)
    with pytest.raises(ValueError, match="causal_contrast needs the result of a jc.dml.APOS"):
        contrast.causal_contrast(reference_levels=0)
    # the contrasts' bootstrap is DoubleML's framework bootstrap on the scaled score difference
    boot = contrast.bootstrap(n_rep_boot=200, key=jr.key(1))
    assert boot.t_stats.shape == (200, 3, N_REP)


def test_apo_errors_name_the_level(apo_data):
    est = jc.dml.APO(jc.learners.Linear(), jc.learners.Logistic(), treatment_level=3,
                     n_folds=N_FOLDS, n_rep=N_REP)
    with pytest.raises(ValueError, match=r"treatment_level 3 does not occur in the treatment t"):
        est.fit(apo_data, key=jr.key(0))
    with pytest.raises(ValueError, match=r"treatment_levels 7 does not occur"):
        jc.dml.APOS(None, None, treatment_levels=[0, 7]).fit(apo_data, key=jr.key(0))
    # every row of level 2 in fold 0: the training rows of fold 0 never see level 2
    d = np.asarray(apo_data.t[:, 0]).astype(int)
    folds = np.tile(np.where(d == 2, 0, 1 + np.arange(d.size) % 2), (N_REP, 1))
    est = jc.dml.APO(jc.learners.Linear(), jc.learners.Logistic(), treatment_level=2,
                     n_folds=N_FOLDS, n_rep=N_REP)
    with pytest.raises(ValueError, match=r"treatment_level 2 does not occur in the training rows "
                                         r"\(treatment 'd', repetition 0, fold 0\)"):
        est.fit(apo_data, key=jr.key(0), folds=folds)
    with pytest.raises(ValueError, match="APOS takes no external_predictions"):
        jc.dml.APOS(None, None, treatment_levels=[0, 1]).fit(
            apo_data, key=jr.key(0), external_predictions={"ml_m": np.full(N, 0.5)})


@pytest.mark.slow
def test_apos_coverage_study():
    # 200 replications: the 95% intervals of the contrast "1 vs 0" (truth 0.5) cover with
    # probability 0.95; 0.91 is about three binomial standard errors below.
    est = jc.dml.APOS(jc.learners.Linear(), jc.learners.Logistic(), treatment_levels=[0, 1, 2],
                      n_folds=N_FOLDS)

    def dgp(key):
        return jc.datasets.make_apo_data(n_obs=1000, dim_x=4, key=key), jnp.array([0.25, 0.75,
                                                                                 1.25])

    table = jc.dml.simulate(est, dgp, key=jr.key(0), n_sims=200)
    assert (table["coverage"] > 0.91).all()


def test_apos_recovers_potential_outcomes_with_simulate():
    # A small study through simulate: the APOs of the generator are 0.25 + 0.5 * level; the mean
    # over 3 replications of n = 400 has sd ~ 0.12 / sqrt(3) ~ 0.07, so 0.25 is a safe margin
    # (the slow study below checks coverage over 200).
    est = jc.dml.APOS(jc.learners.Linear(), jc.learners.Logistic(), treatment_levels=[0, 1, 2],
                      n_folds=N_FOLDS, n_rep=N_REP)
    truth = jnp.array([0.25, 0.75, 1.25])
    table = jc.dml.simulate(
        est, lambda k: jc.datasets.make_apo_data(n_obs=N, dim_x=4, key=k), key=jr.key(0),
        n_sims=3, truth=truth,
    )
    assert list(table.index) == ["0", "1", "2"]
    assert (table["n_failed"] == 0).all()
    assert (np.abs(table["bias"]) < 0.25).all()


def test_apo_float32_on_badly_scaled_data(apo_data):
    # y in the 1e5 range, covariates from 1e-3 to 1e5, float32 external predictions: the APO and
    # its se agree with the float64 values computed by hand from the same predictions to 1e-5.
    scale = np.array([1e-3, 1.0, 1e3, 1e5])
    rng = np.random.default_rng(2)
    ext = {"ml_g_d_lvl0": 1e5 * rng.normal(size=N), "ml_g_d_lvl1": 1e5 * rng.normal(size=N),
           "ml_m": rng.uniform(0.1, 0.6, size=N)}
    folds = np.asarray(jc.dml.draw_folds(jr.key(2), N, N_FOLDS, 1))
    y = 1e5 * np.asarray(apo_data.y)
    treated = (np.asarray(apo_data.t[:, 0]) == 1).astype(float)
    psi_b = ext["ml_g_d_lvl1"] + treated * (y - ext["ml_g_d_lvl1"]) / ext["ml_m"]
    theta = psi_b.mean()
    se = np.sqrt(np.mean((psi_b - theta) ** 2) / N)
    with jax.enable_x64(False):
        data = jc.CausalData(y.astype(np.float32), np.asarray(apo_data.t, np.float32),
                             (np.asarray(apo_data.x) * scale).astype(np.float32))
        res = jc.dml.APO(None, None, treatment_level=1, n_folds=N_FOLDS).fit(
            data, key=jr.key(0), folds=folds,
            external_predictions={k: v.astype(np.float32) for k, v in ext.items()})
        assert res.theta_rep.dtype == jnp.float32
        assert np.isfinite(np.asarray(res.sensitivity(cf_y=0.05, cf_d=0.05).ci_lower)).all()
    np.testing.assert_allclose(res.theta[0], theta, rtol=1e-5)
    np.testing.assert_allclose(res.se[0], se, rtol=1e-5)
