"""The fitting procedure shared by every DML model: folds, one compiled cross-fit, the DML2
solution, and checks that name what went wrong.

How a model adds checks (the framework lives in `jaxcausal/dml/_checks.py`):

- In `nuisance` (inside the compiled fit), put boolean arrays into `checks`, named
  `"<kind>:<subject>"` and `True` where the check holds, shaped `(k, n_rep)` or
  `(k, n_rep, n_folds)`; put the value a message should quote into `diagnostics` under the same
  name. Helpers: [`fit_learner`][] (cross-fits a learner and adds `finite:`, `converged:` and
  `precision:` for it), `propensity_checks` (the `separation:` and `clipped:` warnings) and
  `all_finite`.
- Register a new kind once with `register_check(kind, message=..., warn=...)`; errors raise a
  `ValueError` after the compiled fit (or an `eqx.error_if` under `jit`), warnings a
  `UserWarning`; `result.ok` counts errors only.
- Checks of the data itself (a constant treatment, a treatment that is also a covariate, a
  binary class with fewer rows than folds) run eagerly in `fit` / `check_data` /
  [`jaxcausal.CausalData`][] when the data are concrete, and name the column.
- The fold split is stratified by `strata(data)` (default: none; IRM, and PLR/PLIV with binary
  treatments, stratify by the treatment)."""

from __future__ import annotations

import abc
import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit, top_level
from .._data import CausalData
from ..learners import AbstractLearner
from ..learners._base import trusted_inputs
from . import _cluster
from ._checks import (
    learner_checks as learner_checks,
    propensity_checks as propensity_checks,
    register_check as register_check,
    report,
)
from ._crossfit import (
    check_folds,
    covariates_per_treatment,
    crossfit,
    draw_folds,
    holdout_masks,
)
from ._inference import solve_linear_score
from ._result import DMLResult
from ._sensitivity import finalize_elements

_TRACES = [0]


def trace_count() -> int:
    """How often the compiled DML fit has been traced (for no-recompilation tests)."""
    return _TRACES[0]


class Nuisance(eqx.Module):
    """What a model's nuisance step hands to the estimator (`checks` and `diagnostics`: see the
    module docstring)."""

    psi_a: Array
    psi_b: Array
    predictions: dict[str, Array]
    losses: dict[str, Array]
    checks: dict[str, Array]
    diagnostics: dict[str, Array] = eqx.field(default_factory=dict)
    # Models whose coefficients are not one per treatment column (APOS: one per treatment
    # level) name them here.
    t_names: tuple[str, ...] | None = eqx.field(static=True, default=None)
    levels: tuple[float, ...] | None = eqx.field(static=True, default=None)


