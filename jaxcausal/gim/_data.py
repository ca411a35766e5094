"""`PerturbationData`: cells, the perturbation (context) of each cell, and the features of each
perturbation; and its layout as equal-sized groups of cells for compiled training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float, Int

from .._checks import as_float_array


def _finite(a: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"{name} contains NaN or infinite values ({int(bad.sum())} entries, first in row "
            f"{row}); expected finite numbers"
        )


class PerturbationData(eqx.Module):
    """Measurements of cells under perturbations with known features.

    **Arguments:**

    - `x`: `(N, d)` measurements, one row per cell.
    - `context`: `(N,)` integers: `-1` for a control (unperturbed, observational) cell, `k` for a
      cell under perturbation `k` in `[0, K)`.
    - `features`: `(K, p)`, one row per perturbation (e.g. drug descriptors and the dose).
    - `names`: the `d` variable names (default `x0, x1, ...`).

    Every perturbation needs at least one cell and there must be control cells. Checked eagerly
    (the data is host-side input).
    """

    x: Float[Array, "N d"]
    context: Int[Array, " N"]
    features: Float[Array, "K p"]
    names: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, x: Any, context: Any, features: Any, names: Sequence[str] | None = None):
        xa = np.asarray(as_float_array(x, "x"))
        if xa.ndim != 2:
            raise ValueError(f"x must be a (N, d) matrix; got shape {xa.shape}")
        _finite(xa, "x")
        fa = np.asarray(as_float_array(features, "features"))
        if fa.ndim != 2:
            raise ValueError(f"features must be a (K, p) matrix (one row per perturbation); got "
                             f"shape {fa.shape}")
        _finite(fa, "features")
        ca = np.asarray(context)
        if ca.shape != (xa.shape[0],):
            raise ValueError(
                f"context must have shape ({xa.shape[0]},) (one id per row of x); got {ca.shape}"
            )
        if not np.issubdtype(ca.dtype, np.integer):
            if not np.all(np.isfinite(ca)) or not np.all(ca == np.round(ca)):
                raise ValueError("context must hold integer ids (-1 for control rows)")
            ca = ca.astype(np.int64)
        k = fa.shape[0]
        outside = (ca < -1) | (ca >= k)
        if outside.any():
            bad = np.unique(ca[outside])[:5].tolist()
            raise ValueError(
                f"context ids must be in [-1, {k}) (-1: control; features has {k} rows); got "
                f"{bad}"
            )
        counts = np.bincount(ca + 1, minlength=k + 1)
        if counts[0] == 0:
            raise ValueError("context has no control rows (id -1); the control (observational) "
                             "cells anchor the causal model")
        empty = np.flatnonzero(counts[1:] == 0)
        if empty.size:
            raise ValueError(
                f"perturbations {empty[:5].tolist()} have no rows in x; features must have one "
                "row per perturbation that has cells"
            )
        d = xa.shape[1]
        names = tuple(f"x{j}" for j in range(d)) if names is None else tuple(map(str, names))
        if len(names) != d or len(set(names)) != d:
            raise ValueError(f"names must be {d} unique names (one per column of x); got {names}")
        self.x = jnp.asarray(xa)
        self.context = jnp.asarray(ca.astype(np.int32))
        self.features = jnp.asarray(fa)
        self.names = names

    @property
    def n_perturbations(self) -> int:
        return self.features.shape[0]

    @property
    def n_vars(self) -> int:
        return self.x.shape[1]

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    def cells(self, k: int) -> Float[Array, "n d"]:
        """The cells of perturbation `k` (`-1`: the control cells)."""
        return self.x[np.asarray(self.context) == k]

    @classmethod
    def from_pandas(
        cls,
        cells: pd.DataFrame,
        conditions: pd.DataFrame,
        *,
        context: str,
        control: Any,
        variables: Sequence[str],
        features: Sequence[str],
    ) -> PerturbationData:
        """Builds the data from a table of cells and a table of conditions.

        **Arguments:**

        - `cells`: one row per cell, with the `variables` columns and a `context` column naming
          its condition.
        - `conditions`: one row per perturbation, indexed by condition name, with the
          `features` columns. Conditions are numbered in the order of this table.
        - `context`: the column of `cells` holding the condition.
        - `control`: the condition name(s) of control cells (a value or a list of values).
        - `variables`, `features`: column names.
        """
        if not isinstance(cells, pd.DataFrame) or not isinstance(conditions, pd.DataFrame):
            raise TypeError("cells and conditions must be pandas DataFrames")
        if context not in cells.columns:
            raise ValueError(f"context column {context!r} is not in cells; it has "
                             f"{list(cells.columns)}")
        unknown = [v for v in variables if v not in cells.columns]
        if unknown:
            raise ValueError(f"variables {unknown} are not columns of cells")
        unknown = [f for f in features if f not in conditions.columns]
        if unknown:
            raise ValueError(f"features {unknown} are not columns of conditions")
        controls = set(control) if isinstance(control, (list, tuple, set)) else {control}
        labels = cells[context].to_numpy()
        ids = {c: i for i, c in enumerate(conditions.index)}
        unmatched = sorted({str(v) for v in labels if v not in controls and v not in ids})
        if unmatched:
            raise ValueError(
                f"cells[{context!r}] holds conditions {unmatched[:5]} that are neither control "
                f"({sorted(map(str, controls))}) nor in the index of conditions"
            )
        ctx = np.array([-1 if v in controls else ids[v] for v in labels], dtype=np.int64)
        return cls(
            cells[list(variables)].to_numpy(dtype=float), ctx,
            conditions[list(features)].to_numpy(dtype=float), names=list(variables),
        )


class Groups(eqx.Module):
    """Cells laid out as `G` groups of `n_max` rows (padding masked out) for compiled training:
    one group per perturbation, the control cells split into groups of at most `n_max`.

    - `x`: `(G, n_max, d)`; `mask`: `(G, n_max)`; `count`: `(G,)` cells per group.
    - `context`: `(G,)` perturbation id (`-1` for control groups).
    """

    x: Float[Array, "G n d"]
    mask: Bool[Array, "G n"]
    count: Float[Array, " G"]
    context: Int[Array, " G"]


def make_groups(x: np.ndarray, context: np.ndarray, n_perturbations: int) -> Groups:
    """Host-side layout of standardised cells `x` into [`Groups`][]."""
    per = [np.flatnonzero(context == k) for k in range(n_perturbations)]
    n_max = max(len(r) for r in per)
    control = np.flatnonzero(context == -1)
    chunks = [control[i:i + n_max] for i in range(0, len(control), n_max)]
    rows = per + chunks
    ids = list(range(n_perturbations)) + [-1] * len(chunks)
    g, d = len(rows), x.shape[1]
    xg = np.zeros((g, n_max, d))
    mask = np.zeros((g, n_max), bool)
    for i, r in enumerate(rows):
        xg[i, : len(r)] = x[r]
        mask[i, : len(r)] = True
    return Groups(
        x=jnp.asarray(xg, dtype=jnp.asarray(x).dtype), mask=jnp.asarray(mask),
        count=jnp.asarray(mask.sum(1), dtype=jnp.asarray(x).dtype),
        context=jnp.asarray(np.array(ids, np.int32)),
    )
