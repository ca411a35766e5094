"""Nuisance learners: configuration in, a fitted predictor out; every `fit` is vmappable."""

from ._base import AbstractLearner as AbstractLearner, AbstractPredictor as AbstractPredictor
from ._linear import Linear as Linear, LinearPredictor as LinearPredictor
from ._mlp import MLP as MLP, MLPPredictor as MLPPredictor
