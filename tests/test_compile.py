"""jaxcausal's jit wrappers: plain `equinox.filter_jit` / `jax.jit` unless CPU options are asked
for; when they are, they apply at top level only, give `jax.jit`'s numbers and trace once."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcausal import _compile


def _f(x, n):
    return jnp.tanh(x) @ jnp.exp(-x.T) + jnp.sum(jnp.sin(x) ** n)


def test_off_by_default_and_the_level_is_checked(monkeypatch):
    monkeypatch.delenv("JAXCAUSAL_CPU_OPT_LEVEL", raising=False)
    assert _compile._cpu_options_from_env() == {}
    monkeypatch.setenv("JAXCAUSAL_CPU_OPT_LEVEL", "2")
    assert _compile._cpu_options_from_env() == {"xla_backend_optimization_level": 2}
    monkeypatch.setenv("JAXCAUSAL_CPU_OPT_LEVEL", "fast")
    with pytest.raises(ValueError, match="JAXCAUSAL_CPU_OPT_LEVEL must be 0, 1, 2 or 3"):
        _compile._cpu_options_from_env()
    monkeypatch.setattr(_compile, "CPU_COMPILER_OPTIONS", {})
    assert not _compile._cpu_options_apply()
    assert isinstance(_compile.filter_jit(_f), type(eqx.filter_jit(_f)))


@pytest.mark.parametrize("options", [{}, {"xla_cpu_use_fusion_emitters": False}])
def test_wrappers_apply_options_at_top_level_only_and_trace_once(monkeypatch, options):
    # The dispatch is the same whatever the options; a CPU option known to be safe stands in.
    monkeypatch.setattr(_compile, "CPU_COMPILER_OPTIONS", options)
    seen, traces = [], []

    def probe(x):
        seen.append(_compile._cpu_options_apply())
        return x

    jax.jit(probe)(1.0)
    jax.vmap(probe)(jnp.ones(2))
    assert seen == [False, False]
    assert _compile._cpu_options_apply() == (bool(options) and jax.default_backend() == "cpu")

    def f(x, n):
        traces.append(1)
        return _f(x, n)

    x = jnp.asarray(np.random.default_rng(0).normal(size=(20, 20)))
    ref = jax.jit(_f, static_argnums=1)(x, 3)
    ref_shifted = jax.jit(_f, static_argnums=1)(x + 1.0, 3)
    for wrapped in (_compile.jit(f, static_argnums=1), _compile.filter_jit(f)):
        np.testing.assert_allclose(wrapped(x, 3), ref, rtol=1e-12, atol=1e-12)
        before = len(traces)
        np.testing.assert_allclose(wrapped(x + 1.0, 3), ref_shifted, rtol=1e-12, atol=1e-12)
        assert len(traces) == before  # a new value of the same shape: no new trace
    out = eqx.filter_jit(lambda y: _compile.filter_jit(f)(y, 3))(x)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
