"""Sensitivity analysis: exact parity with DoubleML 0.11 (elements, bounds, robustness values,
benchmarks) on identical folds, plus errors, the plot and a float32 run."""

import warnings

import doubleml
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.optimize import brentq

import jaxcausal as jc

from . import _reference as ref

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

RTOL = 1e-8  # same least-squares problems on both sides; only rounding differs
# DoubleML finds rv/rva with scipy's bounded Brent search (xatol 1e-5); we bisect to machine
# precision. Against DoubleML's reported values: this absolute tolerance; against the exact root
# of DoubleML's own bound function (brentq to 1e-15): RTOL.
RV_ATOL = 5e-5
NAMES = ("sigma2", "nu2", "psi_sigma2", "psi_nu2", "riesz_rep")


def theirs_elements(model):
    """DoubleML's elements transposed to our layout `(k, n_rep[, n])`."""
    se = model.sensitivity_elements
    out = {k: np.transpose(se[k], (2, 1, 0)) for k in NAMES}
    return {k: (v[..., 0] if k in ("sigma2", "nu2") else v) for k, v in out.items()}


def assert_elements(res, theirs, rtol=RTOL):
    mine = res.sensitivity_elements
    for name, value in theirs_elements(theirs).items():
        np.testing.assert_allclose(mine[name], value, rtol=rtol, atol=1e-12, err_msg=name)


def exact_root(framework, null, level, rho, idx, kind):
    """The exact root of DoubleML's bound function (what its optimiser approximates)."""
    bound = "upper" if null > framework.thetas[idx] else "lower"

    def f(v):
        out = framework._calc_sensitivity_analysis(cf_y=v, cf_d=v, rho=rho, level=level)
        return out[kind][bound][idx] - null

    lo, hi = f(0.0), f(0.9999)
    if np.sign(lo) == np.sign(hi):
        return None
    return brentq(f, 0.0, 0.9999, xtol=1e-15, rtol=1e-15)


def assert_analysis(res, theirs, cf_y, cf_d, rho, level, null, rtol=RTOL):
    ours = res.sensitivity(cf_y=cf_y, cf_d=cf_d, rho=rho, level=level, null_hypothesis=null)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.sensitivity_analysis(cf_y=cf_y, cf_d=cf_d, rho=rho, level=level,
                                    null_hypothesis=null)
    p = theirs.sensitivity_params
    for name, value in (("theta_lower", p["theta"]["lower"]), ("theta_upper", p["theta"]["upper"]),
                        ("se_lower", p["se"]["lower"]), ("se_upper", p["se"]["upper"]),
                        ("ci_lower", p["ci"]["lower"]), ("ci_upper", p["ci"]["upper"])):
        np.testing.assert_allclose(getattr(ours, name), value, rtol=rtol, err_msg=name)
    np.testing.assert_allclose(ours.rv, p["rv"], atol=RV_ATOL)
    np.testing.assert_allclose(ours.rva, p["rva"], atol=RV_ATOL)
    fw = theirs.framework if hasattr(theirs, "framework") else theirs
    for i in range(len(res.t_names)):
        for kind, value in (("theta", ours.rv[i]), ("ci", ours.rva[i])):
            root = exact_root(fw, null, level, rho, i, kind)
            if root is not None:
                np.testing.assert_allclose(value, root, rtol=rtol)
    return ours


@pytest.fixture(scope="module")
def plr_data():
    # the data and learners of test_plr.py, so that the compiled fits are reused
    return jc.datasets.make_plr_CCDDHNR2018(n_obs=300, dim_x=6, key=jr.key(11))


@pytest.mark.parametrize("score, name", [(jc.dml.PartiallingOut(), "partialling out"),
                                         (jc.dml.IVType(), "IV-type")])
def test_plr_sensitivity_matches_doubleml(plr_data, score, name):
    lin = jc.learners.Linear()
    est = jc.dml.PLR(lin, lin, lin if name == "IV-type" else None, score=score, n_folds=4,
                     n_rep=3)
    res = est.fit(plr_data, key=jr.key(0))
    learners = [ref.linear(), ref.linear()] + ([ref.linear()] if name == "IV-type" else [])
    theirs = ref.fit(doubleml.DoubleMLPLR, plr_data, learners, res.folds, 4, 3, score=name)
    assert_elements(res, theirs)
    # theta = 0.5 here: one null inside the bounds (rva = 0), one outside, rho below one
    assert_analysis(res, theirs, 0.04, 0.03, 0.9, 0.9, 0.45)
    sens = assert_analysis(res, theirs, 0.1, 0.05, 1.0, 0.95, 0.0)
    table = sens.summary()
    assert list(table.columns) == ["CI lower", "theta lower", "theta", "theta upper", "CI upper",
                                   "H_0", "RV (%)", "RVa (%)"]
    assert table.loc["d", "theta lower"] < table.loc["d", "theta"] < table.loc["d", "theta upper"]


