"""The fitting procedure shared by every DML model: folds, one compiled cross-fit, the DML2
solution, and checks that name what went wrong."""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import is_concrete
from .._data import CausalData
from . import _cluster
from ._crossfit import (
    check_folds,
    covariates_per_treatment,
    draw_folds,
    holdout_masks,
)
from ._inference import solve_linear_score
from ._result import DMLResult
from ._sensitivity import finalize_elements

_TRACES = [0]
_PRIORITY = {"treated": 0, "untreated": 0, "z0": 0, "z1": 0, "level": 0, "finite": 1,
             "propensity": 2}


def trace_count() -> int:
    """How often the compiled DML fit has been traced (for no-recompilation tests)."""
    return _TRACES[0]


class Nuisance(eqx.Module):
    """What a model's nuisance step hands to the estimator."""

    psi_a: Array
    psi_b: Array
    predictions: dict[str, Array]
    losses: dict[str, Array]
    checks: dict[str, Array]
    # Models whose coefficients are not one per treatment column (APOS: one per treatment
    # level) name them here.
    t_names: tuple[str, ...] | None = eqx.field(static=True, default=None)
    levels: tuple[float, ...] | None = eqx.field(static=True, default=None)


class AbstractDML(eqx.Module):
    """A double machine learning model: configuration only; `fit` returns a
    [`jaxcausal.dml.DMLResult`][].

    Subclasses have the static integer fields `n_folds` and `n_rep` (declared by each subclass,
    after its learners, so that the learners can come first in the constructor).
    """

    @property
    @abc.abstractmethod
    def learner_names(self) -> tuple[str, ...]:
        """Names of the nuisance functions (keys of `predictions` and `external_predictions`)."""

    @abc.abstractmethod
    def check_data(self, data: CausalData) -> None:
        """Raises a `ValueError` naming the problem when `data` does not suit the model."""

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
        - `throw`: raise when a check fails (NaN predictions, propensities at 0 or 1, a training
          fold without treated rows): a `ValueError` naming the problem, or under `jit`/`vmap`
          an `eqx.error_if`. With `throw=False` failures stay in `result.checks` and
          `result.ok` (what [`jaxcausal.dml.simulate`][] uses, so one bad replication does not
          stop a study).

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
        self.check_data(data)
        if data.cluster is not None:
            folds = _check_cluster(self, data, folds)
        elif folds is not None:
            folds = check_folds(folds, n, self.n_folds, self.n_rep)
        external = _external(external_predictions, self.learner_names, data, self.n_rep)
        result = _fit_compiled(self, data, folds, key, external)
        # The configuration and key of the fit, for refits (sensitivity_benchmark).
        result = dataclasses.replace(result, model=self, key=key)
        if not throw:
            return result
        if is_concrete(result.theta_rep):
            # A fold without treated rows explains NaN predictions, so it is reported first.
            for name in sorted(result.checks, key=lambda c: (_PRIORITY.get(c.split(":")[0], 3), c)):
                value = np.asarray(result.checks[name])
                if not value.all():
                    raise ValueError(_message(name, value, result.t_names))
            return result
        ok = result.ok
        theta = eqx.error_if(
            result.theta_rep, ~ok,
            "a DML check failed (NaN predictions, propensities at 0 or 1, or a training fold "
            "without treated or untreated rows); inspect result.checks with throw=False",
        )
        return eqx.tree_at(lambda r: r.theta_rep, result, theta)


