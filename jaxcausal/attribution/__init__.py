"""Causal attributions of neural networks: total, direct and indirect effects of inputs that cause
each other (Chattopadhyay et al. 2019; Reddy et al. 2024), and training that shapes them."""

from ._ace import ace as ace, count_traces as count_traces
from ._antehoc import (
    AnteHoc as AnteHoc,
    LinearLinks as LinearLinks,
    LinkProgram as LinkProgram,
    MLPLinks as MLPLinks,
)
from ._credo import CREDO as CREDO, ERM as ERM
from ._curves import Curves as Curves, curve_rmse as curve_rmse, frechet as frechet
from ._effects import (
    AbstractEffect as AbstractEffect,
    ControlledDirect as ControlledDirect,
    Indirect as Indirect,
    NaturalDirect as NaturalDirect,
    NaturalIndirect as NaturalIndirect,
    Total as Total,
)
from ._estimators import (
    AbstractEstimator as AbstractEstimator,
    AbstractMoments as AbstractMoments,
    LinearGaussianMoments as LinearGaussianMoments,
    MonteCarlo as MonteCarlo,
    SampledMoments as SampledMoments,
    Taylor as Taylor,
)
from ._prior import (
    AbstractCurvePrior as AbstractCurvePrior,
    EffectPrior as EffectPrior,
    Monotone as Monotone,
    Shape as Shape,
    Zero as Zero,
)
from ._training import (
    AttributedNetwork as AttributedNetwork,
    Classification as Classification,
    Regression as Regression,
    Training as Training,
)
from ._truth import true_effects as true_effects
