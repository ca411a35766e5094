"""The causal graph of an SCM: names in topological order, parents, adjacency, ancestors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import numpy as np


def _topological_order(names: Sequence[str], parents: dict[str, tuple[str, ...]]) -> list[str]:
    """Kahn's algorithm taking the first ready node in the given order each time, so an order
    that is already topological (a program's) is kept; raises naming the nodes on a cycle."""
    remaining = {v: set(parents[v]) for v in names}
    order: list[str] = []
    while remaining:
        ready = next((v for v in names if v in remaining and not remaining[v]), None)
        if ready is None:
            raise ValueError(
                f"the graph has a cycle: nodes {sorted(remaining)} each have a parent among them; "
                "an SCM needs a directed acyclic graph"
            )
        del remaining[ready]
        order.append(ready)
        for deps in remaining.values():
            deps.discard(ready)
    return order


class Graph(eqx.Module):
    """A directed acyclic graph over named variables, kept in topological order.

    Build it with [`jaxcausal.scm.Graph.from_adjacency`][] or
    [`jaxcausal.scm.Graph.from_parents`][]; an [`jaxcausal.scm.SCM`][] reads its own graph from its
    NumPyro program.

    - `names`: node names in a topological order (every parent comes before its children).
    - `parent_names`: for each node (same order), the names of its parents.

    `adjacency` is the `(d, d)` boolean matrix with `adjacency[i, j]` true when `names[i] ->
    names[j]` (the convention of [`jaxcausal.nn.MaskedMLP`][]: rows are causes).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    parent_names: tuple[tuple[str, ...], ...] = eqx.field(static=True)

    def __check_init__(self):
        if len(set(self.names)) != len(self.names):
            dup = sorted({v for v in self.names if self.names.count(v) > 1})
            raise ValueError(f"names must be unique; got duplicates {dup}")
        if len(self.parent_names) != len(self.names):
            raise ValueError("parent_names must have one entry per node")
        seen: set[str] = set()
        for v, pa in zip(self.names, self.parent_names):
            missing = [p for p in pa if p not in seen]
            if missing:
                raise ValueError(
                    f"names must be in topological order: parents {missing} of {v!r} come later "
                    "or are not nodes; use Graph.from_parents to sort"
                )
            seen.add(v)

    @classmethod
    def from_parents(cls, parents: dict[str, Sequence[str]]) -> Graph:
        """Builds the graph from `{node: [parents...]}` (any order); raises on cycles."""
        names = list(parents)
        for v, pa in parents.items():
            unknown = [p for p in pa if p not in parents]
            if unknown:
                raise ValueError(f"parents of {v!r} name unknown nodes {unknown}")
        pa_t = {v: tuple(parents[v]) for v in names}
        order = _topological_order(names, pa_t)
        return cls(tuple(order), tuple(pa_t[v] for v in order))

    @classmethod
    def from_adjacency(cls, adjacency: Any, names: Sequence[str]) -> Graph:
        """Builds the graph from a `(d, d)` 0/1 matrix (`adjacency[i, j]`: `names[i] -> names[j]`).

        **Arguments:**

        - `adjacency`: array-like of shape `(d, d)` with entries 0/1 (or booleans).
        - `names`: the `d` node names, in the order of the rows of `adjacency`.

        **Returns:** the `Graph`, with its nodes sorted topologically. Raises on cycles.
        """
        adj = np.asarray(adjacency)
        names = [str(v) for v in names]
        if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
            raise ValueError(f"adjacency must be a square (d, d) matrix; got shape {adj.shape}")
        if adj.shape[0] != len(names):
            raise ValueError(
                f"names must have one entry per row of adjacency ({adj.shape[0]}); got {len(names)}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique; got {names}")
        if not np.all(np.isin(adj, (0, 1))):
            raise ValueError("adjacency must hold only 0/1 (or boolean) entries")
        if np.any(np.diag(adj)):
            raise ValueError("adjacency must have a zero diagonal (no self-loops)")
        parents = {v: [names[i] for i in np.flatnonzero(adj[:, j])] for j, v in enumerate(names)}
        return cls.from_parents(parents)

    @classmethod
    def from_model(cls, model: Any) -> Graph:
        """Reads the graph of a NumPyro program by tracing it.

        Nodes are the sample sites and `numpyro.deterministic` sites; an edge `a -> b` means the
        value of `a` flows into `b` (found by NumPyro's provenance tracking,
        `numpyro.infer.inspect.get_model_relations`).
        """
        from numpyro.infer.inspect import get_model_relations

        if not callable(model):
            raise TypeError(f"model must be a callable NumPyro program; got {type(model).__name__}")
        try:
            rel = get_model_relations(model)
        except TypeError as err:
            raise TypeError(
                "model must be a NumPyro program that takes no arguments (bind data with "
                f"functools.partial); calling it failed with: {err}"
            ) from err
        if rel["observed"]:
            raise ValueError(
                f"model has observed sites {list(rel['observed'])}; an SCM program samples every "
                "variable (condition on data with SCM.counterfactual or jc.scm.fit instead)"
            )
        if rel["plate_sample"]:
            raise ValueError(
                "model uses plates; write the program for one unit (jaxcausal batches units with "
                "vmap)"
            )
        parents = {v: tuple(pa) for v, pa in rel["sample_sample"].items()}
        if not parents:
            raise ValueError("model has no sample sites; an SCM needs at least one variable")
        return cls.from_parents(parents)

    @property
    def n_nodes(self) -> int:
        return len(self.names)

    @property
    def adjacency(self) -> np.ndarray:
        d = self.n_nodes
        adj = np.zeros((d, d), dtype=bool)
        for j, pa in enumerate(self.parent_names):
            for p in pa:
                adj[self.index(p), j] = True
        return adj

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(p, v) for v, pa in zip(self.names, self.parent_names) for p in pa]

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def index(self, name: str) -> int:
        """Position of `name` in `names`; a `KeyError` lists the known nodes otherwise."""
        if name not in self.names:
            raise KeyError(f"unknown node {name!r}; the graph has nodes {list(self.names)}")
        return self.names.index(name)

    def parents(self, name: str) -> tuple[str, ...]:
        return self.parent_names[self.index(name)]

    def children(self, name: str) -> tuple[str, ...]:
        self.index(name)
        return tuple(v for v, pa in zip(self.names, self.parent_names) if name in pa)

    def ancestors(self, name: str) -> tuple[str, ...]:
        """All nodes with a directed path into `name`, in topological order."""
        found: set[str] = set()
        stack = list(self.parents(name))
        while stack:
            v = stack.pop()
            if v not in found:
                found.add(v)
                stack.extend(self.parents(v))
        return tuple(v for v in self.names if v in found)

    def descendants(self, name: str) -> tuple[str, ...]:
        """All nodes reachable from `name` by a directed path, in topological order."""
        found: set[str] = set()
        stack = list(self.children(name))
        while stack:
            v = stack.pop()
            if v not in found:
                found.add(v)
                stack.extend(self.children(v))
        return tuple(v for v in self.names if v in found)

    def check_names(self, names: Any, argument: str) -> list[str]:
        """Returns `names` as a list, raising a `ValueError` naming `argument` for unknown nodes."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = [v for v in names if v not in self.names]
        if unknown:
            raise ValueError(
                f"{argument} names nodes {unknown} that are not in the graph; the graph has nodes "
                f"{list(self.names)}"
            )
        return names
