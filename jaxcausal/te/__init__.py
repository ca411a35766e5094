"""Treatment-effect neural models: TARNet, CFR, Dragonnet, CEVAE, KGCM-VAE and floor baselines."""

from ._base import (
    AbstractFittedTE as AbstractFittedTE,
    AbstractTEModel as AbstractTEModel,
    Training as Training,
    fit_batch as fit_batch,
)
from ._baselines import (
    OLS as OLS,
    FittedGRUTLearner as FittedGRUTLearner,
    FittedOLS as FittedOLS,
    FittedTLearner as FittedTLearner,
    GRUTLearner as GRUTLearner,
    TLearner as TLearner,
)
from ._cevae import CEVAE as CEVAE, FittedCEVAE as FittedCEVAE
from ._dragonnet import Dragonnet as Dragonnet, FittedDragonnet as FittedDragonnet
from ._ipm import MMD as MMD, AbstractIPM as AbstractIPM, Wasserstein as Wasserstein
from ._kgcmvae import KGCMVAE as KGCMVAE, FittedKGCMVAE as FittedKGCMVAE
from ._tarnet import (
    CFR as CFR,
    FittedRepresentationNet as FittedRepresentationNet,
    TARNet as TARNet,
)
