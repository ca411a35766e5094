"""Group-time cells of multi-period difference-in-differences: which ATT(g, t) to estimate and
which units serve as controls (DoubleML 0.11's `gt_combinations` and `control_group`)."""

from __future__ import annotations

import abc
import warnings
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

Cell = tuple[float, float, float]


def fmt(v: float) -> str:
    """A period or group value as DoubleML prints integers (`2`, not `2.0`)."""
    return f"{v:g}"


def cell_label(cell: Cell) -> str:
    g, pre, post = cell
    return f"ATT({fmt(g)},{fmt(pre)},{fmt(post)})"


class AbstractGTCombinations(eqx.Module):
    """A rule choosing the group-time cells $(g, t_{pre}, t_{eval})$ of
    [`jaxcausal.dml.DIDMulti`][]."""

    @abc.abstractmethod
    def cells(
        self, g_values: Sequence[float], t_values: Sequence[float], anticipation: int
    ) -> list[Cell]:
        """The cells for the treated groups `g_values` and periods `t_values`."""


def _before(g: float, t_values: Sequence[float]) -> list[float]:
    return [t for t in t_values if t < g]


class StandardGT(AbstractGTCombinations):
    """DoubleML's `"standard"` cells (Callaway and Sant'Anna's varying base period): for each group
    $g$ and each evaluation period $t$ (from the second period on), the base period is the period
    just before $t$ for pre-treatment cells and the last period before $g$ (less anticipation)
    for post-treatment cells."""

    def cells(self, g_values, t_values, anticipation):
        out = []
        first = anticipation + 1
        for g in g_values:
            before = _before(g, t_values)
            if len(before) <= anticipation:
                continue
            base = before[-first]
            out += [(g, min(t_values[i], base), t) for i, t in enumerate(t_values[first:])]
        return out


class AllGT(AbstractGTCombinations):
    """DoubleML's `"all"` cells: every base period before $\\min(g, t)$ for every evaluation
    period $t$."""

    def cells(self, g_values, t_values, anticipation):
        out = []
        first = anticipation + 1
        for g in g_values:
            if len(_before(g, t_values)) <= anticipation:
                continue
            for t in t_values[first:]:
                pres = [s for s in t_values if s <= min(g, t)][:-first]
                out += [(g, pre, t) for pre in pres]
        return out


class UniversalGT(AbstractGTCombinations):
    """DoubleML's `"universal"` cells: one base period per group (the last before $g$, less
    anticipation) and every other period as evaluation period."""

    def cells(self, g_values, t_values, anticipation):
        out = []
        first = anticipation + 1
        for g in g_values:
            before = _before(g, t_values)
            if len(before) <= anticipation:
                continue
            base = before[-first]
            out += [(g, base, t) for t in t_values if t != base]
        return out


class AbstractControlGroup(eqx.Module):
    """Which units are the controls of a group-time cell."""

    @abc.abstractmethod
    def rows(
        self, g: Float[Array, " n"], treated: Bool[Array, "c n"], max_g: Float[Array, " c"]
    ) -> Bool[Array, "c n"]:
        """Control indicators per cell, from the units' groups `g` (`inf`: never treated)."""


class NeverTreated(AbstractControlGroup):
    """Never-treated units are the controls (DoubleML's `"never_treated"`, the default)."""

    def rows(self, g, treated, max_g):
        return jnp.broadcast_to(jnp.isinf(g)[None, :], treated.shape)


class NotYetTreated(AbstractControlGroup):
    """Never-treated units and units first treated after the evaluation period (plus
    anticipation) are the controls (DoubleML's `"not_yet_treated"`)."""

    def rows(self, g, treated, max_g):
        return jnp.isinf(g)[None, :] | ((g[None, :] > max_g[:, None]) & ~treated)


class CellArrays(eqx.Module):
    """The cells as arrays for the compiled fit (so that equal shapes reuse the compiled code)."""

    g: Float[Array, " c"]
    pre: Int[Array, " c"]
    post: Int[Array, " c"]
    first: Int[Array, " c"]
    max_g: Float[Array, " c"]


