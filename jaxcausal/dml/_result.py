"""The immutable result of a double machine learning fit."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import is_concrete
from ._checks import is_warning, report
from ._inference import (
    AbstractBootstrap,
    NormalBootstrap,
    aggregate,
    bootstrap_t_stats,
    normal_quantile,
)


# Compiled helpers for the properties: on a concrete result, eager operations would each compile
# on their first use in a process.
@jax.jit
def _t_and_pvalue(theta_rep: Array, se_rep: Array) -> tuple[Array, Array]:
    theta, se = aggregate(theta_rep, se_rep)
    t = theta / se
    return t, 2.0 * jax.scipy.stats.norm.sf(jnp.abs(t))


@jax.jit
def _median_interval(theta_rep: Array, se_rep: Array, z) -> Array:
    lower = jnp.median(theta_rep - z * se_rep, axis=-1)
    upper = jnp.median(theta_rep + z * se_rep, axis=-1)
    return jnp.stack([lower, upper], axis=-1)


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
    """

    theta_rep: Float[Array, "k n_rep"]
    se_rep: Float[Array, "k n_rep"]
    psi: Float[Array, "k n_rep n"]
    psi_a: Float[Array, "k n_rep n"]
    psi_b: Float[Array, "k n_rep n"]
    predictions: dict[str, Float[Array, "k n_rep n"]]
    losses: dict[str, Float[Array, "k n_rep"]]
    folds: Int[Array, "n_rep n"]
    checks: dict[str, Bool[Array, "*shape"]]
    t_names: tuple[str, ...] = eqx.field(static=True)
    diagnostics: dict[str, Float[Array, "*shape"]] = eqx.field(default_factory=dict)
    dtype: str = eqx.field(static=True, default="float32")

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
