"""Generative intervention models: predict the effect of unseen perturbations through
distributions over atomic interventions in a jointly learned causal model (Schneider et al.,
ICML 2025), with an exact Bayesian few-shot posterior and baselines."""

from ._baselines import (
    Control as Control,
    FittedControl as FittedControl,
    FittedUnstructured as FittedUnstructured,
    TwoStage as TwoStage,
    Unstructured as Unstructured,
)
from ._calibrate import calibrate as calibrate
from ._causal import MLPSCM as MLPSCM, LinearSCM as LinearSCM
from ._data import PerturbationData as PerturbationData
from ._fitted import FittedGIM as FittedGIM, ShiftPrediction as ShiftPrediction
from ._gim import GIM as GIM, count_fit_traces as count_fit_traces, fit_batch as fit_batch
from ._posterior import GIMPosterior as GIMPosterior, posterior as posterior
