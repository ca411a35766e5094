"""The IHDP semi-synthetic benchmark (Hill 2011), response surface B, from shipped covariates."""

from __future__ import annotations

import functools
import importlib.resources
import io

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._compile import jit
from .._data import CausalData

CONTINUOUS = ("bw", "b.head", "preterm", "birth.o", "nnhealth", "momage")
BINARY = (
    "sex", "twin", "b.marr", "mom.lths", "mom.hs", "mom.scoll", "cig", "first", "booze", "drugs",
    "work.dur", "prenatal", "site1", "site2", "site3", "site4", "site5", "site6", "site7",
)
COVARIATES = CONTINUOUS + BINARY
"""The 25 covariates of the usual benchmark, continuous ones first (standardised)."""


@functools.cache
def _covariates() -> tuple[np.ndarray, np.ndarray]:
    text = (
        importlib.resources.files("jaxcausal.datasets")
        .joinpath("data", "ihdp_covariates.csv")
        .read_text()
    )
    df = pd.read_csv(io.StringIO(text))
    # Hill (2011) removes a non-random part of the treated group (children of non-white mothers),
    # which leaves 747 units of which 139 treated and creates imbalance between the groups.
    df = df[~((df["treat"] == 1) & (df["momwhite"] == 0))]
    x = df[list(COVARIATES)].to_numpy(dtype=float)
    cont = x[:, : len(CONTINUOUS)]
    x[:, : len(CONTINUOUS)] = (cont - cont.mean(0)) / cont.std(0)
    x.setflags(write=False)
    t = df["treat"].to_numpy(dtype=float)
    t.setflags(write=False)
    return x, t


class IHDP(eqx.Module):
    """One IHDP replication split into training and test units.

    - `train`, `test`: [`jaxcausal.CausalData`][] with the factual outcome, the treatment and the
      25 covariates (`x_names` are the original column names).
    - `mu0_train`, `mu1_train`, `mu0_test`, `mu1_test`: noiseless potential outcomes.
    - `ycf_train`, `ycf_test`: the noisy counterfactual outcomes.
    - `is_test`: `(747,)` test-membership mask over all units in the original order.

    `tau_train`/`tau_test` are the true individual effects `mu1 - mu0`.
    """

    train: CausalData
    test: CausalData
    mu0_train: Float[Array, " n_train"]
    mu1_train: Float[Array, " n_train"]
    mu0_test: Float[Array, " n_test"]
    mu1_test: Float[Array, " n_test"]
    ycf_train: Float[Array, " n_train"]
    ycf_test: Float[Array, " n_test"]
    is_test: Int[Array, " n"]

    @property
    def tau_train(self) -> Float[Array, " n_train"]:
        return self.mu1_train - self.mu0_train

    @property
    def tau_test(self) -> Float[Array, " n_test"]:
        return self.mu1_test - self.mu0_test


def ihdp_surface_b(
    x: Float[Array, "n p"], t: Float[Array, " n"], *, key: PRNGKeyArray
) -> tuple[Array, Array, Array, Array]:
    r"""Response surface B of Hill (2011) on covariates `x` with treatment `t`.

    $\beta_j$ is drawn from $\{0, .1, .2, .3, .4\}$ with probabilities $(.6, .1, .1, .1, .1)$;
    $\mu_0 = \exp((X + W)\beta)$ with the offset $W = 0.5$; $\mu_1 = X\beta - \omega$ with $\omega$
    chosen so the average effect on the treated is exactly 4; $Y(t) \sim N(\mu_t, 1)$.

    **Returns:** `(mu0, mu1, y0, y1)`, each `(n,)`.
    """
    k_beta, k0, k1 = jr.split(key, 3)
    beta = jr.choice(
        k_beta, jnp.array([0.0, 0.1, 0.2, 0.3, 0.4]), (x.shape[1],),
        p=jnp.array([0.6, 0.1, 0.1, 0.1, 0.1]),
    )
    mu0 = jnp.exp((x + 0.5) @ beta)
    lin = x @ beta
    omega = jnp.sum(t * (lin - mu0)) / jnp.sum(t) - 4.0
    mu1 = lin - omega
    y0 = mu0 + jr.normal(k0, mu0.shape)
    y1 = mu1 + jr.normal(k1, mu1.shape)
    return mu0, mu1, y0, y1


