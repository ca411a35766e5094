"""The candidates of `CV` and `Stacked`: the default grid, descriptions, and families of
candidates that share one compiled, vmapped fit."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np

from .._checks import is_concrete
from ._base import AbstractLearner
from ._boosting import Boosting
from ._lasso import LassoCV
from ._linear import Linear
from ._logistic import Logistic
from ._mlp import MLP


def default_candidates(classifier: bool = False) -> tuple[AbstractLearner, ...]:
    """The default grid of [`jaxcausal.learners.CV`][] and [`jaxcausal.learners.Stacked`][].

    A linear model (least squares and a cross-validated Lasso for regressions, a lightly
    penalised logistic regression for classifiers) beside four one-hidden-layer MLPs of width 16:
    AdamW with learning rates 3e-3 and 1e-2 and weight decays 0.1 and 1, at most 1000 steps. The
    four MLPs differ only in array fields, so they train as one compiled, vmapped program.

    The grid was chosen on the out-of-fold losses of a wider one (widths 16-64, depths 1-2,
    learning rates 1e-3 and 1e-2, weight decays 1e-3 to 1) on four generators kept apart from the
    evaluation in `benchmarks/dml_model_selection.py`: the linear fits won on sparse
    high-dimensional data and on step functions, and among the networks strong weight decay
    helped most while width and depth changed the loss by a few per cent. Each further network
    size would add a training program (about 9 s of compilation per nuisance and size on a CPU)
    and, for width 64, four times the training cost of width 16 on a CPU.

    Last, boosted stumps ([`jaxcausal.learners.Boosting`][], 200 rounds), a candidate of another
    kind than the smooth ones: on the step-function generator of that benchmark, stacking with
    them took the PLR bias from 0.89 to 0.20 standard errors (20 data sets), and on the small
    smooth one from 0.78 to 0.63.
    """
    mlps = tuple(
        MLP(width=16, depth=1, classifier=classifier, learning_rate=lr, weight_decay=wd,
            max_steps=1000)
        for lr in (3e-3, 1e-2)
        for wd in (0.1, 1.0)
    )
    boosting = Boosting(classifier=classifier)
    if classifier:
        return (Logistic(l2=1e-3), *mlps, boosting)
    # A short Lasso path (10 penalties down to 1 % of the largest) with a loose tolerance: least
    # squares covers the weakly penalised end. On 500 x 100 sparse data, in 5 vmapped folds, it
    # took a third of the CPU time of 20 penalties down to 0.1 % (1.1 s against 3.5 s), with
    # validation losses within 2 %.
    lasso = LassoCV(n_alphas=10, eps=1e-2, n_folds=3, tol=1e-6, max_iter=500)
    return (Linear(), lasso, *mlps, boosting)


def describe(learner: AbstractLearner) -> str:
    """`Name(field=value, ...)` listing the fields that differ from their defaults."""
    parts = []
    for f in dataclasses.fields(learner):
        value = getattr(learner, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if eqx.is_array(value):
            if not is_concrete(value):
                parts.append(f"{f.name}=<traced>")
                continue
            host = np.asarray(value)
            if default is not dataclasses.MISSING and np.array_equal(host, np.asarray(default)):
                continue
            shown = f"{host.item():g}" if host.size == 1 else f"array{host.shape}"
            parts.append(f"{f.name}={shown}")
        elif value is not default and value != default:
            shown = getattr(value, "__name__", None) or repr(value)
            parts.append(f"{f.name}={shown}")
    return f"{type(learner).__name__}({', '.join(parts)})"


def _family_key(learner: AbstractLearner):
    """What candidates must share to be stacked and fitted in one `vmap`: everything except the
    values of their array fields."""
    dynamic, static = eqx.partition(learner, eqx.is_array)
    leaves, treedef = jax.tree.flatten(dynamic)
    static_leaves, static_def = jax.tree.flatten(static)
    return (treedef, tuple((a.shape, a.dtype) for a in leaves), static_def, static_leaves)


def group_families(candidates: Sequence[AbstractLearner]) -> list[list[int]]:
    """Candidate indices grouped into families, in order of first appearance."""
    keys, groups = [], []
    for i, c in enumerate(candidates):
        k = _family_key(c)
        for j, other in enumerate(keys):
            if other[:3] == k[:3] and len(other[3]) == len(k[3]) and all(
                a is b or a == b for a, b in zip(other[3], k[3])
            ):
                groups[j].append(i)
                break
        else:
            keys.append(k)
            groups.append([i])
    return groups


def check_candidates(candidates, classifier, who) -> tuple[AbstractLearner, ...]:
    if candidates is None:
        return default_candidates(bool(classifier))
    candidates = tuple(candidates)
    if not candidates:
        raise ValueError(f"candidates of {who} is empty; give at least one learner")
    for i, cand in enumerate(candidates):
        if not isinstance(cand, AbstractLearner):
            raise TypeError(f"candidates[{i}] must be a jaxcausal learner; got {cand!r}")
    kinds = {cand.is_classifier for cand in candidates}
    if len(kinds) > 1:
        shown = ", ".join(
            f"{describe(c)}: {'classifier' if c.is_classifier else 'regressor'}"
            for c in candidates
        )
        raise ValueError(
            f"candidates of {who} mix classifiers and regressors ({shown}); they must all "
            "predict the same kind of target"
        )
    if classifier is not None and bool(classifier) != candidates[0].is_classifier:
        raise ValueError(
            f"classifier={classifier} but the candidates are "
            f"{'classifiers' if candidates[0].is_classifier else 'regressors'}"
        )
    return candidates
