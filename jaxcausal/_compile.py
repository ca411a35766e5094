"""How jaxcausal's compiled programs are compiled: opt-in XLA options for a CPU.

On a CPU most of a one-off script's time is XLA compiling the program, and most of that is
LLVM optimising the generated code. `filter_jit` and `jit` here are `equinox.filter_jit` and
`jax.jit`; with `JAXCAUSAL_CPU_OPT_LEVEL=N` set in the environment (before jaxcausal is
imported), programs called outside any JAX transformation with a CPU as the default backend are
compiled with LLVM optimisation level `N` (`xla_backend_optimization_level`; XLA's default is 3).
Measured on 2 cores at level 2 (`benchmarks/README.md`, "First answers"): a DML fit with MLP
nuisances compiles 30-45 % faster and runs as fast (level 1 compiles as fast but drops LLVM's
loop vectoriser; level 0 runs several times slower). The arithmetic is IEEE either way (no
fast-math); results may differ in the last bits.

**Off by default**: in one run of the test suite (2 xdist workers, persistent cache on) a
process compiling at level 2 crashed with a segmentation fault inside XLA's compiler; it did not
reproduce in isolation or in a stress test of 450 compilations mixing the levels, but a crash is
not a price for a faster compile. Unset, the wrappers are exactly `equinox.filter_jit` /
`jax.jit`. Inside a user's `jit` or `vmap` the outer compilation decides; other backends are
never affected.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import equinox as eqx
import jax


def _cpu_options_from_env() -> dict[str, Any]:
    level = os.environ.get("JAXCAUSAL_CPU_OPT_LEVEL", "").strip()
    if not level:
        return {}
    if level not in ("0", "1", "2", "3"):
        raise ValueError(f"JAXCAUSAL_CPU_OPT_LEVEL must be 0, 1, 2 or 3; got {level!r}")
    return {"xla_backend_optimization_level": int(level)}


CPU_COMPILER_OPTIONS: dict[str, Any] = _cpu_options_from_env()


def top_level() -> bool:
    """Whether no JAX transformation is being traced (compile options only apply there)."""
    try:
        from jax._src import core

        return bool(core.trace_state_clean())
    except (ImportError, AttributeError):
        return False


def _cpu_options_apply() -> bool:
    return bool(CPU_COMPILER_OPTIONS) and jax.default_backend() == "cpu" and top_level()


def _dispatch(fun, default, cpu):
    @functools.wraps(fun)
    def call(*args, **kwargs):
        if _cpu_options_apply():
            return cpu(*args, **kwargs)
        return default(*args, **kwargs)

    return call


def filter_jit(fun=None, /, *, compiler_options: dict[str, Any] | None = None, **kwargs):
    """`equinox.filter_jit`, with `CPU_COMPILER_OPTIONS` (if any) on a CPU at top level (see the
    module docstring); `compiler_options` apply on every backend. Usable as a decorator."""
    if fun is None:
        return functools.partial(filter_jit, compiler_options=compiler_options, **kwargs)
    default = eqx.filter_jit(fun, compiler_options=compiler_options, **kwargs)
    if not CPU_COMPILER_OPTIONS:
        return default
    cpu = eqx.filter_jit(
        fun, compiler_options={**CPU_COMPILER_OPTIONS, **(compiler_options or {})}, **kwargs)
    return _dispatch(fun, default, cpu)


def jit(fun=None, /, **kwargs):
    """`jax.jit`, with `CPU_COMPILER_OPTIONS` (if any) on a CPU at top level; usable as
    `functools.partial(jit, static_argnums=...)`."""
    if fun is None:
        return functools.partial(jit, **kwargs)
    options = kwargs.pop("compiler_options", None) or {}
    default = jax.jit(fun, compiler_options=options or None, **kwargs)
    if not CPU_COMPILER_OPTIONS:
        return default
    cpu = jax.jit(fun, compiler_options={**CPU_COMPILER_OPTIONS, **options}, **kwargs)
    return _dispatch(fun, default, cpu)
