"""Philox4x32-10 bulk uniforms: the noise of `jc.scm` sampling.

Philox4x32-10 is the counter-based generator of Salmon, Moraes, Dror and Shaw ("Parallel random
numbers: as easy as 1, 2, 3", SC 2011; the Random123 library, cuRAND's and NumPy's `Philox`
family): ten rounds of two 32 x 32 -> 64-bit multiplications that map a 128-bit counter and a
64-bit key to 128 random bits, passing TestU01's BigCrush with a margin of three rounds. Here the
key comes from a JAX PRNG key (`jax.random.bits(key, (2,))`) and the counters are the positions of
the words, so the numbers are a pure function of the key and the shape: the same under `jit`,
`vmap`, a loop or a sharded batch, on any device.

Why not `jax.random.uniform`: on a CPU, JAX's threefry (20 rounds of 32-bit additions, rotations
and exclusive-ors per 64 bits) costs 6-7 ns per float32 word; these rounds cost 3-5 ns
(`benchmarks/scm_noise_prng.py`), and the bulk noise of SCM queries (2e8 draws for 1000
interventions of 10,000 units) is where their time goes. XLA has no 32-bit multiply-high, so it is
formed from 16-bit halves with 32-bit integer arithmetic (no 64-bit types, so it runs with or
without `jax_enable_x64`).
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax
from jaxtyping import Array, PRNGKeyArray, UInt32

_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # Philox4x32's multipliers
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)  # its key schedule (Weyl increments)
_ROWS = 8  # the words are laid out in 8 rows (see `philox_bits`)


def _mulhilo(a: UInt32[Array, " *shape"], b: int) -> tuple[Array, Array]:
    """The high and low 32 bits of the 64-bit product `a * b` (b a 32-bit constant)."""
    lo16, hi16 = np.uint32(b & 0xFFFF), np.uint32(b >> 16)
    a0, a1 = a & np.uint32(0xFFFF), a >> np.uint32(16)
    t = a0 * lo16
    u = a1 * lo16 + (t >> np.uint32(16))  # < 2^32: no overflow
    v = a0 * hi16 + (u & np.uint32(0xFFFF))
    hi = a1 * hi16 + (u >> np.uint32(16)) + (v >> np.uint32(16))
    return hi, a * np.uint32(b)


def philox4x32(
    counter: tuple[Array, Array, Array, Array], key: tuple[Array, Array], rounds: int = 10
) -> tuple[Array, Array, Array, Array]:
    """Philox4x32 applied elementwise: four `uint32` counter words and two key words (scalars or
    broadcastable arrays) to four `uint32` output words. Matches Random123's known-answer
    vectors (`tests/test_philox.py`)."""
    c0, c1, c2, c3 = (jnp.asarray(c, jnp.uint32) for c in counter)
    k0, k1 = (jnp.asarray(k, jnp.uint32) for k in key)
    for _ in range(rounds):
        hi0, lo0 = _mulhilo(c0, _M0)
        hi1, lo1 = _mulhilo(c2, _M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = k0 + _W0, k1 + _W1
    return c0, c1, c2, c3


def philox_bits(key: PRNGKeyArray, n_words: int) -> UInt32[Array, " n_words"]:
    """`n_words` random 32-bit words from `key` (a JAX PRNG key of any implementation).

    Word layout: counters `0 .. q-1` (`q = ceil(n_words / 4)` rounded up to a multiple of 8) in 8
    rows of `q / 8`; the four output words of a counter go to four column blocks of its row. The
    layout is part of the definition (it fixes the numbers); it exists because XLA's CPU backend
    emits a one-dimensional concatenation of the four words as a slow scalar loop (10x), and a
    two-dimensional one as a vectorised one.
    """
    if n_words < 0:
        raise ValueError(f"n_words must be non-negative, got {n_words}")
    q = -(-n_words // (4 * _ROWS)) * _ROWS
    if q >= 2**31:
        raise ValueError(f"at most {4 * (2**31 - _ROWS)} words per key; asked for {n_words}")
    kd = jr.bits(key, (2,), jnp.uint32)
    ctr = lax.iota(jnp.uint32, q).reshape(_ROWS, q // _ROWS)
    zero = jnp.zeros_like(ctr)
    words = jnp.concatenate(philox4x32((ctr, zero, zero, zero), (kd[0], kd[1])), axis=1)
    return words.reshape(-1)[:n_words]


def philox_uniform(key: PRNGKeyArray, shape: tuple[int, ...], dtype=None) -> Array:
    """Uniforms strictly inside (0, 1) from Philox4x32-10 words (see `uniform_from_words`)."""
    dtype = _float_dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    words = philox_bits(key, size * (2 if dtype == jnp.float64 else 1))
    return uniform_from_words(words, shape, dtype)


def _float_dtype(dtype) -> np.dtype:
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def uniform_from_words(words: UInt32[Array, " m"], shape: tuple[int, ...], dtype=None) -> Array:
    """Uniforms strictly inside (0, 1) from random 32-bit words: the midpoints of a grid of `2^23`
    cells (float32, one word each) or `2^52` cells (float64, two words each, `words` twice as
    long), so neither 0 nor 1 nor a subnormal is ever drawn, and the grid is symmetric about 1/2
    (`u` and `1 - u` are equally likely, exactly; `2u - 1` is exact). `dtype` defaults to JAX's
    default float type."""
    dtype = _float_dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    if dtype == jnp.float32:
        # 1 + k 2^-23 in [1, 2) from the top 23 bits, minus (1 - 2^-24): (2k + 1) 2^-24, exact.
        one = lax.bitcast_convert_type((words >> np.uint32(9)) | np.uint32(0x3F800000), jnp.float32)
        u = one - np.float32(1.0 - 2.0**-24)
    else:
        w = words.reshape(2, size)
        a = (w[0] >> np.uint32(6)).astype(jnp.float64)  # 26 bits
        b = (w[1] >> np.uint32(6)).astype(jnp.float64)  # 26 bits
        u = (a * 2.0**26 + b + 0.5) * 2.0**-52  # (2k + 1) 2^-53 for a 52-bit k: exact
    return u.reshape(shape)
