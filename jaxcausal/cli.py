"""The `jaxcausal` command: `jaxcausal version`, `jaxcausal demo [--small] [--cpu-devices N]`.

Only `demo` imports JAX: `--help` and `version` answer at once. The demo compiles into JAX's
persistent compilation cache (`~/.cache/jaxcausal`, see `jaxcausal._cache`), so its second run
is faster; `JAXCAUSAL_CACHE=0` turns that off.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcausal",
        description=(
            "Causal machine learning in JAX: Equinox models, NumPyro SCMs, one compiled Optax "
            "training loop, and folds, repetitions and replications batched with vmap."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("version", help="print the installed jaxcausal version")
    demo = commands.add_parser(
        "demo",
        help="show what jaxcausal does, with timings (about a minute on two CPU cores, less "
        "when run again)",
        description=(
            "Runs the demo sections and prints what they fit, how well and how fast. Compiled "
            "programs are kept in ~/.cache/jaxcausal (JAXCAUSAL_CACHE_DIR sets another "
            "directory, JAXCAUSAL_CACHE=0 turns the cache off), so a second run is faster."
        ),
    )
    demo.add_argument(
        "--no-progress", action="store_true", help="no progress bars for the longer fits"
    )
    demo.add_argument("--small", action="store_true", help="run a tiny version (used by the tests)")
    demo.add_argument(
        "--cpu-devices",
        type=_positive_int,
        metavar="N",
        help=(
            "split the host CPU into N JAX devices, so batched work is sharded over the cores "
            "(default: one per available core; 1 runs everything on one device)"
        ),
    )
    return parser


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _set_cpu_devices(n: int, explicit: bool) -> bool:
    """Splits the CPU into `n` JAX devices; only possible before JAX has started its backend."""
    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        if explicit and len(jax.devices("cpu")) != n:
            print(
                "jaxcausal: --cpu-devices must be set before JAX starts computing; "
                "run the demo in a fresh process",
                file=sys.stderr,
            )
            return False
        return True
    jax.config.update("jax_num_cpu_devices", n)
    return True


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `jaxcausal` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        from . import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        explicit = args.cpu_devices is not None
        n_cpu = args.cpu_devices if explicit else _available_cores()
        if not _set_cpu_devices(n_cpu, explicit):
            return 2
        from ._cache import use_default_cache
        from ._demo import run_demo

        use_default_cache()
        run_demo(small=args.small, progress=not args.no_progress)
        return 0
    parser.print_help(sys.stderr)
    return 2
