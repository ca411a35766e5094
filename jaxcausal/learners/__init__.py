"""Nuisance learners: configuration in, a fitted predictor out; every `fit` is vmappable."""

from ._base import AbstractLearner as AbstractLearner, AbstractPredictor as AbstractPredictor
from ._cv import (
    CV as CV,
    CVPredictor as CVPredictor,
    Stacked as Stacked,
)
from ._cv_grid import default_candidates as default_candidates
from ._flax import (
    FlaxLearner as FlaxLearner,
    FlaxNet as FlaxNet,
    FlaxPredictor as FlaxPredictor,
)
from ._lasso import (
    Lasso as Lasso,
    LassoCV as LassoCV,
    LassoCVPredictor as LassoCVPredictor,
    LassoPredictor as LassoPredictor,
)
from ._linear import Linear as Linear, LinearPredictor as LinearPredictor
from ._logistic import Logistic as Logistic, LogisticPredictor as LogisticPredictor
from ._mlp import MLP as MLP, MLPPredictor as MLPPredictor
