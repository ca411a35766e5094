"""The DID generators: the designs of Sant'Anna and Zhao (2020) and Callaway and Sant'Anna
(2021), drawn from keys, with known effects (checked here without DML, by simple DiD means)."""

import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc


def test_sz2020_experiment_has_the_known_att():
    """Design 5 is an experiment, so the plain difference of mean outcome changes between the
    treated and the controls is unbiased for theta; its se at n = 40000 is ~0.2 (the outcome
    change has sd ~20 from the level term nu), and 4 se bound the error."""
    data = jc.datasets.make_did_SZ2020(n_obs=40_000, dgp_type=5, theta=2.0, key=jr.key(0))
    y, d = np.asarray(data.y), np.asarray(data.t[:, 0])
    assert data.x_names == ("Z1", "Z2", "Z3", "Z4") and data.time is None
    assert abs(d.mean() - 0.5) < 0.01
    diff = y[d == 1].mean() - y[d == 0].mean()
    se = np.sqrt(y[d == 1].var() / (d == 1).sum() + y[d == 0].var() / (d == 0).sum())
    assert abs(diff - 2.0) < 4 * se
    np.testing.assert_allclose(np.asarray(data.x).mean(axis=0), 0.0, atol=1e-10)


def test_sz2020_cross_sections():
    """Each unit observed once: in period 1 with probability lambda_t (n = 400, the size the
    DIDCS tests compile for; share within 4 se = 0.1)."""
    data = jc.datasets.make_did_SZ2020(n_obs=400, cross_sectional=True, key=jr.key(1),
                                       lambda_t=0.3)
    time = np.asarray(data.time)
    assert set(np.unique(time)) == {0.0, 1.0} and abs(time.mean() - 0.3) < 0.1
    with pytest.raises(ValueError, match="dgp_type must be one of"):
        jc.datasets.make_did_SZ2020(n_obs=10, dgp_type=7, key=jr.key(0))


def test_cs2021_group_time_effects_are_known():
    """In the experimental design (5) every ATT(g, t) equals the DiD of group means against the
    never treated: max(t - g + 1, 0); n = 20000 (~4000 per group) gives se ~0.03."""
    panel = jc.datasets.make_did_CS2021(n_obs=20_000, dgp_type=5, key=jr.key(3))
    y, g = np.asarray(panel.y), np.asarray(panel.g)
    assert panel.t_values == (0.0, 1.0, 2.0, 3.0, 4.0) and panel.g_values == (2.0, 3.0, 4.0)
    never = np.isinf(g)
    assert abs(never.mean() - 0.25) < 0.015  # four equally likely groups (se 0.003)
    for gv in panel.g_values:
        base = int(gv) - 1
        for t in range(5):
            if t == base:
                continue
            change = y[:, t] - y[:, base]
            did = change[g == gv].mean() - change[never].mean()
            se = np.sqrt(change[g == gv].var() / (g == gv).sum()
                         + change[never].var() / never.sum())
            assert abs(did - jc.datasets.did_cs2021_att(gv, t)) < 4 * se
    with pytest.raises(ValueError, match="n_pre_treat_periods must be below"):
        jc.datasets.make_did_CS2021(n_obs=10, n_periods=3, n_pre_treat_periods=3, key=jr.key(0))
