"""Plots of an SCM's graph and of a posterior over intervention targets (matplotlib, optional)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._graph import Graph
from ._infer import InterventionPosterior


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # an optional extra
        raise ImportError(
            "plotting needs matplotlib; install it with `pip install jaxcausal[plot]`"
        ) from err
    return plt


def _layers(graph: Graph) -> dict[str, int]:
    """Depth of each node: the length of the longest directed path into it."""
    depth: dict[str, int] = {}
    for v in graph.names:
        depth[v] = 1 + max((depth[p] for p in graph.parents(v)), default=-1)
    return depth


def plot_graph(graph: Any, *, ax: Any = None, highlight: dict[str, float] | None = None) -> Any:
    """Draws the graph in layers (roots on top), arrows from causes to effects.

    **Arguments:**

    - `graph`: a [`jaxcausal.scm.Graph`][] or an SCM (its `graph` is drawn).
    - `ax`: a matplotlib axis (a new figure when `None`).
    - `highlight`: optional `{name: value in [0, 1]}` colouring nodes (e.g. target probabilities).

    **Returns:** the axis.
    """
    graph = getattr(graph, "graph", graph)
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a jaxcausal.scm.Graph or SCM; got {type(graph).__name__}")
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    depth = _layers(graph)
    pos = {}
    for level in sorted(set(depth.values())):
        row = [v for v in graph.names if depth[v] == level]
        for k, v in enumerate(row):
            pos[v] = ((k + 1) / (len(row) + 1), -float(level))
    for a, b in graph.edges:
        ax.annotate(
            "", xy=pos[b], xytext=pos[a],
            arrowprops={"arrowstyle": "->", "shrinkA": 14, "shrinkB": 14, "color": "0.4"},
        )
    cmap = plt.get_cmap("Reds")
    for v, (x, y) in pos.items():
        value = (highlight or {}).get(v, 0.0)
        ax.scatter([x], [y], s=900, color=cmap(0.15 + 0.85 * value), edgecolors="k", zorder=2)
        ax.text(x, y, v, ha="center", va="center", fontsize=8, zorder=3)
    ax.set_axis_off()
    ax.margins(0.15)
    return ax


def plot_target_probs(posterior: Any, *, ax: Any = None, top: int | None = None) -> Any:
    """Bar chart of the posterior probability that each node was the intervention target.

    **Arguments:**

    - `posterior`: a [`jaxcausal.scm.InterventionPosterior`][].
    - `ax`: a matplotlib axis (a new figure when `None`).
    - `top`: show only the `top` most probable nodes.

    **Returns:** the axis.
    """
    if not isinstance(posterior, InterventionPosterior):
        raise TypeError(
            f"posterior must be an InterventionPosterior; got {type(posterior).__name__}"
        )
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    probs = np.asarray(posterior.target_probs)
    order = np.argsort(-probs)[: top or len(probs)]
    ax.bar([posterior.names[i] for i in order], probs[order], color="C3")
    ax.set_ylabel("posterior P(target)")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", rotation=45)
    return ax