class AbstractDML(eqx.Module):
    """A double machine learning model: configuration only; `fit` returns a
    [`jaxcausal.dml.DMLResult`][].

    Subclasses have the static integer fields `n_folds` and `n_rep` (declared by each subclass,
    after its learners, so that the learners can come first in the constructor). A subclass that
    sets `supports_cluster = True` accepts clustered data: its `nuisance` then also takes
    `train`, the training masks of the cluster folds.
    """

    supports_cluster: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def learner_names(self) -> tuple[str, ...]:
        """Names of the nuisance functions (keys of `predictions` and `external_predictions`)."""

    @abc.abstractmethod
    def check_data(self, data: CausalData) -> None:
        """Raises a `ValueError` naming the problem when `data` does not suit the model."""

    def strata(self, data: CausalData) -> Array | None:
        """Labels `(n_obs,)` the drawn folds are stratified by, or `None` (computed inside the
        compiled fit)."""
        return None

    @abc.abstractmethod
    def nuisance(
        self,
        data: CausalData,
        xs: Float[Array, "k n q"],
        test: Float[Array, "n_rep n_folds n"],
        key: PRNGKeyArray,
        external: dict[str, Array],
    ) -> Nuisance:
        """Cross-fits the nuisances (inside the compiled fit) and returns the score elements.

        Models that support clustered data also take `train`, the training masks
        `(n_rep, n_cells, n)` (with two-way clustering not the complement of `test`)."""

    def sensitivity_elements(
        self, data: CausalData, nuisance: Nuisance, theta: Float[Array, "k n_rep"]
    ) -> dict[str, Array] | None:
        """The elements of the sensitivity analysis, computed inside the compiled fit from the
        cross-fitted predictions: `{"sigma2": (k, n_rep), "nu2": (k, n_rep), "psi_sigma2":
        (k, n_rep, n), "psi_nu2": (k, n_rep, n), "riesz_rep": (k, n_rep, n)}` (see
        `jaxcausal/dml/_sensitivity.py`), or `None` where the model has no sensitivity analysis.
        """
        return None

    def fit(
        self,
        data: CausalData,
        *,
        key: PRNGKeyArray,
        folds: Any = None,
        external_predictions: Mapping[str, Any] | None = None,
        throw: bool = True,
    ) -> DMLResult:
        """Estimates the causal parameter(s) by cross-fitted double machine learning.

        **Arguments:**

        - `data`: a [`jaxcausal.CausalData`][]; several treatment columns give one coefficient
          each (for treatment `j` the other treatments join the covariates).
        - `key`: a JAX PRNG key for the fold split and the learners.
        - `folds`: optional fold ids, an int array `(n_rep, n_obs)` with values in
          `[0, n_folds)`; drawn from `key` when omitted.
        - `external_predictions`: optional out-of-fold predictions used instead of fitting a
          learner: `{learner_name: array}` with arrays `(n_obs,)` or `(n_obs, n_rep)` for one
          treatment, or DoubleML's nested form `{treatment_name: {learner_name: (n_obs, n_rep)}}`.
        - `throw`: raise when an error check fails (NaN predictions, propensities at 0 or 1, a
          training fold without treated rows): a `ValueError` naming the problem, or under
          `jit`/`vmap` an `eqx.error_if`. With `throw=False` failures stay in `result.checks`
          and `result.ok` (what [`jaxcausal.dml.simulate`][] uses, so one bad replication does
          not stop a study). Warning checks (precision, convergence, overlap) give a
          `UserWarning` when the result is concrete, and otherwise stay in `result.checks`
          (see [`jaxcausal.dml.DMLResult.report`][]).

        **Returns:** a [`jaxcausal.dml.DMLResult`][].
        """
        if not isinstance(data, CausalData):
            raise TypeError(f"data must be a jaxcausal.CausalData; got {type(data).__name__}")
        n = data.y.shape[-1]
        if n < self.n_folds:
            raise ValueError(
                f"data has {n} rows but n_folds={self.n_folds}; cross-fitting needs at least one "
                "row per fold"
            )
        check_treatments_vary(data)
        self.check_data(data)
        if data.cluster is not None:
            folds = _check_cluster(self, data, folds)
        elif folds is not None:
            folds = check_folds(folds, n, self.n_folds, self.n_rep)
        external = _external(external_predictions, self.learner_names, data, self.n_rep)
        # Data checked here, eagerly, need no checks inside the compiled program (which then
        # holds no host callback, and JAX's persistent cache can store it).
        checked = is_concrete(data.y) and is_concrete(data.t) and is_concrete(data.x)
        result = _fit_compiled(self, data, folds, key, external, checked)
        # The configuration and key of the fit, for refits (sensitivity_benchmark).
        result = dataclasses.replace(result, model=self, key=key)
        if is_concrete(result.theta_rep):
            # Errors first, by priority (a fold without treated rows explains NaN predictions);
            # then the warnings.
            report(result, data, throw=throw)
            return result
        if not throw:
            return result
        ok = result.ok
        theta = eqx.error_if(
            result.theta_rep, ~ok,
            "a DML check failed (NaN predictions, propensities at 0 or 1, or a training fold "
            "without treated or untreated rows); inspect result.checks with throw=False",
        )
        return eqx.tree_at(lambda r: r.theta_rep, result, theta)


