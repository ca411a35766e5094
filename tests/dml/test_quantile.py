"""PQ, QTE, LPQ and CVaR: exact parity with DoubleML 0.11 on identical splits (float64), float32
on badly scaled data, bad input, transforms, and coverage on a generator with known effects.

What is compared. jaxcausal gets DoubleML's outer folds and, as `inner_folds`, the split of every
training fold that DoubleML draws (`train_test_split(random_state=42)` plus an unshuffled
`StratifiedKFold`, replayed by `_quantile_reference.inner_folds`), and the same deterministic
learners (logistic regressions by Newton's method to tiny tolerances, least squares).

DoubleML's preliminary estimate minimises |step score| with Brent's method; inside a flat stretch
of the step function the direction of that search is decided by the last bits of the score values
(NumPy's summation order over DoubleML's shuffled rows; see `jc.dml.BrentMinimum`), so the point
it returns, and through it a few outcome-learner targets or the CVaR's tail target, is not
reproducible from the same numbers summed in another order. The default-run parity tests
therefore replace that one step on both sides by the root of the same step score
(`scipy.optimize.brentq` patched into DoubleML, `preliminary=jc.dml.BrentRoot()` here), which is
insensitive to rounding; everything else (propensity cross-fits in the first halves, normalised
and clipped weights, outcome learners on the second halves, DoubleML's bracket search, the root
of the final score, the kernel density, the standard errors, the difference of scaled scores for
QTE, the aggregation over repetitions) is compared as DoubleML runs it, to 1e-8. Slow tests run
DoubleML unpatched against jaxcausal's default `BrentMinimum()` replay, which matches on the data
below. One DoubleML quirk is replayed in both modes: PQ/LPQ start the preliminary solve of
repetition r > 0 from the mean preliminary estimate of repetition r - 1.
"""

import warnings

import doubleml
import doubleml.irm.cvar
import doubleml.irm.lpq
import doubleml.irm.pq
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.optimize import brentq
from sklearn.linear_model import LinearRegression

import jaxcausal as jc
from jaxcausal.dml._quantile import quantile_trace_count

from . import _quantile_reference as qref, _reference as ref

RTOL = 1e-8
K, R = 3, 2
QS = (0.3, 0.5, 0.7)
DGP = jc.datasets.LocationScaleQTE(dim_x=4)


@pytest.fixture(scope="module")
def qdata():
    return DGP.sample(500, key=jr.key(2))


@pytest.fixture(scope="module")
def split(qdata):
    folds = jc.dml.draw_folds(jr.key(1), qdata.n_obs, K, R)
    return folds, qref.inner_folds(folds, qref.pq_strata(qdata), K)


@pytest.fixture(scope="module")
def ivdata():
    return DGP.sample_iv(800, key=jr.key(4))


@pytest.fixture(scope="module")
def ivsplit(ivdata):
    folds = jc.dml.draw_folds(jr.key(5), ivdata.n_obs, K, R)
    return folds, qref.inner_folds(folds, qref.lpq_strata(ivdata), K)


def _logit():
    return jc.learners.Logistic()


ROOT = jc.dml.BrentRoot()


@pytest.fixture
def root_prelim(monkeypatch):
    """DoubleML's preliminary solve replaced by the root of its score (see the docstring)."""

    def solve(ipw_score, bracket_guess):
        return brentq(ipw_score, *bracket_guess)

    for module in (doubleml.irm.pq, doubleml.irm.lpq, doubleml.irm.cvar):
        monkeypatch.setattr(module, "_solve_ipw_score", solve)


def _assert_same(res, theirs, rtol=RTOL):
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=rtol)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=rtol)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=rtol)
    np.testing.assert_allclose(res.se, theirs.se, rtol=rtol)


