"""The learner contract: a configuration Module whose `fit` returns a fitted predictor Module."""

from __future__ import annotations

import abc
import contextlib
import functools
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import (
    as_float_array,
    check_binary,
    check_finite,
    check_ndim,
    check_weights,
    is_concrete,
)


class AbstractPredictor(eqx.Module):
    """A fitted nuisance model: called on a batch `(n, p)`, returns predictions `(n,)`.

    Classifiers return the probability of the class 1.

    A predictor may also report how its fit went, through fields that the DML models collect
    over all folds (see [`fit_status`][]): `converged` (a bool: an iterative solver met its
    tolerance before its iteration limit) and `cond` with `resolved` (the condition number of
    the standardised problem, and whether the working precision resolves it; see
    [`jaxcausal.learners.Linear`][] for the rule).
    """

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        """Predictions (or probabilities of class 1) for the rows of `x`."""


class AbstractLearner(eqx.Module):
    """Configuration of a nuisance learner.

    `fit(x, y, *, key, weights=None)` returns an [`jaxcausal.learners.AbstractPredictor`][]. It is a
    pure function of its inputs, so it can be `vmap`ped over keys and weight masks (one model per
    fold in one compiled call) and over array-valued hyperparameters. Rows with weight 0 do not
    influence the fit: a cross-fitting fold is a 0/1 mask over all rows.
    """

    @property
    def is_classifier(self) -> bool:
        """Whether the learner fits binary targets and predicts probabilities."""
        return False

    @property
    def compiles_light(self) -> bool:
        """Whether the learner's fit is cheap to run (closed form or a few Newton or
        coordinate-descent sweeps), so that a DML fit whose learners all say so is compiled for
        compile speed rather than run speed (see `jaxcausal/dml/_base.py`)."""
        return False

    @abc.abstractmethod
    def fit(
        self,
        x: Float[Array, "n p"],
        y: Float[Array, " n"],
        *,
        key: PRNGKeyArray,
        weights: Float[Array, " n"] | None = None,
    ) -> AbstractPredictor:
        """Fits the learner to the rows with positive weight; returns the fitted predictor."""


