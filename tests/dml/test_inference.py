"""Results: aggregation, confidence intervals, summary and the multiplier bootstrap against
DoubleML 0.11 (fed our bootstrap multipliers) and against NumPy by hand."""

import doubleml
import doubleml.double_ml_framework as dml_framework
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.stats import norm

import jaxcausal as jc

from . import _reference as ref

# DoubleML's confint/summary call pandas' set_index(inplace=True), deprecated in pandas 3.1.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


@pytest.fixture(scope="module")
def two_treatment_fit():
    base = jc.datasets.make_plr_CCDDHNR2018(n_obs=300, dim_x=5, key=jr.key(21))
    d2 = base.x[:, 1] + jr.normal(jr.key(22), (300,))
    data = jc.CausalData(base.y + 0.2 * d2, jnp.stack([base.t[:, 0], d2], 1), base.x,
                         t_names=("d", "d2"), x_names=base.x_names)
    res = jc.dml.PLR(jc.learners.Linear(), jc.learners.Linear(), n_folds=3, n_rep=3).fit(
        data, key=jr.key(0))
    theirs = ref.fit(doubleml.DoubleMLPLR, data, [ref.linear(), ref.linear()], res.folds, 3, 3)
    return res, theirs


def test_aggregation_by_hand(two_treatment_fit):
    res, _ = two_treatment_fit
    theta_rep, se_rep = np.asarray(res.theta_rep), np.asarray(res.se_rep)
    theta = np.median(theta_rep, axis=1)
    np.testing.assert_allclose(res.theta, theta, rtol=1e-12)
    np.testing.assert_allclose(
        res.se, (np.median(theta_rep + 1.96 * se_rep, axis=1) - theta) / 1.96, rtol=1e-12)
    np.testing.assert_allclose(
        res.pval, 2 * norm.sf(np.abs(res.theta / res.se)), rtol=1e-10)
    z = norm.ppf(0.95)
    np.testing.assert_allclose(
        res.confint(0.9)[:, 0], np.median(theta_rep - z * se_rep, axis=1), rtol=1e-12)


@pytest.mark.parametrize("method, name", [(jc.dml.NormalBootstrap(), "normal"),
                                          (jc.dml.WildBootstrap(), "wild"),
                                          (jc.dml.BayesBootstrap(), "Bayes")])
def test_bootstrap_matches_doubleml_given_the_same_multipliers(
    two_treatment_fit, monkeypatch, method, name
):
    res, theirs = two_treatment_fit
    n_boot = 200
    boot = res.bootstrap(method, n_boot, key=jr.key(7))
    n = res.folds.shape[1]
    draws = iter(np.asarray(jax.vmap(lambda k: method.multipliers(k, (n_boot, n)))(
        jr.split(jr.key(7), 3))))

    def ours(method_name, n_rep_boot, n_obs):
        assert (method_name, n_rep_boot, n_obs) == (name, n_boot, n)
        return next(draws)

    monkeypatch.setattr(dml_framework, "_draw_weights", ours)
    theirs.bootstrap(method=name, n_rep_boot=n_boot)
    np.testing.assert_allclose(boot.t_stats, theirs.boot_t_stat, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(boot.confint(0.9), theirs.confint(joint=True, level=0.9),
                               rtol=1e-9)


def test_multipliers_are_centred_with_unit_variance():
    for method in (jc.dml.NormalBootstrap(), jc.dml.WildBootstrap(), jc.dml.BayesBootstrap()):
        xi = method.multipliers(jr.key(0), (200_000,))
        # standard error of the mean is 1/sqrt(2e5) ~ 0.0022: 0.01 is about 4.5 of them
        assert abs(float(jnp.mean(xi))) < 0.01
        assert abs(float(jnp.var(xi)) - 1.0) < 0.03


def test_summary_and_confint_match_doubleml(two_treatment_fit):
    res, theirs = two_treatment_fit
    ours, ref_summary = res.summary(level=0.95), theirs.summary
    assert list(ours.columns) == list(ref_summary.columns)
    assert list(ours.index) == list(ref_summary.index)
    cols = ["coef", "std err", "t", "2.5 %", "97.5 %"]
    np.testing.assert_allclose(ours[cols].to_numpy(), ref_summary[cols].to_numpy(), rtol=1e-8)
    # DoubleML computes 2 * cdf(-|t|) like us; rounding differs only in the last digits
    np.testing.assert_allclose(ours["P>|t|"], ref_summary["P>|t|"], rtol=1e-7, atol=1e-300)


def test_result_is_an_immutable_pytree(two_treatment_fit):
    res, _ = two_treatment_fit
    with pytest.raises(AttributeError):
        res.theta_rep = res.theta_rep + 1
    leaves = jax.tree.leaves(res)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert set(res.losses) == {"ml_l", "ml_m"} and res.losses["ml_l"].shape == (2, 3)
