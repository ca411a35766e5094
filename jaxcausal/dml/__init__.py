"""Double machine learning: PLR, IRM, PLIV and CATE with vmap-batched cross-fitting, and the
quantile models PQ, QTE, LPQ and CVaR.

Scores, estimates, standard errors and the aggregation over repeated cross-fitting follow
DoubleML 0.11 term for term; every learner of every fold and repetition is fitted in one compiled
call.
"""

from .._panel import PanelData as PanelData

# --- issue 14: sensitivity analysis, IIVM, APO/APOS, clustering ---
from ._apo import APO as APO, APOS as APOS  # noqa: E402
from ._base import AbstractDML as AbstractDML
from ._cate import CATE as CATE, CATEResult as CATEResult
from ._cluster import ClusterFolds as ClusterFolds  # noqa: E402
from ._crossfit import draw_folds as draw_folds
from ._did import DID as DID
from ._did_aggregation import (
    AbstractAggregation as AbstractAggregation,
    ByGroup as ByGroup,
    ByTime as ByTime,
    DIDAggregationResult as DIDAggregationResult,
    EventStudy as EventStudy,
)
from ._did_cells import (
    AbstractControlGroup as AbstractControlGroup,
    AbstractGTCombinations as AbstractGTCombinations,
    AllGT as AllGT,
    NeverTreated as NeverTreated,
    NotYetTreated as NotYetTreated,
    StandardGT as StandardGT,
    UniversalGT as UniversalGT,
)
from ._did_cs import DIDCS as DIDCS
from ._did_multi import DIDMulti as DIDMulti
from ._did_result import DIDMultiResult as DIDMultiResult
from ._did_scores import (
    AbstractDIDScore as AbstractDIDScore,
    Experimental as Experimental,
    Observational as Observational,
)
from ._iivm import IIVM as IIVM, LATE as LATE, Subgroups as Subgroups  # noqa: E402
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
from ._sensitivity import SensitivityResult as SensitivityResult  # noqa: E402
from ._simulate import simulate as simulate
