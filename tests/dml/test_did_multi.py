"""DIDMulti (staggered adoption): exact parity with DoubleML 0.11's `DoubleMLDIDMulti` for every
group-time cell, the aggregations and the sensitivity elements (same data, same unit folds,
float64); one compiled fit; float32; simulate; bad input."""

import doubleml
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from doubleml.did.utils._did_utils import _construct_gt_combinations

import jaxcausal as jc
from jaxcausal.dml import _did_multi

from . import _did_reference as dref, _reference as ref
from .test_did import RTOL, SENSITIVITY

AGGREGATIONS = [(jc.dml.ByGroup(), "group"), (jc.dml.ByTime(), "time"),
                (jc.dml.EventStudy(), "eventstudy")]


@pytest.fixture(scope="module")
def panel():
    """The CS2021 design with covariates that drift over the periods (DoubleML takes those of
    the earlier period of each cell, so the learners see different covariates per cell)."""
    base = jc.datasets.make_did_CS2021(n_obs=300, n_periods=4, key=jr.key(7))
    drift = 0.1 * jr.normal(jr.key(8), (300, 4, 4))
    return eqx.tree_at(lambda p: p.x, base, base.x[:, None, :] + drift)


def assert_aggregations_match(res, theirs, rtol):
    for ours_rule, name in AGGREGATIONS:
        ours, other = res.aggregate(ours_rule), theirs.aggregate(name)
        agg = other.aggregated_frameworks
        np.testing.assert_allclose(ours.effects.theta, agg.thetas, rtol=rtol, err_msg=name)
        np.testing.assert_allclose(ours.effects.se, agg.ses, rtol=rtol, err_msg=name)
        np.testing.assert_allclose(ours.effects.theta_rep, agg.all_thetas, rtol=rtol)
        np.testing.assert_allclose(ours.overall.theta, other.overall_aggregated_framework.thetas,
                                   rtol=rtol, err_msg=name)
        np.testing.assert_allclose(ours.overall.se, other.overall_aggregated_framework.ses,
                                   rtol=rtol, err_msg=name)
        np.testing.assert_allclose(np.asarray(ours.weights), other.aggregation_weights,
                                   rtol=1e-12, atol=1e-15)


def test_didmulti_matches_doubleml_with_learners(panel):
    est = jc.dml.DIDMulti(jc.learners.Linear(), jc.learners.Logistic(), n_folds=3, n_rep=2)
    res = est.fit(panel, key=jr.key(0))
    theirs = dref.fit_multi(panel, ref.linear(), ref.logistic(), res.folds, 3, 2)
    assert len(res.cells) == len(theirs.gt_combinations) == 6
    # pre-treatment cells have theta ~0, where a relative tolerance means nothing: the
    # absolute floor is 1e-8 of the largest effect
    atol = RTOL * np.abs(theirs.all_coef).max()
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL, atol=atol)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL, atol=atol)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    for i, cell in enumerate(theirs.modellist):
        for learner in ("ml_g0", "ml_g1", "ml_m"):
            ours = np.asarray(res.predictions[learner][i].T)
            if learner == "ml_m":
                ours = np.clip(ours, 0.01, 0.99)
            np.testing.assert_allclose(ours, cell.predictions[learner][:, :, 0], rtol=1e-7)
        for name in SENSITIVITY:
            mine = np.asarray(res.sensitivity[name][i])
            mine = mine.T if mine.ndim == 2 else mine[None, :]
            np.testing.assert_allclose(mine, cell.sensitivity_elements[name][..., 0], rtol=1e-7,
                                       atol=1e-7 * np.abs(mine).max(), err_msg=name)
    assert_aggregations_match(res, theirs, 1e-7)
    # the design's known effects: ATT(g, t) = max(t - g + 1, 0); 6 cells, each within 4.5 se
    truth = np.array([jc.datasets.did_cs2021_att(g, t) for g, _, t in res.cells])
    assert np.all(np.abs(np.asarray(res.theta) - truth) < 4.5 * np.asarray(res.se))