def ihdp(replication: int | Int[Array, ""], *, key: PRNGKeyArray, n_test: int = 75) -> IHDP:
    r"""One replication of the IHDP benchmark with response surface B (Hill 2011).

    The 747 units (139 treated) and 25 covariates of the usual benchmark are built from the shipped
    covariate file (see `jaxcausal/datasets/data/README.md`): treated children of non-white mothers
    are removed, the six continuous covariates are standardised, `site8` and the mother's race are
    left out. Each replication draws new coefficients, noise and a new train/test split from
    `jr.fold_in(key, replication)`, so replication `r` is the same for the same `key`. The test part
    holds `n_test` units (75, i.e. 10%, as in Shalit et al. 2017).

    Fresh draws are more heterogeneous than the NPCI replication files used in most papers, so
    published errors compare only roughly.

    **Arguments:**

    - `replication`: replication index (a Python or JAX integer; the function can be `vmap`ped).
    - `key`: base key.
    - `n_test`: number of test units.

    **Returns:** an [`jaxcausal.datasets.IHDP`][].

    !!! Example

        ```python
        rep = jc.datasets.ihdp(0, key=jr.key(0))
        fitted = jc.te.TARNet().fit(rep.train, key=jr.key(1))
        jc.metrics.pehe(rep.tau_test, fitted.effect(rep.test.x))
        ```
    """
    x_np, t_np = _covariates()
    n = x_np.shape[0]
    if not 0 < n_test < n:
        raise ValueError(f"n_test must be between 1 and {n - 1}, got {n_test}")
    a = _ihdp_arrays(jnp.asarray(x_np), jnp.asarray(t_np), key, replication, n_test)

    def part(prefix):
        return CausalData(a[f"y_{prefix}"], a[f"t_{prefix}"], a[f"x_{prefix}"], y_name="y",
                          t_names=("treat",), x_names=COVARIATES)

    return IHDP(
        train=part("train"), test=part("test"),
        mu0_train=a["mu0_train"], mu1_train=a["mu1_train"],
        mu0_test=a["mu0_test"], mu1_test=a["mu1_test"],
        ycf_train=a["ycf_train"], ycf_test=a["ycf_test"], is_test=a["is_test"],
    )


@functools.partial(jit, static_argnames="n_test")
def _ihdp_arrays(x, t, key, replication, n_test: int) -> dict[str, Array]:
    """The arrays of one replication, as one compiled program (eagerly, its two dozen small
    operations each compiled on their own: most of a one-off script's first call)."""
    n = x.shape[0]
    k_surface, k_split = jr.split(jr.fold_in(key, replication))
    mu0, mu1, y0, y1 = ihdp_surface_b(x, t, key=k_surface)
    y = jnp.where(t == 1, y1, y0)
    ycf = jnp.where(t == 1, y0, y1)
    perm = jr.permutation(k_split, n)
    rows = {"train": jnp.sort(perm[n_test:]), "test": jnp.sort(perm[:n_test])}
    out = {"is_test": jnp.zeros((n,), int).at[rows["test"]].set(1)}
    for name, r in rows.items():
        out.update({f"y_{name}": y[r], f"t_{name}": t[r], f"x_{name}": x[r],
                    f"mu0_{name}": mu0[r], f"mu1_{name}": mu1[r], f"ycf_{name}": ycf[r]})
    return out


def ihdp_replications(n: int, *, key: PRNGKeyArray, n_test: int = 75) -> IHDP:
    """Replications `0..n-1` of [`jaxcausal.datasets.ihdp`][] stacked on a leading axis (one
    `vmap`), ready for batched training with `jaxcausal.te.fit_batch`."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return jax.vmap(lambda r: ihdp(r, key=key, n_test=n_test))(jnp.arange(n))
