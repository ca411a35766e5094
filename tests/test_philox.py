"""Philox4x32-10 bulk uniforms (`jaxcausal/_philox.py`): the generator is the published one, its
numbers depend only on the key, and the uniforms are what they claim to be."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.special import ndtri

from jaxcausal._philox import philox4x32, philox_bits, philox_uniform, uniform_from_words

# Random123's known-answer vectors for philox4x32 with 10 rounds (kat_vectors):
# counter (4 words), key (2 words) -> output (4 words).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_known_answer_vectors(ctr, key, expected):
    as_u32 = [jnp.asarray([c], jnp.uint32) for c in ctr]
    out = jax.jit(philox4x32)(tuple(as_u32), tuple(jnp.uint32(k) for k in key))
    assert [int(o[0]) for o in out] == list(expected)


def test_bits_are_a_function_of_key_and_length_only():
    keys = jr.split(jr.key(3), 5)
    n = 1001  # not a multiple of the layout's 32 words
    looped = np.stack([np.asarray(philox_bits(k, n)) for k in keys])
    vmapped = np.asarray(jax.jit(jax.vmap(lambda k: philox_bits(k, n)))(keys))
    mapped = np.asarray(jax.jit(lambda ks: jax.lax.map(lambda k: philox_bits(k, n), ks))(keys))
    np.testing.assert_array_equal(vmapped, looped)
    np.testing.assert_array_equal(mapped, looped)
    assert looped.dtype == np.uint32 and looped.shape == (5, n)
    # different keys give different words; no word repeats within a draw of this size
    assert len({row.tobytes() for row in looped}) == 5
    assert len(np.unique(looped[0])) == n


def test_bits_look_random():
    w = np.asarray(philox_bits(jr.key(0), 2**18))
    bits = (w[:, None] >> np.arange(32)) & 1
    freq = bits.mean(0)
    # each bit is 1 half the time: |freq - 1/2| < 5 sd
    assert np.all(np.abs(freq - 0.5) < 5 * 0.5 / np.sqrt(len(w)))
    # consecutive words (which cross the lane and row blocks of the layout) are uncorrelated
    u = w.astype(np.float64) / 2**32 - 0.5
    for lag in (1, 2**16, 2**18 // 4, 2**18 // 32):
        r = np.corrcoef(u[:-lag], u[lag:])[0, 1]
        assert abs(r) < 5 / np.sqrt(len(w) - lag), lag


def test_float32_uniforms_are_grid_midpoints_inside_the_unit_interval():
    with jax.enable_x64(False):
        u = np.asarray(philox_uniform(jr.key(1), (1000, 50)))
        assert u.dtype == np.float32 and u.shape == (1000, 50)
        assert u.min() > 0 and u.max() < 1
        cells = u.astype(np.float64) * 2**24
        np.testing.assert_array_equal(cells % 2, 1.0)  # (2k + 1) 2^-24 exactly
        # the extreme words map to the extreme midpoints, symmetric about 1/2
        ends = np.asarray(uniform_from_words(jnp.asarray([0, 2**32 - 1], jnp.uint32), (2,)))
        assert ends[0] == np.float32(2.0**-24) and ends[1] == np.float32(1 - 2.0**-24)
        assert ends[0] + ends[1] == 1.0
        # Uniform(0, 1): mean 1/2 and variance 1/12 within 5 sd
        n = u.size
        assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
        assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)
        hist = np.histogram(u, bins=20, range=(0, 1))[0]
        chi2 = np.sum((hist - n / 20) ** 2 / (n / 20))
        assert chi2 < 50  # chi-squared with 19 degrees of freedom: P(> 50) < 2e-4


def test_float64_uniforms_use_52_bits():
    u = np.asarray(philox_uniform(jr.key(2), (4000,), jnp.float64))
    assert u.dtype == np.float64 and u.min() > 0 and u.max() < 1
    k2 = u * 2**53
    np.testing.assert_array_equal(k2 % 2, 1.0)  # (2k + 1) 2^-53 exactly
    assert len(np.unique(u)) == u.size
    # the low bits carry information (not a float32 grid): many values are off the 2^-24 grid
    assert np.mean((u * 2**24) % 1 != 0.5) > 0.99
    ends = np.asarray(
        uniform_from_words(
            jnp.asarray([0, 0, 2**32 - 1, 2**32 - 1], jnp.uint32).reshape(2, 2).T.reshape(-1),
            (2,),
            jnp.float64,
        )
    )
    assert ends[0] == 2.0**-53 and ends[1] == 1 - 2.0**-53


def test_rejects_other_dtypes():
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        philox_uniform(jr.key(0), (3,), jnp.float16)


@pytest.mark.parametrize("x64", [False, True])
def test_normal_noise_is_the_inverse_cdf_of_the_midpoints(x64):
    """The SCM's Gaussian noise is sqrt(2) erfinv(2u - 1): equal to ndtri(u) to 2.5e-5 (float32,
    XLA's erfinv approximation, the one `jax.random.normal` uses) or 1e-10 (float64), over the
    whole grid including its extreme cells."""
    from numpyro import distributions as dist

    from jaxcausal.scm._interventions import _standard_icdf

    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        bits = 52 if x64 else 23
        rng = np.random.default_rng(0)
        k = np.concatenate([[0, 1, 2**bits - 2, 2**bits - 1], rng.integers(0, 2**bits, 10**5)])
        u = ((2 * k + 1) * 2.0 ** -(bits + 1)).astype(dtype)
        z = np.asarray(_standard_icdf(dist.Normal(0.0, 1.0), jnp.asarray(u)))
        ref = ndtri(u.astype(np.float64))
        assert np.all(np.isfinite(z))
        np.testing.assert_allclose(z, ref, rtol=0, atol=1e-10 if x64 else 2.5e-5)
        assert z[0] == -z[3]  # symmetric grid, symmetric noise
