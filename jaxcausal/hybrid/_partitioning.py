"""Carbon-flux partitioning as a heterogeneous treatment effect of light (Cohrs et al., 2024)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import is_concrete
from .._data import CausalData
from ..dml import CATE, PLR, CATEResult
from ..learners import MLP, AbstractLearner


class FluxPartitioningResult(eqx.Module):
    r"""Partitioned fluxes of the rows the model was fitted on.

    - `cate`: the [`jaxcausal.dml.CATEResult`][] of $\theta(X) = -LUE(X)$.
    - `lue`, `gpp`, `reco`: per-row light-use efficiency $\widehat{LUE}(x_i)$,
      $\widehat{GPP}_i = \widehat{LUE}(x_i)\,SW_{IN,i}$ and
      $\widehat{RECO}_i = \hat\ell(x_i) - \hat\theta(x_i)\,\hat m(x_i)$ (out-of-fold nuisances,
      averaged over repetitions).
    - `lue_at(x)`: light-use efficiency at new drivers.
    - `evaluate(truth)`: R², RMSE, bias and correlation of GPP, RECO and LUE against known values.
    """

    cate: CATEResult
    lue: Float[Array, " n"]
    gpp: Float[Array, " n"]
    reco: Float[Array, " n"]

    def lue_at(self, x: Float[Array, "m p"]) -> Float[Array, " m"]:
        return -self.cate.effect(x)

    def evaluate(self, truth: dict) -> pd.DataFrame:
        """Quality against the known fluxes: `truth` maps `GPP`, `RECO`, `LUE` to arrays `(n,)`."""
        if not is_concrete(self.lue):
            raise ValueError("evaluate needs a concrete result (not batched or traced)")
        rows = {}
        for name, est in (("GPP", self.gpp), ("RECO", self.reco), ("LUE", self.lue)):
            if name not in truth:
                continue
            true = np.asarray(truth[name], dtype=float)
            est = np.asarray(est, dtype=float)
            if true.shape != est.shape:
                raise ValueError(f"truth['{name}'] has shape {true.shape}; expected {est.shape}")
            err = est - true
            rows[name] = {
                "R2": 1.0 - np.sum(err**2) / np.sum((true - true.mean()) ** 2),
                "RMSE": float(np.sqrt(np.mean(err**2))),
                "bias": float(np.mean(err)),
                "corr": float(np.corrcoef(est, true)[0, 1]),
            }
        if not rows:
            raise ValueError("truth has none of the keys 'GPP', 'RECO', 'LUE'")
        return pd.DataFrame(rows).T


class FluxPartitioning(eqx.Module):
    r"""Partition net ecosystem exchange into photosynthesis and respiration with DML.

    The light-response model $NEE = -LUE(X)\,SW_{IN} + RECO(X) + \varepsilon$ is a partially
    linear model with a heterogeneous effect of the "treatment" $SW_{IN}$ on NEE:
    $\theta(X) = -LUE(X)$. Its nuisances $E[NEE \mid X]$ and $E[SW_{IN} \mid X]$ are cross-fitted,
    $\theta(x)$ is learnt by an R-learner (a weighted regression of the pseudo-outcome,
    [`jaxcausal.dml.CATE`][] with a neural final stage), and respiration follows as
    $RECO(X) = E[NEE \mid X] - \theta(X)\,E[SW_{IN} \mid X]$.

    **Arguments:**

    - `ml_l`, `ml_m`: learners of $E[NEE \mid X]$ and $E[SW_{IN} \mid X]$ (default `MLP()`).
    - `final`: learner of $\theta(x)$ (default `MLP()`).
    - `n_folds`, `n_rep`: cross-fitting folds and repetitions.

    `fit(data, *, key)` takes `CausalData(y=NEE, t=SW_IN, x=drivers)`, with drivers such as air
    temperature, VPD and the smoothed potential radiation.
    """

    # default_factory: building an MLP makes arrays, which must not happen at import time.
    ml_l: AbstractLearner = eqx.field(default_factory=MLP)
    ml_m: AbstractLearner = eqx.field(default_factory=MLP)
    final: AbstractLearner = eqx.field(default_factory=MLP)
    n_folds: int = eqx.field(static=True, default=5)
    n_rep: int = eqx.field(static=True, default=1)

    def fit(self, data: CausalData, *, key: PRNGKeyArray) -> FluxPartitioningResult:
        if not isinstance(data, CausalData):
            raise TypeError(f"data must be a jaxcausal.CausalData; got {type(data).__name__}")
        if data.n_treatments != 1:
            raise ValueError(f"t must be one column (incoming radiation); got {data.n_treatments}")
        if is_concrete(data.t) and bool(jnp.any(data.t < 0)):
            raise ValueError("t (incoming shortwave radiation SW_IN) must be non-negative")
        plr = PLR(self.ml_l, self.ml_m, n_folds=self.n_folds, n_rep=self.n_rep)
        cate = CATE(plr, final=self.final).fit(data, key=key)
        theta = cate.effect(data.x)
        ell = jnp.mean(cate.dml.predictions["ml_l"][0], axis=0)
        m = jnp.mean(cate.dml.predictions["ml_m"][0], axis=0)
        lue = -theta
        return FluxPartitioningResult(
            cate=cate, lue=lue, gpp=lue * data.t[:, 0], reco=ell - theta * m
        )


