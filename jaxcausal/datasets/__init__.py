"""Data generators and shipped data sets."""

from ._arctic import (
    ARCTIC_COLUMNS as ARCTIC_COLUMNS,
    ArcticSynthetic as ArcticSynthetic,
    arctic_adjacency as arctic_adjacency,
    arctic_synthetic as arctic_synthetic,
    velocity_modulated_treatment as velocity_modulated_treatment,
)
from ._attribution import (
    AUTO_MPG_FEATURES as AUTO_MPG_FEATURES,
    AttributionData as AttributionData,
    SyntheticProgram as SyntheticProgram,
    attribution_synthetic as attribution_synthetic,
    auto_mpg as auto_mpg,
)
from ._bif import (
    DiscreteBN as DiscreteBN,
    asia_network as asia_network,
    read_bif as read_bif,
    sachs_network as sachs_network,
)
from ._did import (
    did_cs2021_att as did_cs2021_att,
    make_did_CS2021 as make_did_CS2021,
    make_did_SZ2020 as make_did_SZ2020,
)
from ._dml import (
    make_irm_data as make_irm_data,
    make_pliv_CHS2015 as make_pliv_CHS2015,
    make_plr_CCDDHNR2018 as make_plr_CCDDHNR2018,
)
from ._dml_more import (
    make_apo_data as make_apo_data,
    make_iivm_data as make_iivm_data,
    make_plr_twoway_cluster as make_plr_twoway_cluster,
)
from ._hill import (
    HillSplit as HillSplit,
    HillSuite as HillSuite,
    hill_suite as hill_suite,
)
from ._ihdp import IHDP as IHDP, ihdp as ihdp, ihdp_replications as ihdp_replications
from ._q10 import q10_arrays as q10_arrays, q10_synthetic as q10_synthetic
from ._quantile import LocationScaleQTE as LocationScaleQTE
from ._sachs import SACHS_CONDITIONS as SACHS_CONDITIONS, Sachs as Sachs, sachs as sachs
