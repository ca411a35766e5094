import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

from ._models import linear_scm


def _total(w, i, j):
    """Total effect of x_i on x_j in a linear SCM: entry (i, j) of (I - W)^-1."""
    return np.linalg.inv(np.eye(w.shape[0]) - w)[i, j]


def test_ate_is_the_total_effect(key):
    scm, (names, w, b, s) = linear_scm(13)
    # Common random numbers: each unit's noise cancels, so the estimate is exact to rounding.
    est = jc.scm.ate(scm, "x1", "x4", -0.5, 1.5, n=256, key=key)
    assert float(est) == pytest.approx(2.0 * _total(w, 1, 4), abs=1e-10)


@pytest.mark.parametrize("seed", [14, 15])
def test_mediation_matches_path_formulas(seed, key):
    scm, (names, w, b, s) = linear_scm(seed)
    t, m, y = 1, 2, 4
    a, bb = 0.0, 2.0
    total = _total(w, t, y) * (bb - a)
    w_cut = w.copy()
    w_cut[:, m] = 0.0  # holding the mediator fixed: no edge into it
    direct = _total(w_cut, t, y) * (bb - a)
    res = jc.scm.mediation(
        scm, treatment=f"x{t}", mediator=f"x{m}", outcome=f"x{y}", a=a, b=bb, n=256, key=key
    )
    np.testing.assert_allclose(
        [res.total, res.nde, res.nie, res.cde], [total, direct, total - direct, direct],
        atol=1e-10,
    )
    assert list(res.summary().index) == ["total", "nde", "nie", "cde"]


def test_query_bad_input(key):
    scm, _ = linear_scm(16)
    with pytest.raises(ValueError, match="outcome names nodes"):
        jc.scm.ate(scm, "x1", "nope", n=10, key=key)
    with pytest.raises(ValueError, match="not a descendant"):
        jc.scm.mediation(scm, treatment="x3", mediator="x1", outcome="x4", n=10, key=key)
    with pytest.raises(ValueError, match="three different nodes"):
        jc.scm.mediation(scm, treatment="x1", mediator="x1", outcome="x4", n=10, key=jr.key(1))