@eqx.filter_jit
def _fit_compiled(model: AbstractDML, data: CausalData, folds, key, external) -> DMLResult:
    _TRACES[0] += 1
    k_folds, k_fit = jr.split(key)
    n = data.y.shape[-1]
    xs = covariates_per_treatment(data.x, data.t)
    cluster = None
    if data.cluster is None:
        if folds is None:
            folds = draw_folds(k_folds, n, model.n_folds, model.n_rep)
        test = holdout_masks(folds, model.n_folds).astype(data.y.dtype)
        out = model.nuisance(data, xs, test, k_fit, external)
        theta, se, psi = solve_linear_score(out.psi_a, out.psi_b)
    else:
        cluster = _cluster.cluster_folds(k_folds, data.cluster.T, model.n_folds, model.n_rep,
                                         folds)
        folds = cluster.cells
        test, train = (m.astype(data.y.dtype) for m in _cluster.masks(cluster))
        out = model.nuisance(data, xs, test, k_fit, external, train=train)
        theta, se, psi = _cluster.solve_cluster_score(out.psi_a, out.psi_b, cluster)
    sens = model.sensitivity_elements(data, out, theta)
    return DMLResult(
        theta_rep=theta,
        se_rep=se,
        psi=psi,
        psi_a=out.psi_a,
        psi_b=out.psi_b,
        predictions=out.predictions,
        losses=out.losses,
        folds=folds,
        checks=out.checks,
        t_names=data.t_names if out.t_names is None else out.t_names,
        sensitivity_elements=None if sens is None else finalize_elements(sens),
        cluster=cluster,
        levels=out.levels,
    )


def _check_cluster(model: AbstractDML, data: CausalData, folds: Any) -> Any:
    """Host-side checks for clustered data; returns validated cluster folds (or None)."""
    if "train" not in inspect.signature(model.nuisance).parameters:
        raise ValueError(
            f"data has cluster variables {data.cluster_names}, but {type(model).__name__} does "
            "not support clustered data (PLR and PLIV do)"
        )
    codes = data.cluster.T
    _cluster.check_n_clusters(codes, model.n_folds, data.cluster_names)
    if folds is None:
        return None
    return _cluster.check_cluster_folds(folds, codes, model.n_folds, model.n_rep)


def _as_krn(value: Any, name: str, k: int, n_rep: int, n: int, dtype) -> Array:
    arr = jnp.asarray(value, dtype=dtype)
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
        out[name] = jnp.stack(
            [_as_krn(p[name], name, k, n_rep, n, dtype) for p in per_t]
        )
    return out


def _message(name: str, value: np.ndarray, t_names: tuple[str, ...]) -> str:
    kind, _, learner = name.partition(":")
    where = np.argwhere(~value)[0] if value.ndim else np.array([], int)
    treatment = f"treatment '{t_names[where[0]]}'" if where.size else "the treatment"
    rep = f", repetition {where[1]}" if where.size > 1 else ""
    if kind == "finite":
        return (
            f"the learner {learner} returned NaN or infinite out-of-fold predictions ({treatment}"
            f"{rep}); check its settings (e.g. the learning rate) and the data"
        )
    if kind == "propensity":
        return (
            f"propensity scores from {learner} are 0 or 1 after trimming ({treatment}{rep}); the "
            "score divides by m and 1 - m: set trimming > 0 or regularise the classifier"
        )
    if kind in ("treated", "untreated"):
        fold = f", fold {where[2]}" if where.size > 2 else ""
        return (
            f"a training fold has no {kind} unit ({treatment}{rep}{fold}); {learner} cannot be "
            "fitted there: use fewer folds or more data"
        )
    if kind in ("z0", "z1"):
        fold = f", fold {where[2]}" if where.size > 2 else ""
        return (
            f"a training fold has no row with instrument z = {kind[1]} ({treatment}{rep}{fold}); "
            f"{learner} cannot be fitted there: use fewer folds or more data"
        )
    if kind == "level":
        return (
            f"treatment_level {learner} does not occur in the training rows of repetition "
            f"{where[1]}, fold {where[2]}; its outcome regression cannot be fitted there: use "
            "fewer folds, or drop the level from treatment_levels"
        )
    return f"check {name} failed"


def all_finite(x: Array) -> Array:
    """`(k, n_rep)` flags: whether every prediction of a treatment and repetition is finite."""
    return jnp.all(jnp.isfinite(x), axis=-1)


def broadcast_to_krn(v: Float[Array, "k n"] | Float[Array, " n"], k: int, n_rep: int) -> Array:
    if v.ndim == 1:
        v = jnp.broadcast_to(v[None], (k, v.shape[0]))
    return jnp.broadcast_to(v[:, None, :], (k, n_rep, v.shape[-1]))

