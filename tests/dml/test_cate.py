"""CATE: the best linear predictor against DoubleML's `cate()`; the R-learner recovers a known
heterogeneous effect."""

import doubleml
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest

import jaxcausal as jc

from . import _reference as ref

# DoubleML's confint/summary call pandas' set_index(inplace=True), deprecated in pandas 3.1.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


def _basis(data):
    x = np.asarray(data.x)
    return pd.DataFrame(np.column_stack([np.ones(len(x)), x]), columns=["const", *data.x_names])


@pytest.mark.parametrize("kind", ["plr", "irm"])
def test_linear_cate_matches_doubleml(kind, getkey):
    lin = jc.learners.Linear()
    if kind == "plr":
        data = jc.datasets.make_plr_CCDDHNR2018(n_obs=300, dim_x=3, key=getkey())
        model = jc.dml.PLR(lin, lin, n_folds=3, n_rep=2)
        cls, learners = doubleml.DoubleMLPLR, [ref.linear(), ref.linear()]
    else:
        data = jc.datasets.make_irm_data(n_obs=300, dim_x=3, theta=0.5, key=getkey())
        model = jc.dml.IRM(lin, jc.learners.Logistic(), n_folds=3, n_rep=2)
        cls, learners = doubleml.DoubleMLIRM, [ref.linear(), ref.logistic()]
    cate = jc.dml.CATE(model).fit(data, key=getkey())
    theirs = ref.fit(cls, data, learners, cate.dml.folds, 3, 2)
    blp = theirs.cate(_basis(data))
    np.testing.assert_allclose(cate.coef, blp.coef, rtol=1e-7)
    np.testing.assert_allclose(cate.se, blp.se, rtol=1e-7)
    new = np.asarray(jr.normal(getkey(), (5, 3)))
    ci = blp.confint(_basis(jc.CausalData(np.zeros(5), np.zeros(5), new, x_names=data.x_names)))
    np.testing.assert_allclose(cate.effect(new), ci["effect"], rtol=1e-7)
    np.testing.assert_allclose(cate.effect_confint(new), ci[["2.5 %", "97.5 %"]], rtol=1e-7)
    assert list(cate.summary().index) == ["const", *data.x_names]


def test_neural_r_learner_recovers_a_heterogeneous_effect(getkey):
    # tau(x) = 1 + x1 in a randomised experiment (so that the linear nuisances are well specified):
    # the R-learner with a small MLP final stage should track it. With n = 800 the pointwise error
    # of a fitted tau is ~0.1-0.2; a correlation above 0.9 with the truth and a mean over the grid
    # within 0.25 of 1 are loose enough for the noise and tight enough to fail a constant.
    n = 800
    x = jr.normal(getkey(), (n, 3))
    d = 0.5 + jr.normal(getkey(), (n,))
    y = (1.0 + x[:, 0]) * d + x[:, 1] + jr.normal(getkey(), (n,))
    data = jc.CausalData(y, d, x)
    lin = jc.learners.Linear()
    mlp = jc.learners.MLP(width=16, learning_rate=3e-3, max_steps=200)
    fit = jc.dml.CATE(jc.dml.PLR(lin, lin, n_folds=3), final=mlp).fit(data, key=getkey())
    grid = jnp.stack([jnp.linspace(-1.5, 1.5, 21), jnp.zeros(21), jnp.zeros(21)], 1)
    tau = fit.effect(grid)
    assert np.corrcoef(tau, 1.0 + grid[:, 0])[0, 1] > 0.9
    assert abs(float(jnp.mean(tau)) - 1.0) < 0.25
    # the linear final stage on the same data recovers the slope of tau within ~3 se
    lin_fit = jc.dml.CATE(jc.dml.PLR(lin, lin, n_folds=3)).fit(data, key=getkey())
    assert abs(float(lin_fit.coef[1]) - 1.0) < 3 * float(lin_fit.se[1])
