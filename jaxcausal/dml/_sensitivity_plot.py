"""The contour plot of a sensitivity analysis (matplotlib, imported only when plotting)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _benchmark_points(benchmarks, treatment: int, t_names) -> dict[str, tuple[float, float]]:
    if benchmarks is None:
        return {}
    if hasattr(benchmarks, "loc") and {"cf_y", "cf_d"} <= set(benchmarks.columns):
        row = benchmarks.iloc[treatment] if len(benchmarks) == len(t_names) else benchmarks.iloc[0]
        return {"benchmark": (float(row["cf_y"]), float(row["cf_d"]))}
    if isinstance(benchmarks, Mapping):
        points = {}
        for name, value in benchmarks.items():
            cf_y, cf_d = (float(v) for v in value)
            points[str(name)] = (cf_y, cf_d)
        return points
    raise TypeError(
        "benchmarks must be {name: (cf_y, cf_d)} or the DataFrame of sensitivity_benchmark; "
        f"got {type(benchmarks).__name__}"
    )


def contour_plot(result, treatment, ci, benchmarks, fill, grid_bounds, grid_size, ax):
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plot needs matplotlib: pip install 'jaxcausal[plot]'"
        ) from err
    cf_d, cf_y, values = result.grid(treatment, ci=ci, grid_bounds=grid_bounds,
                                     grid_size=grid_size)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    null = float(result.null_hypothesis[treatment])
    xx, yy = np.meshgrid(cf_d, cf_y, indexing="ij")
    if fill:
        filled = ax.contourf(xx, yy, values, levels=20, cmap="viridis")
        ax.figure.colorbar(filled, ax=ax, label="confidence bound" if ci else "bound on theta")
    lines = ax.contour(xx, yy, values, levels=10, colors="white" if fill else "black",
                       linewidths=0.7)
    ax.clabel(lines, fontsize=7, fmt="%.3g")
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo <= null <= hi:
        ax.contour(xx, yy, values, levels=[null], colors="red", linewidths=2)
    ax.plot([result.cf_d], [result.cf_y], marker="D", color="orange", linestyle="none",
            label=f"scenario (cf_y={result.cf_y:g}, cf_d={result.cf_d:g})")
    for name, (b_y, b_d) in _benchmark_points(benchmarks, treatment, result.t_names).items():
        ax.plot([b_d], [b_y], marker="o", color="red", linestyle="none")
        ax.annotate(name, (b_d, b_y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("cf_d")
    ax.set_ylabel("cf_y")
    kind = "confidence bound" if ci else "bound on theta"
    ax.set_title(f"{result.t_names[treatment]}: {kind} (rho={result.rho:g}; red: H_0 = {null:g})")
    ax.legend(loc="upper right", fontsize=8)
    return ax
