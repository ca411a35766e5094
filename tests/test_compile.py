"""jaxcausal's jit wrappers: CPU compile options at top level only, the same numbers as plain
`jax.jit`, one trace per shape, and the switch back to XLA's defaults."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxcausal import _compile


def test_cpu_options_apply_at_top_level_only(monkeypatch):
    seen = []

    def probe(x):
        seen.append(_compile._cpu_options_apply())
        return x

    assert _compile._cpu_options_apply() == (jax.default_backend() == "cpu")
    jax.jit(probe)(1.0)
    jax.vmap(probe)(jnp.ones(2))
    assert seen == [False, False]
    monkeypatch.setenv("JAXCAUSAL_XLA_DEFAULTS", "1")
    assert not _compile._cpu_options_apply()


def test_wrappers_give_jax_jits_numbers_and_trace_once():
    traces = []

    def f(x, n):
        traces.append(1)
        return jnp.tanh(x) @ jnp.exp(-x.T) + jnp.sum(jnp.sin(x) ** n)

    x = jnp.asarray(np.random.default_rng(0).normal(size=(40, 40)))
    ref = jax.jit(f, static_argnums=1)(x, 3)
    ref_shifted = jax.jit(f, static_argnums=1)(x + 1.0, 3)
    classic = {"xla_cpu_use_fusion_emitters": False}
    for wrapped in (_compile.jit(f, static_argnums=1), _compile.filter_jit(f),
                    _compile.filter_jit(compiler_options=classic)(f)):
        np.testing.assert_allclose(wrapped(x, 3), ref, rtol=1e-12, atol=1e-12)
        before = len(traces)
        np.testing.assert_allclose(wrapped(x + 1.0, 3), ref_shifted, rtol=1e-12, atol=1e-12)
        assert len(traces) == before  # a new value of the same shape: no new trace
    # inside a user's jit the wrapped function is traced as part of the outer program
    out = eqx.filter_jit(lambda y: _compile.filter_jit(f)(y, 3))(x)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
