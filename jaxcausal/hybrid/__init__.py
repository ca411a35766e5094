"""Causal hybrid models: physical equations with parameters estimated by double machine learning."""

from ._end_to_end import EndToEndQ10 as EndToEndQ10, EndToEndQ10Result as EndToEndQ10Result
from ._partitioning import (
    FluxPartitioning as FluxPartitioning,
    FluxPartitioningResult as FluxPartitioningResult,
)
from ._q10 import Q10DML as Q10DML, Q10Result as Q10Result
