"""The checks of a DML fit: computed inside the compiled fit, reported on the host afterwards.

A model's nuisance step returns `checks`, a dict of boolean arrays that are `True` where the
check holds, named `"<kind>:<subject>"` (the subject is a learner name such as `ml_m`, or a column),
each of shape `(n_treatments, n_rep)` or `(n_treatments, n_rep, n_folds)`, and optionally
`diagnostics`, float arrays of the same names and shapes holding the value a message quotes (a
share of rows, a condition number). After the compiled fit, [`report`][] turns every failed check
into a `ValueError` (kinds registered as errors; with `throw=True`) or a `UserWarning` (kinds
registered as warnings), with the message of its kind. Nothing is printed.

Adding a check to a model takes two lines: put the flag into `checks` (and the value into
`diagnostics`) in `nuisance`, and register the kind once at import time:

```python
register_check("overlap", warn=True, message="... {subject} ... {where} ... {value:.1%}")
```
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class CheckKind:
    """How a failed check of one kind is reported.

    - `message`: a `str.format` template with the fields `{subject}` (the part of the check's
      name after the colon), `{where}` (treatment, repetition and fold of the first failure),
      `{value}` (the diagnostic at that place, when the model recorded one; NaN otherwise) and
      `{dtype}` (the precision of the fit).
    - `warn`: report with a `UserWarning` instead of a `ValueError`; such checks do not make
      `result.ok` false.
    - `priority`: errors are raised in increasing priority (the first failing one wins), so a
      cause comes before its consequences.
    - `hint`: an optional function `(data, result, subject) -> str` appended to the message (it
      may name the columns responsible; it runs on the host with concrete data).
    """

    message: str
    warn: bool = False
    priority: int = 3
    hint: Callable | None = None


KINDS: dict[str, CheckKind] = {}


def register_check(
    kind: str, *, message: str, warn: bool = False, priority: int = 3, hint: Callable | None = None
) -> None:
    """Registers (or replaces) how failed checks named `"<kind>:<subject>"` are reported."""
    KINDS[kind] = CheckKind(message=message, warn=warn, priority=priority, hint=hint)


def kind_of(name: str) -> CheckKind:
    return KINDS.get(name.partition(":")[0], CheckKind(message="check {subject} failed ({where})"))


def is_warning(name: str) -> bool:
    """Whether a failed check of this name is a warning (not an error)."""
    return kind_of(name).warn


def _where(index: np.ndarray, t_names: tuple[str, ...]) -> str:
    parts = []
    if index.size:
        parts.append(f"treatment '{t_names[index[0]]}'" if index[0] < len(t_names) else "")
    if index.size > 1:
        parts.append(f"repetition {index[1]}")
    if index.size > 2:
        parts.append(f"fold {index[2]}")
    return ", ".join(p for p in parts if p) or "the treatment"


def message(name: str, ok: np.ndarray, value: np.ndarray | None, t_names, dtype: str,
            hint: str = "") -> str:
    """The message of the failed check `name` (its first failing entry)."""
    kind = kind_of(name)
    subject = name.partition(":")[2]
    index = np.argwhere(~ok)[0] if ok.ndim else np.array([], int)
    val = float("nan")
    if value is not None:
        val = float(np.asarray(value)[tuple(index)]) if value.ndim else float(value)
    text = kind.message.format(subject=subject, where=_where(index, t_names), value=val,
                               dtype=dtype)
    return text + hint


def report(result, data=None, *, throw: bool = True) -> None:
    """Raises the first failed error check (when `throw`) and warns once per failed warning check.

    `result` is a concrete [`jaxcausal.dml.DMLResult`][] (or anything with `checks`,
    `diagnostics`, `t_names` and `dtype`); `data` feeds the hints that name columns.
    """
    checks: Mapping = result.checks
    diagnostics: Mapping = getattr(result, "diagnostics", None) or {}
    failed = []
    for name in checks:
        ok = np.asarray(checks[name])
        if not ok.all():
            failed.append((name, ok))
    failed.sort(key=lambda item: (kind_of(item[0]).priority, item[0]))

    def text(name, ok):
        kind = kind_of(name)
        hint = ""
        if kind.hint is not None and data is not None:
            hint = kind.hint(data, result, name.partition(":")[2]) or ""
        value = diagnostics.get(name)
        return message(name, ok, None if value is None else np.asarray(value), result.t_names,
                       result.dtype, hint)

    if throw:
        for name, ok in failed:
            if not kind_of(name).warn:
                raise ValueError(text(name, ok))
    for name, ok in failed:
        if kind_of(name).warn:
            warnings.warn(text(name, ok), UserWarning, stacklevel=3)


# The kinds every model shares. Errors: the fit cannot be used.
register_check(
    "treated", priority=0,
    message="a training fold has no treated unit ({where}); {subject} cannot be fitted there: "
    "use fewer folds or more data",
)
register_check(
    "untreated", priority=0,
    message="a training fold has no untreated unit ({where}); {subject} cannot be fitted there: "
    "use fewer folds or more data",
)
register_check(
    "constant", priority=0,
    message="treatment '{subject}' is constant (on every row), so its effect is not identified; "
    "DML needs variation in the treatment",
)
register_check(
    "finite", priority=1,
    message="the learner {subject} returned NaN or infinite out-of-fold predictions ({where}); "
    "check its settings (e.g. the learning rate) and the data",
)
register_check(
    "propensity", priority=2,
    message="propensity scores from {subject} are 0 or 1 after trimming ({where}); the score "
    "divides by m and 1 - m: set trimming > 0 or regularise the classifier",
)
# Warnings: the fit is defined, but the number may not mean what the user expects.
register_check(
    "precision", warn=True,
    message="the learner {subject} cannot be trusted at {dtype} ({where}): its standardised "
    "covariates have condition number {value:.2g}, beyond what {dtype} resolves, or the target "
    "depends on a difference of nearly collinear covariates that {dtype} cannot resolve; its "
    "predictions may be inaccurate. Enable float64 with "
    "jax.config.update('jax_enable_x64', True), or drop or combine collinear covariates",
)
register_check(
    "converged", warn=True,
    message="the learner {subject} did not converge within its iteration limit in some fold "
    "({where}); raise its max_iter or add a penalty",
)


# Propensity scores: DoubleML warns when predictions come within 1e-12 of 0 or 1 (in float32
# that is: rounded to 0 or 1); we also warn when trimming clips more than CLIP_SHARE of the rows.
EXTREME = 1e-12
CLIP_SHARE = 0.1


def _separating_columns(data, result, subject: str) -> str:
    """Names the covariates that on their own separate the rows whose propensity is 0 or 1."""
    if data is None or subject not in result.predictions:
        return ""
    m = np.asarray(result.predictions[subject])
    x = np.asarray(data.x, float)
    names = []
    for j in range(min(m.shape[0], data.t.shape[1])):
        d = np.asarray(data.t[:, j])
        for r in range(m.shape[1]):
            high = m[j, r] >= 1 - EXTREME
            low = m[j, r] <= EXTREME
            for c in range(x.shape[1]):
                col = x[:, c]
                sep = False
                for rows, other in ((high, d == 0), (low, d == 1)):
                    if rows.any() and other.any():
                        lo, hi = col[other].min(), col[other].max()
                        vals = col[rows]
                        sep |= bool((vals > hi).all() or (vals < lo).all())
                if sep and data.x_names[c] not in names:
                    names.append(data.x_names[c])
    if not names:
        return ""
    return (f"; the covariate(s) {names} separate those rows from the other treatment group on "
            "their own")


register_check(
    "separation", warn=True, hint=_separating_columns,
    message="propensity predictions from {subject} are 0 or 1 up to 1e-12 for {value:.2%} of the "
    "rows ({where}): a covariate (or a combination) separates treated from untreated units, so "
    "their effect rests on trimming and extrapolation",
)
register_check(
    "clipped", warn=True,
    message="propensity predictions from {subject} were clipped to the trimming bounds for "
    "{value:.1%} of the rows ({where}; warning above 10%): overlap is weak, and the estimate "
    "depends on the trimming threshold",
)


def propensity_checks(name: str, m_raw, trimming: float, checks: dict, diagnostics: dict) -> None:
    """Adds the `separation` and (with `trimming > 0`) `clipped` warnings of the out-of-fold
    propensities `m_raw` `(k, n_rep, n)` (before trimming) of the learner `name`."""
    import jax.numpy as jnp

    extreme = (m_raw <= EXTREME) | (m_raw >= 1.0 - EXTREME)
    share = jnp.mean(extreme.astype(m_raw.dtype), axis=-1)
    checks[f"separation:{name}"] = share == 0
    diagnostics[f"separation:{name}"] = share
    if trimming > 0:
        clipped = (m_raw < trimming) | (m_raw > 1.0 - trimming)
        share = jnp.mean(clipped.astype(m_raw.dtype), axis=-1)
        checks[f"clipped:{name}"] = share <= CLIP_SHARE
        diagnostics[f"clipped:{name}"] = share


def learner_checks(name: str, status: Mapping, checks: dict, diagnostics: dict) -> None:
    """Adds the `converged` and `precision` warnings from a learner's fit status (as returned by
    `crossfit(..., with_status=True)`)."""
    if "converged" in status:
        checks[f"converged:{name}"] = status["converged"]
    if "resolved" in status:
        checks[f"precision:{name}"] = status["resolved"]
        diagnostics[f"precision:{name}"] = status["cond"]
