"""Plots of group-time and aggregated DID effects with simultaneous bands (matplotlib, optional)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._did_cells import fmt

_PRE, _POST = "tab:grey", "tab:blue"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # an optional extra
        raise ImportError(
            "plotting needs matplotlib; install it with `pip install jaxcausal[plot]`"
        ) from err
    return plt


def plot_cells(result: Any, bands: np.ndarray, level: float) -> Any:
    """One panel per treated group: ATT(g, t) over the evaluation period with its band,
    pre-treatment cells grey (DoubleML's `plot_effects`)."""
    plt = _pyplot()
    groups = sorted({c[0] for c in result.cells})
    fig, axes = plt.subplots(len(groups), 1, sharex=True, squeeze=False,
                             figsize=(7, 2.2 * len(groups)))
    theta = np.asarray(result.theta)
    for ax, g in zip(axes[:, 0], groups):
        idx = [i for i, c in enumerate(result.cells) if c[0] == g]
        t = np.asarray([result.cells[i][2] for i in idx])
        post = t >= g
        for mask, colour, label in ((~post, _PRE, "pre-treatment"), (post, _POST, "post")):
            sel = np.asarray(idx)[mask]
            if sel.size:
                err = np.abs(bands[sel].T - theta[sel])
                ax.errorbar(t[mask], theta[sel], yerr=err, fmt="o", color=colour, capsize=3,
                            label=label)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_title(f"first treated in {fmt(g)}", fontsize=9)
        ax.set_ylabel("ATT")
    axes[-1, 0].set_xlabel("evaluation period")
    axes[0, 0].legend(fontsize=8, title=f"{100 * level:g}% joint band", title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_aggregated(agg: Any, bands: np.ndarray, level: float) -> Any:
    """The aggregated effects with their simultaneous band; for an event study the
    pre-treatment event times are grey."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    names = list(agg.effects.t_names)
    theta = np.asarray(agg.effects.theta)
    pre = np.asarray([agg.method == "eventstudy" and float(n) < 0 for n in names])
    x = np.arange(len(names))
    err = np.abs(bands.T - theta)
    for mask, colour in ((pre, _PRE), (~pre, _POST)):
        if mask.any():
            ax.errorbar(x[mask], theta[mask], yerr=err[:, mask], fmt="o", color=colour,
                        capsize=3)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.axhline(float(np.asarray(agg.overall.theta)[0]), color=_POST, ls="--", lw=0.8,
               label="overall")
    ax.set_xticks(x, names)
    ax.set_xlabel({"group": "group (first treated)", "time": "period",
                   "eventstudy": "event time t - g"}.get(agg.method, agg.method))
    ax.set_ylabel("ATT")
    ax.legend(fontsize=8, title=f"{100 * level:g}% joint band", title_fontsize=8)
    fig.tight_layout()
    return fig
