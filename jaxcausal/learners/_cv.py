"""Model selection and stacking by cross-validation: every family of candidates in one `vmap`."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit
from ._base import AbstractLearner, AbstractPredictor, prepare_xyw
from ._cv_grid import check_candidates, describe, group_families
from ._stacking import log_loss_weights, squared_error_weights

_TRACES = [0]
# Fitted models batched by `filter_vmap`: arrays carry the member axis, other leaves (an MLP's
# dropout rate) are shared.
_BATCHED = eqx.if_array(0)


def trace_count() -> int:
    """How often the compiled fit of `CV`/`Stacked` has been traced (for no-recompilation tests)."""
    return _TRACES[0]


class CVPredictor(AbstractPredictor):
    r"""A fitted [`jaxcausal.learners.CV`][] or [`jaxcausal.learners.Stacked`][] learner.

    Predicts $\sum_c a_c \hat f_c(x)$ with the candidate weights $a$ (`weights`: one-hot at the
    winner for `CV`, non-negative and summing to one for `Stacked`).

    - `weights`: `(c,)` weight of each candidate.
    - `losses`: `(c,)` out-of-fold loss of each candidate on the inner folds (mean squared error,
      or log-loss for classifiers), pooled over the rows with positive weight.
    - `fold_losses`: `(n_folds, c)` the same loss per inner fold.
    - `combined_loss`: the out-of-fold loss of the weighted combination (the winner's loss for
      `CV`; for `Stacked` optimistic, as the weights were fitted to the same predictions).
    - `names`: a description of each candidate.
    - `models`, `mix`: the fitted models per family (leading member axis) and their weights.

    [`jaxcausal.learners.CVPredictor.summary`][] tabulates `losses` and `weights`.
    """

    models: tuple[AbstractPredictor, ...]
    mix: tuple[Array, ...]
    weights: Float[Array, " c"]
    losses: Float[Array, " c"]
    fold_losses: Float[Array, "k c"]
    combined_loss: Float[Array, ""]
    names: tuple[str, ...] = eqx.field(static=True)

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        out = 0.0
        for model, mix in zip(self.models, self.mix):
            preds = eqx.filter_vmap(_predict, in_axes=(_BATCHED, None))(model, x)
            # A candidate with weight 0 may have diverged: it must not turn the sum into NaN.
            out = out + jnp.sum(jnp.where(mix[:, None] > 0, mix[:, None] * preds, 0.0), axis=0)
        return out

    @property
    def best(self) -> Int[Array, ...]:
        """Index of the candidate with the largest weight (the winner of `CV`)."""
        return jnp.argmax(self.weights, axis=-1)

    def summary(self):
        """One row per candidate: out-of-fold `loss`, its `weight` and whether it is `best`.

        For a predictor batched by `vmap` (one per cross-fitting fold, say), `loss` and `weight`
        are means over the batch and `best` becomes `best_share`, the share of fits in which the
        candidate had the largest weight.

        **Returns:** a `pandas.DataFrame` indexed by the candidates' descriptions.
        """
        import pandas as pd  # only for the table: importing the learners stays cheap

        losses = np.asarray(self.losses).reshape(-1, len(self.names))
        weights = np.asarray(self.weights).reshape(-1, len(self.names))
        best = np.argmax(weights, axis=1)
        table = pd.DataFrame(
            {"loss": losses.mean(axis=0), "weight": weights.mean(axis=0)},
            index=pd.Index(self.names, name="candidate"),
        )
        shares = np.bincount(best, minlength=len(self.names)) / len(best)
        if len(best) == 1:
            table["best"] = shares.astype(bool)
        else:
            table["best_share"] = shares
        return table


def _map_arrays(fn, tree):
    return jax.tree.map(lambda t: fn(t) if eqx.is_array(t) else t, tree)


def _predict(model: AbstractPredictor, x: Array) -> Array:
    return model(x)


def _fit_member(dynamic, static, x, y, w, key):
    return eqx.combine(dynamic, static).fit(x, y, key=key, weights=w)


def _pointwise_loss(pred: Array, y: Array, classifier: bool) -> Array:
    if classifier:
        eps = jnp.finfo(pred.dtype).eps
        p = jnp.clip(pred, eps, 1.0 - eps)
        return -(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p))
    return (pred - y) ** 2


def _weighted_mean(values: Array, w: Array) -> Array:
    """Mean over the last axis with weights `w`; rows with weight 0 are left out even where the
    value is infinite."""
    wb = jnp.broadcast_to(w, values.shape)
    return jnp.sum(jnp.where(wb > 0, values * wb, 0.0), axis=-1) / jnp.sum(w)


def draw_inner_folds(
    key: PRNGKeyArray, w: Float[Array, " n"], y: Float[Array, " n"], n_folds: int, stratify: bool
) -> Int[Array, " n"]:
    """Inner fold ids `0..n_folds-1` for the rows with positive weight (balanced sizes; for a
    classifier balanced within each class), `-1` for rows with weight 0."""
    n = w.shape[0]
    u = jr.uniform(key, (n,), dtype=w.dtype)
    if stratify:  # class 0 first, then class 1: cyclic ids spread each class over the folds
        u = u + 2.0 * y
    u = jnp.where(w > 0, u, jnp.inf)
    rank = jnp.zeros((n,), jnp.int32).at[jnp.argsort(u)].set(jnp.arange(n, dtype=jnp.int32))
    return jnp.where(w > 0, rank % n_folds, -1)


class AbstractCrossValidated(AbstractLearner):
    """Shared fit of [`jaxcausal.learners.CV`][] and [`jaxcausal.learners.Stacked`][]: they differ
    only in how candidate weights follow from the out-of-fold predictions."""

    candidates: eqx.AbstractVar[tuple[AbstractLearner, ...]]
    n_folds: eqx.AbstractVar[int]
    refit: eqx.AbstractVar[bool]
    names: eqx.AbstractVar[tuple[str, ...]]
    selects_one: ClassVar[bool]

    @abc.abstractmethod
    def candidate_weights(
        self, oof: Float[Array, "c n"], y: Float[Array, " n"], w: Float[Array, " n"],
        losses: Float[Array, " c"],
    ) -> Float[Array, " c"]:
        """Weights of the candidates from their out-of-fold predictions and losses."""

    @property
    def is_classifier(self) -> bool:
        return self.candidates[0].is_classifier

    def fit(
        self,
        x: Float[Array, "n p"],
        y: Float[Array, " n"],
        *,
        key: PRNGKeyArray,
        weights: Float[Array, " n"] | None = None,
    ) -> CVPredictor:
        """Cross-validates the candidates on inner folds of the rows with positive weight."""
        x, y, w = prepare_xyw(
            x, y, weights, binary=self.is_classifier, who=f"{type(self).__name__}(classifier)"
        )
        if is_concrete(w) and int(np.sum(np.asarray(w) > 0)) < self.n_folds:
            raise ValueError(
                f"{type(self).__name__} needs at least n_folds={self.n_folds} rows with positive "
                f"weight; got {int(np.sum(np.asarray(w) > 0))}"
            )
        return _fit_cv(self, x, y, w, key)


def _family_fits(learner: AbstractCrossValidated, family, x, y, train_w, keys):
    """Fits the candidates of one family on every mask: one `vmap` over members and masks."""
    members = [learner.candidates[i] for i in family]
    dynamic = jax.tree.map(lambda *a: jnp.stack(a), *[eqx.filter(c, eqx.is_array) for c in members])
    static = eqx.filter(members[0], eqx.is_array, inverse=True)
    over_masks = eqx.filter_vmap(_fit_member, in_axes=(None, None, None, None, 0, 0))
    # `axis_size`: a family may have no array fields at all (`LassoCV()` with its default grid).
    over_members = eqx.filter_vmap(
        over_masks, in_axes=(0, None, None, None, None, None), axis_size=len(members)
    )
    return over_members(dynamic, static, x, y, train_w, keys)


@filter_jit
def _fit_cv(learner: AbstractCrossValidated, x, y, w, key):
    _TRACES[0] += 1
    classifier = learner.is_classifier
    k = learner.n_folds
    w = eqx.error_if(
        w, jnp.sum(w > 0) < k, f"{type(learner).__name__} needs at least n_folds={k} rows with "
        "positive weight",
    )
    folds = draw_inner_folds(jr.fold_in(key, 1), w, y, k, classifier)
    in_fold = folds[None, :] == jnp.arange(k)[:, None]
    train_w = jnp.where(in_fold, 0.0, w[None, :])
    val_w = jnp.where(in_fold, w[None, :], 0.0)
    # Every candidate sees the same inner keys (common random numbers): differences in their
    # losses come from the settings, not from initialisation or minibatch luck.
    keys = jr.split(jr.fold_in(key, 2), k)
    if learner.refit:
        # The refit on all weighted rows joins the inner fits as one more mask of the same vmap
        # (one compiled training program per family), with the learner's own key.
        train_w = jnp.concatenate([train_w, w[None, :]])
        keys = jnp.concatenate([keys, key[None]])
    families = group_families(learner.candidates)
    oof = [None] * len(learner.candidates)
    fitted = []
    for family in families:
        models = _family_fits(learner, family, x, y, train_w, keys)
        inner = _map_arrays(lambda t: t[:, :k], models)
        per_fold = eqx.filter_vmap(_predict, in_axes=(_BATCHED, None))
        preds = eqx.filter_vmap(per_fold, in_axes=(_BATCHED, None))(inner, x)
        for j, i in enumerate(family):
            oof[i] = jnp.sum(jnp.where(in_fold, preds[j], 0.0), axis=0)
        fitted.append(models)
    oof = jnp.stack(oof)
    point = _pointwise_loss(oof, y[None, :], classifier)
    point = jnp.where(jnp.isfinite(point), point, jnp.inf)
    losses = _weighted_mean(point, w)
    fold_losses = jnp.stack([_weighted_mean(point, vw) for vw in val_w])
    oof = jnp.where(jnp.isfinite(oof), oof, 0.0)
    a = learner.candidate_weights(oof, y, w, losses)
    combined = _pointwise_loss(a @ oof, y, classifier)
    combined_loss = _weighted_mean(combined, w)
    models_out, mix_out = [], []
    for family, models in zip(families, fitted):
        idx = jnp.asarray(family)
        if not learner.refit:
            # The inner-fold models, averaged: member-major, then fold.
            models_out.append(_map_arrays(lambda t: t.reshape(-1, *t.shape[2:]), models))
            mix_out.append(jnp.repeat(a[idx] / k, k))
        elif learner.selects_one:
            # Only the family's best member can win; it is picked by index, so the choice may
            # differ between vmapped cross-fitting folds.
            b = jnp.argmin(losses[idx])
            models_out.append(_map_arrays(lambda t: t[b, k][None], models))
            mix_out.append(a[idx][b][None])
        else:
            models_out.append(_map_arrays(lambda t: t[:, k], models))
            mix_out.append(a[idx])
    return CVPredictor(
        models=tuple(models_out),
        mix=tuple(mix_out),
        weights=a,
        losses=losses,
        fold_losses=fold_losses,
        combined_loss=combined_loss,
        names=learner.names,
    )


def _check_folds(n_folds) -> None:
    if not isinstance(n_folds, int) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer of at least 2, got {n_folds!r}")


class CV(AbstractCrossValidated):
    r"""Picks the candidate learner with the smallest out-of-fold loss.

    Inside `fit(x, y, *, key, weights)` the rows with positive weight (a cross-fitting fold's
    training rows) are split into `n_folds` inner folds drawn from the key (stratified by class
    for classifiers). Every candidate is fitted on every inner fold, the candidates that differ
    only in array fields (learning rate, weight decay, penalty) as one family in **one vmapped
    call**; each is scored by its pooled out-of-fold loss

    $$L_c = \frac{\sum_i w_i\, \ell(y_i, \hat f_c^{(-k(i))}(x_i))}{\sum_i w_i},$$

    with $\ell$ the squared error (log-loss for classifiers) and $\hat f_c^{(-k)}$ the fit
    without inner fold $k$. The winner $\arg\min_c L_c$ is refitted on all weighted rows
    (`refit=True`), or its inner-fold models are averaged (`refit=False`, no extra fit). Rows with
    weight 0 play no part, so as a nuisance learner of [`jaxcausal.dml.PLR`][] the selection
    happens inside each cross-fitting fold and the DML guarantees hold; the whole procedure is
    `vmap`pable over fold masks.

    **Arguments:**

    - `candidates`: the learners to choose from (default
      [`jaxcausal.learners.default_candidates`][]: least squares, a cross-validated Lasso and
      four small MLPs; for classifiers a logistic regression and four MLP classifiers).
      All must be regressors or all classifiers.
    - `classifier`: with `candidates=None`, use the classifier grid.
    - `n_folds`: inner folds, at least 2.
    - `refit`: refit the winner on all weighted rows (`True`) or average its inner-fold models.

    **Returns** (from `fit`): a [`jaxcausal.learners.CVPredictor`][] recording every candidate's
    out-of-fold loss and which one won (`summary()` tabulates them).

    ```python
    ml = jc.learners.CV()                               # default grid
    est = jc.dml.PLR(ml, ml)
    jc.learners.CV().fit(x, y, key=jr.key(0)).summary()   # which candidate wins on these data
    ```
    """

    candidates: tuple[AbstractLearner, ...]
    n_folds: int = eqx.field(static=True)
    refit: bool = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)
    selects_one: ClassVar[bool] = True

    def __init__(
        self,
        candidates: Sequence[AbstractLearner] | None = None,
        *,
        classifier: bool | None = None,
        n_folds: int = 3,
        refit: bool = True,
    ):
        _check_folds(n_folds)
        self.candidates = check_candidates(candidates, classifier, "CV")
        self.n_folds = n_folds
        self.refit = bool(refit)
        self.names = tuple(describe(c) for c in self.candidates)

    def candidate_weights(self, oof, y, w, losses):
        return jax.nn.one_hot(jnp.argmin(losses), losses.shape[0], dtype=oof.dtype)


class Stacked(AbstractCrossValidated):
    r"""A convex combination of candidate learners fitted to their out-of-fold predictions.

    The candidates are cross-validated as in [`jaxcausal.learners.CV`][]; then the weights
    $a \ge 0$, $\sum_c a_c = 1$, minimise the out-of-fold loss of the combination: the squared
    error $\sum_i w_i (y_i - \sum_c a_c \hat f_c^{(-k(i))}(x_i))^2$ for regressions (a
    quadratic programme solved by projected gradient), the log-loss of the mixed probabilities for
    classifiers (by the EM iteration for mixture weights). This is stacking (Wolpert 1992;
    Breiman 1996) with a simplex constraint, the "super learner" of van der Laan, Polley and
    Hubbard (2007). All candidates are refitted on the weighted rows (`refit=True`), or their
    inner-fold models are averaged (`refit=False`).

    **Arguments:** as for [`jaxcausal.learners.CV`][], plus `max_iter`, the iterations of the
    weight solver.

    **Returns** (from `fit`): a [`jaxcausal.learners.CVPredictor`][] whose `weights` are the
    stacking weights.
    """

    candidates: tuple[AbstractLearner, ...]
    n_folds: int = eqx.field(static=True)
    refit: bool = eqx.field(static=True)
    max_iter: int = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)
    selects_one: ClassVar[bool] = False

    def __init__(
        self,
        candidates: Sequence[AbstractLearner] | None = None,
        *,
        classifier: bool | None = None,
        n_folds: int = 3,
        refit: bool = True,
        max_iter: int = 500,
    ):
        _check_folds(n_folds)
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
        self.candidates = check_candidates(candidates, classifier, "Stacked")
        self.n_folds = n_folds
        self.refit = bool(refit)
        self.max_iter = max_iter
        self.names = tuple(describe(c) for c in self.candidates)

    def candidate_weights(self, oof, y, w, losses):
        valid = jnp.isfinite(losses)
        solve = log_loss_weights if self.is_classifier else squared_error_weights
        return solve(oof, y, w, valid, self.max_iter)
