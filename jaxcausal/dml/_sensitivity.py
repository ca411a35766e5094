r"""Sensitivity analysis for omitted confounding (Chernozhukov, Cinelli, Newey, Sharma and
Syrgkanis, "Long Story Short", 2022), as in DoubleML 0.11.

A DML target $\theta = E[m(W; g)]$ has a Riesz representer $\alpha$ with $\theta = E[g\alpha]$.
Omitting a confounder $A$ biases the "short" estimate by $|\theta_s - \theta|^2 = \rho^2 B^2$,
$B^2 = C_Y C_D\,\sigma^2\nu^2$, where $\sigma^2 = E[(Y - g_s)^2]$ is the short model's residual
variance, $\nu^2 = E[\alpha_s^2]$ the short representer's second moment, and the sensitivity
parameters are $C_Y = $ `cf_y` (the share of the outcome's residual variance explained by $A$),
$C_D = $ `cf_d` $/(1 - $ `cf_d`$)$ (`cf_d`: the gain in the representer's variation from $A$) and
$\rho$ (the correlation of the two gaps; $|\rho| = 1$ is the worst case).

**Elements.** A model's `sensitivity_elements(data, nuisance, theta)` returns, per treatment and
repetition, $\hat\sigma^2$, $\hat\nu^2$, their influence functions $\psi_{\sigma^2}$,
$\psi_{\nu^2}$ (per row) and the representer $\hat\alpha$ (`riesz_rep`); they are computed in the
same compiled fit as $\hat\theta$. A non-positive $\hat\nu^2$ is replaced by the plain moment
$\overline{\hat\alpha^2}$ with $\psi_{\nu^2} = \hat\alpha^2$, in every repetition of that
treatment (DoubleML's fallback, not orthogonal; `res.sensitivity` warns).

**Bounds.** With the strength $s = |\rho|\sqrt{C_Y C_D}$, the bias bound
$\hat B = \sqrt{\hat\sigma^2\hat\nu^2}$ and its influence function
$\psi_B = (\hat\sigma^2\psi_{\nu^2} + \hat\nu^2\psi_{\sigma^2}) / (2\hat B)$, per repetition
$\theta_\pm = \hat\theta \pm s\hat B$ with the score $\psi_\pm = \psi/\overline{\psi_a} \pm
s\,\psi_B$ giving their standard errors (cluster-robust with clustered data), and the one-sided
confidence bounds $\theta_- - z_{\text{level}}\,\hat\sigma_-$, $\theta_+ + z_{\text{level}}\,
\hat\sigma_+$. Repetitions are aggregated by medians (DoubleML's rule).

**Robustness values.** `rv` is the value $v$ of `cf_y` = `cf_d` = $v$ at which the bound reaches
the null hypothesis, `rva` the same for the confidence bound; both are found by bisection on
$[0, 0.9999]$ (DoubleML's search interval): 0 when the bound already covers the null, 0.9999 when
it never does.

The analysis itself is a few hundred operations on `(n_treatments, n_rep)` numbers, done on the
host in float64 (results are cast to the fit's dtype): nothing to compile, milliseconds per call.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float

from .._checks import is_concrete
from ._inference import _AGG_CRITICAL

ELEMENT_NAMES = ("sigma2", "nu2", "psi_sigma2", "psi_nu2", "riesz_rep")
_RV_MAX = 0.9999  # DoubleML's upper end of the robustness-value search
_BISECTIONS = 80


def finalize_elements(elements: dict[str, Array]) -> dict[str, Array]:
    """Checks a model's elements and applies DoubleML's fallback for a non-positive $\\nu^2$."""
    missing = [name for name in ELEMENT_NAMES if name not in elements]
    if missing:
        raise ValueError(
            f"sensitivity_elements must return the keys {ELEMENT_NAMES}; missing {missing}"
        )
    nu2, rr = elements["nu2"], elements["riesz_rep"]
    # DoubleML replaces every repetition of a treatment once one repetition's nu2 is not positive
    bad = jnp.broadcast_to(jnp.any(nu2 <= 0, axis=-1, keepdims=True), nu2.shape)
    out = dict(elements)
    out["nu2"] = jnp.where(bad, jnp.mean(rr**2, axis=-1), nu2)
    out["psi_nu2"] = jnp.where(bad[..., None], rr**2, elements["psi_nu2"])
    out["nu2_fallback"] = bad
    return out


def max_bias(elements: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """$\\hat B = \\sqrt{\\hat\\sigma^2\\hat\\nu^2}$ `(k, n_rep)` and its influence function
    `(k, n_rep, n)` (host arrays)."""
    sigma2, nu2 = elements["sigma2"], elements["nu2"]
    bias = np.sqrt(sigma2 * nu2)
    psi = (sigma2[..., None] * elements["psi_nu2"] + nu2[..., None] * elements["psi_sigma2"]) / (
        2.0 * bias[..., None]
    )
    return bias, psi


class SensitivityCore(eqx.Module):
    """What the bounds need per treatment and repetition (host arrays, float64): the estimate,
    the bias bound and the variance of the shifted scores as a quadratic in the strength $s$:
    $\\hat\\sigma^2_\\pm(s) = a \\pm 2 s b + s^2 c$."""

    theta_rep: np.ndarray
    bias: np.ndarray
    var_a: np.ndarray
    var_b: np.ndarray
    var_c: np.ndarray


def build_core(theta_rep, psi, psi_a, elements, cluster) -> SensitivityCore:
    """The quadratic forms of the scaled score and the bias bound's influence function: plain
    means (DoubleML's `_var_est` with unit derivative), or the cluster form with clustered data.
    On the host in float64: a sensitivity analysis is a few hundred scalar operations, cheaper
    than compiling them."""
    host = {k: np.asarray(v, np.float64) for k, v in elements.items()}
    bias, psi_bias = max_bias(host)
    psi = np.asarray(psi, np.float64)
    scaled = psi / np.mean(np.asarray(psi_a, np.float64), axis=-1, keepdims=True)
    pairs = ((scaled, scaled), (scaled, psi_bias), (psi_bias, psi_bias))
    if cluster is None:
        n = psi.shape[-1]
        forms = [np.mean(u * v, axis=-1) / n for u, v in pairs]
    else:
        from ._cluster import host_forms

        forms = host_forms(pairs, cluster)
    return SensitivityCore(np.asarray(theta_rep, np.float64), bias, *forms)


def _strength(cf_y, cf_d, rho):
    return np.abs(rho) * np.sqrt(cf_y * (cf_d / (1.0 - cf_d)))


def _median(a: np.ndarray) -> np.ndarray:
    """The median over the last axis (repetitions); one repetition is the common case, where
    `np.median`'s overhead would dominate the robustness values' bisection."""
    return a[..., 0] if a.shape[-1] == 1 else np.median(a, axis=-1)


def _aggregate(theta_rep, se_rep):
    """DoubleML's rule over repetitions (the last axis), as `_inference.aggregate`."""
    theta = _median(theta_rep)
    upper = _median(theta_rep + _AGG_CRITICAL * se_rep)
    return theta, (upper - theta) / _AGG_CRITICAL


def _side(core: SensitivityCore, s, sign):
    """The shifted estimates theta_rep +- s * bias per repetition and the sd of their scores, on
    the side `sign` (+1: upper, -1: lower; broadcast with `s`)."""
    rep = core.theta_rep + sign * s * core.bias
    sd = np.sqrt(core.var_a + sign * 2.0 * s * core.var_b + s**2 * core.var_c)
    return rep, sd


def _bounds(core: SensitivityCore, s, z) -> dict[str, np.ndarray]:
    """Bounds per treatment for the strength `s` (a scalar, one per treatment, or any array of
    scenarios `(...)` giving results `(..., k)`) and the one-sided quantile `z`."""
    s = np.asarray(s, np.float64)
    s = s[..., None] if s.shape == core.theta_rep.shape[:1] else s[..., None, None]
    lo_rep, sd_lo = _side(core, s, -1.0)
    up_rep, sd_up = _side(core, s, 1.0)
    theta_lower, se_lower = _aggregate(lo_rep, sd_lo)
    theta_upper, se_upper = _aggregate(up_rep, sd_up)
    return {
        "theta_lower": theta_lower, "theta_upper": theta_upper,
        "se_lower": se_lower, "se_upper": se_upper,
        "ci_lower": _median(lo_rep - z * sd_lo),
        "ci_upper": _median(up_rep + z * sd_up),
    }


def _one_bound(core: SensitivityCore, s, z, kind: str, upper) -> np.ndarray:
    """Only the bound `_robustness` needs per treatment (`kind` "theta" or "ci"; the upper one
    where `upper`): the same numbers as `_bounds`, a sixth of the work."""
    sign = np.where(upper, 1.0, -1.0)[..., None]
    rep, sd = _side(core, np.asarray(s, np.float64)[..., None], sign)
    return _median(rep + sign * z * sd if kind == "ci" else rep)


def _robustness(core: SensitivityCore, rho, z, null, upper, kind: str):
    """Bisection for the value `v` with bound(cf_y = cf_d = v) = null, per treatment."""

    def gap(v):  # < 0 while the bound has not reached the null
        b = _one_bound(core, _strength(v, v, rho), z, kind, upper)
        return np.where(upper, b - null, null - b)

    k = core.theta_rep.shape[0]
    lo, hi = np.zeros(k), np.full(k, _RV_MAX)
    g_lo, g_hi = gap(lo), gap(hi)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        below = gap(mid) < 0
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.where(g_lo >= 0, 0.0, np.where(g_hi < 0, _RV_MAX, 0.5 * (lo + hi)))


def _analyse(core, cf_y, cf_d, rho, z, null):
    theta = _median(core.theta_rep)
    out = _bounds(core, _strength(cf_y, cf_d, rho), z)
    upper = null > theta
    out["rv"] = _robustness(core, rho, z, null, upper, "theta")
    out["rva"] = _robustness(core, rho, z, null, upper, "ci")
    out["theta"] = theta
    return out


def _check_unit(value: Any, name: str, upper_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a float; got {value!r}")
    value = float(value)
    ok = 0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0
    if not ok:
        raise ValueError(f"{name} must be in [0, 1); got {value}")
    return value


def check_parameters(cf_y, cf_d, rho, level) -> tuple[float, float, float, float]:
    cf_y = _check_unit(cf_y, "cf_y")
    cf_d = _check_unit(cf_d, "cf_d")
    if isinstance(rho, bool) or not isinstance(rho, (int, float, np.floating, np.integer)):
        raise TypeError(f"rho must be a float; got {rho!r}")
    if not -1.0 <= float(rho) <= 1.0:
        raise ValueError(f"rho must be in [-1, 1]; got {rho}")
    if not isinstance(level, (float, np.floating)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be a float in (0, 1); got {level!r}")
    return cf_y, cf_d, float(rho), float(level)


class SensitivityResult(eqx.Module):
    """The result of [`jaxcausal.dml.DMLResult.sensitivity`][]: one entry per treatment.

    **Fields:** `theta` (the estimate), `theta_lower`/`theta_upper` (bounds on $\\theta$ under the
    confounding scenario), `se_lower`/`se_upper` (their standard errors), `ci_lower`/`ci_upper`
    (one-sided `level` confidence bounds), `rv`/`rva` (robustness values of the null hypothesis
    for the bounds and the confidence bounds), `null_hypothesis`, all `(n_treatments,)`; the
    scenario `cf_y`, `cf_d`, `rho`, `level`; `core` (what `plot` evaluates on a grid).
    """

    theta: Float[Array, " k"]
    theta_lower: Float[Array, " k"]
    theta_upper: Float[Array, " k"]
    se_lower: Float[Array, " k"]
    se_upper: Float[Array, " k"]
    ci_lower: Float[Array, " k"]
    ci_upper: Float[Array, " k"]
    rv: Float[Array, " k"]
    rva: Float[Array, " k"]
    null_hypothesis: Float[Array, " k"]
    core: SensitivityCore
    cf_y: float = eqx.field(static=True)
    cf_d: float = eqx.field(static=True)
    rho: float = eqx.field(static=True)
    level: float = eqx.field(static=True)
    t_names: tuple[str, ...] = eqx.field(static=True)

    def summary(self) -> pd.DataFrame:
        """A table like DoubleML's `sensitivity_summary`: bounds, confidence bounds, the null
        hypothesis and the robustness values in percent."""
        cols = {
            "CI lower": self.ci_lower, "theta lower": self.theta_lower, "theta": self.theta,
            "theta upper": self.theta_upper, "CI upper": self.ci_upper,
            "H_0": self.null_hypothesis, "RV (%)": 100 * self.rv, "RVa (%)": 100 * self.rva,
        }
        return pd.DataFrame({k: np.asarray(v) for k, v in cols.items()}, index=list(self.t_names))

    def grid(self, treatment: int = 0, *, ci: bool = False, grid_bounds=(0.15, 0.15),
             grid_size: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The bound nearest the null over a grid: `(cf_d values, cf_y values, values)` with
        `values[i, j]` at `cf_d[i]`, `cf_y[j]` (what `plot` draws)."""
        if not 0 <= treatment < len(self.t_names):
            raise ValueError(f"treatment must be in [0, {len(self.t_names)}); got {treatment}")
        for b in grid_bounds:
            if not 0.0 < b < 1.0:
                raise ValueError(f"grid_bounds must hold two values in (0, 1); got {grid_bounds}")
        if not isinstance(grid_size, int) or grid_size < 2:
            raise ValueError(f"grid_size must be an integer of at least 2; got {grid_size!r}")
        cf_d = np.linspace(0.0, grid_bounds[0], grid_size)
        cf_y = np.linspace(0.0, grid_bounds[1], grid_size)
        strength = _strength(cf_y[None, :], cf_d[:, None], self.rho)  # (cf_d, cf_y)
        values = _bounds(self.core, strength, _quantile(self.level))
        side = "upper" if float(self.null_hypothesis[treatment]) > float(self.theta[treatment]) \
            else "lower"
        name = ("ci_" if ci else "theta_") + side
        return cf_d, cf_y, values[name][..., treatment]

    def plot(self, treatment: int = 0, *, ci: bool = False, benchmarks=None, fill: bool = True,
             grid_bounds=(0.15, 0.15), grid_size: int = 100, ax=None):
        """Contour plot of the bound nearest the null hypothesis over `cf_d` x `cf_y`
        (matplotlib, an optional dependency: `pip install jaxcausal[plot]`).

        **Arguments:** `treatment` (index), `ci` (plot the confidence bound instead of the bound
        on $\\theta$), `benchmarks` (`{name: (cf_y, cf_d)}` or the DataFrame of
        `sensitivity_benchmark`, marked on the plot), `fill` (filled contours), `grid_bounds`
        (largest `cf_d` and `cf_y`), `grid_size`, `ax` (a matplotlib Axes to draw on).

        **Returns:** the matplotlib Axes.
        """
        from ._sensitivity_plot import contour_plot

        return contour_plot(self, treatment, ci, benchmarks, fill, grid_bounds, grid_size, ax)


def _quantile(level: float) -> float:
    # the standard library's inverse normal CDF (double precision): no JAX dispatch on the host
    return statistics.NormalDist().inv_cdf(level)


def analyse(res, cf_y=0.03, cf_d=0.03, rho=1.0, level=0.95, null_hypothesis=0.0):
    """[`jaxcausal.dml.DMLResult.sensitivity`][]."""
    cf_y, cf_d, rho, level = check_parameters(cf_y, cf_d, rho, level)
    elements = res.sensitivity_elements
    if elements is None:
        raise ValueError(
            "this result has no sensitivity elements: the model does not implement the "
            "sensitivity analysis (PLR, PLIV, IRM, IIVM, APO/APOS and DID do)"
        )
    if not is_concrete(res.theta_rep) or res.theta_rep.ndim != 2:
        raise ValueError("sensitivity needs a single, concrete result (not batched or traced)")
    k = res.theta_rep.shape[0]
    null = np.asarray(null_hypothesis, dtype=float)
    if null.ndim == 0:
        null = np.full(k, float(null))
    if null.shape != (k,):
        raise ValueError(f"null_hypothesis must be a float or an array of shape ({k},); got "
                         f"shape {null.shape}")
    flag = np.asarray(elements.get("nu2_fallback", False))
    if flag.any():
        names = [res.t_names[i] for i in np.unique(np.argwhere(flag)[:, 0])]
        warnings.warn(
            f"the estimated nu2 is not positive for {names}; it was re-estimated from the Riesz "
            "representer (not Neyman-orthogonal), as DoubleML does", UserWarning, stacklevel=3,
        )
    core = build_core(res.theta_rep, res.psi, res.psi_a, _five(elements), res.cluster)
    dtype = res.theta_rep.dtype
    out = {k: jnp.asarray(v, dtype) for k, v in
           _analyse(core, cf_y, cf_d, rho, _quantile(level), null).items()}
    return SensitivityResult(
        theta=out["theta"], theta_lower=out["theta_lower"], theta_upper=out["theta_upper"],
        se_lower=out["se_lower"], se_upper=out["se_upper"], ci_lower=out["ci_lower"],
        ci_upper=out["ci_upper"], rv=out["rv"], rva=out["rva"],
        null_hypothesis=jnp.asarray(null, dtype), core=core, cf_y=cf_y, cf_d=cf_d, rho=rho,
        level=level, t_names=res.t_names,
    )


def _five(elements):
    return {k: elements[k] for k in ELEMENT_NAMES}


def gain_statistics(long, short, y: Array) -> pd.DataFrame:
    """Benchmark values of `cf_y`, `cf_d` and `rho` from a long and a short fit (DoubleML's
    `gain_statistics`): $R^2$ gains of the outcome regression and of the Riesz representer."""
    var_y = np.var(np.asarray(y))
    s2_long = np.asarray(long.sensitivity_elements["sigma2"])
    s2_short = np.asarray(short.sensitivity_elements["sigma2"])
    nu2_long = np.asarray(long.sensitivity_elements["nu2"])
    nu2_short = np.asarray(short.sensitivity_elements["nu2"])
    r2_y_long, r2_y_short = 1.0 - s2_long / var_y, 1.0 - s2_short / var_y
    r2_riesz = nu2_short / nu2_long
    cf_y = np.clip((r2_y_long - r2_y_short) / (1.0 - r2_y_long), 0.0, 1.0)
    cf_d = np.clip((1.0 - r2_riesz) / r2_riesz, 0.0, 1.0)
    delta = np.asarray(short.theta_rep) - np.asarray(long.theta_rep)
    var_g, var_riesz = s2_short - s2_long, nu2_long - nu2_short
    ok = (var_g > 0) & (var_riesz > 0)
    denom = np.sqrt(np.where(ok, var_g * var_riesz, 1.0))
    rho = np.where(ok & (denom != 0), np.clip(np.abs(delta) / np.where(ok, denom, 1.0), 0, 1), 1.0)
    return pd.DataFrame(
        {
            "cf_y": np.median(cf_y, axis=1),
            "cf_d": np.median(cf_d, axis=1),
            "rho": np.median(rho * np.sign(delta), axis=1),
            "delta_theta": np.median(delta, axis=1),
        },
        index=list(long.t_names),
    )


def benchmark(res, data, benchmarking_set: Sequence[str], key=None, external_predictions=None):
    """[`jaxcausal.dml.DMLResult.sensitivity_benchmark`][]."""
    if res.sensitivity_elements is None:
        raise ValueError("this result has no sensitivity elements to benchmark")
    if res.model is None:
        raise ValueError("sensitivity_benchmark needs the result of a model's fit (res.model)")
    if isinstance(benchmarking_set, str) or not isinstance(benchmarking_set, Sequence):
        raise TypeError(
            f"benchmarking_set must be a list of covariate names; got {benchmarking_set!r}"
        )
    if len(benchmarking_set) == 0:
        raise ValueError("benchmarking_set must not be empty")
    unknown = [c for c in benchmarking_set if c not in data.x_names]
    if unknown:
        raise ValueError(
            f"benchmarking_set names {unknown}, which are not covariates of data; the covariates "
            f"are {list(data.x_names)}"
        )
    keep = [i for i, c in enumerate(data.x_names) if c not in set(benchmarking_set)]
    if not keep:
        raise ValueError("benchmarking_set names every covariate; the short model needs one left")
    if data.n_obs != res.folds.shape[-1]:
        raise ValueError(
            f"data has {data.n_obs} rows but res was fitted on {res.folds.shape[-1]}; pass the "
            "data set of the fit"
        )
    short_data = drop_covariates(data, keep)
    folds = res.folds if res.cluster is None else res.cluster.folds
    short = res.model.fit(short_data, key=res.key if key is None else key, folds=folds,
                          external_predictions=external_predictions)
    return gain_statistics(res, short, data.y)


def drop_covariates(data, keep: list[int]):
    """The data with only the covariate columns `keep`."""
    import dataclasses

    idx = np.asarray(keep)
    return dataclasses.replace(
        data, x=data.x[:, idx], x_names=tuple(data.x_names[i] for i in keep)
    )
