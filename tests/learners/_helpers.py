"""Test helpers for the learners: compile counting and the errors every learner must raise."""

import contextlib
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import TypeCheckError

from jaxcausal.learners._base import prepare_xyw


class _Counter(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.names = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.names.append(message.split(" with ")[0])


@contextlib.contextmanager
def count_compiles():
    """Collects the names of the XLA compilations made inside the block (via `jax.log_compiles`)."""
    counter = _Counter()
    logger = logging.getLogger("jax")
    logger.addHandler(counter)
    try:
        with jax.log_compiles():
            yield counter.names
    finally:
        logger.removeHandler(counter)


def check_common_errors(learner, x, y, *, key):
    """The bad inputs every learner must refuse, with messages naming the argument.

    Wrong shapes and mismatched rows are caught by `prepare_xyw` with a `ValueError` for users;
    under the test suite's jaxtyping hook the annotations of `fit` refuse them first, so `fit` is
    only required to raise, and the messages are checked on `prepare_xyw` itself.
    """
    n = x.shape[0]
    with pytest.raises(ValueError, match="x contains NaN"):
        learner.fit(x.at[3, 0].set(jnp.nan), y, key=key)
    with pytest.raises(ValueError, match="x contains infinite"):
        learner.fit(x.at[1, 0].set(jnp.inf), y, key=key)
    with pytest.raises(ValueError, match="y contains NaN"):
        learner.fit(x, y.at[0].set(jnp.nan), key=key)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        learner.fit(x, y, key=key, weights=jnp.ones((n,)).at[2].set(-1.0))
    with pytest.raises(ValueError, match="all are zero"):
        learner.fit(x, y, key=key, weights=jnp.zeros((n,)))
    with pytest.raises(ValueError, match="weights contains NaN"):
        learner.fit(x, y, key=key, weights=jnp.ones((n,)).at[0].set(jnp.nan))
    with pytest.raises((ValueError, TypeCheckError)):
        learner.fit(x, y[:-1], key=key)
    with pytest.raises((ValueError, TypeCheckError)):
        learner.fit(x[None], y, key=key)
    with pytest.raises(ValueError, match="x has .* rows but y has"):
        prepare_xyw(x, y[:-1], None)
    with pytest.raises(ValueError, match="x must be a matrix"):
        prepare_xyw(x[None], y, None)
    with pytest.raises(ValueError, match="y must be a vector"):
        prepare_xyw(x, y[:, None], None)
    with pytest.raises(ValueError, match=r"weights must have shape \("):
        prepare_xyw(x, y, jnp.ones((n + 1,)))


def badly_scaled(n=400, seed=0):
    """Covariates shaped like earnings data, on scales from 1e-3 to 1e5, with weights.

    Columns: age, years of education, four 0/1 indicators, two dollar amounts near 1e4 with many
    zeros, a column of scale 1e-3 and one of offset 1e5. Returns `(x, y, d, w)` in float64: a
    linear outcome, a binary treatment from a logistic model, positive weights.
    """
    rng = np.random.default_rng(seed)
    dollars = [np.where(rng.uniform(size=n) < 0.3, 0.0, rng.gamma(2.0, 7000.0, n))
               for _ in range(2)]
    x = np.column_stack([
        rng.uniform(17, 55, n), rng.integers(3, 18, n).astype(float),
        rng.binomial(1, 0.1, n), rng.binomial(1, 0.08, n), rng.binomial(1, 0.7, n),
        rng.binomial(1, 0.3, n), *dollars,
        5e-3 + 1e-3 * rng.normal(size=n), rng.normal(1e5, 3e4, n),
    ])
    beta = np.array([-100.0, 160.0, -760.0, -210.0, 60.0, 380.0, 0.3, 0.5, 2e5, 0.01])
    y = 1000.0 + x @ beta + rng.normal(0.0, 3000.0, n)
    eta = (-1.0 + 0.05 * (x[:, 0] - 33) - 0.2 * (x[:, 1] - 12) + 1.5 * x[:, 2]
           - 5e-5 * (x[:, 6] - 1e4) + 300.0 * (x[:, 8] - 5e-3) + 1e-5 * (x[:, 9] - 1e5))
    d = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    w = rng.uniform(0.5, 2.0, n)
    return x, y, d, w


def weighted_scale(x, w):
    """Weighted column means and standard deviations (NumPy, float64)."""
    mean = np.average(x, axis=0, weights=w)
    return mean, np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))


def as_float32(*arrays):
    """The arrays as float32 JAX arrays (call inside `jax.enable_x64(False)`)."""
    return tuple(jnp.asarray(np.asarray(a), jnp.float32) for a in arrays)
