import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc
from jaxcausal.datasets import q10_synthetic

# Small nuisance networks keep the test quick; the drivers are two smooth columns.
LEARNER = jc.learners.MLP(width=32, depth=2, max_steps=600, eval_every=20, patience=8)


@pytest.mark.parametrize("q10, t_ref", [(1.5, 15.0), (2.2, 10.0)])
def test_dml_recovers_q10_within_its_interval(q10, t_ref):
    df, truth = q10_synthetic(jr.key(4), n_obs=3000, q10=q10, t_ref=t_ref)
    data = jc.CausalData.from_pandas(df, y="RECO", t="TA", x=["SW_POT_sm", "SW_POT_sm_diff"])
    res = jc.hybrid.Q10DML(LEARNER, LEARNER, t_ref=t_ref, n_folds=3).fit(data, key=jr.key(1))
    lo, hi = np.asarray(res.confint(0.95))
    assert lo < q10 < hi
    # The interval is informative: 3000 rows with 20% noise give a half-width near 0.03.
    assert hi - lo < 0.15 * q10
    # The naive regression on the same data is far outside that interval (confounding).
    naive = np.exp(np.polyfit((df["TA"] - t_ref) / 10, np.log(df["RECO"]), 1)[0])
    assert naive > hi + 0.2
    rb = res.rb(data.x)
    # Base respiration within 10% on average (smooth in two drivers; smearing corrects the log).
    assert float(jnp.mean(jnp.abs(rb / truth["Rb"] - 1.0))) < 0.1
    table = res.summary()
    assert list(table.index) == ["Q10"] and np.isclose(table["Q10"].iloc[0], float(res.q10))


def test_positive_reco_is_required():
    x = np.ones((10, 1))
    data = jc.CausalData(y=np.r_[np.ones(9), 0.0], t=np.arange(10.0), x=x)
    with pytest.raises(ValueError, match=r"y \(RECO\) must be positive.*row 9"):
        jc.hybrid.Q10DML(jc.learners.Linear(), jc.learners.Linear()).fit(data, key=jr.key(0))
