"""Metrics for causal estimates."""

from ._te import (
    ate_error as ate_error,
    gaussian_kernel as gaussian_kernel,
    mmd as mmd,
    pehe as pehe,
)
