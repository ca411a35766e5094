"""Equinox building blocks: MLPs, adjacency-masked MLPs, heads and recurrent encoders."""

from ._gru import GRUEncoder as GRUEncoder
from ._heads import (
    BernoulliHead as BernoulliHead,
    GaussianHead as GaussianHead,
    TwoHeads as TwoHeads,
)
from ._masked import MaskedMLP as MaskedMLP
from ._mlp import MLP as MLP
