"""Structural causal models as NumPyro programs: interventions, counterfactuals, mediation, fitting
and Bayesian inference over interventions."""

from ._counterfactual import counterfactual as counterfactual
from ._fit import fit as fit
from ._graph import Graph as Graph
from ._infer import (
    NUTS as NUTS,
    SVI as SVI,
    InterventionPosterior as InterventionPosterior,
    infer_interventions as infer_interventions,
)
from ._interventions import (
    AbstractIntervention as AbstractIntervention,
    Do as Do,
    Joint as Joint,
    Shift as Shift,
    Soft as Soft,
)
from ._linearise import (
    Linearisation as Linearisation,
    is_linear_gaussian as is_linear_gaussian,
    linearise as linearise,
)
from ._logprob import InterventionProgram as InterventionProgram, log_prob as log_prob
from ._mechanisms import (
    AbstractMechanism as AbstractMechanism,
    AbstractProgram as AbstractProgram,
    AdditiveNoiseMLP as AdditiveNoiseMLP,
    AdditiveNoiseMLPProgram as AdditiveNoiseMLPProgram,
    LinearGaussian as LinearGaussian,
    LinearGaussianProgram as LinearGaussianProgram,
)
from ._plot import plot_graph as plot_graph, plot_target_probs as plot_target_probs
from ._queries import (
    Mediation as Mediation,
    ate as ate,
    interventional_means as interventional_means,
    interventional_samples as interventional_samples,
    mediation as mediation,
)
from ._scm import SCM as SCM