@pytest.mark.slow  # DoubleML unpatched against the BrentMinimum() replay
def test_pq_matches_doubleml(qdata, split):
    folds, inner = split
    est = jc.dml.PQ(_logit(), _logit(), quantile=0.4, treatment=0, n_folds=K, n_rep=R)
    res = est.fit(qdata, key=jr.key(0), folds=folds, inner_folds=inner)
    theirs = ref.fit(doubleml.DoubleMLPQ, qdata, [ref.logistic(), ref.logistic()], folds, K, R,
                     treatment=0, quantile=0.4)
    _assert_same(res, theirs)
    # the outcome learner's predictions show that the preliminary estimates agree fold by fold
    np.testing.assert_allclose(res.predictions["ml_g"][0].T, theirs.predictions["ml_g"][:, :, 0],
                               rtol=1e-7, atol=1e-10)
    # DoubleML stores the clipped propensities, we the learner's
    np.testing.assert_allclose(np.clip(res.predictions["ml_m"][0].T, 0.01, 0.99),
                               theirs.predictions["ml_m"][:, :, 0], rtol=1e-7)


@pytest.mark.parametrize("prelim", [
    pytest.param("root", id="root"),
    pytest.param("brent", id="brent-replay", marks=pytest.mark.slow),
])
def test_qte_matches_doubleml(qdata, split, prelim, request):
    folds, inner = split
    if prelim == "root":
        request.getfixturevalue("root_prelim")
    solver = ROOT if prelim == "root" else jc.dml.BrentMinimum()
    est = jc.dml.QTE(_logit(), _logit(), quantiles=QS, n_folds=K, n_rep=R, preliminary=solver)
    res = est.fit(qdata, key=jr.key(0), folds=folds, inner_folds=inner)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = doubleml.DoubleMLQTE(ref.dml_data(qdata), ref.logistic(), ref.logistic(),
                                      quantiles=list(QS), n_folds=K, n_rep=R,
                                      draw_sample_splitting=False)
        theirs.set_sample_splitting(ref.splits(folds, K))
        theirs.fit()
        # (DoubleML's confint calls a deprecated pandas form)
        their_ci = theirs.confint(level=0.9).to_numpy()
        their_coef = theirs.summary["coef"].to_numpy()
    _assert_same(res, theirs)
    np.testing.assert_allclose(res.confint(0.9), their_ci, rtol=RTOL)
    table = res.summary()
    assert list(table.index) == ["0.3", "0.5", "0.7"]
    np.testing.assert_allclose(table["coef"], their_coef, rtol=RTOL)
    # (DoubleML's QTE reports the median of per-repetition p-values; jaxcausal the p-value of
    # the aggregated t-statistic, as for every other model.)
    # The joint band over the grid: a bootstrap of the scaled score differences
    band = res.bootstrap(n_rep_boot=200, key=jr.key(3)).confint()
    assert band.shape == (3, 2)
    assert np.all(band[:, 0] < res.confint()[:, 0]) and np.all(band[:, 1] > res.confint()[:, 1])


def test_cvar_matches_doubleml(qdata, split, root_prelim):
    folds, inner = split
    est = jc.dml.CVaR(jc.learners.Linear(), _logit(), quantile=0.6, treatment=1, n_folds=K,
                      n_rep=R, preliminary=ROOT)
    res = est.fit(qdata, key=jr.key(0), folds=folds, inner_folds=inner)
    theirs = ref.fit(doubleml.DoubleMLCVAR, qdata, [LinearRegression(), ref.logistic()], folds,
                     K, R, treatment=1, quantile=0.6)
    _assert_same(res, theirs)


def test_lpq_matches_doubleml(ivdata, ivsplit, root_prelim):
    folds, inner = ivsplit
    est = jc.dml.LPQ(_logit(), _logit(), quantile=0.5, treatment=1, n_folds=K, n_rep=R,
                     preliminary=ROOT)
    res = est.fit(ivdata, key=jr.key(0), folds=folds, inner_folds=inner)
    theirs = ref.fit(doubleml.DoubleMLLPQ, ivdata, [ref.logistic(), ref.logistic()], folds, K, R,
                     treatment=1, quantile=0.5)
    _assert_same(res, theirs)
    for name in ("ml_g_du_z0", "ml_g_du_z1", "ml_m_d_z0", "ml_m_d_z1"):
        np.testing.assert_allclose(res.predictions[name][0].T, theirs.predictions[name][:, :, 0],
                                   rtol=1e-6, atol=1e-10)


