import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc
from jaxcausal.datasets import q10_synthetic


def _daytime(n_rows):
    df, truth = q10_synthetic(jr.key(0), n_obs=3 * n_rows, years=2)
    day = np.flatnonzero(df["SW_POT"].to_numpy() > 0)[:n_rows]
    hidden = {k: v[day] for k, v in truth.items() if isinstance(v, np.ndarray)}
    return df.iloc[day].reset_index(drop=True), hidden


def test_flux_partitioning_recovers_light_use_efficiency():
    df, truth = _daytime(2500)
    data = jc.CausalData.from_pandas(
        df, y="NEE", t="SW_IN", x=["TA", "VPD", "SW_POT_sm", "SW_POT_sm_diff"]
    )
    small = jc.learners.MLP(width=32, max_steps=800, eval_every=20, patience=8)
    model = jc.hybrid.FluxPartitioning(small, small, small, n_folds=3)
    res = model.fit(data, key=jr.key(1))
    table = res.evaluate(truth)
    # The bar: LUE(x) correlates above 0.9 with the truth (measured 0.99+ at n = 5000).
    assert table.loc["LUE", "corr"] > 0.9
    assert table.loc["GPP", "R2"] > 0.9
    # Respiration is the remainder of two nuisances and noisier; it must still explain most of it.
    assert table.loc["RECO", "R2"] > 0.6
    np.testing.assert_allclose(res.gpp, res.lue * data.t[:, 0], rtol=1e-12)
    np.testing.assert_allclose(res.lue_at(data.x[:5]), res.lue[:5], rtol=1e-10)


def test_flux_partitioning_errors():
    x = np.ones((10, 2))
    data = jc.CausalData(y=np.zeros(10), t=-np.ones(10), x=x)
    with pytest.raises(ValueError, match=r"SW_IN\) must be non-negative"):
        jc.hybrid.FluxPartitioning().fit(data, key=jr.key(0))
