"""`CausalData`: the pytree every estimator takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, Int

from ._checks import as_float_array, check_binary, check_finite, check_ndim, is_concrete


def _names(given: Sequence[str] | None, prefix: str, k: int, arg: str) -> tuple[str, ...]:
    if given is None:
        return (
            (prefix,)
            if k == 1 and prefix in ("y", "t")
            else tuple(f"{prefix}{i}" for i in range(k))
        )
    names = (given,) if isinstance(given, str) else tuple(given)
    if len(names) != k:
        raise ValueError(f"{arg} must name {k} columns; got {len(names)} names {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"{arg} has duplicate names: {names}")
    return names


def _as_2d(value: Any, name: str) -> jax.Array:
    if not isinstance(value, jax.Array) and np.ndim(value) == 1:
        value = np.asarray(value)[:, None]  # on the host: no compilation
    arr = as_float_array(value, name)
    check_ndim(arr, (1, 2), name, "a vector (n_obs,) or a matrix (n_obs, k)")
    return arr[:, None] if arr.ndim == 1 else arr


def _check_roles(data: CausalData) -> None:
    """A column may play one role: a treatment or instrument that is also a covariate (by name,
    or as an identical column of values) makes the effect meaningless, so it raises, as
    DoubleML's data classes do for names."""
    roles = [("y", "outcome", (data.y_name,)), ("t", "treatment", data.t_names),
             ("x", "covariate", data.x_names)]
    if data.z_names is not None:
        roles.append(("z", "instrument", data.z_names))
    for i, (arg1, role1, names1) in enumerate(roles):
        for arg2, role2, names2 in roles[i + 1:]:
            shared = [n for n in names1 if n in names2]
            if shared:
                raise ValueError(
                    f"column '{shared[0]}' is given both as {role1} ({arg1}) and as {role2} "
                    f"({arg2}); a column can play only one role"
                )
    if not all(is_concrete(a) for a in (data.t, data.x)) or data.x.ndim != 2:
        return
    x = np.asarray(data.x)
    pairs = [("t", "treatment", data.t, data.t_names, "x", "covariate", x, data.x_names)]
    if data.z is not None and is_concrete(data.z):
        z = np.asarray(data.z)
        # An instrument equal to the treatment is allowed: the treatment as its own instrument
        # (PLIV reduces to PLR, IIVM to IRM).
        pairs.append(("z", "instrument", z, data.z_names, "x", "covariate", x, data.x_names))
    for arg1, role1, a, names1, arg2, role2, b, names2 in pairs:
        a = np.asarray(a)
        for j in range(a.shape[1]):
            same = np.flatnonzero((b == a[:, j : j + 1]).all(axis=0))
            if same.size:
                c = int(same[0])
                raise ValueError(
                    f"{role1} '{names1[j]}' ({arg1}[:, {j}]) is identical to {role2} "
                    f"'{names2[c]}' ({arg2}[:, {c}]); a {role1} cannot also be a {role2}: "
                    f"drop it from {arg2}"
                )


def _cluster_codes(value: Any, n: int) -> jax.Array:
    """Cluster labels `(n,)` or `(n, c)` as integer codes `(n, c)`, `0..n_clusters-1` per column."""
    if isinstance(value, jax.core.Tracer):
        arr = value if value.ndim == 2 else value[:, None]
        if arr.shape[0] != n or arr.shape[1] not in (1, 2):
            raise ValueError(
                f"cluster must have shape (n_obs,) or (n_obs, 2) = ({n}, ...); got {arr.shape}"
            )
        return arr.astype(jnp.int32)
    host = np.asarray(value)
    if host.ndim == 1:
        host = host[:, None]
    if host.ndim != 2 or host.shape[0] != n or host.shape[1] not in (1, 2):
        raise ValueError(
            f"cluster must have shape (n_obs,) or (n_obs, c) with c in (1, 2) and n_obs = {n} "
            f"(one- or two-way clustering); got {host.shape}"
        )
    if host.dtype.kind == "f" and not np.isfinite(host).all():
        raise ValueError("cluster contains NaN or infinite values; expected cluster labels")
    codes = np.stack([np.unique(host[:, j], return_inverse=True)[1] for j in range(host.shape[1])],
                     axis=1)
    return jnp.asarray(codes, dtype=jnp.int32)
