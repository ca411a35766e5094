"""The immutable result of a double machine learning fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import is_concrete, to_device
from .._compile import jit
from ._checks import is_warning, report
from ._inference import (
    AbstractBootstrap,
    NormalBootstrap,
    aggregate,
    bootstrap_t_stats,
    normal_quantile,
    on_host,
)


# Helpers for the properties: NumPy on a concrete result (eager JAX operations, or a `jit`, would
# compile in every new process), one compiled call on a traced one.
@jit
def _t_and_pvalue_jit(theta_rep: Array, se_rep: Array) -> tuple[Array, Array]:
    theta, se = aggregate(theta_rep, se_rep)
    t = theta / se
    return t, 2.0 * jax.scipy.stats.norm.sf(jnp.abs(t))


def _t_and_pvalue(theta_rep: Array, se_rep: Array) -> tuple[Array, Array]:
    if not on_host(theta_rep, se_rep):
        return _t_and_pvalue_jit(theta_rep, se_rep)
    theta, se = aggregate(theta_rep, se_rep)
    dtype = theta.dtype
    t = np.asarray(theta) / np.asarray(se)
    # 2 sf(|t|) = erfc(|t| / sqrt 2), in float64 on the host
    p = np.vectorize(math.erfc, otypes=[np.float64])(np.abs(t.astype(np.float64)) / math.sqrt(2))
    return to_device(t, dtype), to_device(p, dtype)


def _median_interval_xp(xp, theta_rep, se_rep, z):
    lower = xp.median(theta_rep - z * se_rep, axis=-1)
    upper = xp.median(theta_rep + z * se_rep, axis=-1)
    return xp.stack([lower, upper], axis=-1)


_median_interval_jit = jit(lambda t, s, z: _median_interval_xp(jnp, t, s, z))


def _median_interval(theta_rep: Array, se_rep: Array, z: float) -> Array:
    if not on_host(theta_rep, se_rep):
        return _median_interval_jit(theta_rep, se_rep, z)
    dtype = jnp.result_type(theta_rep, se_rep)
    t, s = np.asarray(theta_rep, dtype), np.asarray(se_rep, dtype)
    return to_device(_median_interval_xp(np, t, s, dtype.type(z)), dtype)


def _ci_columns(level: float) -> list[str]:
    alpha = 1.0 - level
    return [f"{100 * alpha / 2:.1f} %", f"{100 * (1 - alpha / 2):.1f} %"]


class DMLResult(eqx.Module):
    """What `fit` of a DML model returns: estimates, scores, out-of-fold predictions and losses.

    A pytree of arrays (plus static names), so a `vmap`ped fit returns the same object with a
    leading batch axis on every array; the properties then have that axis too.

    **Fields:**

    - `theta_rep`, `se_rep`: estimate and standard error per treatment and repetition,
      `(n_treatments, n_rep)`.
    - `psi`, `psi_a`, `psi_b`: the score at the estimate and its elements, `(n_treatments, n_rep,
      n_obs)`.
    - `predictions`: out-of-fold nuisance predictions by learner name, `(n_treatments, n_rep,
      n_obs)` each (IRM's propensities before trimming).
    - `losses`: out-of-fold nuisance losses by learner name (RMSE, or log-loss for classifiers),
      `(n_treatments, n_rep)` each.
    - `folds`: the fold ids used, `(n_rep, n_obs)`.
    - `checks`: named flags, `True` where a check holds (see `jaxcausal/dml/_checks.py`).
      Errors: finite predictions, propensities inside (0, 1), every training fold with treated
      and untreated rows, a treatment that varies; `fit` raises when one fails. Warnings: a
      learner not resolved at the working precision (`precision:<learner>`) or not converged,
      propensities at 0 or 1 (`separation:ml_m`), more than 10 % of them clipped
      (`clipped:ml_m`); `fit` warns (`UserWarning`). Under `jit`/`vmap` they stay in the result:
      call [`jaxcausal.dml.DMLResult.report`][] on a concrete result to raise and warn.
    - `diagnostics`: the values some checks quote (the clipped share, a condition number), by
      check name.
    - `t_names`: treatment names.
    - `dtype`: the floating-point precision the fit was computed in (`"float32"` unless float64
      is enabled; see the README's precision section).
    - `sensitivity_elements`: the elements of the sensitivity analysis (see
      [`jaxcausal.dml.DMLResult.sensitivity`][]), `None` for models without one.
    - `cluster`: the cluster structure and per-variable folds of a fit on clustered data.
    - `levels`: the treatment levels of an [`jaxcausal.dml.APOS`][] fit (one coefficient each).
    - `model`, `key`: the configuration and key of the fit (for refits in
      `sensitivity_benchmark`).
    """

    theta_rep: Float[Array, "k n_rep"]
    se_rep: Float[Array, "k n_rep"]
    psi: Float[Array, "k n_rep n"]
    psi_a: Float[Array, "k n_rep n"]
    psi_b: Float[Array, "k n_rep n"]
    predictions: dict[str, Float[Array, "k n_rep n"]]
    losses: dict[str, Float[Array, "k n_rep"]]
    folds: Int[Array, "n_rep n"]
    checks: dict[str, Bool[Array, "..."]]  # noqa: UP037 (jaxtyping: any shape)
    t_names: tuple[str, ...] = eqx.field(static=True)
    diagnostics: dict[str, Float[Array, "..."]] = eqx.field(default_factory=dict)  # noqa: UP037
    dtype: str = eqx.field(static=True, default="float32")
    # --- sensitivity analysis, clustering, potential outcomes (issue 14) ---
    sensitivity_elements: dict[str, Array] | None = None
    cluster: Any = None
    levels: tuple[float, ...] | None = eqx.field(static=True, default=None)
    model: Any = None
    key: Any = None

    @property
    def theta(self) -> Array:
        """The estimate per treatment (median over repetitions)."""
        return aggregate(self.theta_rep, self.se_rep)[0]

    @property
    def se(self) -> Array:
        """The standard error per treatment (DoubleML's rule over repetitions)."""
        return aggregate(self.theta_rep, self.se_rep)[1]

    @property
    def t_stat(self) -> Array:
        return _t_and_pvalue(self.theta_rep, self.se_rep)[0]

    @property
    def pval(self) -> Array:
        """Two-sided p-values of the aggregated t-statistics (as DoubleML's models report them)."""
        return _t_and_pvalue(self.theta_rep, self.se_rep)[1]

    @property
    def ok(self) -> Array:
        """Whether every error check passed (a scalar; inside a `vmap`ped fit, one per
        replication). Warnings do not count."""
        flags = [jnp.all(v) for name, v in self.checks.items() if not is_warning(name)]
        return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)

    def report(self, data=None, *, throw: bool = True) -> None:
        """Raises a `ValueError` for the first failed error check (with `throw`) and a
        `UserWarning` for every failed warning check, with messages naming the learner, the
        treatment and, where `data` (the fitted [`jaxcausal.CausalData`][]) is given and it can,
        the covariate. `fit` calls it; call it yourself on a result from a `jit`ted fit."""
        if not is_concrete(self.theta_rep) or self.theta_rep.ndim != 2:
            raise ValueError("report needs a single, concrete result (not batched or traced)")
        report(self, data, throw=throw)

    def confint(self, level: float = 0.95) -> Float[Array, "k 2"]:
        """Pointwise confidence intervals `(n_treatments, 2)`: per repetition
        `theta_rep -+ z * se_rep`, then the median over repetitions (DoubleML's rule)."""
        return _median_interval(self.theta_rep, self.se_rep, normal_quantile(level))

    def bootstrap(
        self,
        method: AbstractBootstrap = NormalBootstrap(),
        n_rep_boot: int = 500,
        *,
        key: PRNGKeyArray,
    ) -> BootstrapResult:
        """Multiplier bootstrap of the t-statistics (for joint confidence intervals).

        **Arguments:**

        - `method`: `NormalBootstrap()`, `WildBootstrap()` or `BayesBootstrap()`.
        - `n_rep_boot`: bootstrap draws.
        - `key`: a JAX PRNG key.

        **Returns:** a [`jaxcausal.dml.BootstrapResult`][].
        """
        if not isinstance(method, AbstractBootstrap):
            raise TypeError(
                "method must be a bootstrap object (NormalBootstrap(), WildBootstrap(), "
                f"BayesBootstrap()); got {method!r}"
            )
        if not isinstance(n_rep_boot, int) or n_rep_boot < 1:
            raise ValueError(f"n_rep_boot must be a positive integer, got {n_rep_boot!r}")
        if self.cluster is not None:
            raise ValueError(
                "bootstrap with clustered data is not implemented (nor in DoubleML 0.11): the "
                "multipliers would have to be drawn per cluster; use confint()"
            )
        t_stats = bootstrap_t_stats(self.psi, self.psi_a, self.se_rep, method, n_rep_boot, key)
        return BootstrapResult(
            t_stats=t_stats, theta_rep=self.theta_rep, se_rep=self.se_rep, t_names=self.t_names
        )

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """A table shaped like DoubleML's `summary`: coef, std err, t, P>|t| and the interval;
        `table.attrs["dtype"]` records the precision of the fit."""
        if not is_concrete(self.theta_rep) or self.theta_rep.ndim != 2:
            raise ValueError("summary needs a single, concrete result (not batched or traced)")
        table = pd.DataFrame(
            {
                "coef": np.asarray(self.theta),
                "std err": np.asarray(self.se),
                "t": np.asarray(self.t_stat),
                "P>|t|": np.asarray(self.pval),
            },
            index=list(self.t_names),
        )
        ci = np.asarray(self.confint(level))
        for i, col in enumerate(_ci_columns(level)):
            table[col] = ci[:, i]
        table.attrs["dtype"] = self.dtype
        return table


    # --- sensitivity analysis and contrasts (issue 14) ---
    def sensitivity(
        self,
        cf_y: float = 0.03,
        cf_d: float = 0.03,
        rho: float = 1.0,
        level: float = 0.95,
        null_hypothesis: Any = 0.0,
    ):
        """Sensitivity analysis for unobserved confounding ("Long Story Short", as DoubleML's
        `sensitivity_analysis`).

        **Arguments:**

        - `cf_y`: share of the outcome's residual variation explained by the confounders, in
          `[0, 1)`.
        - `cf_d`: gain in the variation of the Riesz representer from the confounders, in
          `[0, 1)`.
        - `rho`: correlation of the two gaps, in `[-1, 1]` (`|rho| = 1`: the worst case).
        - `level`: level of the one-sided confidence bounds.
        - `null_hypothesis`: a float or one value per treatment; the robustness values say how
          strong confounding must be to move the bound (`rv`) or the confidence bound (`rva`)
          to it.

        **Returns:** a [`jaxcausal.dml.SensitivityResult`][] with `summary()` and `plot()`.

        ```python
        sens = res.sensitivity(cf_y=0.04, cf_d=0.03)
        sens.summary(); sens.plot()
        ```
        """
        from ._sensitivity import analyse

        return analyse(self, cf_y, cf_d, rho, level, null_hypothesis)

    def sensitivity_benchmark(
        self,
        data: Any,
        benchmarking_set: Sequence[str],
        *,
        key: PRNGKeyArray | None = None,
        external_predictions: Any = None,
    ) -> pd.DataFrame:
        """Benchmark values of `cf_y`, `cf_d` and `rho` from leaving out observed covariates.

        Refits the same model without the covariates `benchmarking_set` on the same folds (one
        compiled cross-fit) and compares the long and short fits as DoubleML's
        `sensitivity_benchmark` does.

        **Arguments:**

        - `data`: the data set of the fit.
        - `benchmarking_set`: names of covariates (`data.x_names`) to leave out.
        - `key`: key of the short fit (default: the key of this fit, so that the learners use
          the same random numbers).
        - `external_predictions`: external predictions for the short fit, if the fit used any.

        **Returns:** a DataFrame with `cf_y`, `cf_d`, `rho` and `delta_theta` per treatment.
        """
        from ._sensitivity import benchmark

        return benchmark(self, data, benchmarking_set, key, external_predictions)

    def causal_contrast(self, reference_levels: Any) -> DMLResult:
        """Contrasts of the average potential outcomes of an [`jaxcausal.dml.APOS`][] fit: every
        level minus each reference level (DoubleML's `DoubleMLAPOS.causal_contrast`), with their
        scores, standard errors and the sharper sensitivity elements of a contrast.

        **Returns:** a [`jaxcausal.dml.DMLResult`][] with one coefficient per contrast
        (`"1 vs 0"`, ...).
        """
        from ._apo import causal_contrast

        return causal_contrast(self, reference_levels)


class BootstrapResult(eqx.Module):
    """Bootstrap t-statistics `(n_rep_boot, n_treatments, n_rep)` with joint confidence intervals.

    `confint(level)` gives simultaneous intervals over all treatments: per repetition the
    `level`-quantile of $\\max_j |t^*_j|$ as critical value, then the median over repetitions.
    """

    t_stats: Float[Array, "n_rep_boot k n_rep"]
    theta_rep: Float[Array, "k n_rep"]
    se_rep: Float[Array, "k n_rep"]
    t_names: tuple[str, ...] = eqx.field(static=True)

    def critical_values(self, level: float = 0.95) -> Float[Array, " n_rep"]:
        """The joint critical value of each repetition."""
        normal_quantile(level)
        return jnp.quantile(jnp.max(jnp.abs(self.t_stats), axis=-2), level, axis=-2)

    def confint(self, level: float = 0.95) -> Float[Array, "k 2"]:
        """Joint confidence intervals `(n_treatments, 2)`."""
        crit = self.critical_values(level)[..., None, :]
        lower = jnp.median(self.theta_rep - crit * self.se_rep, axis=-1)
        upper = jnp.median(self.theta_rep + crit * self.se_rep, axis=-1)
        return jnp.stack([lower, upper], axis=-1)