def full_precision(fn):
    """Traces `fn` with its float32 matrix products at full float32 precision.

    JAX's default precision for float32 products is TF32 (about 1e-3 relative) on recent NVIDIA
    GPUs and bfloat16 passes on TPUs; the closed-form and Newton learners need float32 itself to
    give the float64 answer on raw data. No effect on CPUs or in float64.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapper


# [inputs finite, targets checked]: see `trusted_inputs`.
_TRUSTED = [False, False]


@contextlib.contextmanager
def trusted_inputs(*, targets: bool = False):
    """Inside this block, `fit` on traced arrays skips the finiteness checks of `x`, `y` and the
    weights (each an `eqx.error_if`: a host callback at run time, and a program JAX's persistent
    cache will not store), and with `targets=True` also the binary check of a classifier's
    target. Cross-fitting passes data that [`jaxcausal.CausalData`][] has checked and 0/1 fold
    masks; a DML fit whose data were checked eagerly also vouches for its targets. Nested blocks
    only add trust."""
    before = list(_TRUSTED)
    _TRUSTED[0] = True
    _TRUSTED[1] = _TRUSTED[1] or targets
    try:
        yield
    finally:
        _TRUSTED[:] = before


def targets_trusted() -> bool:
    """Whether the enclosing `trusted_inputs(targets=True)` vouches for binary targets."""
    return _TRUSTED[1]


def prepare_xyw(
    x: Any, y: Any, weights: Any, *, binary: bool = False, who: str = "learner"
) -> tuple[Array, Array, Array]:
    """Validates and converts the arguments of `fit` (shapes, finiteness, binary targets)."""
    x = as_float_array(x, "x")
    y = as_float_array(y, "y")
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, (2,), "x", "a matrix of shape (n_obs, n_features)")
    check_ndim(y, (1,), "y", "a vector of shape (n_obs,)")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    n = y.shape[0]
    trusted = _TRUSTED[0] and not is_concrete(x)
    if weights is None:
        w = jnp.ones((n,), x.dtype)
    elif trusted:
        w = as_float_array(weights, "weights")
        if w.shape != (n,):
            raise ValueError(
                f"weights must have shape ({n},) (one weight per row); got {tuple(w.shape)}"
            )
    else:
        w = check_weights(weights, n)
    if not trusted:
        x = check_finite(x, "x")
        y = check_finite(y, "y")
    if binary and not (_TRUSTED[1] and not is_concrete(y)):
        y = check_binary(y, "y", f"for the classifier {who}")
    return x, y, w


# A column whose weighted standard deviation is below this many units in the last place of its
# magnitude holds no information the working precision can resolve: it is treated as constant.
CONSTANT_ULPS = 10.0


def _weighted_mean(x: Array, w: Array, total: Array) -> Array:
    r"""Weighted mean over the rows (axis 0) with one correction pass.

    The correction $\bar x \leftarrow \bar x + \sum_i w_i (x_i - \bar x) / W$ removes the
    rounding error of the first pass, so that a column constant on the weighted rows has a mean
    equal to its value to the last unit in the last place and a computed spread of (almost) zero.
    """
    wb = w[:, None] if x.ndim == 2 else w
    mean = jnp.sum(wb * x, axis=0) / total
    return mean + jnp.sum(wb * (x - mean[None]), axis=0) / total


def weighted_moments(x: Array, w: Array) -> tuple[Array, Array]:
    """Weighted column means and standard deviations, computed in two passes.

    A column (or, for a vector, the vector) that is constant on the weighted rows, to within
    `CONSTANT_ULPS` units in the last place of its magnitude, gets the scale 1, so that
    standardising it gives (almost) zeros instead of amplified rounding noise.
    """
    total = jnp.sum(w)
    mean = _weighted_mean(x, w, total)
    wb = w[:, None] if x.ndim == 2 else w
    std = jnp.sqrt(jnp.sum(wb * (x - mean[None]) ** 2, axis=0) / total)
    return mean, jnp.where(is_constant(std, mean), 1.0, std)


def is_constant(std: Array, mean: Array, centre: Array | float = 0.0) -> Array:
    """Whether a column of weighted spread `std` around `mean` (after subtracting `centre`) is
    constant at the working precision."""
    eps = jnp.finfo(std.dtype).eps
    return std <= CONSTANT_ULPS * eps * (jnp.abs(mean) + jnp.abs(centre))


class Standardised(eqx.Module):
    r"""The column statistics of one weighted fit, for working in standardised coordinates.

    With the `w`-weighted means $\bar x$ and standard deviations $s$ (two passes, so a
    column's offset costs no precision), the standardised design is $z = (x - \bar x)/s$, 0 in
    the columns constant on the weighted rows (whose `scale` is 1 and `constant` flag is set). A
    model fitted to $z$ has coefficients $\beta_j$ that map back to $\beta_j / s_j$.

    `x0` is `x` minus its unweighted column means `centre`: it does not depend on `w`, so the
    members of a `vmap` over weights share it, and products with it stay matrix products.
    """

    x0: Array
    centre: Array
    mean0: Array
    scale: Array
    constant: Array
    total: Array

    @property
    def mean(self) -> Array:
        """The weighted column means of `x`."""
        return self.centre + self.mean0

    def design(self, row_scale: Array) -> Array:
        """The standardised design with every row multiplied by `row_scale` (materialised)."""
        z = (self.x0 - self.mean0[None, :]) / self.scale[None, :]
        return jnp.where(self.constant[None, :], 0.0, z * row_scale[:, None])

    def apply(self, beta: Array) -> Array:
        """`z @ beta` from the shared `x0` (a matrix product under `vmap`)."""
        coef = jnp.where(self.constant, 0.0, beta / self.scale)
        return self.x0 @ coef - self.mean0 @ coef


def standardise(x: Array, w: Array) -> Standardised:
    """The weighted column statistics of `x` (see [`Standardised`][])."""
    total = jnp.sum(w)
    # Shifting by the unweighted mean first is shared by every member of a `vmap` over `w`, and
    # makes the weighted passes work on small numbers.
    centre = jnp.mean(x, axis=0)
    x0 = x - centre[None, :]
    mean = (w @ x0) / total
    # One pass gives the correction of the mean and the spread around it (corrected two-pass
    # formula): a column constant on the weighted rows gets its value to the last unit in the
    # last place, and a spread of (almost) zero.
    dev = x0 - mean[None, :]
    shift = jnp.sum(w[:, None] * dev, axis=0) / total
    var = jnp.sum(w[:, None] * dev**2, axis=0) / total - shift**2
    mean = mean + shift
    std = jnp.sqrt(jnp.maximum(var, 0.0))
    constant = is_constant(std, mean, centre)
    scale = jnp.where(constant, 1.0, std)
    return Standardised(x0=x0, centre=centre, mean0=mean, scale=scale, constant=constant,
                        total=total)


# Eigenvalues of a standardised (unit-diagonal) Gram matrix below `RCOND_ULPS * p * eps` times
# the largest are taken as exact collinearity: their directions are dropped (minimum norm).
RCOND_ULPS = 10.0
# A fit is resolved at its precision when `cond * eps <= COND_LIMIT`: rounding the data to the
# working precision then moves its coefficients by about 1 % at most (float32: cond up to 8e4;
# float64: 4.5e13).
COND_LIMIT = 1e-2
# ... and when no dropped direction explains the residual: `n_eff * corr**2` (chi-squared with one
# degree of freedom when the direction is rounding noise) stays below LOST_LIMIT (p ~ 3e-10).
LOST_LIMIT = 40.0


def resolved(cond: Array, lost: Array | None = None) -> Array:
    """Whether the working precision resolves a fit: `cond * eps <= COND_LIMIT` for the
    condition number `cond` of its standardised problem and, when given, `lost <= LOST_LIMIT`
    for the significance `lost` of the signal in the directions it dropped."""
    eps = jnp.finfo(cond.dtype).eps
    ok = cond * eps <= COND_LIMIT
    if lost is not None:
        ok = ok & (lost <= LOST_LIMIT)
    return ok


class PsdInverse(eqx.Module):
    """The pseudo-inverse of a symmetric positive semi-definite matrix, with its condition.

    `matrix` is the inverse on the kept eigen-directions (after a Jacobi scaling to a unit
    diagonal), `cond` the ratio of the largest to the smallest kept eigenvalue, `rank` how many
    were kept, `vectors` the eigen-directions (columns, in the unscaled coordinates) and
    `dropped` which of them were cut.
    """

    matrix: Array
    cond: Array
    rank: Array
    vectors: Array
    dropped: Array

    def __call__(self, v: Array) -> Array:
        return self.matrix @ v


def sequential_under_vmap(fn):
    """`fn` (a LAPACK-backed decomposition or solve of one matrix) with a batching rule that maps
    over the batch one matrix at a time (`lax.map`) instead of calling the batched kernel.

    jaxlib's batched CPU LAPACK kernels spread the batch over XLA's intra-op thread pool and wait
    for it from inside that pool; when the compiled program runs two such batched calls at once
    (the independent fits of a vmapped `CV` grid, say) on a machine whose pool has as many threads
    as there are such calls (two cores), every worker waits for a free worker and the fit hangs
    forever (seen on 2 cores with `CV` on p = 100). One matrix per call never waits on the pool.
    The matrices of a learner are small (p x p), so the batch's parallelism is not missed."""

    @jax.custom_batching.custom_vmap
    def one_at_a_time(*args):
        return fn(*args)

    @one_at_a_time.def_vmap
    def _rule(axis_size, in_batched, *args):
        if not any(in_batched):
            out = one_at_a_time(*args)
            return out, jax.tree.map(lambda _: False, out)
        args = [a if b else jnp.broadcast_to(a, (axis_size, *jnp.shape(a)))
                for a, b in zip(args, in_batched)]
        out = jax.lax.map(lambda xs: one_at_a_time(*xs), tuple(args))
        return out, jax.tree.map(lambda _: True, out)

    return one_at_a_time


_eigh = sequential_under_vmap(jnp.linalg.eigh)


def psd_inverse(a: Array) -> PsdInverse:
    """The pseudo-inverse of the symmetric PSD `a` by an eigendecomposition of its Jacobi-scaled
    form, with the relative cutoff `RCOND_ULPS * p * eps` (see [`PsdInverse`][])."""
    p = a.shape[0]
    eps = jnp.finfo(a.dtype).eps
    diag = jnp.diagonal(a)
    s = jnp.where(diag > 0, jax.lax.rsqrt(jnp.where(diag > 0, diag, 1.0)), 1.0)
    scaled = s[:, None] * a * s[None, :]
    lam, vec = _eigh(scaled)
    top = jnp.max(lam)
    keep = lam > RCOND_ULPS * p * eps * jnp.maximum(top, jnp.finfo(a.dtype).tiny)
    inv = jnp.where(keep, 1.0 / jnp.where(keep, lam, 1.0), 0.0)
    matrix = s[:, None] * ((vec * inv[None, :]) @ vec.T) * s[None, :]
    low = jnp.min(jnp.where(keep, lam, jnp.inf))
    cond = jnp.where(jnp.any(keep), top / low, 1.0)
    return PsdInverse(matrix=matrix, cond=cond, rank=jnp.sum(keep), vectors=s[:, None] * vec,
                      dropped=~keep)


def fit_status(pred: AbstractPredictor) -> dict[str, Array]:
    """The status fields a fitted predictor carries: `converged`, `resolved` and `cond` (those
    it has)."""
    return {name: getattr(pred, name) for name in ("converged", "resolved", "cond")
            if hasattr(pred, name)}


def warn_if_unresolved(pred: AbstractPredictor, who: str, x: Array, w: Array) -> None:
    """Eager fits only: a `UserWarning` naming the nearly collinear columns when the fit is not
    resolved at its precision, and one when an iterative solver did not converge."""
    if not is_concrete(pred.coef):
        return
    if hasattr(pred, "converged") and not bool(pred.converged):
        warnings.warn(
            f"{who} did not converge within its iteration limit (n_iter={int(pred.n_iter)}); "
            "raise max_iter, or add a penalty", UserWarning, stacklevel=3,
        )
    if not hasattr(pred, "resolved") or bool(pred.resolved):
        return
    dtype = x.dtype
    xs, ws = np.asarray(x, np.float64), np.asarray(w, np.float64)
    keep = ws > 0
    sub = xs[keep] - np.average(xs[keep], axis=0, weights=ws[keep])
    sd = np.sqrt(np.average(sub**2, axis=0, weights=ws[keep]))
    live = sd > 0
    zs = sub[:, live] / sd[live] * np.sqrt(ws[keep] / ws[keep].sum())[:, None]
    _, vec = np.linalg.eigh(zs.T @ zs)
    weak = np.flatnonzero(live)[np.abs(vec[:, 0]) > 0.3]
    eps = float(jnp.finfo(dtype).eps)
    if float(pred.cond) * eps > COND_LIMIT:
        why = (f"the standardised covariates are too ill-conditioned for {dtype} (condition "
               f"number {float(pred.cond):.2g}; {dtype} resolves up to {COND_LIMIT / eps:.2g})")
    else:
        why = (f"the target depends on a difference of nearly collinear columns that {dtype} "
               f"cannot resolve (significance n_eff * corr^2 = {float(pred.lost):.3g} of the "
               "dropped direction)")
    warnings.warn(
        f"{who}: {why}; nearly collinear columns {weak.tolist()}; the coefficients and "
        "predictions may be inaccurate. Enable float64 with "
        "jax.config.update('jax_enable_x64', True), or drop or combine those columns",
        UserWarning, stacklevel=3,
    )


def validation_split(w: Array, fraction: float, key) -> tuple[Array, Array | None]:
    """Splits the positive-weight rows into training and validation weights, drawn from `key`.

    Each weighted row is held out with probability `fraction`; a tiny fold keeps at least one
    training row, and an empty validation set falls back to the training rows. `fraction = 0`
    returns `(w, None)` (no early stopping).
    """
    if fraction <= 0:
        return w, None
    is_val = (jr.uniform(key, w.shape) < fraction) & (w > 0)
    is_val = jnp.where(jnp.sum(w * ~is_val) > 0, is_val, jnp.zeros_like(is_val))
    w_train = jnp.where(is_val, 0.0, w)
    w_val = jnp.where(is_val, w, 0.0)
    return w_train, jnp.where(jnp.sum(w_val) > 0, w_val, w_train)


def standardisation(
    x: Array, y: Array, w: Array, classifier: bool
) -> tuple[Array, Array, Array, Array]:
    """Weighted input moments, and target moments for regressions (identity for classifiers)."""
    x_mean, x_scale = weighted_moments(x, w)
    if classifier:
        return x_mean, x_scale, jnp.zeros((), x.dtype), jnp.ones((), x.dtype)
    y_mean, y_scale = weighted_moments(y, w)
    return x_mean, x_scale, y_mean, y_scale


def check_training_config(learner) -> None:
    """Checks the training settings that network learners share (`MLP`, `FlaxLearner`)."""
    if not 0.0 <= learner.val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {learner.val_fraction}")
    if learner.max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {learner.max_steps}")
    if learner.batch_size is not None and learner.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (or None), got {learner.batch_size}")
    if learner.eval_every < 1:
        raise ValueError(f"eval_every must be at least 1, got {learner.eval_every}")
    if learner.patience < 1:
        raise ValueError(f"patience must be at least 1, got {learner.patience}")
