"""`PanelData`: a balanced panel with staggered treatment adoption (units x periods)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float

from ._checks import as_float_array, check_finite, check_ndim, is_concrete


def _fmt(v: float) -> str:
    return f"{v:g}"


def _py(v: Any) -> Any:
    """A NumPy scalar as the Python value (for readable error messages)."""
    return v.item() if isinstance(v, np.generic) else v


class PanelData(eqx.Module):
    """A balanced panel for multi-period difference-in-differences: every unit observed in every
    period, with the period of its first treatment (staggered adoption), as DoubleML's
    `DoubleMLPanelData` (but stored wide: one row per unit).

    **Arguments:**

    - `y`: outcomes `(n_units, n_periods)`, column `j` in period `t_values[j]`.
    - `g`: first treatment period of each unit `(n_units,)` (its group); never-treated units
      have `inf`, or `0` when `g` is an integer array (DoubleML's convention).
    - `x`: covariates `(n_units, n_features)` (time-invariant) or `(n_units, n_periods,
      n_features)`; DoubleML's `DoubleMLDIDBinary` uses the covariates of the earlier of the
      two periods a group-time effect compares, and so does [`jaxcausal.dml.DIDMulti`][].
    - `t_values`: the periods, increasing (default `0, 1, ..., n_periods - 1`).
    - `g_values`: the treatment groups (first treatment periods, each one of `t_values`);
      default: the finite values of `g`. Needed when `g` is traced (data drawn inside `jit`).
    - `y_name`, `g_name`, `time_name`, `id_name`, `x_names`: column names.

    Units are the rows; [`jaxcausal.PanelData.from_pandas`][] sorts them by id. Missing periods
    (an unbalanced panel), a group that is not a period and non-finite values raise a
    `ValueError` naming the argument.

    ```python
    panel = jc.PanelData.from_pandas(df, y="y", g="d", time="t", id="id", x=["Z1", "Z2"])
    ```
    """

    y: Float[Array, "n T"]
    g: Float[Array, " n"]
    x: Float[Array, "n p"] | Float[Array, "n T p"]
    t_values: tuple[float, ...] = eqx.field(static=True)
    g_values: tuple[float, ...] = eqx.field(static=True)
    y_name: str = eqx.field(static=True)
    g_name: str = eqx.field(static=True)
    time_name: str = eqx.field(static=True)
    id_name: str = eqx.field(static=True)
    x_names: tuple[str, ...] = eqx.field(static=True)

    def __init__(
        self,
        y: Any,
        g: Any,
        x: Any,
        *,
        t_values: Sequence[Any] | None = None,
        g_values: Sequence[Any] | None = None,
        y_name: str = "y",
        g_name: str = "g",
        time_name: str = "t",
        id_name: str = "id",
        x_names: Sequence[str] | None = None,
    ):
        y = as_float_array(y, "y")
        check_ndim(y, (2,), "y", "a matrix (n_units, n_periods) of outcomes")
        n, n_t = y.shape
        if n_t < 2:
            raise ValueError(f"y must have at least two periods (columns); got {n_t}")
        g_dtype = g.dtype if hasattr(g, "dtype") else np.asarray(g).dtype
        integer_g = np.issubdtype(g_dtype, np.integer)
        g = as_float_array(g, "g")
        check_ndim(g, (1,), "g", "a vector (n_units,) of first treatment periods")
        if g.shape[0] != n:
            raise ValueError(f"g has {g.shape[0]} rows but y has {n}; one row per unit")
        if integer_g:
            g = jnp.where(g == 0, jnp.inf, g)
        x = as_float_array(x, "x")
        if x.ndim == 1:
            x = x[:, None]
        check_ndim(x, (2, 3), "x", "(n_units, n_features) or (n_units, n_periods, n_features)")
        if x.shape[0] != n or (x.ndim == 3 and x.shape[1] != n_t):
            raise ValueError(
                f"x has shape {tuple(x.shape)}; expected ({n}, p) or ({n}, {n_t}, p) for y of "
                f"shape {(n, n_t)}"
            )
        self.t_values = _check_t_values(t_values, n_t)
        self.g_values = _check_groups(g, g_values, self.t_values)
        self.y = check_finite(y, "y")
        self.g = g
        self.x = check_finite(x, "x")
        self.y_name, self.g_name = str(y_name), str(g_name)
        self.time_name, self.id_name = str(time_name), str(id_name)
        p = x.shape[-1]
        names = tuple(f"x{i}" for i in range(p)) if x_names is None else tuple(x_names)
        if len(names) != p:
            raise ValueError(f"x_names must name {p} columns; got {len(names)}")
        self.x_names = names

    @property
    def n_obs(self) -> int:
        """Number of units."""
        return self.y.shape[-2]

    @property
    def n_periods(self) -> int:
        return self.y.shape[-1]

    @property
    def n_features(self) -> int:
        return self.x.shape[-1]

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        *,
        y: str,
        g: str,
        time: str,
        id: str,
        x: Sequence[str] | str | None = None,
    ) -> PanelData:
        """Builds `PanelData` from a long DataFrame (one row per unit and period), like
        `DoubleMLPanelData(df, y_col=y, d_cols=g, t_col=time, id_col=id, x_cols=x)`.

        `g` holds the first treatment period of the row's unit; never-treated units have `0`
        (integer column), `inf` or `NaN`. `x=None` takes every other column. Covariates constant
        within each unit are stored `(n_units, p)`, others `(n_units, n_periods, p)`.
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
        named = {"y": y, "g": g, "time": time, "id": id}
        x_cols = (
            [c for c in df.columns if c not in named.values()] if x is None
            else [x] if isinstance(x, str) else list(x)
        )
        for arg, cols in [*((a, [c]) for a, c in named.items()), ("x", x_cols)]:
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise ValueError(
                    f"{arg} names unknown column(s) {missing}; the DataFrame has {list(df.columns)}"
                )
        if not x_cols:
            raise ValueError("x selects no columns; PanelData needs at least one covariate")
        for arg, c in [("y", y), ("g", g), ("time", time), *(("x", c) for c in x_cols)]:
            if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
                raise ValueError(
                    f"column '{c}' (given as {arg}) must be numeric; got dtype {df[c].dtype}"
                    + (" (convert dates to period numbers)" if arg in ("g", "time") else "")
                )
        for arg, c in [("y", y), ("time", time), *(("x", c) for c in x_cols)]:
            values = df[c].to_numpy(dtype=float)
            if not np.isfinite(values).all():
                row = int(np.argwhere(~np.isfinite(values))[0][0])
                raise ValueError(
                    f"column '{c}' (given as {arg}) contains NaN or infinite values (first at row "
                    f"{row})"
                )
        if df.duplicated([id, time]).any():
            dup = df[df.duplicated([id, time])]
            unit, period = _py(dup[id].iloc[0]), _py(dup[time].iloc[0])
            raise ValueError(
                f"id {unit!r} has several rows for period {period!r} (id='{id}', "
                f"time='{time}'); a panel has one row per unit and period"
            )
        ids = np.sort(df[id].unique())
        periods = np.sort(df[time].unique())
        counts = df.groupby(id)[time].nunique()
        if (counts < len(periods)).any():
            unit = counts.index[int(np.argmax((counts < len(periods)).to_numpy()))]
            have = set(df.loc[df[id] == unit, time])
            lost = [_py(p) for p in periods if p not in have]
            raise ValueError(
                f"the panel is unbalanced: id {_py(unit)!r} has no row for period(s) {lost} "
                f"(time='{time}'); every unit must be observed in every period (drop incomplete "
                "units first)"
            )
        long = df.sort_values([id, time])
        g_raw = long[g].to_numpy()
        g_num = g_raw.astype(float)
        never = np.isnan(g_num) | np.isinf(g_num)
        if np.issubdtype(g_raw.dtype, np.integer):
            never |= g_num == 0
        g_num = np.where(never, np.inf, g_num)
        per_unit = g_num.reshape(len(ids), len(periods))
        same = (per_unit == per_unit[:, :1]).all(axis=1)
        if not same.all():
            raise ValueError(
                f"g (column '{g}') varies within id {_py(ids[int(np.argmin(same))])!r}; it must "
                "be the unit's first treatment period, the same in every period"
            )
        y_wide = long[y].to_numpy(dtype=float).reshape(len(ids), len(periods))
        x_long = long[x_cols].to_numpy(dtype=float).reshape(len(ids), len(periods), len(x_cols))
        constant = np.allclose(x_long, x_long[:, :1], rtol=0.0, atol=0.0)
        return cls(
            y=y_wide,
            g=per_unit[:, 0],
            x=x_long[:, 0] if constant else x_long,
            t_values=[float(p) for p in periods],
            y_name=y, g_name=g, time_name=time, id_name=id, x_names=x_cols,
        )

    def to_pandas(self) -> pd.DataFrame:
        """The panel in long format (ids `0..n_units-1`; never-treated units have `g = inf`)."""
        if not is_concrete(self.y) or self.y.ndim != 2:
            raise ValueError("to_pandas needs a single, concrete panel (not stacked or traced)")
        n, n_t = self.y.shape
        x = np.asarray(self.x)
        if x.ndim == 2:
            x = np.broadcast_to(x[:, None, :], (n, n_t, x.shape[-1]))
        parts = {
            self.id_name: np.repeat(np.arange(n), n_t),
            self.time_name: np.tile(np.asarray(self.t_values), n),
            self.y_name: np.asarray(self.y).ravel(),
            self.g_name: np.repeat(np.asarray(self.g), n_t),
        }
        parts.update({name: x[..., i].ravel() for i, name in enumerate(self.x_names)})
        return pd.DataFrame(parts)


def _check_t_values(t_values, n_t: int) -> tuple[float, ...]:
    if t_values is None:
        return tuple(float(i) for i in range(n_t))
    values = tuple(float(v) for v in t_values)
    if len(values) != n_t:
        raise ValueError(f"t_values must list the {n_t} periods (columns of y); got {len(values)}")
    if not all(np.isfinite(values)) or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"t_values must be finite and increasing; got {values}")
    return values


