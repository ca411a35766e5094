"""Test helpers for the learners: compile counting and the errors every learner must raise."""

import contextlib
import logging

import jax
import jax.numpy as jnp
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