def test_pq_external_predictions_match_doubleml(qdata):
    n, n_rep = qdata.n_obs, 3
    rng = np.random.default_rng(1)
    ext = {"ml_g": rng.uniform(0.05, 0.95, size=(n, n_rep)),
           "ml_m": rng.uniform(0.005, 0.995, size=(n, n_rep))}  # some clipped
    folds = jc.dml.draw_folds(jr.key(6), n, 4, n_rep)
    est = jc.dml.PQ(None, None, quantile=0.7, treatment=1, n_folds=4, n_rep=n_rep)
    res = est.fit(qdata, key=jr.key(0), folds=folds, external_predictions=ext)
    theirs = ref.fit(doubleml.DoubleMLPQ, qdata, [ref.logistic(), ref.logistic()], folds, 4,
                     n_rep, external={"d": ext}, treatment=1, quantile=0.7)
    _assert_same(res, theirs, rtol=1e-12)


@pytest.mark.slow  # the LPQ score with learners is compared in the default run
def test_lpq_external_predictions_match_doubleml(ivdata):
    n = ivdata.n_obs
    rng = np.random.default_rng(2)
    ext = {name: rng.uniform(0.05, 0.95, size=(n, 1)) for name in
           ("ml_m_z", "ml_g_du_z0", "ml_g_du_z1", "ml_m_d_z0", "ml_m_d_z1")}
    ext["ml_m_d_z1"] = np.clip(ext["ml_m_d_z0"] + 0.3, 0, 1)  # a positive complier share
    folds = jc.dml.draw_folds(jr.key(7), n, 3, 1)
    est = jc.dml.LPQ(None, None, quantile=0.5, treatment=0, n_folds=3, n_rep=1)
    res = est.fit(ivdata, key=jr.key(0), folds=folds, external_predictions=ext)
    theirs = ref.fit(doubleml.DoubleMLLPQ, ivdata, [ref.logistic(), ref.logistic()], folds, 3, 1,
                     external={"d": ext}, treatment=0, quantile=0.5)
    _assert_same(res, theirs, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("score, name", [
    (jc.dml.LocalPotentialQuantile(), "LPQ"), (jc.dml.ConditionalValueAtRisk(), "CVaR")
])
def test_qte_with_other_scores_matches_doubleml(ivdata, ivsplit, score, name, root_prelim):
    folds, inner = ivsplit
    strata = qref.lpq_strata(ivdata) if name == "LPQ" else qref.pq_strata(ivdata)
    inner = qref.inner_folds(folds, strata, K)
    data = ivdata if name == "LPQ" else jc.CausalData(y=ivdata.y, t=ivdata.t, x=ivdata.x)
    ml_g = _logit() if name == "LPQ" else jc.learners.Linear()
    res = jc.dml.QTE(ml_g, _logit(), quantiles=QS, score=score, n_folds=K, n_rep=R,
                     preliminary=ROOT).fit(data, key=jr.key(0), folds=folds, inner_folds=inner)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk_g = ref.logistic() if name == "LPQ" else LinearRegression()
        theirs = doubleml.DoubleMLQTE(ref.dml_data(data), sk_g, ref.logistic(), score=name,
                                      quantiles=list(QS), n_folds=K, n_rep=R,
                                      draw_sample_splitting=False)
        theirs.set_sample_splitting(ref.splits(folds, K))
        theirs.fit()
    _assert_same(res, theirs)


def _badly_scaled(data):
    scales = np.array([1e-3, 1e1, 1e3, 1e5])
    return np.asarray(data.x) * scales, 1e3 * np.asarray(data.y) + 5e3, np.asarray(data.t[:, 0])


def test_qte_float32_on_badly_scaled_data(qdata, split):
    folds, inner = split
    x, y, d = _badly_scaled(qdata)
    est = jc.dml.QTE(_logit(), _logit(), quantiles=QS, n_folds=K, n_rep=R, preliminary=ROOT)
    r64 = est.fit(jc.CausalData(y=y, t=d, x=x), key=jr.key(0), folds=folds, inner_folds=inner)
    with jax.enable_x64(False):
        data32 = jc.CausalData(y=y.astype(np.float32), t=d.astype(np.float32),
                               x=x.astype(np.float32))
        est32 = jc.dml.QTE(_logit(), _logit(), quantiles=QS, n_folds=K, n_rep=R, preliminary=ROOT)
        r32 = est32.fit(data32, key=jr.key(0), folds=np.asarray(folds, np.int32),
                        inner_folds=inner)
        assert r32.theta_rep.dtype == jnp.float32
    # A potential quantile is an observed outcome (a jump of the step score). The float32
    # logistic fits on these scales (columns 1e-3 to 1e5) move the outcome-probability
    # predictions by up to ~0.07 and the mean score by ~1e-3, which can move the root to a
    # neighbouring order statistic, ~1/(n f) ~ 0.005 standard deviations of y away near the
    # median (n = 500): hence 1 % of sd(y) (2e3 here), a tenth of the standard error. The
    # standard errors go through the same learners and a kernel density: 1 %.
    sd = float(np.std(y))
    np.testing.assert_allclose(r32.theta_rep, r64.theta_rep, rtol=0, atol=0.01 * sd)
    np.testing.assert_allclose(r32.se_rep, r64.se_rep, rtol=1e-2)


def test_no_recompilation_for_new_data_of_the_same_shape(qdata, split):
    folds, inner = split
    est = jc.dml.QTE(_logit(), _logit(), quantiles=QS, n_folds=K, n_rep=R, preliminary=ROOT)
    est.fit(qdata, key=jr.key(0), folds=folds, inner_folds=inner)
    before = quantile_trace_count()
    other = DGP.sample(500, key=jr.key(11))
    # new data, new quantiles (an array field), same shapes: no new trace
    est2 = jc.dml.QTE(_logit(), _logit(), quantiles=(0.2, 0.4, 0.6), n_folds=K, n_rep=R,
                      preliminary=ROOT)
    est2.fit(other, key=jr.key(1), folds=folds, inner_folds=inner)
    assert quantile_trace_count() == before


def test_vmapped_fits_equal_single_fits():
    # drawn splits, the preliminary-free final solve and the kernel density under `vmap` (the
    # solvers' own vmap == loop test is in test_nonlinear.py)
    est = jc.dml.PQ(None, None, quantile=0.5, n_folds=K)
    keys = jr.split(jr.key(8), 2)

    def one(k):
        k_data, k_g, k_fit = jr.split(k, 3)
        data = DGP.sample(300, key=k_data)
        ext = {"ml_g": jr.uniform(k_g, (300,), minval=0.2, maxval=0.8),
               "ml_m": jnp.full((300,), 0.5)}
        return est.fit(data, key=k_fit, external_predictions=ext, throw=False).theta_rep

    batched = eqx.filter_jit(eqx.filter_vmap(one))(keys)
    looped = jnp.stack([one(k) for k in keys])
    np.testing.assert_allclose(batched, looped, rtol=1e-12)


def test_default_splits_and_coverage_small():
    # Linear outcome and logistic propensity (c = a = 0): the logistic learners fit the
    # propensity exactly, so the estimator is consistent and the 95 % intervals should cover.
    dgp = jc.datasets.LocationScaleQTE(dim_x=4, c=0.0, a=0.0, b=1.0)
    qs = jnp.asarray([0.25, 0.5, 0.75])
    est = jc.dml.QTE(_logit(), _logit(), quantiles=qs, n_folds=3)
    table = jc.dml.simulate(est, lambda k: (dgp.sample(600, key=k), dgp.quantile_effect(qs)),
                            key=jr.key(0), n_sims=20)
    assert (table["n_failed"] == 0).all()
    # 20 replications: a coverage below 0.75 has probability < 2 % at a true 0.95
    assert (table["coverage"] >= 0.75).all(), table
    # bias small against the standard error
    assert (table["bias_over_se"].abs() < 0.5).all(), table


def test_oracle_nuisances_give_nominal_coverage():
    # The score, its root and the kernel-density standard error on their own: the true
    # propensity and the true P(Y <= theta | X, D = 1) at the true median as external
    # predictions, 200 data sets in one vmapped program. Expected: bias within 3 Monte Carlo
    # standard errors (0.14 / sqrt(200) ~ 0.01), mean se within 15 % of the sd of the
    # estimates, coverage in [0.89, 0.99] (binomial sd 0.015 at 0.95).
    from jax.scipy.stats import norm

    dgp = jc.datasets.LocationScaleQTE()
    truth = dgp.potential_quantile(0.5, 1)
    est = jc.dml.PQ(None, None, quantile=0.5, treatment=1, n_folds=5)

    def one(k):
        k_data, k_fit = jr.split(k)
        data = dgp.sample(1000, key=k_data)
        x = data.x
        h = x[:, 0] * jnp.cos(x[:, 2]) + x[:, 1] * jnp.sin(x[:, 2])
        mean1 = dgp.tau + dgp.c * h + dgp.beta * jnp.sum(x[:, 2:], axis=1)
        ext = {"ml_g": norm.cdf((truth - mean1) / dgp.scale1),
               "ml_m": jax.nn.sigmoid(dgp.a * h + dgp.b * x[:, 2])}
        res = est.fit(data, key=k_fit, external_predictions=ext, throw=False)
        return res.theta[0], res.se[0], res.ok

    theta, se, ok = eqx.filter_jit(eqx.filter_vmap(one))(jr.split(jr.key(0), 200))
    theta, se = np.asarray(theta), np.asarray(se)
    assert np.all(ok)
    assert abs(theta.mean() - float(truth)) < 3 * theta.std() / np.sqrt(200)
    assert abs(se.mean() / theta.std() - 1) < 0.15
    assert 0.89 <= np.mean(np.abs(theta - float(truth)) <= 1.96 * se) <= 0.99


@pytest.mark.slow
def test_coverage_study():
    dgp = jc.datasets.LocationScaleQTE(dim_x=4, c=0.0, a=0.0, b=1.0)
    qs = jnp.asarray([0.25, 0.5, 0.75])
    est = jc.dml.QTE(_logit(), _logit(), quantiles=qs, n_folds=5)
    table = jc.dml.simulate(est, lambda k: (dgp.sample(1500, key=k), dgp.quantile_effect(qs)),
                            key=jr.key(1), n_sims=200)
    # 200 replications: the binomial standard error of a 0.95 coverage is 0.015
    assert ((table["coverage"] > 0.9) & (table["coverage"] < 0.99)).all(), table
    cvar = jc.dml.CVaR(jc.learners.Linear(), _logit(), quantile=0.5, treatment=1, n_folds=5)
    table = jc.dml.simulate(cvar, lambda k: (dgp.sample(1500, key=k), dgp.cvar(0.5, 1)),
                            key=jr.key(2), n_sims=200)
    assert ((table["coverage"] > 0.9) & (table["coverage"] < 0.99)).all(), table


# bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda: jc.dml.PQ(_logit(), _logit(), quantile=0.0), r"quantile must lie in \(0, 1\)"),
    (lambda: jc.dml.LPQ(_logit(), _logit(), quantile=1.5), r"quantile must lie in \(0, 1\)"),
    (lambda: jc.dml.QTE(_logit(), _logit(), quantiles=(0.2, 1.0)),
     r"quantiles must lie in \(0, 1\)"),
    (lambda: jc.dml.CVaR(jc.learners.Linear(), _logit(), quantile=-0.1),
     r"quantile must lie in \(0, 1\)"),
    (lambda: jc.dml.PQ(_logit(), _logit(), quantile=(0.2, 0.4)), "quantile must be one number"),
    (lambda: jc.dml.PQ(_logit(), _logit(), treatment=2), "treatment must be 0 or 1, got 2"),
    (lambda: jc.dml.PQ(jc.learners.Linear(), _logit()), "ml_g must be a classifier"),
    (lambda: jc.dml.PQ(_logit(), jc.learners.Linear()), "ml_m must be a classifier"),
    (lambda: jc.dml.CVaR(_logit(), _logit()), "ml_g must be a regression learner"),
    # (under the suite's beartype checks the annotation catches it first; both name score)
    (lambda: jc.dml.QTE(_logit(), _logit(), score="PQ"), "score"),
    (lambda: jc.dml.PQ(_logit(), _logit(), trimming=0.0), r"trimming must be in \(0, 0.5\)"),
])
def test_bad_configuration(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_data(qdata, ivdata):
    pq = jc.dml.PQ(_logit(), _logit())
    x = np.asarray(qdata.x)
    with pytest.raises(ValueError, match="t must be binary"):
        pq.fit(jc.CausalData(y=qdata.y, t=np.arange(500) % 3, x=x), key=jr.key(0))
    with pytest.raises(ValueError, match="treatment=0 does not occur in t"):
        jc.dml.PQ(_logit(), _logit(), treatment=0).fit(
            jc.CausalData(y=qdata.y, t=np.ones(500), x=x), key=jr.key(0))
    with pytest.raises(ValueError, match="treatment=1 does not occur in t"):
        jc.dml.QTE(_logit(), _logit()).fit(
            jc.CausalData(y=qdata.y, t=np.zeros(500), x=x), key=jr.key(0))
    with pytest.raises(ValueError, match="t must have one column"):
        pq.fit(jc.CausalData(y=qdata.y, t=np.stack([qdata.t[:, 0]] * 2, 1), x=x), key=jr.key(0))
    with pytest.raises(ValueError, match="takes no instruments"):
        pq.fit(ivdata, key=jr.key(0))
    lpq = jc.dml.LPQ(_logit(), _logit())
    with pytest.raises(ValueError, match="needs one binary instrument z"):
        lpq.fit(qdata, key=jr.key(0))
    with pytest.raises(ValueError, match="z must be binary"):
        lpq.fit(jc.CausalData(y=ivdata.y, t=ivdata.t, x=ivdata.x, z=np.arange(800) % 3),
                key=jr.key(0))


def test_bad_splits_and_external_predictions(qdata, split):
    folds, inner = split
    est = jc.dml.PQ(_logit(), _logit(), n_folds=K, n_rep=R)
    with pytest.raises(ValueError, match="inner_folds needs folds"):
        est.fit(qdata, key=jr.key(0), inner_folds=inner)
    with pytest.raises(ValueError, match="inner_folds must have shape"):
        est.fit(qdata, key=jr.key(0), folds=folds, inner_folds=inner[:1])
    bad = np.array(inner)
    bad[0, 0, np.asarray(folds)[0] == 0] = 1
    with pytest.raises(ValueError, match="inner_folds must be -1 exactly on the rows"):
        est.fit(qdata, key=jr.key(0), folds=folds, inner_folds=bad)
    with pytest.raises(ValueError, match="must give all of"):
        est.fit(qdata, key=jr.key(0), external_predictions={"ml_m": np.full(500, 0.5)})
    with pytest.raises(ValueError, match="not supported for QTE"):
        jc.dml.QTE(_logit(), _logit()).fit(
            qdata, key=jr.key(0), external_predictions={"ml_m": np.full(500, 0.5)})


def test_failed_check_names_the_problem(qdata):
    # outcome "probabilities" of 5 on the untreated rows: the mean score is
    # 5 P(D = 0) - q + (share of treated at or below theta) > 0 at every theta
    ext = {"ml_g": 5.0 * (1.0 - np.asarray(qdata.t[:, 0])), "ml_m": np.full(500, 0.5)}
    est = jc.dml.PQ(None, None, quantile=0.5, n_folds=K)
    with pytest.raises(ValueError, match="no sign change"):
        est.fit(qdata, key=jr.key(0), external_predictions=ext)
    res = est.fit(qdata, key=jr.key(0), external_predictions=ext, throw=False)
    assert not bool(res.ok)
