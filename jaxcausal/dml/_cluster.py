r"""Cluster-robust DML (one- and two-way clustering), as DoubleML 0.11 with clustered data.

**Folds.** Each cluster variable's clusters are split into `n_folds` folds (a random balanced
split of the clusters, drawn from a key). With one cluster variable a row's fold is its cluster's
fold. With two, the cross-fitting cells are the pairs $(k, l)$ of a fold $k$ of the first and a
fold $l$ of the second variable ($K^2$ cells): cell $(k, l)$ predicts the rows whose clusters lie
in $I_k \times J_l$ and trains on the rows whose clusters lie in neither $I_k$ nor $J_l$
(Chiang, Kato, Ma and Sasaki 2022). DoubleML builds the same product of per-variable splits.

**Estimate.** With $s_m = 1 / \prod_d |I^d_m|$ for cell $m$ (the number of clusters of each
variable in the cell's test fold), $\hat\theta = -\sum_m s_m \sum_{i \in m} \psi_{b,i} /
\sum_m s_m \sum_{i \in m} \psi_{a,i}$.

**Variance.** One-way: $\hat\sigma^2 = \hat\Gamma / (G \hat J^2)$ with
$\hat J = K^{-1}\sum_k |I_k|^{-1} \sum_{i \in k} \psi_{a,i}$ and
$\hat\Gamma = K^{-1}\sum_k |I_k|^{-1} \sum_{c \in I_k} (\sum_{i \in c} \psi_i)^2$, $G$ the number of
clusters. Two-way: $\hat J = K^{-2}\sum_{k,l} (|I_k||J_l|)^{-1}\sum_{i \in (k,l)} \psi_{a,i}$,
$\hat\Gamma = K^{-2}\sum_{k,l} c_{kl} \bigl[\sum_{g \in I_k} (\sum_{i: g_i = g, h_i \in J_l}
\psi_i)^2 + \sum_{h \in J_l} (\sum_{i: h_i = h, g_i \in I_k}\psi_i)^2\bigr]$ with
$c_{kl} = \min(|I_k|, |J_l|) / (|I_k||J_l|)^2$, and $G = \min(G_1, G_2)$. These are DoubleML's
`_var_est` term for term; $\hat\Gamma$ is computed as a bilinear form so that the sensitivity
analysis can reuse it.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._checks import is_concrete


class ClusterFolds(eqx.Module):
    """The cluster structure of a fit: cluster codes and the fold of every row per cluster
    variable.

    - `codes`: cluster codes `(c, n_obs)` in `[0, n_obs)` (`c` = 1 or 2 cluster variables).
    - `folds`: the fold of each row in each cluster variable `(n_rep, c, n_obs)` (constant within
      a cluster).
    - `n_folds`: folds per cluster variable; there are `n_folds ** c` cross-fitting cells.
    """

    codes: Int[Array, "c n"]
    folds: Int[Array, "n_rep c n"]
    n_folds: int = eqx.field(static=True)

    @property
    def n_ways(self) -> int:
        return self.codes.shape[0]

    @property
    def cells(self) -> Int[Array, "n_rep n"]:
        """The cross-fitting cell of every row: `sum_d folds[d] * n_folds ** (c - 1 - d)`
        (DoubleML's order of the Cartesian product)."""
        cell = self.folds[:, 0]
        for d in range(1, self.n_ways):
            cell = cell * self.n_folds + self.folds[:, d]
        return cell


def _present(codes: Int[Array, " n"]) -> Array:
    n = codes.shape[0]
    return jax.ops.segment_sum(jnp.ones(n, jnp.int32), codes, num_segments=n) > 0


def draw_cluster_folds(key: PRNGKeyArray, codes: Int[Array, "c n"], n_folds: int, n_rep: int):
    """Fold ids `(n_rep, c, n)`: per repetition and cluster variable a random balanced split of
    the clusters into `n_folds` folds (fold sizes in clusters differ by at most one)."""
    n_ways, n = codes.shape

    def one(k, cd):
        present = _present(cd)
        # integer sort keys (a random permutation), so the folds do not depend on the x64 mode
        u = jnp.where(present, jr.permutation(k, n), n)
        rank = jnp.argsort(jnp.argsort(u, stable=True), stable=True)
        return (rank % n_folds)[cd]

    keys = jr.split(key, n_rep * n_ways).reshape(n_rep, n_ways)
    return jax.vmap(lambda kr: jax.vmap(one)(kr, codes))(keys)


def check_cluster_folds(folds: Any, codes: Array, n_folds: int, n_rep: int) -> Array:
    """Validates user-given cluster folds: `(n_rep, c, n)` (or `(n_rep, n)`/`(n,)` for one
    cluster variable), ids in `[0, n_folds)`, constant within every cluster, no empty fold."""
    n_ways, n = codes.shape
    arr = jnp.asarray(folds)
    if arr.ndim == 1 and n_ways == 1:
        arr = arr[None, None]
    elif arr.ndim == 2 and n_ways == 1:
        arr = arr[:, None]
    if arr.shape != (n_rep, n_ways, n):
        raise ValueError(
            f"folds for data with {n_ways} cluster variable(s) must have shape (n_rep, c, n_obs) "
            f"= ({n_rep}, {n_ways}, {n}) (the fold of each row per cluster variable); got "
            f"{tuple(arr.shape)}"
        )
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"folds must hold integer fold ids; got dtype {arr.dtype}")
    if not is_concrete(arr) or not is_concrete(codes):
        return arr
    host, cd = np.asarray(arr), np.asarray(codes)
    if host.min() < 0 or host.max() >= n_folds:
        raise ValueError(f"folds must hold ids in [0, n_folds) = [0, {n_folds})")
    for r in range(n_rep):
        for d in range(n_ways):
            lowest, highest = np.full(n, n_folds), np.full(n, -1)
            np.minimum.at(lowest, cd[d], host[r, d])
            np.maximum.at(highest, cd[d], host[r, d])
            if (lowest != highest)[np.unique(cd[d])].any():
                raise ValueError(
                    f"folds split a cluster of cluster variable {d} across folds (repetition "
                    f"{r}); with clustered data every cluster must lie in one fold"
                )
            if np.unique(host[r, d]).size < n_folds:
                raise ValueError(f"a fold of cluster variable {d} in repetition {r} is empty")
    return arr


