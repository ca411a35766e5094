"""The checks DoubleML users rely on: clear errors and warnings that name the column, eagerly and
after a jitted fit (`DMLResult.report`), and the precision each result records."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest

import jaxcausal as jc

LIN = jc.learners.Linear()
# A small penalty keeps the propensity fits finite on the separated data below.
LOGIT = jc.learners.Logistic(l2=1.0)


def _binary_data(n=200, p=3, seed=0, share=0.4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    d = (rng.uniform(size=n) < share).astype(float)
    y = d + x[:, 0] + rng.normal(size=n)
    return x, d, y


def test_treatment_that_is_also_a_covariate_raises():
    x, d, y = _binary_data()
    df = pd.DataFrame({"y": y, "d": d, "x0": x[:, 0], "x1": x[:, 1]})
    with pytest.raises(ValueError, match="column 'd' is given both as treatment .t. and as "
                                         "covariate .x."):
        jc.CausalData.from_pandas(df, y="y", t="d", x=["x0", "d"])
    with pytest.raises(ValueError, match=r"treatment 't' \(t\[:, 0\]\) is identical to covariate "
                                         r"'x2' \(x\[:, 2\]\)"):
        jc.CausalData(y, d, np.column_stack([x[:, :2], d]))
    z = x[:, 2] + 1.0
    with pytest.raises(ValueError, match=r"instrument 'z' \(z\[:, 0\]\) is identical to "
                                         r"covariate 'x1'"):
        jc.CausalData(y, d, np.column_stack([x[:, :1], z]), z=z, z_names=["z"])
    # The treatment as its own instrument is a valid (degenerate) IV design, not an error.
    assert jc.CausalData(y, d, x, z=d, z_names=["z"]).z_names == ("z",)
    with pytest.raises(ValueError, match="column 'y' is given both as outcome"):
        jc.CausalData.from_pandas(df, y="y", t="d", x=["x0", "y"])


@pytest.mark.parametrize("model", ["plr", "irm", "pliv"])
def test_constant_treatment_raises_for_every_model(model):
    x, _, y = _binary_data(n=60)
    d = np.ones(60)
    z = None if model != "pliv" else x[:, 2] + 0.5 * np.random.default_rng(1).normal(size=60)
    data = jc.CausalData(y, d, x[:, :2], z=z, t_names=["d"])
    est = {"plr": jc.dml.PLR(LIN, LIN, n_folds=3), "irm": jc.dml.IRM(LIN, LOGIT, n_folds=3),
           "pliv": jc.dml.PLIV(LIN, LIN, LIN, n_folds=3)}[model]
    with pytest.raises(ValueError, match="treatment 'd' is constant .every row is 1."):
        est.fit(data, key=jr.key(0))


def test_constant_treatment_under_jit_is_a_failed_check():
    x, _, y = _binary_data(n=60)
    data = jc.CausalData(y, np.full(60, 2.0), x, t_names=["d"])
    est = jc.dml.PLR(LIN, LIN, n_folds=3)
    res = eqx.filter_jit(lambda d, k: est.fit(d, key=k, throw=False))(data, jr.key(0))
    assert not bool(res.ok) and not bool(res.checks["constant:d"])
    with pytest.raises(ValueError, match="treatment 'd' is constant"):
        res.report()
    with pytest.raises(Exception, match="a DML check failed"):
        eqx.filter_jit(lambda d, k: est.fit(d, key=k))(data, jr.key(0))


def test_constant_instrument_raises():
    x, d, y = _binary_data(n=60)
    data = jc.CausalData(y, x[:, 2], x[:, :2], z=np.zeros(60), z_names=["z"])
    with pytest.raises(ValueError, match="instrument 'z' is constant"):
        jc.dml.PLIV(LIN, LIN, LIN, n_folds=3).fit(data, key=jr.key(0))


def test_binary_class_with_fewer_rows_than_folds():
    x, d, y = _binary_data(n=60)
    d = np.zeros(60)
    d[[3, 17, 40]] = 1.0
    data = jc.CausalData(y, d, x, t_names=["d"])
    # IRM raises, as DoubleML's stratified split (scikit-learn's StratifiedKFold) does.
    with pytest.raises(ValueError, match="treatment 'd' has 3 treated rows, fewer than "
                                         "n_folds=5"):
        jc.dml.IRM(LIN, LOGIT, n_folds=5).fit(data, key=jr.key(0))
    # PLR with a binary treatment can still be fitted: a warning.
    with pytest.warns(UserWarning, match="treatment 'd' has 3 treated rows, fewer than "
                                         "n_folds=5"):
        jc.dml.PLR(LIN, LIN, n_folds=5).fit(data, key=jr.key(0))


def _irm_external(data, m):
    n = data.n_obs
    ext = {"ml_g0": np.zeros(n), "ml_g1": np.ones(n), "ml_m": m}
    return jc.dml.IRM(None, None, n_folds=3).fit(data, key=jr.key(0), external_predictions=ext)


def test_clipped_share_warns_above_ten_percent():
    x, d, y = _binary_data(n=200)
    data = jc.CausalData(y, d, x, t_names=["d"])
    m = np.full(200, 0.5)
    m[:60] = 0.004  # 30 % of the rows below the trimming bound 0.01
    with pytest.warns(UserWarning, match=r"ml_m were clipped to the trimming bounds for 30.0% "
                                         r"of the rows \(treatment 'd', repetition 0"):
        res = _irm_external(data, m)
    np.testing.assert_allclose(res.diagnostics["clipped:ml_m"], [[0.3]])
    m[20:60] = 0.5  # 10 %: no warning (filterwarnings = error would raise)
    res = _irm_external(data, m)
    assert bool(res.checks["clipped:ml_m"].all())


def test_separating_covariate_warns_and_is_named():
    x, d, y = _binary_data(n=200)
    x[:, 2] = (np.arange(200) % 25 == 0).astype(float)  # 8 rows, all treated
    d[x[:, 2] == 1] = 1.0
    data = jc.CausalData(y, d, x, t_names=["d"])
    # From the data, before any fit: the covariate is named with the rule it breaks.
    with pytest.warns(UserWarning, match="covariate 'x2' separates treated from untreated rows "
                                         "of treatment 'd' .every row with x2 > 0 is treated."):
        jc.dml.IRM(LIN, LOGIT, n_folds=3).fit(data, key=jr.key(0))
    # From the propensities: 0 or 1 to 1e-12 (DoubleML's rule), with the covariate named.
    m = np.where(x[:, 2] == 1, 1.0, 0.4)
    with pytest.warns(UserWarning, match="covariate 'x2' separates"):
        with pytest.warns(UserWarning, match=r"ml_m are 0 or 1 up to 1e-12 for 4.00% of the "
                                             r"rows .*the covariate\(s\) \['x2'\] separate"):
            _irm_external(data, m)


def test_warnings_of_a_jitted_fit_come_from_report():
    x, d, y = _binary_data(n=200)
    data = jc.CausalData(y, d, x, t_names=["d"])
    m = np.full(200, 0.5)
    m[:60] = 0.004
    est = jc.dml.IRM(None, None, n_folds=3)
    ext = {"ml_g0": np.zeros(200), "ml_g1": np.ones(200), "ml_m": m}
    res = eqx.filter_jit(lambda dd, k: est.fit(dd, key=k, external_predictions=ext))(
        data, jr.key(0))
    # No warning inside the compiled fit; the flags wait in the result, and warnings do not
    # make it fail.
    assert bool(res.ok) and not bool(res.checks["clipped:ml_m"].all())
    with pytest.warns(UserWarning, match="clipped to the trimming bounds for 30.0%"):
        res.report(data)


def test_learner_that_did_not_converge_warns():
    x, d, y = _binary_data(n=200)
    data = jc.CausalData(y, d, x, t_names=["d"])
    est = jc.dml.IRM(LIN, jc.learners.Logistic(max_iter=1), n_folds=3)
    with pytest.warns(UserWarning, match="the learner ml_m did not converge within its "
                                         "iteration limit"):
        est.fit(data, key=jr.key(0))


def _collinear(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    # Correlation 1 - 8e-6 between x1 and x2: condition number ~2.5e5, beyond float32 (8e4) and
    # well inside float64 (4.5e13).
    x[:, 2] = x[:, 1] + 4e-3 * rng.normal(size=n)
    d = x[:, 0] + rng.normal(size=n)
    y = 0.5 * d + x[:, 1] + rng.normal(size=n)
    return x, d, y


def test_precision_warning_names_the_learner_in_float32_only():
    x, d, y = _collinear()
    est = jc.dml.PLR(LIN, LIN, n_folds=3)
    res = est.fit(jc.CausalData(y, d, x, t_names=["d"]), key=jr.key(0))
    assert res.dtype == "float64" and bool(res.checks["precision:ml_l"].all())
    with jax.enable_x64(False):
        data = jc.CausalData(*(jnp.asarray(a, jnp.float32) for a in (y, d, x)), t_names=["d"])
        with pytest.warns(UserWarning, match="the learner ml_l cannot be trusted at float32"):
            with pytest.warns(UserWarning, match="the learner ml_m cannot be trusted"):
                res = est.fit(data, key=jr.key(0))
        assert res.dtype == "float32" and res.summary().attrs["dtype"] == "float32"
        assert float(res.diagnostics["precision:ml_l"].max()) > 8e4
        # An eager learner fit names the nearly collinear columns.
        with pytest.warns(UserWarning, match=r"too ill-conditioned for float32 .*nearly "
                                             r"collinear columns \[1, 2\]"):
            jc.learners.Linear().fit(data.x, data.y)
