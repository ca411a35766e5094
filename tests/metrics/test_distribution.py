"""Distribution distances and target-recovery scores against SciPy, scikit-learn and NumPy."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.stats import energy_distance as scipy_energy
from sklearn.metrics import average_precision_score, roc_auc_score

import jaxcausal as jc


def test_energy_distance_matches_scipy_and_by_hand(getkey):
    x = jr.normal(getkey(), (40,))
    y = 0.5 + 1.3 * jr.normal(getkey(), (55,))
    # scipy's 1-d energy distance is the square root of the V-statistic.
    got = jc.metrics.energy_distance(x, y)
    assert float(got) == pytest.approx(scipy_energy(np.asarray(x), np.asarray(y)) ** 2, rel=1e-10)
    a, b = np.asarray(jr.normal(getkey(), (12, 3))), np.asarray(jr.normal(getkey(), (9, 3)))
    dist = lambda u, v: np.linalg.norm(u[:, None, :] - v[None, :, :], axis=-1)  # noqa: E731
    want = (2 * dist(a, b).mean() - dist(a, a).sum() / (12 * 11) - dist(b, b).sum() / (9 * 8))
    assert float(jc.metrics.energy_distance(a, b, unbiased=True)) == pytest.approx(want, rel=1e-10)
    assert float(jc.metrics.energy_distance(a, a)) == pytest.approx(0.0, abs=1e-12)
    g = jax.grad(lambda u: jc.metrics.energy_distance(u, b))(jnp.asarray(a))
    assert np.all(np.isfinite(g))


def test_energy_distance_float32_badly_scaled(getkey):
    # Columns of scale 1e-3 ... 1e5: the distance is dominated by the large column; float32
    # agrees with float64 to 1e-3 relative (cancellation in |a|^2 + |b|^2 - 2ab at 1e5 scale).
    c = np.array([1e-3, 1.0, 1e5])
    a = np.asarray(jr.normal(getkey(), (30, 3))) * c
    b = (np.asarray(jr.normal(getkey(), (30, 3))) + 0.5) * c
    want = float(jc.metrics.energy_distance(a, b))
    with jax.enable_x64(False):
        got = jc.metrics.energy_distance(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
        assert got.dtype == jnp.float32
    assert float(got) == pytest.approx(want, rel=1e-3)


def test_auroc_and_auprc_match_sklearn_with_ties(getkey):
    labels = np.asarray(jr.bernoulli(getkey(), 0.3, (200,))).astype(float)
    scores = np.round(np.asarray(jr.normal(getkey(), (200,))) + labels, 1)  # many ties
    assert float(jc.metrics.auroc(labels, scores)) == pytest.approx(
        roc_auc_score(labels, scores), rel=1e-12
    )
    assert float(jc.metrics.auprc(labels, scores)) == pytest.approx(
        average_precision_score(labels, scores), rel=1e-12
    )
    with pytest.raises(ValueError, match="same size"):
        jc.metrics.auroc(labels, scores[:10])


def test_mean_error_coverage_and_bandwidth(getkey):
    x = jr.normal(getkey(), (50, 2))
    y = x + jnp.array([[1.0, 3.0]])
    assert float(jc.metrics.mean_squared_error(x, y)) == pytest.approx(5.0, rel=1e-12)
    cov = jc.metrics.interval_coverage(jnp.zeros(4), jnp.ones(4), jnp.array([0.5, 1.5, 1.0, -1]))
    assert float(cov) == 0.5
    z = np.concatenate([np.asarray(x), np.asarray(y)])
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)[np.triu_indices(100, 1)]
    assert float(jc.metrics.median_bandwidth(x, y)) == pytest.approx(np.median(d), rel=1e-10)
    with pytest.raises(ValueError, match="same number of columns"):
        jc.metrics.energy_distance(x, y[:, :1])


@pytest.mark.slow  # compiling ott's Sinkhorn solver takes ~20 s
def test_sinkhorn_divergence(getkey):
    pytest.importorskip("ott")
    x = jr.normal(getkey(), (50, 2))
    y = x + jnp.array([[1.0, 3.0]])
    same = jc.metrics.sinkhorn_divergence(x, x)
    apart = jc.metrics.sinkhorn_divergence(x, y)
    # For far-apart translates the divergence approaches the squared shift (|(1, 3)|^2 = 10).
    assert abs(float(same)) < 1e-3 and float(apart) == pytest.approx(10.0, rel=0.05)
