"""The one training loop of jaxcausal: a compiled `lax.while_loop` over Optax steps.

Every model of the package trains here. Rows are weighted (a cross-fitting fold is a 0/1 mask over
all rows, so every fold has the same shapes), minibatches are drawn from the key, an optional
validation mask drives early stopping that keeps the best parameters, and an ensemble (a leading
axis of models, weight masks and keys) trains in one compiled call with `fit_ensemble`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from .._checks import check_weights, is_concrete
from .._compile import filter_jit
from ._progress import progress_bar, report_progress

LossFn = Callable[..., Float[Array, ""]]
"""`loss_fn(model, data, weights, *, key) -> scalar`: a weighted mean over the rows of `data`."""


class TrainResult(eqx.Module):
    """What a training run returns (for an ensemble every field has a leading member axis).

    - `model`: the best model by validation loss when a validation mask was given, else the last.
    - `train_loss`: `(n_chunks * eval_every,)` minibatch training loss per step, where
      `n_chunks = ceil(max_steps / eval_every)`; NaN after the run stopped.
    - `val_loss`: `(n_chunks,)` validation loss after each chunk of `eval_every` steps; NaN when
      there is no validation mask or the run stopped before.
    - `best_step`: number of updates after which `model` was taken.
    - `n_steps`: number of updates made.
    - `stopped_early`: whether early stopping ended the run before `max_steps`.
    """

    model: PyTree
    train_loss: Float[Array, " max_steps"]
    val_loss: Float[Array, " n_evals"]
    best_step: Int[Array, ""]
    n_steps: Int[Array, ""]
    stopped_early: Bool[Array, ""]


def weighted_mean(values: Float[Array, " n"], weights: Float[Array, " n"]) -> Float[Array, ""]:
    """`sum(w * v) / sum(w)`, safe when every weight is zero (returns 0)."""
    total = jnp.sum(weights)
    return jnp.sum(weights * values) / jnp.where(total > 0, total, 1.0)


def _n_rows(data: PyTree) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data has no array leaves; expected arrays with a leading row axis")
    n = leaves[0].shape[0]
    for leaf in leaves:
        if leaf.ndim == 0 or leaf.shape[0] != n:
            raise ValueError(
                "every leaf of data must have the same leading (row) axis; got shapes "
                f"{[tuple(x.shape) for x in leaves]}"
            )
    return n


def _sample_rows(key: PRNGKeyArray, weights: Array, batch_size: int) -> Int[Array, " batch"]:
    """Draws `batch_size` row indices with replacement, with probability proportional to weight."""
    cdf = jnp.cumsum(weights)
    u = jr.uniform(key, (batch_size,), dtype=cdf.dtype) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), weights.shape[0] - 1)


class _State(eqx.Module):
    chunk: Int[Array, ""]
    params: PyTree
    opt_state: PyTree
    best_params: PyTree
    best_val: Float[Array, ""]
    best_step: Int[Array, ""]
    bad_evals: Int[Array, ""]
    train_loss: Float[Array, "n_chunks eval_every"]
    val_loss: Float[Array, " n_chunks"]


@eqx.debug.assert_max_traces(max_traces=None)
def _fit_one(
    loss_fn: LossFn,
    model: PyTree,
    data: PyTree,
    optimiser: optax.GradientTransformation,
    key: PRNGKeyArray,
    weights: Array,
    val_weights: Array | None,
    max_steps: int,
    batch_size: int | None,
    eval_every: int,
    patience: int | None,
    progress: bool,
    filter_spec: Any,
    with_step: bool = False,
) -> TrainResult:
    # The loop runs in chunks of `eval_every` steps (a `scan`), with one validation pass after each
    # chunk. Branch-free on purpose: under `vmap` a `lax.cond` with a batched predicate evaluates
    # both branches, which would run the validation pass at every step of every ensemble member.
    n = weights.shape[0]
    params, static = eqx.partition(model, filter_spec)
    full_batch = batch_size is None or batch_size >= n
    n_chunks = -(-max_steps // eval_every)
    has_val = val_weights is not None
    dtype = jnp.result_type(float)

    def call_loss(m, batch, w, k, i):
        if with_step:
            return loss_fn(m, batch, w, key=k, step=i)
        return loss_fn(m, batch, w, key=k)

    def train_loss_of(p, batch, w, k, i):
        return call_loss(eqx.combine(p, static), batch, w, k, i)

    def step(carry, xs):
        k_step, i = xs
        p, opt_state = carry
        k_batch, k_loss = jr.split(k_step)
        if full_batch:
            batch, w = data, weights
        else:
            rows = _sample_rows(k_batch, weights, batch_size)
            batch = jax.tree.map(lambda a: a[rows], data)
            w = jnp.ones((batch_size,), dtype)
        loss, grads = eqx.filter_value_and_grad(train_loss_of)(p, batch, w, k_loss, i)
        updates, opt_state = optimiser.update(grads, opt_state, p)
        return (eqx.apply_updates(p, updates), opt_state), loss

    def body(state: _State) -> _State:
        k_chunk = jr.fold_in(key, state.chunk)
        k_val, *k_steps = jr.split(k_chunk, eval_every + 1)
        steps = state.chunk * eval_every + jnp.arange(eval_every)
        (p, opt_state), losses = jax.lax.scan(
            step, (state.params, state.opt_state), (jnp.stack(k_steps), steps)
        )
        chunk = state.chunk + 1
        done_steps = chunk * eval_every
        if progress:
            report_progress(done_steps, max(1, max_steps // 100))
        if has_val:
            m = eqx.nn.inference_mode(eqx.combine(p, static))
            v = call_loss(m, data, val_weights, k_val, done_steps)
            v = jnp.where(jnp.isfinite(v), v, jnp.inf)
            better = v < state.best_val
        else:
            v, better = jnp.array(jnp.nan, dtype), jnp.array(True)
        return _State(
            chunk=chunk,
            params=p,
            opt_state=opt_state,
            best_params=jax.tree.map(lambda a, b: jnp.where(better, a, b), p, state.best_params),
            best_val=jnp.where(better, v, state.best_val),
            best_step=jnp.where(better, done_steps, state.best_step),
            bad_evals=jnp.where(better, 0, state.bad_evals + 1),
            train_loss=state.train_loss.at[state.chunk].set(losses),
            val_loss=state.val_loss.at[state.chunk].set(v),
        )

    def cond(state: _State) -> Array:
        keep = state.chunk < n_chunks
        if has_val and patience is not None:
            keep = keep & (state.bad_evals < patience)
        return keep

    init = _State(
        chunk=jnp.array(0),
        params=params,
        opt_state=optimiser.init(params),
        best_params=params,
        best_val=jnp.array(jnp.inf, dtype),
        best_step=jnp.array(0),
        bad_evals=jnp.array(0),
        train_loss=jnp.full((n_chunks, eval_every), jnp.nan, dtype),
        val_loss=jnp.full((n_chunks,), jnp.nan, dtype),
    )
    final = jax.lax.while_loop(cond, body, init)
    n_steps = final.chunk * eval_every
    return TrainResult(
        model=eqx.combine(final.best_params, static),
        train_loss=final.train_loss.reshape(-1),
        val_loss=final.val_loss,
        best_step=final.best_step,
        n_steps=n_steps,
        stopped_early=final.chunk < n_chunks,
    )


def _check_args(max_steps, batch_size, eval_every, patience):
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(
            f"batch_size must be at least 1 (or None for full batch), got {batch_size}"
        )
    if eval_every < 1:
        raise ValueError(f"eval_every must be at least 1, got {eval_every}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be at least 1 (or None), got {patience}")


_fit_one_jit = filter_jit(_fit_one)


@filter_jit
def _fit_many(loss_fn, models, data, optimiser, keys, weights, val_weights, *static_args):
    def one(model, key, w, vw):
        return _fit_one(loss_fn, model, data, optimiser, key, w, vw, *static_args)

    return eqx.filter_vmap(one)(models, keys, weights, val_weights)


def run(
    loss_fn: LossFn,
    model: PyTree,
    data: PyTree,
    optimiser: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    weights: Float[Array, " n"],
    val_weights: Float[Array, " n"] | None = None,
    max_steps: int = 1000,
    batch_size: int | None = None,
    eval_every: int = 10,
    patience: int | None = None,
    progress: bool = False,
    filter_spec: Any = eqx.is_inexact_array,
    with_step: bool = False,
) -> TrainResult:
    """The loop of [`jaxcausal.train.fit`][] without its own `jit` or host-side checks.

    For use inside compiled code (a learner's `fit`, a method's estimator) that builds its optimiser
    from traced hyperparameters; `weights` is required and must already be validated.
    `with_step=True` calls `loss_fn(model, data, weights, key=..., step=i)` with the update index
    `i` (a traced integer; the validation pass gets the number of updates done), for schedules
    (temperatures, penalty weights) that change during training.
    """
    _check_args(max_steps, batch_size, eval_every, patience)
    return _fit_one(
        loss_fn,
        model,
        data,
        optimiser,
        key,
        weights,
        val_weights,
        max_steps,
        batch_size,
        eval_every,
        patience,
        progress,
        filter_spec,
        with_step,
    )


def fit(
    loss_fn: LossFn,
    model: PyTree,
    data: PyTree,
    optimiser: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    weights: Float[Array, " n"] | None = None,
    val_weights: Float[Array, " n"] | None = None,
    max_steps: int = 1000,
    batch_size: int | None = None,
    eval_every: int = 10,
    patience: int | None = None,
    progress: bool = False,
    filter_spec: Any = eqx.is_inexact_array,
) -> TrainResult:
    """Trains `model` to minimise `loss_fn` with `optimiser`, in one compiled `lax.while_loop`.

    **Arguments:**

    - `loss_fn`: `loss_fn(model, data, weights, *, key) -> scalar`, the weighted mean loss over the
      rows it is given (use [`jaxcausal.train.weighted_mean`][]). Must be a stable Python object
      (a module-level function): a new closure at every call recompiles.
    - `model`: an Equinox module (any pytree); its inexact arrays are trained (see `filter_spec`).
    - `data`: a pytree of arrays sharing a leading row axis `n`.
    - `optimiser`: an Optax `GradientTransformation`; reuse the same object to avoid recompiling.
    - `key`: draws the minibatches and is passed to `loss_fn` (for dropout or sampling).
    - `weights`: per-row training weights `(n,)` (a fold is a 0/1 mask); default all ones.
    - `val_weights`: per-row validation weights `(n,)`; enables early stopping and keeping the
      best model.
    - `max_steps`: number of optimiser updates at most.
    - `batch_size`: minibatch size; `None` uses all rows every step (full batch). Minibatch rows are
      drawn with replacement with probability proportional to their weight (so the minibatch loss
      is an unbiased estimate of the weighted loss), and `loss_fn` gets unit weights for them.
    - `eval_every`: steps per chunk; the validation loss is evaluated after each chunk, and
      `max_steps` is rounded up to a multiple of it.
    - `patience`: stop after this many evaluations without improvement (`None`: never stop early).
    - `progress`: show a tqdm progress bar fed by a host callback (does not break `jit`).
    - `filter_spec`: which leaves of `model` are trained (Equinox filter; default inexact arrays).

    **Returns:** a [`jaxcausal.train.TrainResult`][].

    A second call with the same shapes, `loss_fn`, `optimiser` and settings does not recompile.
    """
    _check_args(max_steps, batch_size, eval_every, patience)
    n = _n_rows(data)
    weights = jnp.ones((n,)) if weights is None else check_weights(weights, n, "weights")
    if val_weights is not None:
        val_weights = check_weights(val_weights, n, "val_weights")
    with progress_bar(max_steps, progress):
        result = _fit_one_jit(
            loss_fn,
            model,
            data,
            optimiser,
            key,
            weights,
            val_weights,
            max_steps,
            batch_size,
            eval_every,
            patience,
            progress,
            filter_spec,
        )
        if progress:
            jax.block_until_ready(result)
    return result


def fit_ensemble(
    loss_fn: LossFn,
    models: PyTree,
    data: PyTree,
    optimiser: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    weights: Float[Array, "members n"],
    val_weights: Float[Array, "members n"] | None = None,
    max_steps: int = 1000,
    batch_size: int | None = None,
    eval_every: int = 10,
    patience: int | None = None,
    progress: bool = False,
    filter_spec: Any = eqx.is_inexact_array,
) -> TrainResult:
    """Trains an ensemble in one compiled call: member `e` is `fit(..., model=models[e],
    key=split(key)[e], weights=weights[e], val_weights=val_weights[e])`.

    `models` carries a leading member axis on its arrays (build it with
    `eqx.filter_vmap(make_model)(jr.split(k, members))`); `data` is shared by all members. Every
    field of the returned [`jaxcausal.train.TrainResult`][] has the leading member axis. Members
    stop early independently (a stopped member is frozen while the others go on).
    """
    _check_args(max_steps, batch_size, eval_every, patience)
    n = _n_rows(data)
    weights = jnp.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != n:
        raise ValueError(f"weights must have shape (members, {n}); got {tuple(weights.shape)}")
    members = weights.shape[0]
    for leaf in jax.tree.leaves(eqx.filter(models, eqx.is_array)):
        if leaf.ndim == 0 or leaf.shape[0] != members:
            raise ValueError(
                f"models must carry a leading member axis of size {members} (one per row of "
                f"weights); found an array leaf of shape {tuple(leaf.shape)}"
            )
    if is_concrete(weights):
        # One host transfer for all members; the first bad member's check raises, naming it.
        host = np.asarray(weights)
        bad = ~np.isfinite(host).all(axis=1) | (host < 0).any(axis=1) | ~(host > 0).any(axis=1)
        if bad.any():
            e = int(np.argmax(bad))
            check_weights(weights[e], n, f"weights[{e}]")
    if val_weights is not None:
        val_weights = jnp.asarray(val_weights)
        if val_weights.shape != weights.shape:
            raise ValueError(
                f"val_weights must have the shape of weights {tuple(weights.shape)}; "
                f"got {tuple(val_weights.shape)}"
            )
    keys = jr.split(key, members)
    with progress_bar(max_steps, progress):
        result = _fit_many(
            loss_fn,
            models,
            data,
            optimiser,
            keys,
            weights,
            val_weights,
            max_steps,
            batch_size,
            eval_every,
            patience,
            progress,
            filter_spec,
        )
        if progress:
            jax.block_until_ready(result)
    return result


def count_traces() -> int:
    """How many times the inner training function has been traced (for no-recompilation tests)."""
    return eqx.debug.get_num_traces(_fit_one)