@pytest.mark.parametrize(
    "score, control, normalize",
    [(jc.dml.Observational(), jc.dml.NotYetTreated(), False),
     (jc.dml.Experimental(), jc.dml.NeverTreated(), True)],
)
def test_didmulti_external_predictions_match_doubleml(panel, score, control, normalize):
    est = jc.dml.DIDMulti(None, None, score=score, control_group=control, trimming=0.05,
                          in_sample_normalization=normalize, n_folds=3, n_rep=2)
    rng = np.random.default_rng(4)
    n = panel.n_obs
    ext = {}
    for label in est.labels(panel):
        ext[label] = {"ml_g0": rng.normal(size=(n, 2)), "ml_g1": rng.normal(size=(n, 2))}
        if score.needs_m:
            ext[label]["ml_m"] = rng.uniform(0.01, 0.99, size=(n, 2))
    folds = jc.dml.draw_folds(jr.key(9), n, 3, 2)
    res = est.fit(panel, key=jr.key(0), folds=folds, external_predictions=ext)
    name = "observational" if score.needs_m else "experimental"
    ctrl = "not_yet_treated" if isinstance(control, jc.dml.NotYetTreated) else "never_treated"
    theirs = dref.fit_multi(
        panel, ref.linear(), ref.logistic() if score.needs_m else None, folds, 3, 2,
        external=dict(zip(theirs_labels(panel, est), ext.values())), score=name,
        control_group=ctrl, in_sample_normalization=normalize,
        ps_processor_config=doubleml.utils.PSProcessorConfig(clipping_threshold=0.05),
    )
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=1e-12)
    assert_aggregations_match(res, theirs, 1e-11)


def theirs_labels(panel, est):
    """DoubleML's labels print the float values of our panel (`ATT(2.0,1.0,2.0)`)."""
    return [f"ATT({g},{pre},{post})" for g, pre, post in est.cells(panel)]


@pytest.mark.parametrize("rule, name", [(jc.dml.StandardGT(), "standard"),
                                        (jc.dml.AllGT(), "all"),
                                        (jc.dml.UniversalGT(), "universal")])
