"""The Sachs et al. (2005) flow-cytometry data with its condition blocks and consensus graph."""

from __future__ import annotations

import functools
import importlib.resources
import io
from typing import NamedTuple

import numpy as np
import pandas as pd

SACHS_CONDITIONS = (
    # (condition, first row, end row (exclusive), intervened node or None, kind of intervention)
    ("CD3/CD28", 0, 853, None, None),
    ("CD3/CD28+ICAM-2", 853, 1755, None, None),
    ("AKT inhibitor", 1755, 2666, "pakts473", "inhibited"),
    ("G0076", 2666, 3389, "PKC", "inhibited"),
    ("Psitectorigenin", 3389, 4199, "PIP2", "inhibited"),
    ("U0126", 4199, 4998, "pmek", "inhibited"),
    ("LY294002", 4998, 5846, "PIP3", "inhibited"),
    ("PMA", 5846, 6759, "PKC", "activated"),
    ("b2cAMP", 6759, 7466, "PKA", "activated"),
)
"""The nine condition files in the order of the rows, with their usual intervention targets."""


class Sachs(NamedTuple):
    """What [`jaxcausal.datasets.sachs`][] returns.

    - `data`: DataFrame of the 11 measured variables (raw scale) plus a `condition` column.
    - `edges`: DataFrame `Cause`, `Effect` of the consensus graph (18 edges, one cycle).
    - `adjacency`: `(11, 11)` 0/1 array over `names` of the acyclic consensus graph (the 17 edges
      without PIP2 -> PIP3, as usual).
    - `names`: the 11 variable names, in the column order of `data`.
    - `targets`: `{condition: intervened node}` for the seven interventional blocks.
    - `observational`: the two conditions without an inhibitor or activator.
    """

    data: pd.DataFrame
    edges: pd.DataFrame
    adjacency: np.ndarray
    names: tuple[str, ...]
    targets: dict[str, str]
    observational: tuple[str, ...]


def _read(name: str) -> pd.DataFrame:
    text = importlib.resources.files("jaxcausal.datasets").joinpath("data", name).read_text()
    return pd.read_csv(io.StringIO(text))


@functools.cache
def _load() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = _read("sachs_cytometry.csv")
    condition = np.empty(len(data), dtype=object)
    for cond, start, end, _, _ in SACHS_CONDITIONS:
        condition[start:end] = cond
    data["condition"] = pd.Categorical(condition, categories=[c[0] for c in SACHS_CONDITIONS])
    return data, _read("sachs_consensus_graph.csv")


def sachs() -> Sachs:
    """The Sachs et al. (2005) cytometry data (7466 cells, 11 variables, 9 conditions).

    Shipped with the package (no download); see `jaxcausal/datasets/data/README.md` for the
    provenance and licence. The measurements are on the raw scale and heavy-tailed; most analyses
    take logarithms first.

    **Returns:** a [`jaxcausal.datasets.Sachs`][] named tuple.

    Reference: K. Sachs, O. Perez, D. Pe'er, D. A. Lauffenburger and G. P. Nolan (2005), "Causal
    protein-signaling networks derived from multiparameter single-cell data", Science 308.
    """
    data, edges = _load()
    names = tuple(c for c in data.columns if c != "condition")
    adjacency = np.zeros((len(names), len(names)), dtype=int)
    for cause, effect in edges.itertuples(index=False):
        if (cause, effect) != ("PIP2", "PIP3"):
            adjacency[names.index(cause), names.index(effect)] = 1
    targets = {c: t for c, _, _, t, _ in SACHS_CONDITIONS if t is not None}
    observational = tuple(c for c, _, _, t, _ in SACHS_CONDITIONS if t is None)
    return Sachs(data.copy(), edges.copy(), adjacency, names, targets, observational)