@pytest.mark.filterwarnings("ignore:propensity predictions from ml_m were clipped")
@pytest.mark.parametrize("score, name, normalize", [(jc.dml.ATE(), "ATE", False),
                                                    (jc.dml.ATTE(), "ATTE", True)])
def test_irm_sensitivity_matches_doubleml(score, name, normalize):
    data = jc.datasets.make_irm_data(n_obs=400, dim_x=5, theta=0.5, key=jr.key(3))
    rng = np.random.default_rng(4)
    n, n_rep = data.n_obs, 2
    d = np.asarray(data.t[:, 0])
    # external predictions that are informative (so that nu2 > 0) and need trimming
    ext = {"ml_g0": rng.normal(size=(n, n_rep)), "ml_g1": 0.5 + rng.normal(size=(n, n_rep)),
           "ml_m": np.clip(0.6 * d[:, None] + 0.2 + 0.15 * rng.normal(size=(n, n_rep)), 0.01,
                           0.99)}
    folds = jc.dml.draw_folds(jr.key(5), n, 4, n_rep)
    est = jc.dml.IRM(None, None, score=score, trimming=0.05, normalize_ipw=normalize, n_folds=4,
                     n_rep=n_rep)
    res = est.fit(data, key=jr.key(0), folds=folds, external_predictions=ext)
    theirs = ref.fit(doubleml.DoubleMLIRM, data, [ref.linear(), ref.logistic()], folds, 4, n_rep,
                     external={"d": ext}, score=name, trimming_threshold=0.05,
                     normalize_ipw=normalize)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    assert_elements(res, theirs, rtol=1e-12)
    assert_analysis(res, theirs, 0.03, 0.03, 1.0, 0.95, 0.0)
    assert_analysis(res, theirs, 0.2, 0.1, -0.5, 0.9, 0.8)


def test_nu2_fallback_matches_doubleml_and_warns():
    # Propensities unrelated to the treatment make the orthogonal nu2 negative: DoubleML then
    # re-estimates nu2 from the representer (in every repetition); we match it and warn when the
    # analysis uses it. (The configuration of the IRM test above: no new compilation.)
    data = jc.datasets.make_irm_data(n_obs=400, dim_x=5, theta=0.5, key=jr.key(3))
    n, rng = data.n_obs, np.random.default_rng(0)
    ext = {"ml_g0": rng.normal(size=(n, 2)), "ml_g1": rng.normal(size=(n, 2)),
           "ml_m": rng.uniform(0.02, 0.98, size=(n, 2))}
    folds = jc.dml.draw_folds(jr.key(5), n, 4, 2)
    bad = jc.dml.IRM(None, None, trimming=0.05, n_folds=4, n_rep=2).fit(
        data, key=jr.key(0), folds=folds, external_predictions=ext)
    assert bool(bad.sensitivity_elements["nu2_fallback"].any())
    rr = np.asarray(bad.sensitivity_elements["riesz_rep"])
    np.testing.assert_allclose(bad.sensitivity_elements["nu2"], np.mean(rr**2, -1), rtol=1e-12)
    theirs = ref.fit(doubleml.DoubleMLIRM, data, [ref.linear(), ref.logistic()], folds, 4, 2,
                     external={"d": ext}, trimming_threshold=0.05)
    assert_elements(bad, theirs, rtol=1e-12)
    with pytest.warns(UserWarning, match="nu2 is not positive for \\['d'\\]"):
        bad.sensitivity()


def test_pliv_sensitivity_with_the_treatment_as_instrument_is_doubleml_plr(plr_data):
    # DoubleML 0.11 has no PLIV sensitivity; ours reduces to its PLR elements when Z = D.
    data = jc.CausalData(plr_data.y, plr_data.t, plr_data.x, z=plr_data.t[:, 0],
                         x_names=plr_data.x_names, t_names=("d",), z_names=("z",))
    lin = jc.learners.Linear()
    res = jc.dml.PLIV(lin, lin, lin, n_folds=4, n_rep=3).fit(data, key=jr.key(0))
    theirs = ref.fit(doubleml.DoubleMLPLR, plr_data, [ref.linear(), ref.linear()], res.folds, 4, 3)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    assert_elements(res, theirs)
    assert_analysis(res, theirs, 0.04, 0.03, 1.0, 0.95, 0.3)


