import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

from ._models import linear_scm


@pytest.fixture(scope="module")
def fitted_and_truth():
    truth, _ = linear_scm(21)
    data = truth.sample(2000, key=jr.key(0))
    return jc.scm.fit(jc.scm.SCM.from_graph(truth.graph), data), truth


def test_single_shift_target_is_recovered(fitted_and_truth):
    fitted, truth = fitted_and_truth
    after = truth.shift({"x2": 1.0}).sample(300, key=jr.key(1))
    post = jc.scm.infer_interventions(
        fitted, after, key=jr.key(2), method=jc.scm.NUTS(100, 100, max_tree_depth=5)
    )
    probs = dict(zip(post.names, np.asarray(post.target_probs)))
    assert probs["x2"] >= 0.9
    assert float(post.none_prob) < 0.05
    w = np.asarray(post.target_weights[:, 2])
    strength = float(np.sum(w * np.asarray(post.strength[:, 2])) / np.sum(w))
    # A shift of 1 (noise sd ~0.5-1.5, 300 rows): the posterior mean is within ~0.15.
    assert strength == pytest.approx(1.0, abs=0.2)
    assert post.summary().index[0] == "x2"


def test_svi_and_do_kind(fitted_and_truth):
    fitted, truth = fitted_and_truth
    after = truth.do({"x3": 2.0}).sample(300, key=jr.key(3))
    post = jc.scm.infer_interventions(
        fitted,
        after,
        key=jr.key(4),
        kind=jc.scm.Do(),
        method=jc.scm.SVI(steps=300, num_samples=100),
    )
    assert post.summary().index[0] == "x3"
    assert float(post.target_probs[3]) >= 0.9


def test_infer_bad_input(fitted_and_truth):
    fitted, truth = fitted_and_truth
    after = truth.sample(10, key=jr.key(5))
    with pytest.raises(TypeError, match="kind must be an object"):
        jc.scm.infer_interventions(fitted, after, key=jr.key(0), kind="shift")
    with pytest.raises(ValueError, match="no columns for nodes"):
        jc.scm.infer_interventions(fitted, {"x0": after["x0"]}, key=jr.key(0))
    with pytest.raises(TypeError, match="method must be"):
        jc.scm.infer_interventions(fitted, after, key=jr.key(0), method="nuts")
