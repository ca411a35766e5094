"""How jaxcausal's compiled programs are compiled: XLA options for a CPU.

On a CPU most of a one-off script's time is XLA compiling the program, and most of that is
LLVM optimising the generated code. `filter_jit` and `jit` here are `equinox.filter_jit` and
`jax.jit` that, when called outside any JAX transformation with a CPU as the default backend,
compile with `CPU_COMPILER_OPTIONS`: LLVM's optimisation level 2 instead of XLA's default 3.
Measured on 2 cores (`benchmarks/README.md`, "First answers"): a DML fit with MLP nuisances
compiles in about a third less time, and the compiled training loops, samplers and solvers run
as fast as before (matrix products call the same library kernels; level 2 keeps LLVM's
vectoriser). The arithmetic is IEEE-exact either way (no fast-math), so results agree with the
default compilation up to the order of floating-point operations chosen by the code generator.

Inside a user's `jit` or `vmap` the outer compilation decides. Other backends keep XLA's
defaults. `JAXCAUSAL_XLA_DEFAULTS=1` in the environment switches the CPU options off.

(These options were switched off for a day after the test suite crashed inside XLA's compiler;
the crash was a process running out of memory mappings after thousands of compilations, at either
optimisation level: see the README's "First answers" and `tests/conftest.py`.)
"""

from __future__ import annotations

import functools
import os
from typing import Any

import equinox as eqx
import jax

CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 2}


def top_level() -> bool:
    """Whether no JAX transformation is being traced (compile options only apply there)."""
    try:
        from jax._src import core

        return bool(core.trace_state_clean())
    except (ImportError, AttributeError):
        return False


def _cpu_options_apply() -> bool:
    if os.environ.get("JAXCAUSAL_XLA_DEFAULTS", "0") not in ("", "0"):
        return False
    return jax.default_backend() == "cpu" and top_level()


def _dispatch(fun, default, cpu):
    @functools.wraps(fun)
    def call(*args, **kwargs):
        if _cpu_options_apply():
            return cpu(*args, **kwargs)
        return default(*args, **kwargs)

    return call


def filter_jit(fun=None, /, *, compiler_options: dict[str, Any] | None = None, **kwargs):
    """`equinox.filter_jit` with `CPU_COMPILER_OPTIONS` on a CPU at top level (see the module
    docstring); `compiler_options` are added on every backend. Usable as a decorator."""
    if fun is None:
        return functools.partial(filter_jit, compiler_options=compiler_options, **kwargs)
    default = eqx.filter_jit(fun, compiler_options=compiler_options, **kwargs)
    cpu = eqx.filter_jit(
        fun, compiler_options={**CPU_COMPILER_OPTIONS, **(compiler_options or {})}, **kwargs)
    return _dispatch(fun, default, cpu)


def jit(fun=None, /, **kwargs):
    """`jax.jit` with `CPU_COMPILER_OPTIONS` on a CPU at top level; usable as
    `functools.partial(jit, static_argnums=...)`."""
    if fun is None:
        return functools.partial(jit, **kwargs)
    options = kwargs.pop("compiler_options", None) or {}
    default = jax.jit(fun, compiler_options=options or None, **kwargs)
    cpu = jax.jit(fun, compiler_options={**CPU_COMPILER_OPTIONS, **options}, **kwargs)
    return _dispatch(fun, default, cpu)
