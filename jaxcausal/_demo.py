"""What `jaxcausal demo` shows: a list of small sections, each printing a few lines.

A section is a function `section(config) -> None`; `SECTIONS` lists them in order, so a new
capability is shown by appending one function. Every section runs at a full size (finishing well
about a minute on two CPU cores, less when run again) or, with `small=True`, at a tiny size
for the tests.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from . import learners, parallel
from ._demo_q10 import q10_section
from .learners._base import trusted_inputs


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes and output stream of the demo; `small` shrinks everything for the tests."""

    small: bool = False
    out: Any = None  # a text stream; None means sys.stdout at the time of printing
    seed: int = 0
    progress: bool = True

    def announce(self, what: str) -> None:
        """Says what a longer fit does before it starts (no silent minutes)."""
        if self.progress:
            print(f"  ... {what}", file=sys.stderr if self.out is None else self.out, flush=True)

    def print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=sys.stdout if self.out is None else self.out, flush=True)

    def key(self, name: str) -> jax.Array:
        """A key per section, so sections do not depend on each other's randomness."""
        return jr.fold_in(jr.key(self.seed), sum(map(ord, name)))


def _timed(fn: Callable, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


_SPANS: list[list[tuple[float, float]]] = []


def _on_span(event: str, start: float, end: float, **kwargs) -> None:
    if _SPANS and event.startswith("/jax/core/compile/"):
        _SPANS[-1].append((start, end))


def _timed_with_compile(fn: Callable, *args):
    """`(out, seconds, compile_seconds)`: compile time is the union of JAX's tracing, lowering and
    compilation spans (its monitoring events) during the call, so nested spans count once."""
    if not getattr(_timed_with_compile, "registered", False):
        import jax.monitoring

        jax.monitoring.register_event_time_span_listener(_on_span)
        _timed_with_compile.registered = True
    _SPANS.append([])
    try:
        out, seconds = _timed(fn, *args)
    finally:
        spans = sorted(_SPANS.pop())
    total, end = 0.0, float("-inf")
    for s, e in spans:
        if s > end:
            total, end = total + e - s, e
        elif e > end:
            total, end = total + e - end, e
    return out, seconds, total


def _nonlinear_data(key, n: int, p: int):
    """`y = sin(2 x0) + x1^2 / 2 + x2 x3 + 0.5 x4 + noise`, noise sd 0.5, covariates N(0, 1)."""
    kx, ke = jr.split(key)
    x = jr.normal(kx, (n, p))
    signal = jnp.sin(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + x[:, 2] * x[:, 3] + 0.5 * x[:, 4]
    return x, signal + 0.5 * jr.normal(ke, (n,)), signal


def _fold_masks(key, n: int, n_folds: int, n_rep: int):
    """`(n_rep * n_folds, n)` 0/1 masks: row i is in fold k of repetition r when mask is 1."""
    ids = jax.vmap(lambda k: jr.permutation(k, n) % n_folds)(jr.split(key, n_rep))
    return (ids[:, None, :] == jnp.arange(n_folds)[None, :, None]).reshape(n_rep * n_folds, n)


def _fit_member(key, weights, *, x, y, learner):
    return learner.fit(x, y, key=key, weights=weights)


def _r2(y, pred):
    return 1.0 - jnp.mean((y - pred) ** 2) / jnp.var(y)


def ensemble_section(config: DemoConfig) -> None:
    """An ensemble of MLPs, one per fold and repetition, trained in one compiled call."""
    if config.small:
        n, p, n_folds, n_rep, n_single = 200, 5, 2, 2, 2
        learner = learners.MLP(width=8, depth=1, max_steps=150, batch_size=64, patience=5)
    else:
        n, p, n_folds, n_rep, n_single = 2000, 10, 5, 10, 3
        learner = learners.MLP(width=32, depth=2, max_steps=2000, batch_size=128, patience=10)
    members = n_folds * n_rep
    k_data, k_folds, k_fit = jr.split(config.key("ensemble"), 3)
    x, y, signal = _nonlinear_data(k_data, n, p)
    in_fold = _fold_masks(k_folds, n, n_folds, n_rep)
    train_masks = 1.0 - in_fold.astype(x.dtype)
    keys = jr.split(k_fit, members)
    config.print(
        f"== Ensemble: {members} MLPs ({n_folds}-fold cross-fitting x {n_rep} repetitions) "
        "in one compiled call ==",
        f"data: n={n} rows, p={p} covariates, nonlinear outcome; "
        f"MLP width={learner.width} depth={learner.depth}, at most {learner.max_steps} AdamW "
        "steps with early stopping",
        f"devices: {jax.device_count()} x {jax.devices()[0].platform}"
        + (" (the member axis is sharded over them)" if jax.device_count() > 1 else ""),
    )
    on_cpu = all(d.platform == "cpu" for d in jax.devices())
    # `sharded_map` picks the schedule that suits the devices: on CPUs each device trains its
    # members one at a time (in one compiled call), on accelerators all of them together.
    fit_all = parallel.sharded_map(eqx.Partial(_fit_member, x=x, y=y, learner=learner))
    # The data are drawn here (finite) and the masks are 0/1: the traced input checks, host
    # callbacks that would keep JAX's persistent cache from storing the program, are not needed.
    with trusted_inputs():
        predictors, seconds, compile_s = _timed_with_compile(fit_all, keys, train_masks)
    config.print(
        f"one call: {seconds:6.2f} s, of which {compile_s:.2f} s compiling "
        f"({1000 * (seconds - compile_s) / members:.0f} ms per model after compiling"
        + (", one member at a time per CPU device)" if on_cpu else ", all members together)"),
    )

    preds = eqx.filter_vmap(lambda pr: pr(x))(predictors)  # (members, n)
    oof = jnp.sum((preds * in_fold).reshape(n_rep, n_folds, n), axis=1)  # (n_rep, n)
    r2 = jax.vmap(lambda o: _r2(y, o))(oof)
    config.print(
        f"out-of-fold R^2 over {n_rep} repetitions: mean {float(jnp.mean(r2)):.3f}, "
        f"min {float(jnp.min(r2)):.3f}, max {float(jnp.max(r2)):.3f} "
        f"(the noise-free signal reaches {float(_r2(y, signal)):.3f})",
        f"training steps per member: median {int(jnp.median(predictors.n_steps))} "
        f"(early stopping, best parameters kept)",
    )
    if on_cpu:
        config.print(
            "on a GPU the same call trains all members together: 2000 such MLPs in 0.7 s on an",
            "H100, 0.4 ms per model against 114 ms one at a time (benchmarks/README.md)",
        )
        return
    fit_one = learner.fit
    fit_one(x, y, key=keys[0], weights=train_masks[0])  # compile the single-model path
    start = time.perf_counter()
    for e in range(n_single):
        jax.block_until_ready(fit_one(x, y, key=keys[e], weights=train_masks[e]))
    per_model = (time.perf_counter() - start) / n_single
    config.print(
        f"one model at a time: {per_model:.2f} s per model (mean of {n_single}, compiled), "
        f"so ~{per_model * members:.1f} s for {members}: the batched call is "
        f"{per_model * members / max(seconds - compile_s, 1e-9):.1f}x faster",
    )


SECTIONS: list[Callable[[DemoConfig], None]] = [q10_section, ensemble_section]
"""The demo's sections, in order."""


def run_demo(small: bool = False, out: Any = None, progress: bool = True) -> None:
    """Runs every section of `SECTIONS`, printing to `out` (default `sys.stdout`); with
    `progress`, says what each longer fit is before it starts."""
    config = DemoConfig(small=small, out=out, progress=progress)
    start = time.perf_counter()
    config.print(f"jaxcausal demo{' (small)' if small else ''}: jax {jax.__version__}")
    for section in SECTIONS:
        config.print("")
        section(config)
    config.print("", f"demo finished in {time.perf_counter() - start:.1f} s")
