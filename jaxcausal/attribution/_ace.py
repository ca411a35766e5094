"""`ace`: every feature's effect curve over a grid of interventions, in one compiled call."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array, check_finite, is_concrete
from .._compile import filter_jit
from ..scm import (
    SCM,
    AbstractProgram,
    AdditiveNoiseMLPProgram,
    LinearGaussianProgram,
    is_linear_gaussian,
)
from ._curves import Curves
from ._effects import AbstractEffect, Total
from ._estimators import (
    AbstractEstimator,
    LinearGaussianMoments,
    MonteCarlo,
    SampledMoments,
    Taylor,
)
from ._worlds import (
    LinearWorlds,
    draw,
    linear_cov,
    linear_factor,
    linear_mean,
    linear_worlds,
    sampled_world,
)

_MEMORY_BUDGET = 2**22  # array elements alive per batch of rows, when `chunk` is not given
_CHECKED: dict[Any, Any] = {}  # results of trace-time checks, by the structure they depend on


def _signature(tree: Any, *extra: Any) -> Any:
    """A hashable key for the shapes, dtypes and static parts of `tree` (None: not hashable)."""
    leaves, treedef = jax.tree.flatten(tree)
    sig = (treedef, tuple(
        (jnp.shape(x), jnp.result_type(x)) if eqx.is_array(x) else x for x in leaves
    ), extra)
    try:
        hash(sig)
    except TypeError:
        return None
    return sig


def _once(kind: str, tree: Any, extra: tuple, check: Callable[[], Any]) -> Any:
    """Runs a trace-time check once per structure of `tree` (checks trace, which costs more than
    the compiled call itself)."""
    sig = _signature(tree, kind, *extra)
    if sig is None:
        return check()
    if sig not in _CHECKED:
        if len(_CHECKED) > 512:
            _CHECKED.clear()
        _CHECKED[sig] = check()
    return _CHECKED[sig]


class _Output(eqx.Module):
    """`f` as a scalar function: entry `index` of a vector output, or `f` itself."""

    f: Callable
    index: int | None = eqx.field(static=True)
    batched: bool = eqx.field(static=True, default=False)

    def __call__(self, x: Array) -> Array:
        out = self.f(x[None, :])[0] if self.batched else self.f(x)
        return out if self.index is None else out[self.index]


def _is_predictor(f: Any) -> bool:
    # Fitted learners of `jaxcausal.learners` predict batches `(n, p) -> (n,)`.
    from ..learners import AbstractPredictor

    return isinstance(f, AbstractPredictor)


def _hvp(fo: Callable, x: Array, v: Array) -> Array:
    return jax.jvp(jax.grad(fo), (x,), (v,))[1]


def _taylor(fo: Callable, mu: Array, spread: Array, mode: str) -> tuple[Array, Array, Array]:
    """`f(mu) + tr(H Sigma) / 2` as replicate values: `(k,)` per Hutchinson probe (`spread` the
    probes), `(1,)` for an exact trace (`spread` the factor's columns, or the dense covariance);
    also the second-order terms and the gradient at `mu` (to tell an affine `f` from a
    piecewise-linear one)."""
    f0, grad = jax.value_and_grad(fo)(mu)
    if mode == "dense":
        hess = jax.vmap(lambda e: _hvp(fo, mu, e))(jnp.eye(mu.shape[0], dtype=mu.dtype))
        second = 0.5 * jnp.sum(hess * spread)[None]
    else:
        quad = jax.vmap(lambda v: v @ _hvp(fo, mu, v))(spread.T)
        second = 0.5 * (quad if mode == "probes" else jnp.sum(quad)[None])
    return f0 + second, second, grad


def _summary(units: Array) -> tuple[Array, Array]:
    n = units.shape[0]
    if n == 1:
        return units[0], jnp.zeros((), units.dtype)
    return jnp.mean(units), jnp.std(units, ddof=1) / jnp.sqrt(n)


@eqx.debug.assert_max_traces(max_traces=None)
def _ace_impl(
    fo: _Output,
    inputs: SCM,
    names: tuple[str, ...],
    alphas: Array,
    reference: Array | None,
    effect: AbstractEffect,
    estimator: AbstractEstimator,
    moments: str,
    key: PRNGKeyArray,
    chunk: int | None,
):
    d, m = alphas.shape
    dtype = alphas.dtype
    worlds = effect.worlds()
    k_draw, k_probe = jr.split(key)
    lw: LinearWorlds | None = linear_worlds(inputs, names) if moments == "linear" else None
    n = estimator.n if isinstance(estimator, MonteCarlo) else getattr(
        getattr(estimator, "moments", None), "n", 0
    )

    if reference is not None:
        ref = jnp.broadcast_to(reference.astype(dtype), (d,))
    elif not effect.needs_reference():
        ref = jnp.zeros((d,), dtype)
    elif lw is not None:
        ref = lw.mean.astype(dtype)
    else:
        ref = jnp.mean(draw(inputs, names, jnp.asarray(-1), jnp.zeros((), dtype), n, k_draw), 0)

    probes = getattr(estimator, "hutchinson", None)
    if moments == "linear":
        r = lw.factor.shape[1]
        if probes is not None:
            z = jr.rademacher(k_probe, (r, probes), dtype)
            base, mode = lw.factor @ z, "probes"
        elif r <= d:
            base, mode = lw.factor, "columns"
        else:
            base, mode = lw.factor @ lw.factor.T, "dense"
    elif moments == "sampled":
        z = jr.rademacher(k_probe, (n, probes or 1), dtype)
        mode = "probes" if probes is not None else "dense"

    def world_value(w, i, a, r):
        if moments == "none":
            x = sampled_world(inputs, names, w, i, a, r, n, k_draw)
            zero = jnp.zeros((), dtype)
            return jax.vmap(fo)(x), jnp.zeros((1,), dtype), zero, jnp.zeros((d,), dtype)
        if moments == "linear":
            mu = linear_mean(lw, w, i, a, r)
            if mode == "dense":
                spread = linear_cov(lw, w, i, base)
            else:
                spread = linear_factor(lw, w, i, base)
        else:
            x = sampled_world(inputs, names, w, i, a, r, n, k_draw)
            mu = jnp.mean(x, axis=0)
            dev = (x - mu[None, :]) / jnp.sqrt(n - 1.0)
            spread = dev.T @ z if mode == "probes" else dev.T @ dev
        value, second, grad = _taylor(fo, mu, spread, mode)
        return value, second, jnp.sum(spread**2), grad

    def row(args):
        i, a, r = args
        vals, seconds, spreads, grads = {}, {}, [], []
        for w in worlds:
            vals[w], seconds[w], s, g = world_value(w, i, a, r)
            spreads.append(s)
            grads.append(g)
        est, se = _summary(effect.combine(vals))
        curv = sum(jnp.sum(jnp.abs(s)) for s in seconds.values())
        return est, se, curv, sum(spreads), grads[0]

    rows = (
        jnp.repeat(jnp.arange(d), m),
        alphas.reshape(-1),
        jnp.repeat(ref, m),
    )
    if chunk is None:
        out = jax.vmap(row)(rows)
    else:
        out = jax.lax.map(row, rows, batch_size=chunk)
    raw, se, curv, spread = (o.reshape(d, m) for o in out[:4])
    return raw, se, curv, spread, out[4]


_ace_jit = filter_jit(_ace_impl)


def count_traces() -> int:
    """How many times the compiled body of [`jaxcausal.attribution.ace`][] was traced."""
    return eqx.debug.get_num_traces(_ace_impl)


def _features(inputs: SCM, features: Any) -> tuple[str, ...]:
    if features is None:
        return inputs.graph.names
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise TypeError(f"features must be a list of node names; got {type(features).__name__}")
    names = tuple(str(v) for v in features)
    inputs.graph.check_names(names, "features")
    if len(set(names)) != len(names):
        raise ValueError(f"features must be distinct; got {list(names)}")
    if not names:
        raise ValueError("features must name at least one input")
    return names


def _output(f: Any, d: int, output: int | None, dtype: Any) -> _Output:
    if not callable(f):
        raise TypeError(f"f must be a callable from one input vector (d,) to a scalar; got {f!r}")
    try:
        shape = jax.eval_shape(f, jax.ShapeDtypeStruct((d,), dtype)).shape
    except Exception as err:  # noqa: BLE001 - re-raised with the sizes a user needs to see
        raise ValueError(
            f"f could not be evaluated on one input vector of size {d} (the number of features); "
            f"check the network's input size and the features argument: {err}"
        ) from err
    if output is None:
        if shape != ():
            raise ValueError(
                f"f returns an array of shape {shape}; pass output=j to pick one entry (a class "
                "logit or probability)"
            )
    else:
        if len(shape) != 1 or not isinstance(output, int) or not 0 <= output < shape[0]:
            raise ValueError(
                f"output must index the vector that f returns (shape {shape}); got {output!r}"
            )
    return _Output(f, output)


def _alphas(alphas: Any, d: int) -> Array:
    arr = as_float_array(alphas, "alphas")
    if arr.ndim == 1:
        arr = jnp.broadcast_to(arr[None, :], (d, arr.shape[0]))
    if arr.ndim != 2 or arr.shape[0] != d or arr.shape[1] < 1:
        raise ValueError(
            f"alphas must have shape (m,) (one grid for every feature) or ({d}, m) (one grid per "
            f"feature); got {tuple(jnp.shape(alphas))}"
        )
    return check_finite(arr, "alphas")


def _discrete(inputs: SCM, names: tuple[str, ...]) -> list[str]:
    if isinstance(inputs.program, AbstractProgram) and not inputs.interventions:
        return []  # additive Gaussian noise at every node
    shapes = jax.eval_shape(lambda k: inputs.sample(2, key=k), jr.key(0))
    return [v for v in names if not jnp.issubdtype(shapes[v].dtype, jnp.inexact)]


def _resolve_moments(inputs: SCM, estimator: AbstractEstimator) -> tuple[str, AbstractEstimator]:
    if isinstance(estimator, MonteCarlo):
        return "none", estimator
    given = estimator.moments
    if isinstance(given, LinearGaussianMoments):
        return "linear", estimator
    if isinstance(given, SampledMoments):
        return "sampled", estimator
    program = inputs.program
    if isinstance(program, LinearGaussianProgram) and not inputs.interventions:
        return "linear", estimator
    if isinstance(program, AdditiveNoiseMLPProgram):
        return "sampled", Taylor(estimator.hutchinson, SampledMoments())
    leaves = jax.tree.leaves(eqx.filter(inputs, eqx.is_array))
    if not all(is_concrete(a) for a in leaves):
        raise ValueError(
            "cannot check whether the input SCM is linear-Gaussian while its parameters are "
            "traced; pass Taylor(moments=LinearGaussianMoments()) or Taylor(moments="
            "SampledMoments(n))"
        )
    if is_linear_gaussian(inputs):
        return "linear", estimator
    return "sampled", Taylor(estimator.hutchinson, SampledMoments())


def _check_twice_differentiable(fo: _Output, d: int, dtype: Any) -> None:
    x = jax.ShapeDtypeStruct((d,), dtype)
    try:
        jax.eval_shape(lambda v: _hvp(fo, v, v), x)
    except Exception as err:  # noqa: BLE001 - re-raised naming the argument
        raise ValueError(
            "f must be twice differentiable with JAX for the Taylor estimator (it uses "
            f"Hessian-vector products); differentiating it failed with: {err}. Use "
            "MonteCarlo(n) for a network JAX cannot differentiate"
        ) from err


def ace(
    f: Callable[[Float[Array, " d"]], Any],
    inputs: Any,
    alphas: Any,
    *,
    features: Sequence[str] | None = None,
    effect: Any = Total(),
    estimator: Any = MonteCarlo(),
    key: PRNGKeyArray | None = None,
    output: int | None = None,
    chunk: int | None = None,
) -> Curves:
    r"""Causal attribution curves of a network: for every feature $i$ and every $\alpha$ of its
    grid, the effect of $do(X_i = \alpha)$ on the network's output, in one compiled, `vmap`ped
    call.

    The network $f$ and the input SCM form one SCM: the inputs are its variables, $f$ the
    mechanism of the output. The estimands (see [`jaxcausal.attribution.Total`][],
    [`jaxcausal.attribution.ControlledDirect`][], [`jaxcausal.attribution.NaturalDirect`][],
    [`jaxcausal.attribution.NaturalIndirect`][], [`jaxcausal.attribution.Indirect`][]) contrast
    interventional worlds of the input SCM, and the estimator
    ([`jaxcausal.attribution.MonteCarlo`][], [`jaxcausal.attribution.Taylor`][]) computes
    $\mathbb{E}[f(X)]$ in each world.

    **Arguments:**

    - `f`: the network, a callable from one input vector `(d,)` to a scalar (an Equinox module,
      a fitted model, a Flax `apply` in a lambda), or a fitted `jaxcausal.learners` predictor
      (which predicts batches: it is called on one row at a time). Pass a module rather than a
      new lambda at every call: a module's arrays are traced, so a second call with the same
      shapes does not recompile, and the curves are differentiable with respect to them.
    - `inputs`: the [`jaxcausal.scm.SCM`][] of the inputs (fitted with `jc.scm.fit`, or any NumPyro
      program); it may have more variables than the network (latent causes), and carry
      interventions (e.g. a [`jaxcausal.scm.Joint`][]) that hold in every world.
    - `alphas`: `(m,)` grid shared by every feature, or `(d, m)` one grid per feature.
    - `features`: the network's input order (input `k` of `f` is variable `features[k]`);
      default `inputs.graph.names`.
    - `effect`: the estimand (default `Total()`).
    - `estimator`: `MonteCarlo(n)` (default, `n=2000`) or `Taylor(...)`.
    - `key`: draws the Monte Carlo units, sampled moments and Hutchinson probes (not needed for
      an exact Taylor expansion with linear-Gaussian inputs).
    - `output`: index of the entry of a vector output to explain (a class probability).
    - `chunk`: rows `(feature, alpha)` evaluated together (a `lax.map` over chunks of a `vmap`,
      still one compiled call) to bound memory; default from a memory budget.

    **Returns:** [`jaxcausal.attribution.Curves`][].

    ```python
    curves = jc.attribution.ace(net, inputs, jnp.linspace(0, 1, 100),
                                effect=jc.attribution.Total(), key=jr.key(0))
    curves.values   # (d, 100), centred
    ```
    """
    if not isinstance(inputs, SCM):
        raise TypeError(f"inputs must be a jaxcausal.scm.SCM; got {type(inputs).__name__}")
    if not isinstance(effect, AbstractEffect):
        raise TypeError(
            "effect must be Total(), ControlledDirect(), NaturalDirect(), NaturalIndirect() or "
            f"Indirect(); got {type(effect).__name__}"
        )
    if not isinstance(estimator, AbstractEstimator):
        raise TypeError(
            f"estimator must be MonteCarlo(n) or Taylor(...); got {type(estimator).__name__}"
        )
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer or None; got {chunk!r}")
    names = _features(inputs, features)
    d = len(names)
    grid = _alphas(alphas, d)
    batched = _is_predictor(f)
    _once("output", f, (d, output, grid.dtype, batched),
          lambda: _output(_Output(f, None, batched), d, output, grid.dtype))
    fo = _Output(f, output, batched)
    reference = _reference(effect, d)
    discrete = _once("discrete", inputs, (names,), lambda: _discrete(inputs, names))
    if discrete:
        _check_levels(grid, names, discrete, reference, effect)
    moments, estimator = _resolve_moments(inputs, estimator)
    if isinstance(estimator, Taylor):
        _once("hvp", fo, (d, grid.dtype), lambda: _check_twice_differentiable(fo, d, grid.dtype))
    needs_key = moments != "linear" or getattr(estimator, "hutchinson", None) is not None
    if key is None:
        if needs_key:
            raise ValueError(
                "key is required: this estimator draws units or probes (only Taylor() with "
                "linear-Gaussian inputs and an exact trace is deterministic)"
            )
        key = jr.key(0)
    if chunk is None:
        chunk = _auto_chunk(estimator, moments, inputs, d, grid.shape[1])
    raw, se, curv, spread, grads = _ace_jit(
        fo, inputs, names, grid, reference, effect, estimator, moments, key, chunk
    )
    if isinstance(estimator, Taylor) and is_concrete(curv):
        # A zero Hessian everywhere is right for an affine f (constant gradient) and a sign of a
        # piecewise-linear one otherwise.
        g = np.asarray(grads)
        varies = np.ptp(g, axis=0).max() > 1e-9 * (1.0 + np.abs(g).max())
        if not np.asarray(curv).any() and np.asarray(spread).any() and varies:
            warnings.warn(
                "the Hessian of f is zero at every point evaluated (a piecewise-linear network "
                "such as a ReLU MLP), so the Taylor estimator drops the spread of the inputs and "
                "reduces to f(mean); use MonteCarlo(n) for such networks, or a smooth activation",
                UserWarning,
                stacklevel=2,
            )
    values = raw - jnp.mean(raw, axis=1, keepdims=True)
    return Curves(values=values, raw=raw, se=se, alphas=grid, features=names, effect=effect)


def _reference(effect: AbstractEffect, d: int) -> Array | None:
    ref = getattr(effect, "reference", None)
    if ref is None:
        return None
    if ref.shape not in ((), (d,)):
        raise ValueError(
            f"reference must be a scalar or one value per feature ({d},); got {tuple(ref.shape)}"
        )
    return check_finite(ref, "reference")


def _check_levels(grid, names, discrete, reference, effect) -> None:
    if effect.needs_reference() and reference is None:
        raise ValueError(
            f"reference must be given for {type(effect).__name__} on the discrete features "
            f"{discrete}: the default (the observational mean) is not one of their levels"
        )
    if not is_concrete(grid):
        return
    host = np.asarray(grid)
    for v in discrete:
        row = host[names.index(v)]
        if not np.all(row == np.round(row)):
            raise ValueError(
                f"alphas for the discrete feature {v!r} must be integer levels; got {row[:5]}"
            )


def _auto_chunk(estimator, moments, inputs, d, m) -> int | None:
    n_nodes = inputs.graph.n_nodes
    if moments == "none" or moments == "sampled":
        n = estimator.n if moments == "none" else estimator.moments.n
        per_row = 4 * n * (n_nodes + d)
    else:
        probes = estimator.hutchinson or d
        per_row = 4 * d * (probes + d)
    rows = max(1, _MEMORY_BUDGET // per_row)
    return None if rows >= d * m else rows
