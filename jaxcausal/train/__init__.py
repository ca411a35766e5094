"""The training engine: one compiled Optax loop with weights, minibatches, early stopping."""

from ._loop import (
    LossFn as LossFn,
    TrainResult as TrainResult,
    count_traces as count_traces,
    fit as fit,
    fit_ensemble as fit_ensemble,
    run as run,
    weighted_mean as weighted_mean,
)
