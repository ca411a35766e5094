"""Attribution curves, and the distances between curves used to judge them."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float

from ._effects import AbstractEffect


class Curves(eqx.Module):
    """Effect curves of `d` features over grids of `m` intervention values.

    - `values`: `(d, m)` centred curves: the effect minus its mean over the grid (the form in
      which Chattopadhyay et al. and Reddy et al. compare curves).
    - `raw`: `(d, m)` uncentred: the interventional expectation for `Total` and
      `ControlledDirect`, the contrast for the others.
    - `se`: `(d, m)` standard errors of `raw` (Monte Carlo over units, or over Hutchinson probes;
      zero where the estimate is exact).
    - `alphas`: `(d, m)` the grid of each feature.
    - `features`: the `d` feature names; `effect`: the estimand.
    """

    values: Float[Array, "d m"]
    raw: Float[Array, "d m"]
    se: Float[Array, "d m"]
    alphas: Float[Array, "d m"]
    features: tuple[str, ...] = eqx.field(static=True)
    effect: AbstractEffect

    def __getitem__(self, feature: str) -> Float[Array, " m"]:
        """The centred curve of one feature."""
        if feature not in self.features:
            raise KeyError(f"unknown feature {feature!r}; the curves have {list(self.features)}")
        return self.values[self.features.index(feature)]

    def to_pandas(self) -> pd.DataFrame:
        """A long table: one row per feature and grid point (`feature`, `alpha`, `value`,
        `raw`, `se`)."""
        d, m = self.values.shape
        return pd.DataFrame({
            "feature": np.repeat(np.asarray(self.features, dtype=object), m),
            "alpha": np.asarray(self.alphas).reshape(-1),
            "value": np.asarray(self.values).reshape(-1),
            "raw": np.asarray(self.raw).reshape(-1),
            "se": np.asarray(self.se).reshape(-1),
        })

    def plot(self, *, truth: Curves | None = None, axes: Any = None, label: str | None = None):
        """One panel per feature (matplotlib); `truth` is drawn dashed. Returns the axes."""
        import matplotlib.pyplot as plt

        d = len(self.features)
        if axes is None:
            _, axes = plt.subplots(1, d, figsize=(3.2 * d, 2.8), squeeze=False)
            axes = axes[0]
        name = type(self.effect).__name__
        for k, (ax, feat) in enumerate(zip(axes, self.features)):
            ax.plot(np.asarray(self.alphas[k]), np.asarray(self.values[k]), label=label or name)
            if truth is not None:
                j = truth.features.index(feat)
                ax.plot(np.asarray(truth.alphas[j]), np.asarray(truth.values[j]), "k--",
                        label="truth")
            ax.set_title(feat)
            ax.set_xlabel("alpha")
        axes[0].set_ylabel(f"{name} (centred)")
        axes[0].legend(fontsize="small")
        return axes


def _aligned(curves: Curves, truth: Curves) -> tuple[Array, Array]:
    if not isinstance(curves, Curves) or not isinstance(truth, Curves):
        raise TypeError(
            f"curves and truth must be Curves; got {type(curves).__name__}, {type(truth).__name__}"
        )
    missing = [f for f in curves.features if f not in truth.features]
    if missing:
        raise ValueError(f"truth has no curves for features {missing}")
    order = [truth.features.index(f) for f in curves.features]
    t = truth.values[jnp.asarray(order)]
    if t.shape != curves.values.shape:
        raise ValueError(
            f"curves and truth must share their grids; got {curves.values.shape} and {t.shape}"
        )
    return curves.values, t


def curve_rmse(curves: Curves, truth: Curves) -> Float[Array, " d"]:
    r"""Root-mean-square distance between centred curves, per feature:
    $\sqrt{\frac1m \sum_k (c_k - t_k)^2}$ (features matched by name, grids must agree)."""
    c, t = _aligned(curves, truth)
    return jnp.sqrt(jnp.mean((c - t) ** 2, axis=1))


def _discrete_frechet(p: Array, q: Array) -> Array:
    # Eiter & Mannila (1994): c[i, j] = max(|p_i - q_j|, min(c[i-1, j], c[i-1, j-1], c[i, j-1])),
    # one row at a time (a scan over i, with a scan along j inside).
    dist = jnp.abs(p[:, None] - q[None, :])
    inf = jnp.asarray(jnp.inf, dist.dtype)

    def first_row(carry, dj):
        c = jnp.maximum(dj, carry)
        return c, c

    _, row0 = jax.lax.scan(first_row, -inf, dist[0])

    def next_row(prev, di):
        def cell(left, args):
            dij, up, diag = args
            c = jnp.maximum(dij, jnp.minimum(jnp.minimum(up, diag), left))
            return c, c

        diag = jnp.concatenate([inf[None], prev[:-1]])
        _, row = jax.lax.scan(cell, inf, (di, prev, diag))
        return row, None

    last, _ = jax.lax.scan(next_row, row0, dist[1:])
    return last[-1]


def frechet(curves: Curves, truth: Curves) -> Float[Array, " d"]:
    """Discrete Fréchet distance (Eiter and Mannila 1994) between the centred curves of each
    feature, as sequences of values along the common grid (the measure used by Reddy et al.)."""
    c, t = _aligned(curves, truth)
    return jax.vmap(_discrete_frechet)(c, t)
