"""JAX's persistent compilation cache, in a per-user directory, for scripts that run again.

A one-off script (import, fit once, print) spends most of its first run compiling. JAX can keep
the compiled programs on disk and load them in the next process instead of compiling again; this
module points that cache at `$XDG_CACHE_HOME/jaxcausal` (default `~/.cache/jaxcausal`).

- `JAXCAUSAL_CACHE_DIR=/some/dir` puts the cache elsewhere;
- `JAXCAUSAL_CACHE=0` turns the default cache off (the `jaxcausal` command, its demo,
  `jc.dml.simulate` and `jc.enable_compilation_cache()` without a path then leave JAX alone);
- a cache directory already given to JAX (`JAX_COMPILATION_CACHE_DIR` or
  `jax.config.update("jax_compilation_cache_dir", ...)`) is respected and never replaced.

This module imports JAX only when a function is called, so `import jaxcausal` stays free of it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

_OFF = {"0", "false", "no", "off"}
# Programs that compile faster than this are not written (loading one costs a few ms). JAX's own
# default (1 s) leaves out the many small programs of a first run, which add up to seconds.
MIN_COMPILE_TIME_S = 0.05
# An upper bound on the cache's size on disk; JAX evicts the least recently used programs.
MAX_SIZE_BYTES = 2 * 1024**3
_JAX_DEFAULT_MIN_COMPILE_TIME_S = 1.0


def cache_disabled() -> bool:
    """True when `JAXCAUSAL_CACHE` turns the default cache off (`0`, `false`, `no`, `off`)."""
    return os.environ.get("JAXCAUSAL_CACHE", "1").strip().lower() in _OFF


def default_cache_dir() -> Path:
    """`$JAXCAUSAL_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxcausal`, else `~/.cache/jaxcausal`."""
    explicit = os.environ.get("JAXCAUSAL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxcausal"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turns on JAX's persistent compilation cache, so that a second run of a script (a new
    Python process) loads its compiled programs from disk instead of compiling them again.

    **Arguments:**

    - `path`: the cache directory. `None` uses `$JAXCAUSAL_CACHE_DIR`, else
      `$XDG_CACHE_HOME/jaxcausal` (default `~/.cache/jaxcausal`), and does nothing when
      `JAXCAUSAL_CACHE=0`.

    **Returns:** the directory in use, or `None` when the cache stays off.

    Call it once at the top of a script, before the first fit. A directory that JAX was already
    given (`JAX_COMPILATION_CACHE_DIR`) is kept. Programs compiled in under 0.05 s are not stored,
    and the directory is capped at 2 GiB (least recently used programs go first). What the cache
    saves is XLA's compilation; tracing and lowering the Python code still happen in every
    process. Programs that call back into Python (progress bars, `eqx.error_if` checks inside
    compiled code) are never stored by JAX, so jaxcausal's fits check their inputs before
    compiling. Like any compilation cache, only use a directory that you alone can write to.

    ```python
    import jaxcausal as jc

    jc.enable_compilation_cache()          # ~/.cache/jaxcausal
    ```
    """
    if path is None:
        if cache_disabled():
            return None
        path = default_cache_dir()
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is not writable")
    except OSError as err:
        warnings.warn(
            f"jaxcausal: cannot use {path} as the compilation cache ({err}); compiling without "
            "it. Set JAXCAUSAL_CACHE_DIR to a writable directory or JAXCAUSAL_CACHE=0.",
            UserWarning,
            stacklevel=2,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    if jax.config.jax_persistent_cache_min_compile_time_secs == _JAX_DEFAULT_MIN_COMPILE_TIME_S:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    if jax.config.jax_compilation_cache_max_size == -1 and _has_filelock():
        # JAX caps the directory's size only with `filelock` installed (a dependency of
        # jaxcausal); without it a cap makes every cache read and write fail with a warning.
        jax.config.update("jax_compilation_cache_max_size", MAX_SIZE_BYTES)
    return path


def _has_filelock() -> bool:
    try:
        import filelock  # noqa: F401
    except ImportError:
        return False
    return True


def use_default_cache() -> Path | None:
    """What the `jaxcausal` command, its demo and `jc.dml.simulate` call: the default cache,
    unless `JAXCAUSAL_CACHE=0`; never raises."""
    try:
        return enable_compilation_cache()
    except Exception as err:  # a cache must never break a fit
        warnings.warn(f"jaxcausal: compilation cache not enabled ({err})", UserWarning,
                      stacklevel=2)
        return None
