"""Bad inputs and failed fits raise errors that name the problem (eagerly and under jit)."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc


class _NaNLearner(jc.learners.AbstractLearner):
    """A learner whose predictions are NaN (as a diverged network's would be)."""

    def fit(self, x, y, *, key, weights=None):
        pred = jc.learners.Linear().fit(x, y, key=key, weights=weights)
        return eqx.tree_at(lambda p: p.intercept, pred, jnp.asarray(jnp.nan, x.dtype))


@pytest.fixture(scope="module")
def irm_data():
    return jc.datasets.make_irm_data(n_obs=60, dim_x=3, theta=0.5, key=jr.key(4))


def test_non_binary_treatment_for_irm():
    data = jc.datasets.make_plr_CCDDHNR2018(n_obs=50, dim_x=3, key=jr.key(0))
    est = jc.dml.IRM(jc.learners.Linear(), jc.learners.Logistic())
    with pytest.raises(ValueError, match=r"t must be binary .*for IRM"):
        est.fit(data, key=jr.key(1))


def test_fewer_rows_than_folds():
    data = jc.datasets.make_plr_CCDDHNR2018(n_obs=4, dim_x=3, key=jr.key(0))
    est = jc.dml.PLR(jc.learners.Linear(), jc.learners.Linear(), n_folds=5)
    with pytest.raises(ValueError, match="data has 4 rows but n_folds=5"):
        est.fit(data, key=jr.key(1))


def test_propensities_at_zero_or_one_after_trimming(irm_data):
    n = irm_data.n_obs
    d = np.asarray(irm_data.t[:, 0])
    ext = {"ml_g0": np.zeros(n), "ml_g1": np.zeros(n), "ml_m": d.copy()}
    est = jc.dml.IRM(None, None, trimming=0.0)
    with pytest.raises(ValueError, match="propensity scores from ml_m are 0 or 1 after trimming"):
        est.fit(irm_data, key=jr.key(0), external_predictions=ext)
    # the default trimming keeps them inside (0, 1), with the overlap warnings
    with pytest.warns(UserWarning, match="are 0 or 1 up to 1e-12 for 100.00% of the rows"):
        with pytest.warns(UserWarning, match="clipped to the trimming bounds for 100.0% of"):
            res = jc.dml.IRM(None, None).fit(irm_data, key=jr.key(0), external_predictions=ext)
    assert np.isfinite(res.theta).all()


def test_fold_with_no_treated_unit(irm_data):
    d = np.asarray(irm_data.t[:, 0]).astype(int)
    # all treated rows in fold 0: the training rows of fold 0 hold no treated unit
    folds = np.where(d == 1, 0, 1 + np.arange(d.size) % 2)[None, :]
    est = jc.dml.IRM(jc.learners.Linear(), jc.learners.Logistic(l2=1.0), n_folds=3)
    with pytest.raises(ValueError, match=r"a training fold has no treated unit .*fold 0"):
        est.fit(irm_data, key=jr.key(0), folds=folds)


def test_nan_predictions_from_a_learner():
    data = jc.datasets.make_plr_CCDDHNR2018(n_obs=40, dim_x=3, key=jr.key(0))
    est = jc.dml.PLR(jc.learners.Linear(), _NaNLearner(), n_folds=2)
    with pytest.raises(ValueError, match="the learner ml_m returned NaN or infinite"):
        est.fit(data, key=jr.key(1))
    # under jit the check becomes an eqx.error_if; with throw=False it is reported instead
    with pytest.raises(Exception, match="a DML check failed"):
        eqx.filter_jit(lambda d, k: est.fit(d, key=k))(data, jr.key(1))
    res = est.fit(data, key=jr.key(1), throw=False)
    assert not bool(res.ok) and not bool(res.checks["finite:ml_m"].all())


def test_argument_errors():
    lin = jc.learners.Linear()
    # (under the test suite's beartype checks the annotation catches it first; both name score)
    with pytest.raises(TypeError, match="score"):
        jc.dml.PLR(lin, lin, score="IV-type")
    with pytest.raises(ValueError, match="n_folds must be an integer of at least 2"):
        jc.dml.PLR(lin, lin, n_folds=1)
    with pytest.raises(ValueError, match="trimming must be in"):
        jc.dml.IRM(lin, lin, trimming=0.6)
    data = jc.datasets.make_plr_CCDDHNR2018(n_obs=30, dim_x=3, key=jr.key(0))
    est = jc.dml.PLR(lin, lin, n_folds=3, n_rep=2)
    with pytest.raises(ValueError, match=r"folds must have shape \(n_rep, n_obs\) = \(2, 30\)"):
        est.fit(data, key=jr.key(0), folds=np.zeros((1, 30), int))
    with pytest.raises(ValueError, match="fold 2 of repetition 0 in folds is empty"):
        est.fit(data, key=jr.key(0), folds=np.tile(np.arange(30) % 2, (2, 1)))
    with pytest.raises(ValueError, match="unknown learner 'ml_x'"):
        est.fit(data, key=jr.key(0), external_predictions={"ml_x": np.zeros(30)})
    with pytest.raises(ValueError, match=r"external_predictions\['ml_l'\] must have shape"):
        est.fit(data, key=jr.key(0), external_predictions={"ml_l": np.zeros((30, 3))})
    with pytest.raises(ValueError, match="PLIV needs instruments"):
        jc.dml.PLIV(lin, lin, lin).fit(data, key=jr.key(0))
    with pytest.raises(ValueError, match="ml_l is None and no external predictions"):
        jc.dml.PLR(None, lin).fit(data, key=jr.key(0))
