r"""Average potential outcomes of a discrete treatment (DoubleML's `DoubleMLAPO` and
`DoubleMLAPOS`) and their causal contrasts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete
from .._data import CausalData
from ..learners import AbstractLearner
from ._base import AbstractDML, Nuisance, all_finite, broadcast_to_krn
from ._crossfit import crossfit, nuisance_loss
from ._irm import ipw_elements, normalize_ipw
from ._plr import _check_common
from ._result import DMLResult


def _levels(value: Any, name: str) -> tuple[float, ...]:
    values = [value] if np.ndim(value) == 0 else list(np.asarray(value).ravel())
    if not values:
        raise ValueError(f"{name} must name at least one treatment level")
    out = tuple(float(v) for v in values)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has duplicate levels: {out}")
    return out


def _label(level: float) -> str:
    return f"{level:g}"


class _APOBase(AbstractDML):
    """Shared fields, checks and the cross-fit of every requested level in one call."""

    ml_g: eqx.AbstractVar[AbstractLearner | None]
    ml_m: eqx.AbstractVar[AbstractLearner | None]
    trimming: eqx.AbstractVar[float]
    normalize_ipw: eqx.AbstractVar[bool]

    @property
    def learner_names(self) -> tuple[str, ...]:
        return ("ml_g_d_lvl0", "ml_g_d_lvl1", "ml_m")

    def _check_fields(self):
        for name in ("ml_g", "ml_m"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, AbstractLearner):
                raise TypeError(f"{name} must be a jaxcausal learner or None; got {value!r}")
        if not 0.0 <= self.trimming < 0.5:
            raise ValueError(f"trimming must be in [0, 0.5), got {self.trimming}")
        _check_common(self)

    def _check_levels(self, data: CausalData, levels: tuple[float, ...], arg: str) -> None:
        if data.z is not None:
            raise ValueError("data has instruments z; APO/APOS take no instruments")
        if data.n_treatments != 1:
            raise ValueError(
                f"APO/APOS need one discrete treatment column; data has {data.t_names}"
            )
        if is_concrete(data.t):
            seen = np.unique(np.asarray(data.t[:, 0]))
            missing = [lvl for lvl in levels if lvl not in seen]
            if missing:
                shown = ", ".join(f"{v:g}" for v in seen[:10])
                raise ValueError(
                    f"{arg} {', '.join(_label(m) for m in missing)} does not occur in the "
                    f"treatment t ('{data.t_names[0]}' takes the values {shown})"
                )

    def _crossfit_levels(self, data, levels, test, key, external, named: bool = False):
        n_lvl, n_rep = len(levels), test.shape[0]
        d = data.t[:, 0]
        treated = (d[None, :] == jnp.asarray(levels, d.dtype)[:, None]).astype(d.dtype)
        train = jnp.broadcast_to(1.0 - test[None], (n_lvl, *test.shape))
        tr = treated[:, None, None, :]
        x = jnp.broadcast_to(data.x[None], (n_lvl, *data.x.shape))
        # DoubleML fits the regression on the other levels on (D, X): the level enters as a
        # covariate there (its predictions only feed the sensitivity analysis).
        dx = jnp.concatenate([jnp.broadcast_to(d[None, :, None], (n_lvl, d.shape[0], 1)), x], -1)
        y_b = broadcast_to_krn(data.y, n_lvl, n_rep)
        t_b = jnp.broadcast_to(treated[:, None], y_b.shape)

        def get(name, learner, xs, target, weights):
            if name in external:
                return external[name]
            if learner is None:
                raise ValueError(f"{name[:4]} is None and no external predictions for {name}")
            return crossfit(learner, xs, target, weights, test, key)

        preds = {
            "ml_g_d_lvl0": get("ml_g_d_lvl0", self.ml_g, dx, y_b, train * (1.0 - tr)),
            "ml_g_d_lvl1": get("ml_g_d_lvl1", self.ml_g, x, y_b, train * tr),
            "ml_m": get("ml_m", self.ml_m, x, t_b, train),
        }
        g_cls = self.ml_g is not None and self.ml_g.is_classifier
        m_cls = self.ml_m is not None and self.ml_m.is_classifier
        losses = {
            "ml_g_d_lvl0": nuisance_loss(y_b, preds["ml_g_d_lvl0"], 1.0 - treated, g_cls),
            "ml_g_d_lvl1": nuisance_loss(y_b, preds["ml_g_d_lvl1"], treated, g_cls),
            "ml_m": nuisance_loss(t_b, preds["ml_m"], None, m_cls),
        }
        m = self._propensity(preds["ml_m"], t_b)
        m_trimmed = jnp.clip(preds["ml_m"], self.trimming, 1.0 - self.trimming)
        checks = {f"finite:{name}": all_finite(p) for name, p in preds.items()}
        checks["propensity:ml_m"] = jnp.all((m_trimmed > 0.0) & (m_trimmed < 1.0), axis=-1)
        if "ml_g_d_lvl1" not in external:
            seen = jnp.sum(train * tr, axis=-1) > 0
            for i, lvl in enumerate(levels):
                checks[f"level:{_label(lvl)}"] = seen[i : i + 1]
        psi_b = preds["ml_g_d_lvl1"] + t_b * (y_b - preds["ml_g_d_lvl1"]) / m
        psi_a = -jnp.ones_like(psi_b)
        return Nuisance(
            psi_a=psi_a, psi_b=psi_b, predictions=preds, losses=losses, checks=checks,
            t_names=tuple(_label(v) for v in levels) if named else None,
            levels=levels if named else None,
        )

    def _propensity(self, m_raw, treated):
        m = jnp.clip(m_raw, self.trimming, 1.0 - self.trimming)
        return normalize_ipw(m, treated) if self.normalize_ipw else m

    def _elements(self, data, nuisance, levels, theta):
        preds = nuisance.predictions
        n_rep = theta.shape[1]
        d = data.t[:, 0]
        treated = (d[None, :] == jnp.asarray(levels, d.dtype)[:, None]).astype(d.dtype)
        y = broadcast_to_krn(data.y, len(levels), n_rep)
        t_b = jnp.broadcast_to(treated[:, None], y.shape)
        m = self._propensity(preds["ml_m"], t_b)
        resid = y - t_b * preds["ml_g_d_lvl1"] - (1.0 - t_b) * preds["ml_g_d_lvl0"]
        return ipw_elements(resid, t_b / m, 1.0 / m)


class APO(_APOBase):
    r"""The average potential outcome $\theta = E[Y(d)] = E[g(d, X)]$ of one level $d$ of a
    discrete treatment, with the doubly robust score
    $\psi_b = g(d, X) + 1\{D = d\}(Y - g(d, X)) / m_d(X)$, $\psi_a = -1$
    ($m_d(X) = P(D = d \mid X)$, clipped to `[trimming, 1 - trimming]`), as DoubleML's
    `DoubleMLAPO`.

    `ml_g` is fitted on the rows with $D = d$ (`ml_g_d_lvl1`) and, for the sensitivity analysis,
    on the other rows with $D$ as an extra covariate (`ml_g_d_lvl0`, DoubleML's choice); `ml_m` is
    a classifier of $1\{D = d\}$. External prediction names: `ml_g_d_lvl0`, `ml_g_d_lvl1`,
    `ml_m`.

    **Arguments:** `ml_g`, `ml_m`, `treatment_level` ($d$), `trimming`, `normalize_ipw`,
    `n_folds`, `n_rep`.
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None
    treatment_level: float = eqx.field(static=True, converter=float, default=1.0)
    trimming: float = eqx.field(static=True, default=0.01)
    normalize_ipw: bool = eqx.field(static=True, default=False)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        self._check_fields()

    def check_data(self, data: CausalData) -> None:
        self._check_levels(data, (self.treatment_level,), "treatment_level")

    def nuisance(self, data, xs, test, key, external):
        return self._crossfit_levels(data, (self.treatment_level,), test, key, external)

    # --- sensitivity analysis (issue 14) ---
    def sensitivity_elements(self, data, nuisance, theta):
        r"""DoubleML's APO elements: $\sigma^2 = E[(Y - 1\{D=d\}g(d,X) - 1\{D \ne d\}
        g_{\text{other}}(D, X))^2]$, $\alpha = 1\{D=d\}/m_d$, $\nu^2 = E[2/m_d - \alpha^2]$."""
        return self._elements(data, nuisance, (self.treatment_level,), theta)


class APOS(_APOBase):
    r"""Average potential outcomes of several treatment levels (DoubleML's `DoubleMLAPOS`): one
    [`jaxcausal.dml.APO`][] per level, all levels cross-fitted in one compiled call on the same
    folds. The result has one coefficient per level (named by the level); contrasts with
    `res.causal_contrast(reference_levels=0)`.

    **Arguments:** `ml_g`, `ml_m`, `treatment_levels` (a sequence of levels), `trimming`,
    `normalize_ipw`, `n_folds`, `n_rep`.

    ```python
    est = jc.dml.APOS(jc.learners.MLP(), jc.learners.Logistic(), treatment_levels=[0, 1, 2])
    res = est.fit(data, key=jr.key(0))
    res.summary(); res.causal_contrast(reference_levels=0).summary()
    ```
    """

    ml_g: AbstractLearner | None
    ml_m: AbstractLearner | None
    treatment_levels: tuple[float, ...] = eqx.field(
        static=True, default=(0.0, 1.0), converter=lambda v: _levels(v, "treatment_levels")
    )
    trimming: float = eqx.field(static=True, default=0.01)
    normalize_ipw: bool = eqx.field(static=True, default=False)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        self._check_fields()

    def check_data(self, data: CausalData) -> None:
        self._check_levels(data, self.treatment_levels, "treatment_levels")

    def nuisance(self, data, xs, test, key, external):
        if external:
            raise ValueError(
                "APOS takes no external_predictions; fit jc.dml.APO per level with them"
            )
        return self._crossfit_levels(data, self.treatment_levels, test, key, external,
                                     named=True)

    # --- sensitivity analysis (issue 14) ---
    def sensitivity_elements(self, data, nuisance, theta):
        return self._elements(data, nuisance, self.treatment_levels, theta)


def causal_contrast(res: DMLResult, reference_levels: Any) -> DMLResult:
    r"""[`jaxcausal.dml.DMLResult.causal_contrast`][]: DoubleML's `DoubleMLAPOS.causal_contrast`.

    For level $i$ and reference $r$: $\hat\theta_i - \hat\theta_r$ with the difference of the
    scaled scores $\psi_i/\overline{\psi_{a,i}} - \psi_r/\overline{\psi_{a,r}}$ (standard
    error $\sqrt{\overline{\Delta\psi^2}/n}$) and the contrast's sensitivity elements
    $\sigma^2 = (\sigma^2_i + \sigma^2_r)/2$, $\nu^2 = \nu^2_i + \nu^2_r$ (DoubleML's
    sharper bound for a shared outcome regression).
    """
    if res.levels is None:
        raise ValueError("causal_contrast needs the result of a jc.dml.APOS fit")
    if len(res.levels) < 2:
        raise ValueError("only one treatment level: no causal contrast can be computed")
    refs = _levels(list(reference_levels) if isinstance(reference_levels, Iterable)
                   else reference_levels, "reference_levels")
    unknown = [r for r in refs if r not in res.levels]
    if unknown:
        raise ValueError(
            f"reference_levels {[_label(u) for u in unknown]} are not treatment levels of the fit "
            f"({[_label(v) for v in res.levels]})"
        )
    pairs, skip = [], set()
    for ref in refs:
        i_ref = res.levels.index(ref)
        skip.add(i_ref)
        pairs += [(i, i_ref) for i in range(len(res.levels)) if i not in skip]
    idx, ref_idx = (jnp.asarray([p[j] for p in pairs]) for j in (0, 1))
    scaled = res.psi / jnp.mean(res.psi_a, axis=-1, keepdims=True)
    psi = scaled[idx] - scaled[ref_idx]
    theta = res.theta_rep[idx] - res.theta_rep[ref_idx]
    se = jnp.sqrt(jnp.mean(psi**2, axis=-1) / psi.shape[-1])
    elements = None
    if res.sensitivity_elements is not None:
        e = res.sensitivity_elements
        elements = {
            "sigma2": (e["sigma2"][idx] + e["sigma2"][ref_idx]) / 2,
            "nu2": e["nu2"][idx] + e["nu2"][ref_idx],
            "psi_sigma2": (e["psi_sigma2"][idx] + e["psi_sigma2"][ref_idx]) / 2,
            "psi_nu2": e["psi_nu2"][idx] + e["psi_nu2"][ref_idx],
            "riesz_rep": e["riesz_rep"][idx] - e["riesz_rep"][ref_idx],
            "nu2_fallback": e["nu2_fallback"][idx] | e["nu2_fallback"][ref_idx],
        }
    names = tuple(f"{res.t_names[i]} vs {res.t_names[r]}" for i, r in pairs)
    return DMLResult(
        theta_rep=theta, se_rep=se, psi=psi, psi_a=jnp.ones_like(psi),
        psi_b=psi - theta[..., None], predictions={}, losses={}, folds=res.folds,
        checks=res.checks, t_names=names, sensitivity_elements=elements,
    )