def as_cell_tuple(value: Any) -> Any:
    """Converter of `gt_combinations`: a rule object, or the cells as a tuple of float triples."""
    if isinstance(value, AbstractGTCombinations):
        return value
    if isinstance(value, str):
        raise TypeError(
            f"gt_combinations must be StandardGT(), AllGT(), UniversalGT() or a list of "
            f"(g, t_pre, t_eval) tuples; got the string {value!r} (rules are objects, not strings)"
        )
    try:
        cells = tuple(tuple(float(v) for v in c) for c in value)
    except (TypeError, ValueError):
        raise TypeError(
            "gt_combinations must be StandardGT(), AllGT(), UniversalGT() or a list of "
            f"(g, t_pre, t_eval) tuples; got {value!r}"
        ) from None
    if not cells:
        raise ValueError("gt_combinations is empty; give at least one (g, t_pre, t_eval) cell")
    if any(len(c) != 3 for c in cells):
        raise ValueError("gt_combinations must hold (g, t_pre, t_eval) triples")
    return cells


def resolve_cells(
    rule: Any, g_values: tuple[float, ...], t_values: tuple[float, ...], anticipation: int
) -> tuple[Cell, ...]:
    """The cells of `rule` for the panel's groups and periods, checked as DoubleML checks them."""
    cells = (
        tuple(rule.cells(g_values, t_values, anticipation))
        if isinstance(rule, AbstractGTCombinations) else rule
    )
    if not cells:
        raise ValueError(
            "no group-time cells: every treated group is treated in the first period(s) (less "
            f"anticipation_periods={anticipation}); groups {g_values}, periods {t_values}"
        )
    for g, pre, post in cells:
        if g not in g_values:
            raise ValueError(
                f"gt_combinations has group {fmt(g)}, which is not a treated group of the data "
                f"(g_values {tuple(fmt(v) for v in g_values)})"
            )
        for name, v in (("t_pre", pre), ("t_eval", post)):
            if v not in t_values:
                raise ValueError(
                    f"gt_combinations has {name} {fmt(v)}, which is not a period of the data "
                    f"(t_values {tuple(fmt(t) for t in t_values)})"
                )
        if pre == post:
            raise ValueError(
                f"gt_combinations cell {cell_label((g, pre, post))} has t_pre == t_eval"
            )
        latest = t_values[max(t_values.index(g) - anticipation, 0)]
        if pre >= latest:
            warnings.warn(
                f"the base period {fmt(pre)} of cell {cell_label((g, pre, post))} is not before "
                f"the treatment of group {fmt(g)} (with {anticipation} anticipation periods)",
                UserWarning,
                stacklevel=4,
            )
    return cells


def cell_arrays(cells: tuple[Cell, ...], t_values: tuple[float, ...], anticipation: int, dtype):
    idx = {t: i for i, t in enumerate(t_values)}
    last = len(t_values) - 1
    return CellArrays(
        g=jnp.asarray([c[0] for c in cells], dtype),
        pre=jnp.asarray([idx[c[1]] for c in cells]),
        post=jnp.asarray([idx[c[2]] for c in cells]),
        first=jnp.asarray([idx[min(c[1], c[2])] for c in cells]),
        max_g=jnp.asarray(
            [t_values[min(idx[c[2]] + anticipation, last)] for c in cells], dtype
        ),
    )


def check_controls(g: Any, cells, control: AbstractControlGroup, arrays: CellArrays):
    """Eager check that every cell has treated and control units (DoubleML raises too)."""
    g = np.asarray(g)
    treated = g[None, :] == np.asarray(arrays.g)[:, None]
    controls = np.asarray(control.rows(jnp.asarray(g), jnp.asarray(treated), arrays.max_g))
    for i, cell in enumerate(cells):
        if not controls[i].any():
            hint = (
                " (there are no never-treated units, g = inf: use control_group=NotYetTreated())"
                if isinstance(control, NeverTreated) else ""
            )
            raise ValueError(
                f"cell {cell_label(cell)} has no control units under control_group="
                f"{type(control).__name__}(){hint}"
            )
        if not treated[i].any():
            raise ValueError(f"cell {cell_label(cell)} has no treated units (group {fmt(cell[0])})")
