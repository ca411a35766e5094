import jax.numpy as jnp

import jaxcausal as jc


def test_version_is_a_string():
    assert isinstance(jc.__version__, str) and jc.__version__


def test_linear_recovers_coefficients(key):
    x = jnp.arange(20.0).reshape(10, 2) ** 0.5
    y = 1.0 + x @ jnp.array([2.0, -3.0])
    pred = jc.learners.Linear().fit(x, y, key=key)
    assert jnp.allclose(pred.coef, jnp.array([2.0, -3.0]), atol=1e-8)
