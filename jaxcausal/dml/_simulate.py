"""Monte Carlo studies of a DML estimator: every replication in one batched, sharded computation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
from jaxtyping import PRNGKeyArray

from .._cache import use_default_cache
from .._data import CausalData
from .._progress import chunked_map
from ._base import AbstractDML
from ._inference import normal_quantile
from ._quantile import AbstractQuantileDML


def _replicate(
    estimator: AbstractDML | AbstractQuantileDML, dgp: Callable, z: float, key: PRNGKeyArray
):
    k_data, k_fit = jr.split(key)
    drawn = dgp(k_data)
    data, truth = drawn if isinstance(drawn, tuple) else (drawn, jnp.nan)
    if not isinstance(data, CausalData):
        raise TypeError(
            f"dgp(key) must return a CausalData (or a (CausalData, truth) pair); got {type(data)}"
        )
    res = estimator.fit(data, key=k_fit, throw=False)
    theta, se = res.theta, res.se
    truth = jnp.broadcast_to(jnp.asarray(truth, theta.dtype), theta.shape)
    # the pointwise interval of DoubleML: median over repetitions of theta_r -+ z se_r
    lower = jnp.median(res.theta_rep - z * res.se_rep, axis=-1)
    upper = jnp.median(res.theta_rep + z * res.se_rep, axis=-1)
    return theta, se, lower, upper, truth, jnp.broadcast_to(res.ok, theta.shape)


def simulate(
    estimator: AbstractDML | AbstractQuantileDML,
    dgp: Callable[[PRNGKeyArray], Any],
    *,
    key: PRNGKeyArray,
    n_sims: int,
    truth: Any = None,
    level: float = 0.95,
    summarize: bool = True,
    mesh: Any = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Runs `n_sims` replications of "draw a data set, fit the estimator" in one compiled call.

    Each replication draws its data with `dgp(key)` and fits `estimator` with `throw=False`; all
    replications are compiled once as one program, sharded over the devices of `mesh` with
    [`jaxcausal.parallel.sharded_map`][]; on each device they run `batch_size` at a time (a
    `vmap` inside a `lax.map`). A second study with an equal estimator and the same `dgp`
    function does not recompile. A failed replication (NaN predictions, propensities at
    0 or 1, ...) is counted in `n_failed` and left out of the summary instead of stopping the
    study.

    **Arguments:**

    - `estimator`: a DML model such as [`jaxcausal.dml.PLR`][].
    - `dgp`: a JAX-traceable function `key -> CausalData` (or `key -> (CausalData, truth)`), e.g.
      `lambda k: jc.datasets.make_plr_CCDDHNR2018(n_obs=500, key=k)`.
    - `key`: a JAX PRNG key; replication `i` uses the `i`-th of `jr.split(key, n_sims)`.
    - `n_sims`: number of replications.
    - `truth`: the true parameter (scalar or one per treatment); overrides a truth from `dgp`.
    - `level`: confidence level of the intervals whose coverage is reported.
    - `summarize`: return one row per treatment (`True`) or one row per replication and treatment.
    - `mesh`: a 1-D device mesh (default: all devices).
    - `batch_size`: replications computed together on a device. Default: all of them on a GPU
      or TPU, and one at a time on a CPU. Networks of a batch train in lockstep until the
      slowest one stops early, which a GPU absorbs in parallel but a CPU pays for in full
      (`benchmarks/cpu_batching.py`: 100 PLR fits with MLP nuisances on one core, 79 s as one
      batch, 44 s in batches of 10, 26 s one at a time). Results do not depend on it beyond
      rounding.
    - `progress`: say up front how many fits the study runs, and show a progress bar (tqdm, on
      stderr) while it runs; `False` prints nothing. With a progress bar the replications run
      in a few dozen equal chunks of one compiled program (a call per chunk, the same results);
      without, in one call.

    The compiled program is kept in JAX's persistent compilation cache (`~/.cache/jaxcausal`,
    see [`jaxcausal.enable_compilation_cache`][]; `JAXCAUSAL_CACHE=0` turns it off), so the same
    study in a new process does not compile again.

    **Returns:** a `pandas.DataFrame`. Summarised: `truth`, `n_sims`, `n_failed`, `mean`, `bias`,
    `rmse`, `sd`, `mean_se`, `bias_over_se` (bias / mean se) and `coverage`, indexed by treatment.
    Per replication: `sim`, `treatment`, `truth`, `theta`, `se`, `lower`, `upper`, `covered`, `ok`.

    ```python
    est = jc.dml.PLR(jc.learners.MLP(), jc.learners.MLP())
    dgp = lambda k: jc.datasets.make_plr_CCDDHNR2018(n_obs=500, alpha=0.5, key=k)
    table = jc.dml.simulate(est, dgp, key=jr.key(0), n_sims=1000, truth=0.5)
    ```
    """
    if not isinstance(estimator, AbstractDML | AbstractQuantileDML):
        raise TypeError(f"estimator must be a DML model (e.g. jc.dml.PLR); got {estimator!r}")
    if not callable(dgp):
        raise TypeError(f"dgp must be a function key -> CausalData; got {dgp!r}")
    if not isinstance(n_sims, int) or n_sims < 1:
        raise ValueError(f"n_sims must be a positive integer, got {n_sims!r}")
    use_default_cache()
    z = normal_quantile(level)
    keys = jr.split(key, n_sims)
    names, n_obs = _treatment_names(dgp, keys[0])
    if isinstance(estimator, AbstractQuantileDML):  # one row per quantile
        names = list(estimator.row_names(tuple(names)))
    if truth is None and not _dgp_gives_truth(dgp, keys[0]):
        raise ValueError("truth is unknown: pass truth= or let dgp return (data, truth)")
    per_sim = len(names) * estimator.n_rep * estimator.n_folds * len(estimator.learner_names)
    # `eqx.Partial`s rather than lambdas: a second study with an equal estimator configuration and
    # the same `dgp` function reuses the compiled program (arrays in `estimator` are traced).
    replicate = eqx.Partial(_replicate, estimator, dgp, z)
    out = chunked_map(
        replicate, keys, batch_size=batch_size, mesh=mesh, progress=progress,
        desc="simulate", unit="sim",
        header=(
            f"jc.dml.simulate: {n_sims} replications of {type(estimator).__name__} on "
            f"{n_obs} rows, {per_sim} nuisance fits each ({len(names)} treatment(s) x "
            f"{estimator.n_rep} rep x {estimator.n_folds} folds x "
            f"{len(estimator.learner_names)} learners), {n_sims * per_sim} fits in all"
        ),
    )
    theta, se, lower, upper, true, ok = (np.asarray(a) for a in out)
    if truth is not None:
        true = np.broadcast_to(np.asarray(truth, float), theta.shape)
    if np.isnan(true).any():
        raise ValueError("truth is unknown: pass truth= or let dgp return (data, truth)")
    rows = pd.DataFrame({
        "sim": np.repeat(np.arange(n_sims), theta.shape[1]),
        "treatment": np.tile(names, n_sims),
        "truth": true.ravel(),
        "theta": theta.ravel(),
        "se": se.ravel(),
        "lower": lower.ravel(),
        "upper": upper.ravel(),
        "covered": ((lower <= true) & (true <= upper)).ravel(),
        "ok": ok.ravel(),
    })
    if not summarize:
        return rows
    return _summary(rows, names)


