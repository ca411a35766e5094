"""Double machine learning: PLR, IRM, PLIV and CATE with vmap-batched cross-fitting, and the
quantile models PQ, QTE, LPQ and CVaR.

Scores, estimates, standard errors and the aggregation over repeated cross-fitting follow
DoubleML 0.11 term for term; every learner of every fold and repetition is fitted in one compiled
call.
"""

from ._base import AbstractDML as AbstractDML
from ._cate import CATE as CATE, CATEResult as CATEResult
from ._crossfit import draw_folds as draw_folds
from ._inference import (
    AbstractBootstrap as AbstractBootstrap,
    BayesBootstrap as BayesBootstrap,
    NormalBootstrap as NormalBootstrap,
    WildBootstrap as WildBootstrap,
)
from ._irm import IRM as IRM
from ._nonlinear import (
    AbstractPreliminarySolver as AbstractPreliminarySolver,
    BrentMinimum as BrentMinimum,
    BrentRoot as BrentRoot,
)
from ._pliv import PLIV as PLIV
from ._plr import PLR as PLR

# quantile models (potential quantiles, QTE, LPQ, CVaR) and their nonlinear-score solvers
from ._quantile import AbstractQuantileDML as AbstractQuantileDML
from ._quantile_lpq import LocalPotentialQuantile as LocalPotentialQuantile
from ._quantile_models import LPQ as LPQ, PQ as PQ, QTE as QTE, CVaR as CVaR
from ._quantile_scores import (
    AbstractQuantileScore as AbstractQuantileScore,
    ConditionalValueAtRisk as ConditionalValueAtRisk,
    PotentialQuantile as PotentialQuantile,
)
from ._quantile_split import draw_inner_folds as draw_inner_folds
from ._result import BootstrapResult as BootstrapResult, DMLResult as DMLResult
from ._scores import (
    ATE as ATE,
    ATTE as ATTE,
    AbstractIRMScore as AbstractIRMScore,
    AbstractPartiallyLinearScore as AbstractPartiallyLinearScore,
    AbstractScore as AbstractScore,
    IVType as IVType,
    PartiallingOut as PartiallingOut,
)
from ._simulate import simulate as simulate
