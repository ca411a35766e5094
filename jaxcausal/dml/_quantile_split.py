"""Sample splits of the quantile models: stratified folds, and the split of every training fold
into a half for a preliminary estimate and a half for the outcome learner.

The inner split is an int array `(n_rep, n_folds, n_obs)` with, for fold `f` of repetition `r`:
`-1` on the rows the fold predicts (outside its training rows), `0 ... n_folds - 1` on the first
half of the training rows (the id is the row's fold in the preliminary cross-fit of the
propensity), and `n_folds` on the second half (where the outcome learner is fitted).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray


def _rank_within(key: PRNGKeyArray, strata: Int[Array, " n"], rows: Array, n_strata: int):
    """A random rank of each selected row among the selected rows of its stratum, and the
    number of selected rows per stratum."""
    # random bits rather than floats: the same split in float32 and float64 runs
    bits = jr.bits(key, strata.shape, dtype=jnp.uint32)
    group = jnp.where(rows, strata, n_strata)  # unselected rows sort last
    order = jnp.lexsort((bits, group))
    position = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0]))
    counts = jnp.array([jnp.sum(rows & (strata == s)) for s in range(n_strata)])
    starts = jnp.cumsum(counts) - counts
    return position - starts[strata], counts


def stratified_folds(
    key: PRNGKeyArray, strata: Int[Array, " n"], n_folds: int, n_rep: int, n_strata: int
) -> Int[Array, "n_rep n"]:
    """Fold ids `(n_rep, n_obs)`: each stratum spread evenly over the folds (as scikit-learn's
    `StratifiedKFold`), the rows of a stratum in random order per repetition."""
    everything = jnp.ones(strata.shape, bool)

    def one(k):
        rank, _ = _rank_within(k, strata, everything, n_strata)
        return rank % n_folds

    return jax.vmap(one)(jr.split(key, n_rep))


def draw_inner_folds(
    key: PRNGKeyArray, folds: Int[Array, "n_rep n"], strata: Int[Array, " n"], n_folds: int,
    n_strata: int,
) -> Int[Array, "n_rep n_folds n"]:
    """Splits every training fold in two halves, stratified: the first half (`floor` of each
    stratum's count over two) with stratified preliminary fold ids, the second half marked
    `n_folds` (see the module docstring)."""
    n_rep = folds.shape[0]
    keys = jr.split(key, n_rep * n_folds).reshape(n_rep, n_folds)

    def one(k, fold_ids, f):
        train = fold_ids != f
        rank, counts = _rank_within(k, strata, train, n_strata)
        first = train & (rank < counts[strata] // 2)
        return jnp.where(first, rank % n_folds, jnp.where(train, n_folds, -1))

    per_fold = jax.vmap(one, in_axes=(0, None, 0))
    return jax.vmap(per_fold, in_axes=(0, 0, None))(keys, folds, jnp.arange(n_folds))


def check_inner_folds(inner, folds, n_folds: int) -> Int[Array, "n_rep n_folds n"]:
    """Validates a user-given inner split against the outer `folds`."""
    arr = jnp.asarray(inner)
    n_rep, n = folds.shape
    if arr.shape != (n_rep, n_folds, n):
        raise ValueError(
            f"inner_folds must have shape (n_rep, n_folds, n_obs) = ({n_rep}, {n_folds}, {n}); "
            f"got {tuple(arr.shape)}"
        )
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"inner_folds must hold integer ids; got dtype {arr.dtype}")
    if isinstance(arr, jax.core.Tracer) or isinstance(folds, jax.core.Tracer):
        return arr
    host, outer = np.asarray(arr), np.asarray(folds)
    test = outer[:, None, :] == np.arange(n_folds)[None, :, None]
    if not np.array_equal(host == -1, test):
        raise ValueError(
            "inner_folds must be -1 exactly on the rows each fold predicts (folds == f) and in "
            f"[0, {n_folds}] on its training rows"
        )
    if host.min() < -1 or host.max() > n_folds:
        raise ValueError(f"inner_folds must hold ids in [-1, {n_folds}]; got {host.min()} to "
                         f"{host.max()}")
    for r in range(n_rep):
        for f in range(n_folds):
            present = np.isin(np.arange(n_folds + 1), host[r, f])
            if not present.all():
                missing = int(np.argmin(present))
                what = ("the second half (id n_folds)" if missing == n_folds
                        else f"preliminary fold {missing}")
                raise ValueError(f"inner_folds of repetition {r}, fold {f} has no rows in {what}")
    return arr


def inner_masks(inner: Int[Array, "n_rep n_folds n"], n_folds: int, dtype):
    """0/1 masks `(first_half, second_half, prelim_train, prelim_test)`; the preliminary masks
    have an extra axis of `n_folds` inner folds: `(n_rep, n_folds, n_folds, n)`."""
    first = (inner >= 0) & (inner < n_folds)
    second = inner == n_folds
    ids = jnp.arange(n_folds)[None, None, :, None]
    prelim_test = inner[:, :, None, :] == ids
    prelim_train = first[:, :, None, :] & ~prelim_test
    cast = lambda m: m.astype(dtype)  # noqa: E731
    return cast(first), cast(second), cast(prelim_train), cast(prelim_test)