def _treatment_names(dgp, key) -> tuple[list[str], int]:
    """The treatment names and row count of the data `dgp` draws, read from its shapes without
    computing it."""
    drawn = jax.eval_shape(dgp, key)
    data = drawn[0] if isinstance(drawn, tuple) else drawn
    return list(data.t_names), int(data.y.shape[-1])


def _dgp_gives_truth(dgp, key) -> bool:
    return isinstance(jax.eval_shape(dgp, key), tuple)


def _summary(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    table = {}
    for name in names:
        sub = rows[rows["treatment"] == name]
        good = sub[sub["ok"]]
        err = good["theta"] - good["truth"]
        bias = float(err.mean())
        mean_se = float(good["se"].mean())
        table[name] = {
            "truth": float(sub["truth"].iloc[0]),
            "n_sims": len(sub),
            "n_failed": int((~sub["ok"]).sum()),
            "mean": float(good["theta"].mean()),
            "bias": bias,
            "rmse": float(np.sqrt(np.mean(err**2))),
            "sd": float(good["theta"].std(ddof=1)) if len(good) > 1 else float("nan"),
            "mean_se": mean_se,
            "bias_over_se": bias / mean_se,
            "coverage": float(good["covered"].mean()),
        }
    return pd.DataFrame.from_dict(table, orient="index")
