"""Strict JAX for every test: rank promotion raises, and a `key` fixture.

x64 is switched on for the whole run: the parity tests compare with scikit-learn and DoubleML to
1e-8, and mixing precisions between tests would make compile caches and tolerances depend on order.
"""

import os

# The suite neither reads nor writes a user's compilation cache (~/.cache/jaxcausal): the CLI,
# demo and simulate would otherwise turn it on. Subprocesses inherit this; the cache tests give
# their own temporary directories explicitly.
os.environ["JAXCAUSAL_CACHE"] = "0"

import gc  # noqa: E402

import jax  # noqa: E402
import jax.random as jr  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after each test module.

    XLA's CPU backend keeps each executable's code in its own memory mappings (about 14 per
    program). A pytest worker that runs half the suite compiles thousands of programs, and once the
    process passes the kernel's limit (`vm.max_map_count`, 65530 by default) the next compilation
    dies with a segmentation fault inside XLA (the same failure as jax-ml/jax#27201). Clearing
    JAX's caches between modules frees those mappings; tests within one module still share their
    compiled programs.
    """
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def key():
    return jr.key(0)


@pytest.fixture
def getkey():
    """A callable returning a fresh, deterministic key at each call."""
    counter = iter(range(10**6))
    return lambda: jr.key(next(counter))
