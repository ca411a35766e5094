r"""Distances between samples and scores of predicted perturbations: energy distance, Sinkhorn
divergence (ott-jax), squared error of means, target AUROC / AUPRC, interval coverage.

The MMD with an RBF kernel (biased or unbiased) is [`jaxcausal.metrics.mmd`][];
[`jaxcausal.metrics.median_bandwidth`][] gives the usual median-heuristic width for it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_ndim


def _samples(x: ArrayLike, y: ArrayLike) -> tuple[Array, Array]:
    x, y = as_float_array(x, "x"), as_float_array(y, "y")
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    check_ndim(x, (2,), "x", "a sample of shape (m, d)")
    check_ndim(y, (2,), "y", "a sample of shape (n, d)")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same number of columns; got {x.shape[1]} and {y.shape[1]}"
        )
    return x, y


def _distances(a: Array, b: Array) -> Array:
    # Differences, not |a|^2 + |b|^2 - 2ab: that cancels badly (the diagonal of a sample with
    # itself would be sqrt(rounding error), which in float32 is ~3e-4 |a|).
    sq = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    # sqrt with a zero gradient at 0 (identical points), not NaN.
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def energy_distance(x: ArrayLike, y: ArrayLike, *, unbiased: bool = False) -> Float[Array, ""]:
    r"""Squared energy distance between two samples (Székely and Rizzo 2013).

    $D^2 = 2\,E\lVert X - Y\rVert - E\lVert X - X'\rVert - E\lVert Y - Y'\rVert$, zero exactly
    when the distributions are equal. The default V-statistic averages over all pairs (so it is
    $\ge 0$, and in one dimension equals the square of `scipy.stats.energy_distance`);
    `unbiased=True` leaves out $i = j$ in the within-sample terms (U-statistic, unbiased, may be
    negative).

    **Arguments:** `x` `(m, d)` (or `(m,)`), `y` `(n, d)` (or `(n,)`); `unbiased`.

    **Returns:** a scalar.
    """
    x, y = _samples(x, y)
    m, n = x.shape[0], y.shape[0]
    if unbiased and min(m, n) < 2:
        raise ValueError("unbiased=True needs at least 2 rows in x and in y")
    xy = jnp.mean(_distances(x, y))
    sxx, syy = jnp.sum(_distances(x, x)), jnp.sum(_distances(y, y))
    if unbiased:
        return 2.0 * xy - sxx / (m * (m - 1)) - syy / (n * (n - 1))
    return 2.0 * xy - sxx / m**2 - syy / n**2


def median_bandwidth(x: ArrayLike, y: ArrayLike) -> Float[Array, ""]:
    """The median heuristic: the median Euclidean distance between the pooled rows of `x` and
    `y` (pairs `i < j`), a common RBF width for [`jaxcausal.metrics.mmd`][]."""
    x, y = _samples(x, y)
    z = jnp.concatenate([x, y])
    d = _distances(z, z)
    i, j = jnp.triu_indices(z.shape[0], 1)
    return jnp.median(d[i, j])


def sinkhorn_divergence(
    x: ArrayLike, y: ArrayLike, *, epsilon: float = 0.1
) -> Float[Array, ""]:
    r"""Debiased Sinkhorn divergence with squared Euclidean cost (Feydy et al. 2019), by ott-jax.

    $S_\varepsilon(\alpha, \beta) = OT_\varepsilon(\alpha, \beta) - \tfrac12 OT_\varepsilon(\alpha,
    \alpha) - \tfrac12 OT_\varepsilon(\beta, \beta)$ between the two empirical measures (uniform
    weights). Needs the optional extra `pip install "jaxcausal[ot]"` (ott-jax).

    **Arguments:** `x` `(m, d)`, `y` `(n, d)`; `epsilon`, the entropic regularisation.
    """
    try:
        from ott.geometry import pointcloud
        from ott.tools import sinkhorn_divergence as sd
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'sinkhorn_divergence needs ott-jax: pip install "jaxcausal[ot]"'
        ) from err
    x, y = _samples(x, y)
    with jax.numpy_rank_promotion("allow"):  # ott relies on implicit rank promotion
        value, _ = sd.sinkhorn_divergence(pointcloud.PointCloud, x, y, epsilon=epsilon)
    return value


def mean_squared_error(x: ArrayLike, y: ArrayLike) -> Float[Array, ""]:
    r"""Squared error of the means, averaged over variables: $\frac1d \lVert \bar x - \bar y
    \rVert^2$ for samples `x` `(m, d)` and `y` `(n, d)`; pass `(1, d)` means to compare means."""
    x, y = _samples(x, y)
    return jnp.mean((jnp.mean(x, axis=0) - jnp.mean(y, axis=0)) ** 2)


def _labels_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[Array, Array]:
    y = as_float_array(labels, "labels").reshape(-1)
    s = as_float_array(scores, "scores").reshape(-1)
    if y.shape != s.shape:
        raise ValueError(
            f"labels and scores must have the same size; got {y.shape[0]} and {s.shape[0]}"
        )
    return y, s


def auroc(labels: ArrayLike, scores: ArrayLike) -> Float[Array, ""]:
    r"""Area under the ROC curve: $P(s^+ > s^-) + \tfrac12 P(s^+ = s^-)$ over pairs of a
    positive and a negative (Mann-Whitney, ties counted half; equals scikit-learn's
    `roc_auc_score`). `labels` are 0/1 and `scores` of any shape (flattened together), e.g. the
    `(m, d)` true targets and predicted target probabilities. NaN when a class is absent."""
    y, s = _labels_scores(labels, scores)
    srt = jnp.sort(s)
    rank = 0.5 * (jnp.searchsorted(srt, s, side="left") + jnp.searchsorted(srt, s, side="right"))
    rank = rank + 0.5  # average 1-based rank of each score among ties
    n_pos = jnp.sum(y)
    n_neg = y.shape[0] - n_pos
    return (jnp.sum(y * rank) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auprc(labels: ArrayLike, scores: ArrayLike) -> Float[Array, ""]:
    r"""Area under the precision-recall curve as average precision,
    $\sum_k (R_k - R_{k-1}) P_k$ over the distinct score thresholds (scikit-learn's
    `average_precision_score`). Same arguments as [`jaxcausal.metrics.auroc`][]."""
    y, s = _labels_scores(labels, scores)
    n = s.shape[0]
    order = jnp.argsort(-s)
    y_desc, s_desc = y[order], s[order]
    tp = jnp.cumsum(y_desc)
    # The last position of each tie group: a threshold includes every tied score at once.
    end = n - jnp.searchsorted(jnp.sort(s), s_desc, side="left") - 1
    precision = tp[end] / (end + 1.0)
    return jnp.sum(y_desc * precision) / jnp.sum(y)


def interval_coverage(
    lower: ArrayLike, upper: ArrayLike, truth: ArrayLike
) -> Float[Array, ""]:
    """Share of `truth` values inside `[lower, upper]` (arrays of one shape, or broadcastable)."""
    lo, hi = as_float_array(lower, "lower"), as_float_array(upper, "upper")
    t = as_float_array(truth, "truth")
    return jnp.mean((lo <= t) & (t <= hi))
