"""jaxcausal: causal machine learning in JAX.

Models are Equinox modules, structural causal models are NumPyro programs, training is one compiled
Optax loop, and folds, repetitions, replications and interventions are `vmap`-batched.

`import jaxcausal` is cheap: it imports neither JAX nor any subpackage. `jc.dml`, `jc.scm`, ...
and `jc.CausalData` are imported on first use (module `__getattr__`), so a script pays only for
what it touches, and `jaxcausal --help` answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._cache import enable_compilation_cache as enable_compilation_cache

_SUBPACKAGES = (
    "attribution", "datasets", "dml", "gim", "hybrid", "learners", "metrics", "nn", "parallel",
    "scm", "te", "train",
)
_ATTRIBUTES = {"CausalData": "._data", "PanelData": "._panel"}

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from . import (
        attribution as attribution,
        datasets as datasets,
        dml as dml,
        gim as gim,
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
    from ._panel import PanelData as PanelData


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f".{name}", __name__)
    elif name in _ATTRIBUTES:
        module = getattr(importlib.import_module(_ATTRIBUTES[name], __name__), name)
    elif name == "__version__":
        module = _version()
    else:
        raise AttributeError(f"module 'jaxcausal' has no attribute {name!r}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBPACKAGES) | set(_ATTRIBUTES) | {"__version__"})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxcausal")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"


__all__ = ["CausalData", "PanelData", "enable_compilation_cache", *_SUBPACKAGES]