def test_sensitivity_benchmark_matches_doubleml(plr_data):
    lin = jc.learners.Linear()
    res = jc.dml.PLR(lin, lin, n_folds=4, n_rep=3).fit(plr_data, key=jr.key(0))
    theirs = ref.fit(doubleml.DoubleMLPLR, plr_data, [ref.linear(), ref.linear()], res.folds, 4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = theirs.sensitivity_benchmark(benchmarking_set=["X1", "X3"])
    ours = res.sensitivity_benchmark(plr_data, benchmarking_set=["X1", "X3"])
    assert list(ours.columns) == list(expected.columns)
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-7)
    # the benchmark feeds the plot
    import matplotlib

    matplotlib.use("Agg")
    sens = res.sensitivity(cf_y=0.03, cf_d=0.03)
    ax = sens.plot(benchmarks=ours, grid_size=12)
    assert ax.get_xlabel() == "cf_d" and ax.get_ylabel() == "cf_y"
    cf_d, cf_y, values = sens.grid(grid_size=12)
    # the grid's value at the scenario's corner is the bound at (cf_y, cf_d) = (0.15, 0.15)
    corner = res.sensitivity(cf_y=0.15, cf_d=0.15)
    np.testing.assert_allclose(values[-1, -1], corner.theta_lower[0], rtol=1e-12)
    np.testing.assert_allclose(values[0, 0], res.theta[0], rtol=1e-12)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_bad_arguments_name_themselves(plr_data):
    lin = jc.learners.Linear()
    res = jc.dml.PLR(lin, lin, n_folds=4, n_rep=3).fit(plr_data, key=jr.key(0))
    for kwargs, match in (({"cf_y": 1.0}, r"cf_y must be in \[0, 1\)"),
                          ({"cf_y": -0.1}, r"cf_y must be in \[0, 1\)"),
                          ({"cf_d": 1.5}, r"cf_d must be in \[0, 1\)"),
                          ({"rho": 1.2}, r"rho must be in \[-1, 1\]"),
                          ({"rho": -1.01}, r"rho must be in \[-1, 1\]"),
                          ({"level": 1.0}, "level must be a float in"),
                          ({"null_hypothesis": np.zeros(2)}, "null_hypothesis must be a float")):
        with pytest.raises(ValueError, match=match):
            res.sensitivity(**kwargs)
    with pytest.raises(ValueError, match=r"benchmarking_set names \['W1'\], which are not cov"):
        res.sensitivity_benchmark(plr_data, benchmarking_set=["W1"])
    with pytest.raises(ValueError, match="benchmarking_set must not be empty"):
        res.sensitivity_benchmark(plr_data, benchmarking_set=[])
    with pytest.raises(TypeError, match="benchmarking_set must be a list"):
        res.sensitivity_benchmark(plr_data, benchmarking_set="X1")


def test_float32_sensitivity_on_badly_scaled_data():
    # Outcome in the 1e5 range, treatment in the 1e-3 range; external float32 predictions so that
    # only the sensitivity computations are tested. float32 keeps ~7 digits: the bounds and
    # robustness values agree with the float64 analysis of the same inputs to 2e-4 relative
    # (rv, found by bisection, to 1e-4 absolute).
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, 3)) * np.array([1e-3, 1.0, 1e5])
    d = 1e-3 * (x[:, 0] / 1e-3 + rng.normal(size=n))
    y = 1e5 * (0.5 * d / 1e-3 + x[:, 1] + rng.normal(size=n))
    ext = {"ml_l": y - 1e5 * rng.normal(size=n) * 0.9, "ml_m": d - 1e-3 * rng.normal(size=n)}
    folds = np.asarray(jc.dml.draw_folds(jr.key(0), n, 5, 1))
    out = {}
    for precision in ("64", "32"):
        dtype = np.float64 if precision == "64" else np.float32
        with jax.enable_x64(precision == "64"):
            data = jc.CausalData(y.astype(dtype), d.astype(dtype), x.astype(dtype))
            ext_p = {k: v.astype(dtype) for k, v in ext.items()}
            res = jc.dml.PLR(None, None).fit(data, key=jr.key(1), folds=folds,
                                             external_predictions=ext_p)
            sens = res.sensitivity(cf_y=0.05, cf_d=0.05, null_hypothesis=40_000.0)
            assert sens.theta_lower.dtype == jnp.dtype(dtype)
            out[precision] = {k: np.asarray(getattr(sens, k), np.float64) for k in (
                "theta_lower", "theta_upper", "ci_lower", "ci_upper", "rv", "rva")}
    for name in ("theta_lower", "theta_upper", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(out["32"][name], out["64"][name], rtol=2e-4, err_msg=name)
    for name in ("rv", "rva"):
        np.testing.assert_allclose(out["32"][name], out["64"][name], atol=1e-4, err_msg=name)
