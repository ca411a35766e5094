"""jaxcausal: causal machine learning in JAX.

Models are Equinox modules, structural causal models are NumPyro programs, training is one compiled
Optax loop, and folds, repetitions, replications and interventions are `vmap`-batched.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from . import (
    attribution as attribution,
    datasets as datasets,
    dml as dml,
    hybrid as hybrid,
    learners as learners,
    metrics as metrics,
    nn as nn,
    parallel as parallel,
    scm as scm,
    te as te,
    train as train,
)
from ._data import CausalData as CausalData

try:
    __version__ = _version("jaxcausal")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