def check_n_clusters(codes: Array, n_folds: int, names: tuple[str, ...]) -> None:
    if not is_concrete(codes):
        return
    for d, name in enumerate(names):
        g = np.unique(np.asarray(codes[d])).size
        if g < n_folds:
            raise ValueError(
                f"cluster variable '{name}' has {g} clusters but n_folds={n_folds}; every fold "
                "needs at least one cluster"
            )


def masks(info: ClusterFolds) -> tuple[Array, Array]:
    """Test and training masks `(n_rep, n_cells, n)` of the cross-fitting cells."""
    n_cells = info.n_folds**info.n_ways
    ids = jnp.arange(n_cells)
    dtype = jnp.result_type(float)
    test = (info.cells[:, None, :] == ids[None, :, None]).astype(dtype)
    train = jnp.ones_like(test)
    for d in range(info.n_ways):
        fold_of_cell = (ids // info.n_folds ** (info.n_ways - 1 - d)) % info.n_folds
        train = train * (info.folds[:, d][:, None, :] != fold_of_cell[None, :, None])
    return test, train


def _fold_sizes(info: ClusterFolds) -> Int[Array, "n_rep c n"]:
    """For every row and cluster variable: the number of clusters in the row's fold."""
    n = info.codes.shape[1]
    ids = jnp.arange(info.n_folds)

    def one(fold, codes):
        present = _present(codes)
        cluster_fold = jax.ops.segment_max(fold, codes, num_segments=n)
        sizes = jnp.sum(present[None] & (cluster_fold[None] == ids[:, None]), axis=1)
        return sizes[fold]

    return jax.vmap(lambda f: jax.vmap(one)(f, info.codes))(info.folds)


def n_clusters(info: ClusterFolds) -> Array:
    """The variance scaling: the number of clusters (two-way: the smaller number)."""
    return jnp.min(jax.vmap(lambda c: jnp.sum(_present(c)))(info.codes))


def row_weights(info: ClusterFolds) -> Float[Array, "n_rep n"]:
    """$1 / \\prod_d |I^d|$ for every row: DoubleML's weight of the row's cell."""
    return 1.0 / jnp.prod(_fold_sizes(info), axis=1).astype(jnp.result_type(float))


def gamma(a: Float[Array, "k n_rep n"], b: Float[Array, "k n_rep n"], info: ClusterFolds) -> Array:
    """The bilinear cluster form $\\hat\\Gamma(a, b)$ per treatment and repetition `(k, n_rep)`."""
    n = info.codes.shape[1]
    k_f = info.n_folds
    sizes = _fold_sizes(info).astype(a.dtype)

    def seg(v, g, num):  # v (k, n), group ids (n,) -> per-row sums of the row's group
        return jax.vmap(lambda w: jax.ops.segment_sum(w, g, num_segments=num)[g])(v)

    def per_rep(a_r, b_r, folds_r, sizes_r):  # a_r (k, n)
        if info.n_ways == 1:
            sums = seg(b_r, info.codes[0], n)
            return jnp.sum(a_r * sums / sizes_r[0][None], axis=-1) / k_f
        g1, g2 = info.codes
        f1, f2 = folds_r
        const = jnp.minimum(sizes_r[0], sizes_r[1]) / (sizes_r[0] * sizes_r[1]) ** 2
        s_a = seg(b_r, g1 * k_f + f2, n * k_f)
        s_b = seg(b_r, g2 * k_f + f1, n * k_f)
        return jnp.sum(const[None] * a_r * (s_a + s_b), axis=-1) / k_f**2

    out = jax.vmap(per_rep, in_axes=(1, 1, 0, 0))(a, b, info.folds, sizes)
    return out.T


def j_hat(psi_a: Float[Array, "k n_rep n"], info: ClusterFolds) -> Array:
    """DoubleML's cluster estimate of $J$ `(k, n_rep)`."""
    w = row_weights(info).astype(psi_a.dtype)
    return jnp.sum(psi_a * w[None], axis=-1) / info.n_folds**info.n_ways


def solve_cluster_score(psi_a: Array, psi_b: Array, info: ClusterFolds):
    """The cluster-weighted DML2 estimate, its cluster-robust standard error and the score."""
    w = row_weights(info).astype(psi_a.dtype)[None]
    theta = -jnp.sum(w * psi_b, axis=-1) / jnp.sum(w * psi_a, axis=-1)
    psi = psi_a * theta[..., None] + psi_b
    var = gamma(psi, psi, info) / (n_clusters(info) * j_hat(psi_a, info) ** 2)
    return theta, jnp.sqrt(var), psi


def cluster_folds(key: PRNGKeyArray, codes: Array, n_folds: int, n_rep: int, folds) -> ClusterFolds:
    """The cluster structure of a fit: the given per-variable folds or folds drawn from `key`."""
    if folds is None:
        folds = draw_cluster_folds(key, codes, n_folds, n_rep)
    return ClusterFolds(codes=codes, folds=folds, n_folds=n_folds)


def host_forms(pairs, info: ClusterFolds) -> list[np.ndarray]:
    """$\\hat\\Gamma(u, v) / (G \\hat J^2)$ with unit score derivative, on the host in float64,
    for each `(u, v)` in `pairs` (arrays `(k, n_rep, n)`): the cluster variance of a score shifted
    by the sensitivity bound (what DoubleML's `_var_est` computes for it), without compiling."""
    codes, folds, k_f = np.asarray(info.codes), np.asarray(info.folds), info.n_folds
    n_ways, n = codes.shape
    n_rep = folds.shape[0]
    sizes = np.empty(folds.shape)
    for r in range(n_rep):
        for w in range(n_ways):
            cluster_fold = np.full(n, -1)
            cluster_fold[codes[w]] = folds[r, w]
            present = np.bincount(codes[w], minlength=n) > 0
            sizes[r, w] = np.bincount(cluster_fold[present], minlength=k_f)[folds[r, w]]
    n_clusters = min(np.unique(c).size for c in codes)
    j_hat = np.sum(1.0 / np.prod(sizes, axis=1), axis=-1) / k_f**n_ways  # (n_rep,)
    out = []
    for u, v in pairs:
        g = np.empty(u.shape[:2])
        for r in range(n_rep):
            for j in range(u.shape[0]):
                if n_ways == 1:
                    sums = np.bincount(codes[0], weights=v[j, r], minlength=n)[codes[0]]
                    g[j, r] = np.sum(u[j, r] * sums / sizes[r, 0]) / k_f
                    continue
                s1, s2 = sizes[r]
                const = np.minimum(s1, s2) / (s1 * s2) ** 2
                total = 0.0
                for grp in (codes[0] * k_f + folds[r, 1], codes[1] * k_f + folds[r, 0]):
                    sums = np.bincount(grp, weights=v[j, r], minlength=n * k_f)[grp]
                    total += np.sum(const * u[j, r] * sums)
                g[j, r] = total / k_f**2
        out.append(g / (n_clusters * j_hat[None] ** 2))
    return out
