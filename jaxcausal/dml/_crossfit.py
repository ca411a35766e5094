"""Cross-fitting with weight masks: every fold of every repetition fitted in one `vmap`.

A fold split is an int array of fold ids `(n_rep, n_obs)`. Fold `f` of repetition `r` trains on the
rows whose id differs from `f` (a 0/1 weight mask over all rows) and predicts the rows whose id is
`f`, so all fits have the same shapes and run as one batched computation.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Shaped

from ..learners import AbstractLearner
from ..learners._base import fit_status, trusted_inputs


def draw_folds(
    key: PRNGKeyArray,
    n_obs: int,
    n_folds: int,
    n_rep: int,
    *,
    stratify: Shaped[ArrayLike, " n"] | None = None,
) -> Int[Array, "n_rep n"]:
    """Fold ids `(n_rep, n_obs)` drawn from `key`: each repetition is a random balanced split.

    Fold sizes differ by at most one row, as in scikit-learn's `KFold`.

    With `stratify` (an integer label per row, e.g. a binary treatment), every label is spread
    over the folds as evenly as possible, as in scikit-learn's `StratifiedKFold`: its count in
    any two folds differs by at most one (and fold sizes by at most one). Then, whenever a label
    has at least two rows, every training fold (all folds but one) contains it. Rows are ordered
    by label and, within a label, at random (drawn from the key); consecutive rows go to
    consecutive folds, whose ids are permuted at random. Traceable (it runs inside the compiled
    fit, also under `vmap`).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `n_obs`, `n_folds`, `n_rep`: rows, folds and repetitions.
    - `stratify`: optional labels `(n_obs,)` (integers, or 0/1 floats).

    **Returns:** int fold ids `(n_rep, n_obs)` in `[0, n_folds)`.
    """
    if stratify is None:
        base = jnp.arange(n_obs) % n_folds
        return jax.vmap(lambda k: jr.permutation(k, base))(jr.split(key, n_rep))
    labels = jnp.asarray(stratify)
    if labels.shape != (n_obs,):
        raise ValueError(f"stratify must have shape (n_obs,) = ({n_obs},); got {labels.shape}")
    labels = labels.astype(jnp.int32)
    # One draw of random bits for everything (rather than uniforms: the same folds at either
    # precision): a random order within each label, and a random permutation of the fold ids.
    bits = jr.bits(key, (n_rep, n_obs + n_folds), jnp.uint32)

    def one(b):
        order = jnp.lexsort((b[:n_obs], labels))
        rank = jnp.zeros((n_obs,), jnp.int32).at[order].set(jnp.arange(n_obs, dtype=jnp.int32))
        return jnp.argsort(b[n_obs:])[rank % n_folds].astype(jnp.int32)

    return jax.vmap(one)(bits)


def binary_strata(t: Float[Array, "n k"]) -> Int[Array, " n"]:
    """Stratification labels for binary treatments: the code of each row's treatment
    combination when every treatment is 0/1, and one label for all rows otherwise (decided
    inside the compiled fit, so it works on traced data)."""
    binary = jnp.all((t == 0) | (t == 1))
    code = (t > 0.5).astype(jnp.int32) @ (2 ** jnp.arange(t.shape[1], dtype=jnp.int32))
    return jnp.where(binary, code, 0)


def check_folds(folds, n_obs: int, n_folds: int, n_rep: int) -> Int[Array, "n_rep n"]:
    """Validates user-given fold ids: shape `(n_rep, n_obs)`, integers in `[0, n_folds)`, no
    empty fold."""
    if isinstance(folds, jax.Array):
        arr = folds[None, :] if folds.ndim == 1 else folds
    else:  # on the host: eager JAX operations compile on first use
        host = np.asarray(folds)
        arr = jax.device_put(host[None, :] if host.ndim == 1 else host)
    if arr.shape != (n_rep, n_obs):
        raise ValueError(
            f"folds must have shape (n_rep, n_obs) = ({n_rep}, {n_obs}); got {tuple(arr.shape)}"
        )
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"folds must hold integer fold ids; got dtype {arr.dtype}")
    if isinstance(arr, jax.core.Tracer):
        return arr
    host = np.asarray(arr)
    if host.min() < 0 or host.max() >= n_folds:
        raise ValueError(
            f"folds must hold ids in [0, n_folds) = [0, {n_folds}); got values from "
            f"{host.min()} to {host.max()}"
        )
    for r in range(n_rep):
        counts = np.bincount(host[r], minlength=n_folds)
        if (counts == 0).any():
            f = int(np.argmin(counts))
            raise ValueError(f"fold {f} of repetition {r} in folds is empty; every fold needs rows")
        if (counts == n_obs).any():
            raise ValueError(f"repetition {r} of folds puts every row in one fold")
    return arr


def holdout_masks(folds: Int[Array, "n_rep n"], n_folds: int) -> Float[Array, "n_rep n_folds n"]:
    """0/1 masks of the rows each fold predicts (its test rows)."""
    ids = jnp.arange(n_folds)
    return (folds[:, None, :] == ids[None, :, None]).astype(jnp.result_type(float))


def crossfit(
    learner: AbstractLearner,
    x: Float[Array, "k n p"],
    y: Float[Array, "k n_rep n"],
    train: Float[Array, "k n_rep n_folds n"],
    test: Float[Array, "n_rep n_folds n"],
    key: PRNGKeyArray,
    *,
    with_status: bool = False,
    key_reps: int | None = None,
):
    """Out-of-fold predictions of `learner` for every treatment, repetition and fold.

    All `k * n_rep * n_folds` fits are one `eqx.filter_vmap` of `learner.fit` over keys, targets
    and training masks (nested in a `vmap` over the treatments' covariate matrices); each fitted
    model predicts every row, and the test masks pick the out-of-fold predictions. The inputs
    are trusted (see [`jaxcausal.learners._base.trusted_inputs`][]): no per-fit finiteness
    checks run inside the compiled fit.

    **Arguments:**

    - `learner`: the nuisance learner.
    - `x`: covariates per treatment `(k, n, p)` (for several treatments the other treatments join
      the covariates).
    - `y`: targets per treatment and repetition `(k, n_rep, n)`.
    - `train`: training weights `(k, n_rep, n_folds, n)`.
    - `test`: test masks `(n_rep, n_folds, n)`.
    - `key`: key split into one key per fit.
    - `with_status`: also return the learners' fit status.
    - `key_reps`: draw keys for this many repetitions and cycle them (repetition `r` uses the
      keys of `r % key_reps`): a model that stacks several masks of one learner as extra
      repetitions keeps the same key per fold for all of them (common random numbers).

    **Returns:** out-of-fold predictions `(k, n_rep, n)`; with `with_status`, also a dict of the
    status fields the fitted predictors carry (see [`jaxcausal.learners._base.fit_status`][]),
    combined over the folds to `(k, n_rep)`: `converged` and `resolved` (all folds), `cond`
    (the largest).
    """
    k, n_rep, n_folds, n = train.shape
    members = n_rep * n_folds
    key_reps = n_rep if key_reps is None else key_reps
    keys = jr.split(key, k * key_reps * n_folds).reshape(k, key_reps, n_folds)
    keys = jnp.tile(keys, (1, n_rep // key_reps, 1)).reshape(k, members)
    targets = jnp.broadcast_to(y[:, :, None, :], (k, n_rep, n_folds, n)).reshape(k, members, n)

    def one(xj, yj, w, kj):
        pred = learner.fit(xj, yj, key=kj, weights=w)
        return pred(xj), fit_status(pred)

    per_treatment = eqx.filter_vmap(one, in_axes=(None, 0, 0, 0))
    with trusted_inputs():
        if k == 1:
            # One covariate matrix, shared by every fit: left unbatched, its products with the
            # weights stay matrix products (batching it over a size-1 axis made the fits ~4x
            # slower on a CPU).
            preds, status = per_treatment(x[0], targets[0], train.reshape(members, n), keys[0])
            preds, status = jax.tree.map(lambda a: a[None], (preds, status))
        else:
            preds, status = eqx.filter_vmap(per_treatment)(
                x, targets, train.reshape(k, members, n), keys
            )
    out = jnp.sum(preds.reshape(k, n_rep, n_folds, n) * test[None], axis=2)
    if not with_status:
        return out
    combined = {}
    for name, value in status.items():
        value = value.reshape(k, n_rep, n_folds)
        combined[name] = jnp.max(value, axis=-1) if name == "cond" else jnp.all(value, axis=-1)
    return out, combined


def covariates_per_treatment(
    x: Float[Array, "n p"], t: Float[Array, "n k"]
) -> Float[Array, "k n q"]:
    """For treatment `j`, the covariates followed by the other treatments (DoubleML's rule)."""
    k = t.shape[1]
    if k == 1:
        return x[None]
    blocks = []
    for j in range(k):
        others = [i for i in range(k) if i != j]
        blocks.append(jnp.concatenate([x, t[:, others]], axis=1))
    return jnp.stack(blocks)


def nuisance_loss(
    target: Float[Array, "k n"] | Float[Array, "k n_rep n"],
    pred: Float[Array, "k n_rep n"],
    rows: Float[Array, "k n"] | None,
    classifier: bool,
) -> Float[Array, "k n_rep"]:
    """Out-of-fold loss per treatment and repetition: RMSE for regressions, log-loss for
    classifiers, over `rows` (all rows when `None`)."""
    if target.ndim == 2:
        target = target[:, None, :]
    target = jnp.broadcast_to(target, pred.shape)
    if rows is None:
        w = jnp.ones(pred.shape, pred.dtype)
    else:
        w = jnp.broadcast_to(rows[:, None], pred.shape)
    if classifier:
        eps = jnp.finfo(pred.dtype).eps
        p = jnp.clip(pred, eps, 1.0 - eps)
        values = -(target * jnp.log(p) + (1.0 - target) * jnp.log1p(-p))
        return jnp.sum(w * values, axis=-1) / jnp.sum(w, axis=-1)
    return jnp.sqrt(jnp.sum(w * (target - pred) ** 2, axis=-1) / jnp.sum(w, axis=-1))