def _period_indicator(value: Any, n: int) -> jax.Array | None:
    """Validates the 0/1 period indicator `time` of repeated cross-sections."""
    if value is None:
        return None
    arr = as_float_array(value, "time")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    check_ndim(arr, (1,), "time", "a vector of shape (n_obs,) (a 0/1 period indicator)")
    if arr.shape[0] != n:
        raise ValueError(
            f"time has {arr.shape[0]} rows but y has {n}; all arrays need the same rows"
        )
    arr = check_finite(arr, "time")
    return check_binary(arr, "time", "(the period indicator: 0 before, 1 after treatment)")


class CausalData(eqx.Module):
    """Observational data for a causal question: outcome, treatment(s), covariates, instruments.

    A `CausalData` is an immutable pytree, so it passes through `jit`, `vmap` (stack several data
    sets with [`jaxcausal.CausalData.stack`][]) and sharding like any array.

    **Arguments:**

    - `y`: outcome, shape `(n_obs,)`.
    - `t`: treatment(s), shape `(n_obs,)` or `(n_obs, n_treatments)`; stored as
      `(n_obs, n_treatments)`.
    - `x`: covariates (confounders), shape `(n_obs, n_features)` or `(n_obs,)` for one covariate.
    - `z`: optional instruments, shape `(n_obs,)` or `(n_obs, n_instruments)`.
    - `cluster`: optional cluster variables for cluster-robust DML inference, shape `(n_obs,)` or
      `(n_obs, 2)` for two-way clustering (any numeric labels; stored as codes
      `0, ..., n_clusters - 1` per column. Inside `jit`/`vmap` the labels must already be integer
      codes in `[0, n_obs)`).
    - `time`: optional 0/1 period indicator `(n_obs,)` for repeated cross-sections (pre-treatment
      period 0, post-treatment period 1), as DoubleML's `t_col`; used by
      [`jaxcausal.dml.DIDCS`][]. Values other than 0 and 1 raise a `ValueError` naming `time`.
    - `y_name`, `t_names`, `x_names`, `z_names`, `cluster_names`, `time_name`: optional column
      names (used by
      `summary()` tables).

    Every array must be numeric and finite, and all must have the same number of rows; otherwise a
    `ValueError` names the offending argument.

    !!! Example

        ```python
        data = jc.CausalData(y=y, t=d, x=X)
        data = jc.CausalData.from_pandas(df, y="y", t="d", x=["x1", "x2"])
        ```
    """

    y: Float[Array, " n"]
    t: Float[Array, "n k"]
    x: Float[Array, "n p"]
    z: Float[Array, "n m"] | None
    time: Float[Array, " n"] | None
    y_name: str = eqx.field(static=True)
    t_names: tuple[str, ...] = eqx.field(static=True)
    x_names: tuple[str, ...] = eqx.field(static=True)
    z_names: tuple[str, ...] | None = eqx.field(static=True)
    time_name: str | None = eqx.field(static=True)
    cluster: Int[Array, "n c"] | None = None
    cluster_names: tuple[str, ...] | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        y: Any,
        t: Any,
        x: Any,
        z: Any = None,
        *,
        y_name: str = "y",
        t_names: Sequence[str] | None = None,
        x_names: Sequence[str] | None = None,
        z_names: Sequence[str] | None = None,
        cluster: Any = None,
        cluster_names: Sequence[str] | None = None,
        time: Any = None,
        time_name: str | None = "time",
    ):
        if not isinstance(y, jax.Array) and np.ndim(y) == 2 and np.shape(y)[1] == 1:
            y = np.asarray(y)[:, 0]
        y = as_float_array(y, "y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        check_ndim(y, (1,), "y", "a vector of shape (n_obs,)")
        t = _as_2d(t, "t")
        x = _as_2d(x, "x")
        z = None if z is None else _as_2d(z, "z")
        n = y.shape[0]
        if n == 0:
            raise ValueError("y is empty; CausalData needs at least one row")
        for name, arr in (("t", t), ("x", x), ("z", z)):
            if arr is not None and arr.shape[0] != n:
                raise ValueError(
                    f"{name} has {arr.shape[0]} rows but y has {n}; all arrays need the same rows"
                )
        self.y = check_finite(y, "y")
        self.t = check_finite(t, "t")
        self.x = check_finite(x, "x")
        self.z = None if z is None else check_finite(z, "z")
        self.y_name = str(y_name)
        self.t_names = _names(t_names, "t", t.shape[1], "t_names")
        self.x_names = _names(x_names, "x", x.shape[1], "x_names")
        self.z_names = None if z is None else _names(z_names, "z", z.shape[1], "z_names")
        self.time, self.time_name = _period_indicator(time, n), None
        if time is not None:
            self.time_name = str(time_name)
        self.cluster = None if cluster is None else _cluster_codes(cluster, n)
        self.cluster_names = (
            None if cluster is None
            else _names(cluster_names, "cluster", self.cluster.shape[1], "cluster_names")
        )
        _check_roles(self)

    @property
    def n_obs(self) -> int:
        """Number of rows."""
        return self.y.shape[-1]

    @property
    def n_treatments(self) -> int:
        return self.t.shape[-1]

    @property
    def n_features(self) -> int:
        return self.x.shape[-1]

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        *,
        y: str,
        t: str | Sequence[str],
        x: Sequence[str] | str | None = None,
        z: str | Sequence[str] | None = None,
        time: str | None = None,
        cluster: str | Sequence[str] | None = None,
    ) -> CausalData:
        """Builds `CausalData` from the columns of a DataFrame.

        `x=None` takes every column not named as `y`, `t`, `z`, `time` (the 0/1 period indicator
        of repeated cross-sections, e.g. `time="period"`) or `cluster`. Unknown column names,
        non-numeric columns and missing values raise a `ValueError` that names the column
        (cluster columns may hold any labels, e.g. strings).
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
        t_cols = [t] if isinstance(t, str) else list(t)
        z_cols = None if z is None else ([z] if isinstance(z, str) else list(z))
        c_cols = (
            None if cluster is None else [cluster] if isinstance(cluster, str) else list(cluster)
        )
        if c_cols is not None:
            missing = [c for c in c_cols if c not in df.columns]
            if missing:
                raise ValueError(
                    f"cluster names unknown column(s) {missing}; the DataFrame has "
                    f"{list(df.columns)}"
                )
        time_cols = [] if time is None else [time]
        if x is None:
            used = {y, *t_cols, *(z_cols or []), *(c_cols or []), *time_cols}
            x_cols = [c for c in df.columns if c not in used]
        else:
            x_cols = [x] if isinstance(x, str) else list(x)
        for arg, cols in (
            ("y", [y]), ("t", t_cols), ("x", x_cols), ("z", z_cols or []), ("time", time_cols)
        ):
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise ValueError(
                    f"{arg} names unknown column(s) {missing}; the DataFrame has {list(df.columns)}"
                )
            for c in cols:
                if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
                    raise ValueError(
                        f"column '{c}' (given as {arg}) must be numeric; got dtype {df[c].dtype}"
                    )
                values = df[c].to_numpy(dtype=float)
                if not np.isfinite(values).all():
                    row = int(np.argwhere(~np.isfinite(values))[0][0])
                    raise ValueError(
                        f"column '{c}' (given as {arg}) contains NaN or infinite values "
                        f"(first at row {row}); expected finite numbers"
                    )
        if not x_cols:
            raise ValueError("x selects no columns; CausalData needs at least one covariate")

        def cols(names: list[str]) -> np.ndarray:
            return df[names].to_numpy(dtype=float)

        return cls(
            y=df[y].to_numpy(dtype=float),
            t=cols(t_cols),
            x=cols(x_cols),
            z=None if z_cols is None else cols(z_cols),
            y_name=y,
            t_names=t_cols,
            x_names=x_cols,
            z_names=z_cols,
            cluster=None if c_cols is None else np.stack(
                [pd.factorize(df[c], sort=True)[0] for c in c_cols], axis=1
            ),
            cluster_names=c_cols,
            time=None if time is None else df[time].to_numpy(dtype=float),
            time_name="time" if time is None else time,
        )

    def to_pandas(self) -> pd.DataFrame:
        """The data as a DataFrame with the stored column names."""
        if not is_concrete(self.y) or self.y.ndim != 1:
            raise ValueError("to_pandas needs a single, concrete data set (not stacked or traced)")
        parts = {self.y_name: np.asarray(self.y)}
        for names, arr in ((self.t_names, self.t), (self.x_names, self.x), (self.z_names, self.z),
                           (self.cluster_names, self.cluster)):
            if arr is not None:
                parts.update({n: np.asarray(arr[:, i]) for i, n in enumerate(names)})
        if self.time is not None:
            parts[self.time_name] = np.asarray(self.time)
        return pd.DataFrame(parts)

    @staticmethod
    def stack(datasets: Sequence[CausalData]) -> CausalData:
        """Stacks data sets of equal shapes along a new leading axis (for `vmap`ped studies)."""
        if not datasets:
            raise ValueError("datasets is empty")
        return jax.tree.map(lambda *a: jnp.stack(a), *datasets)
