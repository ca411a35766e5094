"""IIVM: exact parity with DoubleML 0.11 (same data, same folds, float64), the sensitivity
elements' reduction to DoubleML's IRM, a known LATE, errors and a float32 run."""

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

# The propensities come from two Newton solvers (ours and scikit-learn's newton-cholesky) that
# agree to ~1e-10 relative; the LATE divides by a first stage of ~0.3, so 1e-8 holds.
RTOL = 1e-8
N, N_REP, N_FOLDS = 400, 2, 3


@pytest.fixture(scope="module")
def iivm_data():
    return jc.datasets.make_iivm_data(n_obs=N, dim_x=5, theta=0.5, alpha_x=1.0, key=jr.key(7))


def _dml_subgroups(sub):
    return {"always_takers": sub.always_takers, "never_takers": sub.never_takers}


def test_iivm_matches_doubleml_with_learners(iivm_data):
    sub = jc.dml.Subgroups()
    est = jc.dml.IIVM(jc.learners.Linear(), jc.learners.Logistic(), jc.learners.Logistic(),
                      subgroups=sub, n_folds=N_FOLDS, n_rep=N_REP)
    res = est.fit(iivm_data, key=jr.key(0))
    theirs = ref.fit(doubleml.DoubleMLIIVM, iivm_data, [ref.linear(), ref.logistic(),
                     ref.logistic()], res.folds, N_FOLDS, N_REP, subgroups=_dml_subgroups(sub))
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    for name in res.predictions:
        ours = res.predictions[name][0].T
        if name == "ml_m":  # DoubleML stores the trimmed propensities
            ours = np.clip(ours, 0.01, 0.99)
        np.testing.assert_allclose(ours, theirs.predictions[name][:, :, 0], rtol=1e-7)



def test_iivm_external_predictions_match_doubleml(iivm_data):
    # without always-takers: r(0, X) = 0 and no ml_r0
    sub = jc.dml.Subgroups(always_takers=False)
    rng = np.random.default_rng(3)
    ext = {"ml_g0": rng.normal(size=(N, N_REP)), "ml_g1": 0.5 + rng.normal(size=(N, N_REP)),
           "ml_m": rng.uniform(0.02, 0.98, size=(N, N_REP)),
           "ml_r1": rng.uniform(0.5, 1.0, size=(N, N_REP))}
    folds = jc.dml.draw_folds(jr.key(2), N, N_FOLDS, N_REP)
    res = jc.dml.IIVM(None, None, None, subgroups=sub, trimming=0.05, n_folds=N_FOLDS,
                      n_rep=N_REP).fit(iivm_data, key=jr.key(0), folds=folds,
                                       external_predictions=ext)
    assert "ml_r0" not in res.predictions
    theirs = ref.fit(doubleml.DoubleMLIIVM, iivm_data, [ref.linear(), ref.logistic(),
                     ref.logistic()], folds, N_FOLDS, N_REP, external={"d": ext},
                     trimming_threshold=0.05, subgroups=_dml_subgroups(sub))
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=1e-12)
    # DoubleML 0.11.4 normalises the instrument's weights with the treatment indicator;
    # normalize_by_treatment=True reproduces it, the default normalises with the instrument
    def normalized(by_treatment):
        est = jc.dml.IIVM(None, None, None, subgroups=sub, trimming=0.05, normalize_ipw=True,
                          normalize_by_treatment=by_treatment, n_folds=N_FOLDS, n_rep=N_REP)
        return est.fit(iivm_data, key=jr.key(0), folds=folds, external_predictions=ext)

    theirs = ref.fit(doubleml.DoubleMLIIVM, iivm_data, [ref.linear(), ref.logistic(),
                     ref.logistic()], folds, N_FOLDS, N_REP, external={"d": ext},
                     trimming_threshold=0.05, normalize_ipw=True, subgroups=_dml_subgroups(sub))
    np.testing.assert_allclose(normalized(True).theta_rep, theirs.all_coef, rtol=1e-12)
    np.testing.assert_allclose(normalized(True).se_rep, theirs.all_se, rtol=1e-12)
    by_z = normalized(False)
    assert not np.allclose(by_z.theta_rep, theirs.all_coef)
    # by hand: Hajek-normalised instrument weights
    z = np.asarray(iivm_data.z[:, 0])[:, None]
    y, d = np.asarray(iivm_data.y)[:, None], np.asarray(iivm_data.t[:, 0])[:, None]
    m = np.clip(ext["ml_m"], 0.05, 0.95)
    m = z * m * np.mean(z / m, 0) + (1 - z) * (1 - (1 - m) * np.mean((1 - z) / (1 - m), 0))
    num = ext["ml_g1"] - ext["ml_g0"] + z * (y - ext["ml_g1"]) / m \
        - (1 - z) * (y - ext["ml_g0"]) / (1 - m)
    den = ext["ml_r1"] + z * (d - ext["ml_r1"]) / m - (1 - z) * d / (1 - m)
    np.testing.assert_allclose(by_z.theta_rep[0], num.mean(0) / den.mean(0), rtol=1e-12)


