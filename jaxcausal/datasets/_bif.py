"""Discrete Bayesian networks from BIF files, as NumPyro programs with discrete sites."""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jaxtyping import Array, PRNGKeyArray

_VARIABLE = re.compile(r"variable\s+(\S+)\s*\{\s*type\s+discrete\s*\[\s*(\d+)\s*\]\s*\{([^}]*)\}")
_PROBABILITY = re.compile(r"probability\s*\(\s*([^|)]+?)\s*(?:\|\s*([^)]*))?\)\s*\{([^}]*)\}")
_ROW = re.compile(r"\(([^)]*)\)\s*([^;]*);")


def _numbers(text: str, where: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError as err:
        raise ValueError(f"BIF: could not read the probabilities of {where}: {text!r}") from err


class DiscreteBN(eqx.Module):
    """A discrete Bayesian network whose `__call__()` is its NumPyro program (one unit).

    - `names`: node names in topological order; `states`: each node's state names (its values
      are the level indices `0, 1, ...` in that order); `parents`: each node's parents.
    - `tables`: each node's conditional probability table, shape `(*parent_cards, card)`.

    Every node is a `Categorical` sample site whose probabilities are looked up with its parents'
    levels, so [`jaxcausal.scm.SCM`][] samples it and supports hard interventions
    (`scm.do({"smoke": 0})`, levels as numbers). Queries that need each unit's continuous noise
    (counterfactuals of observed units, shifts) raise a clear error.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    states: tuple[tuple[str, ...], ...] = eqx.field(static=True)
    parents: tuple[tuple[str, ...], ...] = eqx.field(static=True)
    tables: tuple[Array, ...]

    def __call__(self) -> None:
        values: dict[str, Array] = {}
        for v, pa, table in zip(self.names, self.parents, self.tables):
            probs = table[tuple(values[p].astype(jnp.int32) for p in pa)]
            values[v] = numpyro.sample(v, dist.Categorical(probs=probs))

    @property
    def scm(self):
        """The network as a [`jaxcausal.scm.SCM`][] (graph given, not traced)."""
        from ..scm import SCM, Graph

        graph = Graph(self.names, self.parents)
        return SCM(self, graph=graph, deterministic=())

    def sample(self, n: int, *, key: PRNGKeyArray) -> pd.DataFrame:
        """`n` units as a DataFrame of level indices (columns in `names` order)."""
        draws = self.scm.sample(n, key=key)
        return pd.DataFrame({v: np.asarray(draws[v]) for v in self.names})

    def adjacency(self, names: Sequence[str] | None = None) -> np.ndarray:
        """The `(k, k)` 0/1 adjacency among `names` (default all nodes; rows are causes)."""
        names = self.names if names is None else tuple(names)
        adj = np.zeros((len(names), len(names)), dtype=int)
        for j, v in enumerate(names):
            for p in self.parents[self.names.index(v)]:
                if p in names:
                    adj[names.index(p), j] = 1
        return adj


def read_bif(source: str | Path) -> DiscreteBN:
    """Reads a discrete Bayesian network in BIF format (a path, or the text itself).

    Supports `variable ... type discrete [k] { states }` and `probability ( child | parents )`
    blocks with a `table` line (roots) or one `(parent states) p_1, ..., p_k;` line per parent
    configuration. Our own small reader: no dependency on pgmpy.

    **Returns:** a [`jaxcausal.datasets.DiscreteBN`][] in topological order.
    """
    text = str(source)
    if "\n" not in text and Path(text).exists():
        text = Path(text).read_text()
    states: dict[str, tuple[str, ...]] = {}
    for m in _VARIABLE.finditer(text):
        st = tuple(s.strip() for s in m.group(3).split(",") if s.strip())
        if int(m.group(2)) != len(st):
            raise ValueError(
                f"BIF: variable {m.group(1)!r} declares {m.group(2)} states but lists {len(st)}"
            )
        states[m.group(1)] = st
    if not states:
        raise ValueError("BIF: no discrete variables found")
    parents: dict[str, tuple[str, ...]] = {}
    tables: dict[str, np.ndarray] = {}
    for m in _PROBABILITY.finditer(text):
        child = m.group(1).strip()
        pa = tuple(p.strip() for p in (m.group(2) or "").split(",") if p.strip())
        unknown = [v for v in (child,) + pa if v not in states]
        if unknown:
            raise ValueError(f"BIF: probability block names undeclared variables {unknown}")
        body = m.group(3)
        shape = tuple(len(states[p]) for p in pa) + (len(states[child]),)
        table = np.full(shape, np.nan)
        flat = re.search(r"table\s+([^;]*);", body)
        if flat is not None:
            if pa:
                raise ValueError(
                    f"BIF: the flat 'table' form is only read for root nodes; {child!r} has "
                    f"parents {list(pa)}"
                )
            table[...] = _numbers(flat.group(1), child)
        for row in _ROW.finditer(body):
            levels = [s.strip() for s in row.group(1).split(",")]
            idx = tuple(states[p].index(s) for p, s in zip(pa, levels))
            table[idx] = _numbers(row.group(2), f"{child} | {row.group(1)}")
        if np.isnan(table).any():
            raise ValueError(f"BIF: the table of {child!r} misses parent configurations")
        if not np.allclose(table.sum(-1), 1.0, atol=1e-6):
            raise ValueError(f"BIF: the rows of the table of {child!r} do not sum to 1")
        parents[child], tables[child] = pa, table / table.sum(-1, keepdims=True)
    missing = [v for v in states if v not in parents]
    if missing:
        raise ValueError(f"BIF: no probability block for {missing}")
    from ..scm import Graph

    order = Graph.from_parents(parents).names
    return DiscreteBN(
        names=order,
        states=tuple(states[v] for v in order),
        parents=tuple(parents[v] for v in order),
        tables=tuple(jnp.asarray(tables[v]) for v in order),
    )


def _shipped(name: str) -> DiscreteBN:
    return read_bif(importlib.resources.files("jaxcausal.datasets").joinpath("data", name)
                    .read_text())


def asia_network() -> DiscreteBN:
    """The Asia network of Lauritzen and Spiegelhalter (1988): 8 binary nodes (level 0 is
    `yes`). Shipped with the package (see `datasets/data/README.md`)."""
    return _shipped("asia_network.bif")


def sachs_network() -> DiscreteBN:
    """The discretised Sachs et al. (2005) signalling network as distributed by bnlearn: 11
    nodes with levels `LOW, AVG, HIGH` (0, 1, 2). Shipped with the package."""
    return _shipped("sachs_network.bif")

