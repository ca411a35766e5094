"""Metrics for causal estimates."""

from ._distribution import (
    auprc as auprc,
    auroc as auroc,
    energy_distance as energy_distance,
    interval_coverage as interval_coverage,
    mean_squared_error as mean_squared_error,
    median_bandwidth as median_bandwidth,
    sinkhorn_divergence as sinkhorn_divergence,
)
from ._te import (
    ate_error as ate_error,
    gaussian_kernel as gaussian_kernel,
    mmd as mmd,
    pehe as pehe,
)