def test_iivm_sensitivity_reduces_to_doubleml_irm():
    # With Z = D and no always- or never-takers, r(0, X) = 0, r(1, X) = 1, the LATE is the IRM's
    # ATE and our IIVM elements must be DoubleML's IRM elements.
    data = jc.datasets.make_irm_data(n_obs=N, dim_x=5, theta=0.5, key=jr.key(3))
    rng = np.random.default_rng(4)
    d = np.asarray(data.t[:, 0])
    ext = {"ml_g0": rng.normal(size=(N, N_REP)), "ml_g1": 0.5 + rng.normal(size=(N, N_REP)),
           "ml_m": np.clip(0.6 * d[:, None] + 0.2 + 0.15 * rng.normal(size=(N, N_REP)), 0.01,
                           0.99)}
    as_iv = jc.CausalData(data.y, data.t, data.x, z=data.t[:, 0], x_names=data.x_names,
                          t_names=("d",), z_names=("z",))
    folds = jc.dml.draw_folds(jr.key(5), N, N_FOLDS, N_REP)
    none = jc.dml.Subgroups(always_takers=False, never_takers=False)
    res = jc.dml.IIVM(None, None, None, subgroups=none, trimming=0.05, n_folds=N_FOLDS,
                      n_rep=N_REP).fit(as_iv, key=jr.key(0), folds=folds,
                                       external_predictions=ext)
    theirs = ref.fit(doubleml.DoubleMLIRM, data, [ref.linear(), ref.logistic()], folds, N_FOLDS,
                     N_REP, external={"d": ext}, trimming_threshold=0.05)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    assert_elements(res, theirs, rtol=1e-12)
    assert_analysis(res, theirs, 0.05, 0.05, 1.0, 0.95, 0.0)


def test_iivm_recovers_the_late_and_bad_input(iivm_data):
    data = iivm_data
    # the configuration of the parity test above: no new compilation
    est = jc.dml.IIVM(jc.learners.Linear(), jc.learners.Logistic(), jc.learners.Logistic(),
                      n_folds=N_FOLDS, n_rep=N_REP)
    res = est.fit(data, key=jr.key(0))
    traces = jc.dml._base.trace_count()
    est.fit(data, key=jr.key(1))  # a second fit with the same shapes does not recompile
    assert jc.dml._base.trace_count() == traces
    # the first stage is ~0.35 and se ~ 0.2 at n = 400; four standard errors keep the check
    # deterministic-safe, and the interval must exclude the biased naive contrast
    naive = float(data.y[data.t[:, 0] == 1].mean() - data.y[data.t[:, 0] == 0].mean())
    assert abs(float(res.theta[0]) - 0.5) < 4 * float(res.se[0])
    assert abs(naive - 0.5) > abs(float(res.theta[0]) - 0.5)
    with pytest.raises(ValueError, match=r"z must be binary .*for IIVM \(instrument z0\)"):
        est.fit(jc.CausalData(data.y, data.t, data.x, z=data.z[:, 0] * 2.0), key=jr.key(0))
    with pytest.raises(ValueError, match="IIVM needs a binary instrument: data.z is None"):
        est.fit(jc.CausalData(data.y, data.t, data.x), key=jr.key(0))
    with pytest.raises(ValueError, match=r"t must be binary .*for IIVM"):
        est.fit(jc.CausalData(data.y, data.t[:, 0] + 0.5, data.x, z=data.z), key=jr.key(0))
    # (under the test suite's beartype checks the annotation catches it first; both name it)
    with pytest.raises(TypeError, match="subgroups"):
        jc.dml.IIVM(None, None, None, subgroups={"always_takers": False})
    with pytest.raises(ValueError, match="trimming must be in"):
        jc.dml.IIVM(None, None, None, trimming=0.5)
    # all instrument-0 rows in one fold: its training rows have no z = 0 for ml_g0
    z = np.asarray(data.z[:, 0]).astype(int)
    folds = np.tile(np.where(z == 0, 0, 1 + np.arange(z.size) % 2), (N_REP, 1))
    with pytest.raises(ValueError, match="a training fold has no row with instrument z = 0"):
        est.fit(data, key=jr.key(0), folds=folds)


