"""Joint interventions (one object, several nodes, different kinds) and their DoWhy parity."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc
from jaxcausal.scm import Do, Joint, Shift, Soft

from ._models import linear_scm
from .test_dowhy import _dowhy_model, gcm


def _cf_by_hand(obs, names, w, b, do, shift):
    """x' = W^T x' + b + eps with eps abducted from `obs`, node `do[0]` set to `do[1]` and node
    `shift[0]` moved by `shift[1]`, solved in topological order (NumPy)."""
    x = np.stack([np.asarray(obs[v]) for v in names], axis=1)
    eps = x - x @ w - b[None, :]
    out = np.zeros_like(x)
    for j, v in enumerate(names):
        out[:, j] = out @ w[:, j] + b[j] + eps[:, j]
        if v == do[0]:
            out[:, j] = do[1]
        if v == shift[0]:
            out[:, j] += shift[1]
    return out


def test_joint_counterfactual_matches_numpy_and_dowhy(key):
    scm, (names, w, b, s) = linear_scm(0)
    obs = scm.sample(200, key=key)
    joint = Do({"x1": 1.0}) & Shift({"x3": -0.5})
    assert isinstance(joint, Joint) and joint.targets() == ("x1", "x3")
    cf = scm.counterfactual(obs, joint)
    expected = _cf_by_hand(obs, names, w, b, ("x1", 1.0), ("x3", -0.5))
    for j, v in enumerate(names):
        np.testing.assert_allclose(cf[v], expected[:, j], atol=1e-10)
    # DoWhy's joint intervention: the same abducted noise, both changes in one world.
    import pandas as pd

    df = pd.DataFrame({v: np.asarray(obs[v]) for v in names})
    theirs = gcm.counterfactual_samples(
        _dowhy_model(names, w, b, s, invertible=True),
        {"x1": lambda x: 1.0, "x3": lambda x: x - 0.5}, observed_data=df,
    )
    for v in names:
        np.testing.assert_allclose(cf[v], theirs[v].to_numpy(), atol=1e-8)


def test_intervened_scm_counterfactual_is_ambiguous_and_raises(key):
    scm, _ = linear_scm(1)
    obs = scm.sample(5, key=key)
    with pytest.raises(ValueError, match=r"scm carries interventions \(Do on \['x1'\]\).*joint"):
        scm.do({"x1": 1.0}).counterfactual(obs, Shift({"x3": -0.5}))


def test_joint_sampling_and_batched_rows(key):
    scm, (names, w, b, s) = linear_scm(2)
    joint = Joint(Do({"x1": 0.7}), Shift({"x3": 0.4}))
    both = scm.intervene(joint).sample(64, key=key)
    # Disjoint targets: the same as applying the parts one after the other, by hand.
    a = np.linalg.inv(np.eye(len(b)) - w.T)
    base = scm.do({"x1": 0.7}).sample(64, key=key)
    for j, v in enumerate(names):
        np.testing.assert_allclose(both[v], base[v] + 0.4 * a[j, 3], rtol=1e-10, atol=1e-10)
    rows = Do({"x1": jnp.array([0.7, -1.0, jnp.nan])}) & Shift({"x3": jnp.array([0.4, 0.0, 1.0])})
    out = jc.scm.interventional_samples(scm, rows, 64, key=key, common_noise=True)
    np.testing.assert_allclose(out["x4"][0], both["x4"], rtol=1e-12)
    only_shift = scm.shift({"x3": 1.0}).sample(64, key=key)
    np.testing.assert_allclose(out["x4"][2], only_shift["x4"], rtol=1e-12)


def test_joint_bad_input():
    with pytest.raises(ValueError, match="different nodes; 'x1' is the target of both"):
        Do({"x1": 1.0}) & Shift({"x1": 0.5})
    with pytest.raises(TypeError, match="Joint takes Do, Shift, Soft or Joint"):
        Joint(Do({"x1": 1.0}), {"x2": 1.0})
    with pytest.raises(ValueError, match="must name its nodes"):
        Joint(Do(), Shift({"x1": 1.0}))
    scm, _ = linear_scm(3)
    with pytest.raises(ValueError, match="1-d value arrays of one common length"):
        jc.scm.interventional_samples(
            scm, Do({"x1": jnp.zeros(3)}) & Shift({"x2": jnp.zeros(2)}), 4, key=jr.key(0)
        )
    with pytest.raises(ValueError, match="interventions names nodes"):
        jc.scm.interventional_samples(scm, Do({"q": jnp.zeros(3)}), 4, key=jr.key(0))
    soft = Soft({"x2": lambda d: d}) & Do({"x1": 0.0})
    assert soft.targets() == ("x2", "x1")
