"""PLIV: exact parity with DoubleML 0.11 (same data, same folds, float64)."""

import doubleml
import numpy as np
import pytest

import jaxcausal as jc

from . import _reference as ref

RTOL = 1e-8  # the same least-squares problems on both sides


@pytest.mark.parametrize("n_z", [1, 3])
def test_pliv_partialling_out_matches_doubleml(n_z, getkey):
    data = jc.datasets.make_pliv_CHS2015(n_obs=250, dim_x=8, dim_z=n_z, key=getkey())
    lin = jc.learners.Linear()
    res = jc.dml.PLIV(lin, lin, lin, n_folds=3, n_rep=2).fit(data, key=getkey())
    theirs = ref.fit(doubleml.DoubleMLPLIV, data, [ref.linear()] * 3, res.folds, 3, 2)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)


def test_pliv_iv_type_matches_doubleml(getkey):
    data = jc.datasets.make_pliv_CHS2015(n_obs=250, dim_x=8, dim_z=1, key=getkey())
    lin = jc.learners.Linear()
    res = jc.dml.PLIV(lin, lin, lin, lin, score=jc.dml.IVType(), n_folds=3).fit(data, key=getkey())
    theirs = ref.fit(doubleml.DoubleMLPLIV, data, [ref.linear()] * 4, res.folds, 3, 1,
                     score="IV-type")
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)


def test_pliv_external_predictions_match_doubleml(getkey):
    data = jc.datasets.make_pliv_CHS2015(n_obs=200, dim_x=8, dim_z=1, key=getkey())
    rng = np.random.default_rng(2)
    ext = {name: rng.normal(size=(200, 2)) for name in ("ml_l", "ml_m", "ml_r")}
    folds = jc.dml.draw_folds(getkey(), 200, 5, 2)
    res = jc.dml.PLIV(None, None, None, n_rep=2).fit(
        data, key=getkey(), folds=folds, external_predictions=ext)
    theirs = ref.fit(doubleml.DoubleMLPLIV, data, [ref.linear()] * 3, folds, 5, 2,
                     external={"d": ext})
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=1e-12)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=1e-12)