def test_iivm_float32_on_badly_scaled_data():
    # y in the 1e5 range and covariates from 1e-3 to 1e5, float32 external predictions: theta and
    # se agree with the float64 LATE computed by hand from the same predictions to 1e-4 relative
    # (float32 has 7 digits; the propensity ratios and the division by the first stage lose ~2).
    data = jc.datasets.make_iivm_data(n_obs=N, dim_x=3, theta=0.5, key=jr.key(8))
    scale = np.array([1e-3, 1.0, 1e5])
    rng = np.random.default_rng(0)
    ext = {"ml_g0": 1e5 * rng.normal(size=N), "ml_g1": 1e5 * (0.5 + rng.normal(size=N)),
           "ml_m": rng.uniform(0.1, 0.9, size=N), "ml_r0": rng.uniform(0.0, 0.4, size=N),
           "ml_r1": rng.uniform(0.5, 1.0, size=N)}
    folds = np.asarray(jc.dml.draw_folds(jr.key(2), N, N_FOLDS, 1))
    y, d, z = 1e5 * np.asarray(data.y), np.asarray(data.t[:, 0]), np.asarray(data.z[:, 0])
    m = ext["ml_m"]
    psi_b = ext["ml_g1"] - ext["ml_g0"] + z * (y - ext["ml_g1"]) / m \
        - (1 - z) * (y - ext["ml_g0"]) / (1 - m)
    psi_a = -(ext["ml_r1"] - ext["ml_r0"] + z * (d - ext["ml_r1"]) / m
              - (1 - z) * (d - ext["ml_r0"]) / (1 - m))
    theta = -psi_b.mean() / psi_a.mean()
    se = np.sqrt(np.mean((psi_a * theta + psi_b) ** 2) / (N * psi_a.mean() ** 2))
    with jax.enable_x64(False):
        f32 = jc.CausalData(y.astype(np.float32), d.astype(np.float32),
                            (np.asarray(data.x) * scale).astype(np.float32),
                            z=z.astype(np.float32))
        res = jc.dml.IIVM(None, None, None, n_folds=N_FOLDS).fit(
            f32, key=jr.key(0), folds=folds,
            external_predictions={k: v.astype(np.float32) for k, v in ext.items()})
        assert res.theta_rep.dtype == jnp.float32
        sens = res.sensitivity()
        assert np.isfinite(np.asarray(sens.theta_lower)).all()
    np.testing.assert_allclose(res.theta[0], theta, rtol=1e-4)
    np.testing.assert_allclose(res.se[0], se, rtol=1e-4)


@pytest.mark.slow
def test_iivm_coverage_study():
    # 200 data sets (n = 2000): the 95% intervals of the LATE cover 0.5; 0.91 is about three
    # binomial standard errors below 0.95.
    est = jc.dml.IIVM(jc.learners.Linear(), jc.learners.Logistic(), jc.learners.Logistic(),
                      n_folds=N_FOLDS)
    table = jc.dml.simulate(
        est, lambda k: jc.datasets.make_iivm_data(n_obs=2000, dim_x=5, theta=0.5, key=k),
        key=jr.key(0), n_sims=200, truth=0.5,
    )
    assert float(table["coverage"].iloc[0]) > 0.91
    assert int(table["n_failed"].iloc[0]) == 0