def _check_groups(g: Array, g_values, t_values: tuple[float, ...]) -> tuple[float, ...]:
    concrete = is_concrete(g)
    host = np.asarray(g) if concrete else None
    if concrete and np.isnan(host).any():
        row = int(np.argwhere(np.isnan(host))[0][0])
        raise ValueError(
            f"g contains NaN (first in row {row}); mark never-treated units with inf (or 0 in an "
            "integer array)"
        )
    if g_values is None:
        if not concrete:
            raise ValueError("g_values must be given when g is traced (e.g. drawn inside jit)")
        g_values = np.unique(host[np.isfinite(host)])
    # a group outside the periods (e.g. first treated after the panel ends) is an error here,
    # as in DoubleML, which needs every group to be one of the periods
    values = tuple(sorted(float(v) for v in g_values))
    for v in values:
        if not np.isfinite(v) or v not in t_values:
            raise ValueError(
                f"g_values has the group {_fmt(v)}, which is not one of the periods t_values "
                f"{tuple(_fmt(t) for t in t_values)}; a group is the period of first treatment"
            )
    if concrete:
        finite = host[np.isfinite(host)]
        unknown = np.setdiff1d(finite, np.asarray(values))
        if unknown.size:
            raise ValueError(
                f"g has first treatment period {_fmt(unknown[0])}, which is not one of the groups "
                f"g_values {tuple(_fmt(v) for v in values)}"
            )
    return values
