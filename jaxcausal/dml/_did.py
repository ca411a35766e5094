"""Difference-in-differences for two-period panel data."""

from __future__ import annotations

import warnings

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_binary
from .._data import CausalData
from ..learners import AbstractLearner
from ._base import AbstractDML, Nuisance, all_finite, broadcast_to_krn
from ._crossfit import crossfit, nuisance_loss
from ._did_scores import AbstractDIDScore, Observational, sensitivity_from_riesz
from ._plr import _check_common


def check_did_config(model, what: str) -> None:
    """Checks shared by the DID models' `__check_init__`."""
    for name in ("ml_g", "ml_m"):
        value = getattr(model, name)
        if value is not None and not isinstance(value, AbstractLearner):
            raise TypeError(f"{name} must be a jaxcausal learner or None; got {value!r}")
    if not isinstance(model.score, AbstractDIDScore):
        raise TypeError(
            f"score must be jc.dml.Observational() or jc.dml.Experimental(); got {model.score!r} "
            "(scores are objects, not strings)"
        )
    if not isinstance(model.trimming, float | int) or not 0.0 <= model.trimming < 0.5:
        raise ValueError(f"trimming must be in [0, 0.5), got {model.trimming!r}")
    if not isinstance(model.in_sample_normalization, bool):
        raise TypeError(
            f"in_sample_normalization must be True or False, got {model.in_sample_normalization!r}"
        )
    if model.ml_m is not None and not model.score.needs_m:
        warnings.warn(
            f"ml_m is ignored by {what} with score Experimental(): the propensity is the treated "
            "share",
            UserWarning,
            stacklevel=3,
        )
    _check_common(model)


def check_did_data(data: CausalData, what: str) -> None:
    if data.z is not None:
        raise ValueError(f"data has instruments z; {what} takes no instruments")
    if data.n_treatments != 1:
        raise ValueError(
            f"{what} needs exactly one binary treatment column t; got {data.n_treatments} "
            f"({', '.join(data.t_names)})"
        )
    check_binary(data.t, "t", f"for {what} (treatment {data.t_names[0]})")