@pytest.mark.parametrize("anticipation", [0, 1])
def test_gt_combinations_match_doubleml(rule, name, anticipation):
    g_values, t_values = (2.0, 3.0, 4.0, 5.0), (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    theirs = _construct_gt_combinations(name, np.array([*g_values, np.inf]), np.array(t_values),
                                        np.inf, anticipation)
    ours = rule.cells(g_values, t_values, anticipation)
    assert [tuple(map(float, c)) for c in theirs] == ours


def test_didmulti_one_compiled_fit_and_bootstrap_bands():
    """Time-invariant covariates (the usual case): the cells are stacked as repetitions of one
    batched fit on one covariate matrix, again equal to DoubleML cell by cell. All cells are one
    compiled program: a second data set of the same shape reuses it. The bootstrap gives
    simultaneous bands over the cells (and over aggregated effects) that are wider than the
    pointwise intervals."""
    panel = jc.datasets.make_did_CS2021(n_obs=300, n_periods=4, key=jr.key(17))
    est = jc.dml.DIDMulti(jc.learners.Linear(), jc.learners.Logistic(), n_folds=3, n_rep=2)
    first = est.fit(panel, key=jr.key(0))
    theirs = dref.fit_multi(panel, ref.linear(), ref.logistic(), first.folds, 3, 2)
    atol = RTOL * np.abs(theirs.all_coef).max()
    np.testing.assert_allclose(first.theta_rep, theirs.all_coef, rtol=RTOL, atol=atol)
    np.testing.assert_allclose(first.se_rep, theirs.all_se, rtol=RTOL)
    before = _did_multi.trace_count()
    other = eqx.tree_at(lambda p: p.y, panel, panel.y + jr.normal(jr.key(1), panel.y.shape))
    res = est.fit(other, key=jr.key(2))
    assert _did_multi.trace_count() == before
    joint = np.asarray(res.bootstrap(n_rep_boot=300, key=jr.key(3)).confint())
    pointwise = np.asarray(res.confint())
    assert np.all(joint[:, 0] < pointwise[:, 0]) and np.all(joint[:, 1] > pointwise[:, 1])
    agg = res.aggregate(jc.dml.EventStudy())
    bands = np.asarray(agg.bootstrap(n_rep_boot=300, key=jr.key(4)).confint())
    assert bands.shape == (len(agg.effects.t_names), 2)
    table = agg.summary()
    assert list(table.index) == ["overall", *agg.effects.t_names]
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = res.plot(key=jr.key(5), n_rep_boot=100)
    assert len(fig.axes) == len(panel.g_values)  # one panel per treated group
    fig_agg = agg.plot(key=jr.key(6), n_rep_boot=100)
    assert len(fig_agg.axes[0].lines) >= 1
    plt.close("all")


def test_didmulti_float32_on_badly_scaled_covariates(panel):
    """The parity fit in float32 with covariates from 1e-3 to 1e5: every cell's theta moves by
    less than 1e-3 of its standard error (outcomes are levels ~200)."""
    x = dref.scale_columns(panel.x)
    est = jc.dml.DIDMulti(jc.learners.Linear(), jc.learners.Logistic(), n_folds=3, n_rep=2)
    res64 = est.fit(eqx.tree_at(lambda p: p.x, panel, jnp.asarray(x)), key=jr.key(0))
    folds = np.asarray(res64.folds, np.int32)
    with jax.enable_x64(False):
        p32 = jc.PanelData(np.asarray(panel.y, np.float32), np.asarray(panel.g, np.float32),
                           x.astype(np.float32), t_values=panel.t_values)
        res32 = est.fit(p32, key=jr.key(0), folds=folds)
        assert res32.theta_rep.dtype == jnp.float32
        theta32, se32 = np.asarray(res32.theta_rep, float), np.asarray(res32.se_rep, float)
    se64 = np.asarray(res64.se_rep)
    np.testing.assert_array_less(np.abs(theta32 - np.asarray(res64.theta_rep)), 1e-3 * se64)
    np.testing.assert_allclose(se32, se64, rtol=1e-3)


def test_didmulti_in_simulate():
    est = jc.dml.DIDMulti(jc.learners.Linear(), score=jc.dml.Experimental(), n_folds=2)
    dgp = lambda k: jc.datasets.make_did_CS2021(n_obs=200, n_periods=3, dgp_type=5, key=k)  # noqa: E731
    cells = est.cells(dgp(jr.key(0)))
    truth = [jc.datasets.did_cs2021_att(g, t) for g, _, t in cells]
    table = jc.dml.simulate(est, dgp, key=jr.key(0), n_sims=3, truth=truth)
    assert list(table.index) == list(est.labels(dgp(jr.key(0))))
    assert (table["n_failed"] == 0).all() and np.isfinite(table["rmse"]).all()


def test_didmulti_bad_input(panel):
    ok = (jc.learners.Linear(), jc.learners.Logistic())
    with pytest.raises(TypeError, match="gt_combinations"):
        jc.dml.DIDMulti(*ok, gt_combinations="standard")
    with pytest.raises(TypeError, match="control_group"):
        jc.dml.DIDMulti(*ok, control_group="never_treated")
    with pytest.raises(ValueError, match="anticipation_periods"):
        jc.dml.DIDMulti(*ok, anticipation_periods=-1)
    with pytest.raises(ValueError, match="gt_combinations has group 7"):
        jc.dml.DIDMulti(*ok, gt_combinations=[(7, 1, 2)]).fit(panel, key=jr.key(0))
    with pytest.raises(ValueError, match="has t_pre == t_eval"):
        jc.dml.DIDMulti(*ok, gt_combinations=[(2, 1, 1)]).fit(panel, key=jr.key(0))
    with pytest.warns(UserWarning, match="is not before the treatment of group 2"):
        jc.dml.DIDMulti(*ok, gt_combinations=[(2, 2, 3)]).cells(panel)
    no_never = eqx.tree_at(lambda p: p.g, panel, jnp.where(jnp.isinf(panel.g), 3.0, panel.g))
    with pytest.raises(ValueError, match="no control units .* use control_group=NotYetTreated"):
        jc.dml.DIDMulti(*ok).fit(no_never, key=jr.key(0))
    with pytest.raises(ValueError, match="external_predictions names unknown cells"):
        jc.dml.DIDMulti(*ok).fit(panel, key=jr.key(0),
                                 external_predictions={"ATT(9,1,2)": {"ml_g0": np.zeros(300)}})
    with pytest.raises(TypeError, match="PanelData"):
        jc.dml.DIDMulti(*ok).fit(jc.CausalData(np.ones(3), [0, 1, 0], np.ones(3)), key=jr.key(0))
    with pytest.raises(TypeError, match="aggregation"):
        jc.dml.DIDMultiResult.aggregate(None, "group")
