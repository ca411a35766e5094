"""Nuisance learners: configuration in, a fitted predictor out; every `fit` is vmappable."""

from typing import TYPE_CHECKING

from ._base import AbstractLearner as AbstractLearner, AbstractPredictor as AbstractPredictor
from ._boosting import Boosting as Boosting, BoostingPredictor as BoostingPredictor
from ._cv import (
    CV as CV,
    CVPredictor as CVPredictor,
    Stacked as Stacked,
)
from ._cv_grid import default_candidates as default_candidates
from ._kernel import (
    KernelRidge as KernelRidge,
    KernelRidgePredictor as KernelRidgePredictor,
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

if TYPE_CHECKING:
    from ._flax import (
        FlaxLearner as FlaxLearner,
        FlaxNet as FlaxNet,
        FlaxPredictor as FlaxPredictor,
    )

_FLAX = ("FlaxLearner", "FlaxNet", "FlaxPredictor")


def __getattr__(name: str):
    # Flax costs a quarter of a second to import: only for those who use the adapter.
    if name in _FLAX:
        from . import _flax

        value = getattr(_flax, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jaxcausal.learners' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FLAX))