def _fit_compiled(
    model: AbstractDML, data: CausalData, folds, key, external, checked: bool = False
) -> DMLResult:
    """The compiled fit. When every learner is light (closed form or a few Newton sweeps:
    `compiles_light`) the program is compiled on a CPU with XLA's classic fusion emitters, which
    compile about 40 % faster (the run time of such fits stays within a few percent); both
    paths use LLVM's optimisation level 2 on a CPU (`jaxcausal/_compile.py`). Inside a user's
    `jit` or `vmap` the outer compilation decides."""
    learners = [leaf for leaf in jax.tree.leaves(
        model, is_leaf=lambda v: isinstance(v, AbstractLearner)) if isinstance(
        leaf, AbstractLearner)]
    light = all(learner.compiles_light for learner in learners)
    if light and jax.default_backend() == "cpu" and top_level():
        return _fit_light(model, data, folds, key, external, checked)
    return _fit_default(model, data, folds, key, external, checked)


def _fit_body(
    model: AbstractDML, data: CausalData, folds, key, external, checked: bool
) -> DMLResult:
    _TRACES[0] += 1
    k_folds, k_fit = jr.split(key)
    n = data.y.shape[-1]
    xs = covariates_per_treatment(data.x, data.t)
    cluster = None
    train = None
    if data.cluster is None:
        if folds is None:
            folds = draw_folds(k_folds, n, model.n_folds, model.n_rep,
                               stratify=model.strata(data))
        test = holdout_masks(folds, model.n_folds).astype(data.y.dtype)
    else:
        cluster = _cluster.cluster_folds(k_folds, data.cluster.T, model.n_folds, model.n_rep,
                                         folds)
        folds = cluster.cells
        test, train = (m.astype(data.y.dtype) for m in _cluster.masks(cluster))
    extra = {} if train is None else {"train": train}
    if checked:
        with trusted_inputs(targets=True):
            out = model.nuisance(data, xs, test, k_fit, external, **extra)
    else:
        out = model.nuisance(data, xs, test, k_fit, external, **extra)
    if cluster is None:
        theta, se, psi = solve_linear_score(out.psi_a, out.psi_b)
    else:
        theta, se, psi = _cluster.solve_cluster_score(out.psi_a, out.psi_b, cluster)
    sens = model.sensitivity_elements(data, out, theta)
    checks = dict(out.checks)
    for j, name in enumerate(data.t_names):
        col = data.t[:, j]
        checks[f"constant:{name}"] = jnp.max(col) > jnp.min(col)
    return DMLResult(
        theta_rep=theta,
        se_rep=se,
        psi=psi,
        psi_a=out.psi_a,
        psi_b=out.psi_b,
        predictions=out.predictions,
        losses=out.losses,
        folds=folds,
        checks=checks,
        t_names=data.t_names if out.t_names is None else out.t_names,
        diagnostics=dict(out.diagnostics),
        dtype=str(data.y.dtype),
        sensitivity_elements=None if sens is None else finalize_elements(sens),
        cluster=cluster,
        levels=out.levels,
    )


def _check_cluster(model: AbstractDML, data: CausalData, folds: Any) -> Any:
    """Host-side checks for clustered data; returns validated cluster folds (or None)."""
    if not model.supports_cluster:
        raise ValueError(
            f"data has cluster variables {data.cluster_names}, but {type(model).__name__} does "
            "not support clustered data (PLR and PLIV do)"
        )
    codes = data.cluster.T
    _cluster.check_n_clusters(codes, model.n_folds, data.cluster_names)
    if folds is None:
        return None
    return _cluster.check_cluster_folds(folds, codes, model.n_folds, model.n_rep)