class DID(AbstractDML):
    r"""Difference-in-differences for two-period panel data: the average treatment effect on the
    treated $\theta = E[Y_1(1) - Y_1(0) \mid D = 1]$ under conditional parallel trends, with the
    doubly robust score of Sant'Anna and Zhao (2020), as DoubleML's `DoubleMLDID`.

    `data.y` is the outcome difference $Y_1 - Y_0$ of each unit, `data.t` the binary treatment
    group and `data.x` the pre-treatment covariates. The outcome regressions $g_0(X)$,
    $g_1(X)$ of the difference among the untreated and the treated (learner `ml_g`) and, for
    [`jaxcausal.dml.Observational`][], the propensity $m(X)$ (`ml_m`, clipped to
    `[trimming, 1 - trimming]`) are cross-fitted in one compiled call. External prediction names
    are `ml_g0`, `ml_g1` and `ml_m`.

    **Arguments:**

    - `ml_g`: outcome learner (regression).
    - `ml_m`: propensity learner (a classifier); not used by `Experimental()`.
    - `score`: `jc.dml.Observational()` (default) or `jc.dml.Experimental()`.
    - `trimming`: propensities are clipped to `[trimming, 1 - trimming]` (DoubleML's
      `clipping_threshold`, default 0.01).
    - `in_sample_normalization`: normalise the weights to mean one in the sample (DoubleML's
      default `True`; Sant'Anna and Zhao's Hajek-type weights). `False` uses the plain inverse
      probability weights with $p = \overline{D}$.
    - `n_folds`, `n_rep`: folds and repetitions of cross-fitting.

    Quirks kept from DoubleML 0.11: $p$ is the treated share of the whole sample (not of the
    training folds); with `Experimental()` the score uses both $g_0$ and $g_1$. DoubleML draws
    folds stratified by the treatment; `fit` draws plain random folds unless `folds` are given.

    ```python
    data = jc.datasets.make_did_SZ2020(n_obs=1000, key=jr.key(0))
    res = jc.dml.DID(jc.learners.MLP(), jc.learners.MLP(classifier=True)).fit(data, key=jr.key(1))
    res.summary()
    ```

    *Reference:* Sant'Anna and Zhao (2020), Doubly robust difference-in-differences estimators,
    Journal of Econometrics 219(1), 101-122.
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None = None
    score: AbstractDIDScore = Observational()
    trimming: float = eqx.field(static=True, default=0.01)
    in_sample_normalization: bool = eqx.field(static=True, default=True)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_did_config(self, "DID")

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_g0", "ml_g1", "ml_m") if self.score.needs_m else ("ml_g0", "ml_g1")

    def check_data(self, data: CausalData) -> None:
        check_did_data(data, "DID")
        if data.time is not None:
            raise ValueError(
                "data has a period indicator time; DID takes panel data with the outcome "
                "difference as y. Use jc.dml.DIDCS for repeated cross-sections"
            )

    def nuisance(self, data, xs, test, key, external):
        n_rep = test.shape[0]
        d = check_binary(data.t.T, "t", "for DID")
        train = (1.0 - test)[None]
        y_b = broadcast_to_krn(data.y, 1, n_rep)
        d_b = broadcast_to_krn(d, 1, n_rep)
        groups = {"ml_g0": 1.0 - d, "ml_g1": d}
        preds = fit_outcome_models(self.ml_g, xs, y_b, train, test, groups, key, external,
                                   stacked=False)
        checks = {f"finite:{name}": all_finite(p) for name, p in preds.items()}
        losses = {
            name: nuisance_loss(y_b, preds[name], rows, False) for name, rows in groups.items()
        }
        if "ml_g0" not in external:
            checks["untreated:ml_g"] = jnp.sum(train * (1.0 - d)[:, None, None], axis=-1) > 0
        if "ml_g1" not in external:
            checks["treated:ml_g"] = jnp.sum(train * d[:, None, None], axis=-1) > 0
        m_hat = None
        if self.score.needs_m:
            preds["ml_m"] = fit_propensity(self.ml_m, xs, d_b, train, test, key, external)
            checks["finite:ml_m"] = all_finite(preds["ml_m"])
            m_classifier = self.ml_m is not None and self.ml_m.is_classifier
            losses["ml_m"] = nuisance_loss(d_b, preds["ml_m"], None, m_classifier)
            m_hat = jnp.clip(preds["ml_m"], self.trimming, 1.0 - self.trimming)
            checks["propensity:ml_m"] = jnp.all((m_hat > 0.0) & (m_hat < 1.0), axis=-1)
        psi_a, psi_b = self.score.panel(
            y_b, d_b, preds["ml_g0"], preds["ml_g1"], m_hat, self.in_sample_normalization
        )
        return Nuisance(psi_a=psi_a, psi_b=psi_b, predictions=preds, losses=losses, checks=checks)

    def sensitivity_elements(self, data, nuisance, theta):
        """DoubleML's sensitivity elements of the DID score
        (`DoubleMLDID._sensitivity_element_est`): $\\sigma^2$ from the outcome residual
        $Y - (D g_1 + (1 - D) g_0)$ and $\\nu^2$ from the Riesz representer of the chosen score;
        each `(1, n_rep)` or `(1, n_rep, n_obs)`."""
        preds = nuisance.predictions
        n_rep = preds["ml_g0"].shape[1]
        y_b = broadcast_to_krn(data.y, 1, n_rep)
        d_b = broadcast_to_krn(data.t.T, 1, n_rep)
        m_hat = None
        if self.score.needs_m:
            m_hat = jnp.clip(preds["ml_m"], self.trimming, 1.0 - self.trimming)
        g_hat = d_b * preds["ml_g1"] + (1.0 - d_b) * preds["ml_g0"]
        alpha, m_alpha = self.score.panel_riesz(d_b, m_hat, self.in_sample_normalization)
        return sensitivity_from_riesz(y_b, g_hat, alpha, m_alpha)


def fit_outcome_models(learner, xs, y_b, train, test, groups, key, external, *,
                       stacked: bool = True):
    """Out-of-fold outcome regressions, one per group of rows (`{name: 0/1 rows (k, n) or (k,
    n_rep, n)}`).

    With `stacked`, the groups a learner must fit are stacked as extra repetitions (the fold
    masks times each group's rows), so that all of them are one batched fit (one trace, one
    compiled `vmap`) that shares the covariate matrix: right for many groups (DIDMulti's
    group-time cells). Without, each group is one cross-fit with `key` (common random numbers
    with the propensity): for two or four groups beside a propensity of the same batch shape
    that measured faster to compile (DID with MLP nuisances, n = 1000: first call 6.1 s ->
    4.9 s, warm 1.46 s -> 1.33 s; DIDCS 7.7 s -> 6.7 s), presumably because XLA reuses the
    code of equal-shaped kernels.
    """
    todo = [name for name in groups if name not in external]
    preds = {name: external[name] for name in groups if name in external}
    if todo:
        if learner is None:
            raise ValueError(f"ml_g is None and no external predictions for {todo} were given")
        n_rep = y_b.shape[1]
        masks = []
        for name in todo:
            rows = groups[name]
            rows = rows[:, None, :] if rows.ndim == 2 else rows
            masks.append(train * rows[:, :, None, :])
        if not stacked:
            for name, mask in zip(todo, masks, strict=True):
                preds[name] = crossfit(learner, xs, y_b, mask, test, key)
        else:
            stacked = crossfit_stacked(learner, xs, [y_b] * len(todo), masks, test, key)
            for i, name in enumerate(todo):
                preds[name] = stacked[:, i * n_rep:(i + 1) * n_rep]
    return {name: preds[name] for name in groups}


def crossfit_stacked(learner, xs, targets, masks, test, key):
    """`crossfit` of several (target `(k, n_rep, n)`, training mask `(k, n_rep, n_folds, n)`)
    pairs of one learner as one fit, stacked along the repetition axis; returns `(k, len *
    n_rep, n)`."""
    y = jnp.concatenate(targets, axis=1)
    train = jnp.concatenate(masks, axis=1)
    return crossfit(learner, xs, y, train, jnp.tile(test, (len(targets), 1, 1)), key)


def fit_propensity(learner, xs, d_b, train, test, key, external):
    if "ml_m" in external:
        return external["ml_m"]
    if learner is None:
        raise ValueError("ml_m is None and no external predictions for ml_m were given")
    return crossfit(learner, xs, d_b, train, test, key)
