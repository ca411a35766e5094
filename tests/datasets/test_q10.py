import jax.random as jr
import numpy as np
import pytest

from jaxcausal.datasets import q10_synthetic


@pytest.fixture(scope="module")
def year():
    return q10_synthetic(jr.key(0), years=1, q10=2.0, t_ref=10.0)


def test_columns_shapes_and_identities(year):
    df, truth = year
    assert len(df) == 365 * 48
    expected = {"SW_POT", "SW_POT_sm", "SW_POT_sm_diff", "TA", "VPD", "SW_IN", "RECO", "GPP", "NEE"}
    assert expected <= set(df)
    np.testing.assert_allclose(df["NEE"], df["RECO"] - df["GPP"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(truth["GPP"], truth["LUE"] * df["SW_IN"], rtol=1e-5, atol=1e-6)
    tau = (df["TA"] - 10.0) / 10.0
    np.testing.assert_allclose(truth["RECO"], truth["Rb"] * 2.0**tau, rtol=1e-5)
    # Multiplicative noise is truncated at |eps| < 0.95, so observed RECO stays positive.
    ratio = df["RECO"] / truth["RECO"] - 1.0
    assert (df["RECO"] > 0).all() and np.abs(ratio).max() < 0.95
    assert (df["SW_POT"] >= 0).all() and (df["SW_IN"] <= df["SW_POT"] + 1e-6).all()
    assert (df["VPD"] > 0).all()


def test_confounding_is_present_and_the_oracle_recovers_q10(year):
    df, truth = year
    y, tau = np.log(df["RECO"]), (df["TA"] - 10.0) / 10.0
    naive = np.exp(np.polyfit(tau, y, 1)[0])
    oracle = np.exp(np.polyfit(tau, y - np.log(truth["Rb"]), 1)[0])
    # The oracle knows Rb: with 17,520 rows its slope has s.e. below 0.005 on the log scale.
    assert abs(oracle - 2.0) < 0.03
    # Rb and TA share the season, so ignoring Rb inflates Q10 far beyond sampling error.
    assert naive > 2.3


def test_subsample_is_reproducible_and_ordered():
    a, _ = q10_synthetic(jr.key(3), years=1, n_obs=500)
    b, _ = q10_synthetic(jr.key(3), years=1, n_obs=500)
    assert len(a) == 500 and a.equals(b)
    assert (np.diff(a["doy"] * 48 + a["hour"] * 2) > 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"years": 0}, "years must be at least 1"),
        ({"q10": -1.0}, "q10 must be positive"),
        ({"noise": 1.0}, r"noise must be in \[0, 1\)"),
        ({"latitude": 100.0}, "latitude must be in"),
        ({"years": 1, "n_obs": 10**6}, "n_obs must be between 1 and 17520"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        q10_synthetic(jr.key(0), **kwargs)