def _as_krn(value: Any, name: str, k: int, n_rep: int, n: int, dtype) -> Any:
    # Reshaped on the host where possible: eager JAX operations compile on first use.
    arr = value if isinstance(value, jax.Array) else np.asarray(value, dtype=dtype)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.shape != (n, n_rep):
        raise ValueError(
            f"external_predictions[{name!r}] must have shape (n_obs,) or (n_obs, n_rep) = "
            f"({n}, {n_rep}); got {tuple(arr.shape)}"
        )
    if is_concrete(arr) and not np.isfinite(np.asarray(arr)).all():
        raise ValueError(f"external_predictions[{name!r}] contains NaN or infinite values")
    return arr.T


def _external(given, names, data: CausalData, n_rep: int) -> dict[str, Array]:
    """Normalises external predictions to `{learner: (k, n_rep, n)}`."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise TypeError(f"external_predictions must be a dict; got {type(given).__name__}")
    k, n, dtype = data.n_treatments, data.y.shape[-1], data.y.dtype
    if set(given) <= set(data.t_names) and all(isinstance(v, Mapping) for v in given.values()):
        missing = [t for t in data.t_names if t not in given]
        if missing:
            raise ValueError(f"external_predictions gives no predictions for treatments {missing}")
        per_t = [dict(given[t]) for t in data.t_names]
        if len({frozenset(p) for p in per_t}) != 1:
            raise ValueError("external_predictions must name the same learners for every treatment")
    elif k == 1:
        per_t = [dict(given)]
    else:
        raise ValueError(
            f"with {k} treatments, external_predictions must be nested by treatment name: "
            f"{{t_name: {{learner: (n_obs, n_rep)}}}} with t_name in {data.t_names}"
        )
    out = {}
    for name in per_t[0]:
        if name not in names and not (name.startswith("ml_m_") and "ml_m" in names):
            raise ValueError(
                f"external_predictions names an unknown learner {name!r}; expected some of {names}"
            )
        parts = [_as_krn(p[name], name, k, n_rep, n, dtype) for p in per_t]
        if any(isinstance(a, jax.Array) for a in parts):
            out[name] = jnp.stack([jnp.asarray(a, dtype) for a in parts])
        else:
            out[name] = jax.device_put(np.stack(parts))
    return out


_fit_default = filter_jit(_fit_body)
_fit_light = filter_jit(_fit_body, compiler_options={"xla_cpu_use_fusion_emitters": False})


def check_treatments_vary(data: CausalData) -> None:
    """Raises a `ValueError` naming a treatment column that is constant (concrete data only)."""
    if not is_concrete(data.t) or data.t.ndim != 2:
        return
    t = np.asarray(data.t)
    for j, name in enumerate(data.t_names):
        if t[:, j].min() == t[:, j].max():
            raise ValueError(
                f"treatment '{name}' is constant (every row is {t[0, j]:g}), so its effect is not "
                "identified; DML needs variation in the treatment"
            )


def check_class_sizes(data: CausalData, n_folds: int, model: str, *, error: bool) -> None:
    """For binary treatments: a class (treated or untreated) with fewer rows than folds raises a
    `ValueError` (`error=True`, as scikit-learn's `StratifiedKFold` in DoubleML's IRM does) or
    warns; concrete data only."""
    if not is_concrete(data.t) or data.t.ndim != 2:
        return
    t = np.asarray(data.t)
    for j, name in enumerate(data.t_names):
        col = t[:, j]
        if not np.isin(col, (0.0, 1.0)).all():
            continue
        for label, count in (("treated", int((col == 1).sum())),
                             ("untreated", int((col == 0).sum()))):
            if count >= n_folds:
                continue
            text = (
                f"treatment '{name}' has {count} {label} rows, fewer than n_folds={n_folds}: "
                f"some folds get no {label} row, and {model}'s nuisances are fitted on very few; "
                "use fewer folds or more data"
            )
            if error:
                raise ValueError(text)
            warnings.warn(text, UserWarning, stacklevel=4)


def check_separation(data: CausalData, model: str) -> None:
    """For binary treatments: a `UserWarning` naming each covariate that separates treated from
    untreated rows on its own (quasi-complete separation: every treated row on one side of a
    value, every untreated row on the other, some strictly). The propensity of the separated rows
    is 0 or 1, so they have no overlap, and a logistic fit without penalty diverges there.
    Concrete data only."""
    if not is_concrete(data.t) or data.t.ndim != 2:
        return
    t, x = np.asarray(data.t), np.asarray(data.x)
    for j, t_name in enumerate(data.t_names):
        d = t[:, j]
        if not np.isin(d, (0.0, 1.0)).all() or d.min() == d.max():
            continue
        treated, untreated = x[d == 1], x[d == 0]
        for c, name in enumerate(data.x_names):
            lo1, hi1 = treated[:, c].min(), treated[:, c].max()
            lo0, hi0 = untreated[:, c].min(), untreated[:, c].max()
            if hi0 <= lo1 and (hi1 > hi0 or lo0 < lo1):
                side = f"every row with {name} > {hi0:g} is treated" if hi1 > hi0 else (
                    f"every row with {name} < {lo1:g} is untreated")
            elif hi1 <= lo0 and (hi0 > hi1 or lo1 < lo0):
                side = f"every row with {name} > {hi1:g} is untreated" if hi0 > hi1 else (
                    f"every row with {name} < {lo0:g} is treated")
            else:
                continue
            warnings.warn(
                f"covariate '{name}' separates treated from untreated rows of treatment "
                f"'{t_name}' ({side}): their propensity is 0 or 1, so they have no overlap and "
                f"{model}'s estimate rests on trimming and extrapolation there; consider "
                "dropping or coarsening the covariate, or restricting the sample",
                UserWarning, stacklevel=4,
            )


def fit_learner(
    name: str,
    learner: AbstractLearner | None,
    xs: Array,
    target: Array,
    train: Array,
    test: Array,
    key: PRNGKeyArray,
    external: Mapping[str, Array],
    checks: dict,
    diagnostics: dict,
) -> Array:
    """Cross-fits the nuisance `name` (or takes its external predictions) and adds its checks:
    `finite:<name>` (error) and, from the learner's fit status, `converged:<name>` and
    `precision:<name>` (warnings). Returns the out-of-fold predictions `(k, n_rep, n)`."""
    if name in external:
        preds = external[name]
    elif learner is None:
        raise ValueError(f"{name} is None and no external predictions for it were given")
    else:
        preds, status = crossfit(learner, xs, target, train, test, key, with_status=True)
        learner_checks(name, status, checks, diagnostics)
    checks[f"finite:{name}"] = all_finite(preds)
    return preds


# The kinds of the instrument and multi-level models (IIVM, APO/APOS).
register_check(
    "z0", priority=0,
    message="a training fold has no row with instrument z = 0 ({where}); {subject} cannot be "
    "fitted there: use fewer folds or more data",
)
register_check(
    "z1", priority=0,
    message="a training fold has no row with instrument z = 1 ({where}); {subject} cannot be "
    "fitted there: use fewer folds or more data",
)
register_check(
    "level", priority=0,
    message="treatment_level {subject} does not occur in the training rows ({where}); its "
    "outcome regression cannot be fitted there: use fewer folds, or drop the level from "
    "treatment_levels",
)


def all_finite(x: Array) -> Array:
    """`(k, n_rep)` flags: whether every prediction of a treatment and repetition is finite."""
    return jnp.all(jnp.isfinite(x), axis=-1)


def broadcast_to_krn(v: Float[Array, "k n"] | Float[Array, " n"], k: int, n_rep: int) -> Array:
    if v.ndim == 1:
        v = jnp.broadcast_to(v[None], (k, v.shape[0]))
    return jnp.broadcast_to(v[:, None, :], (k, n_rep, v.shape[-1]))

