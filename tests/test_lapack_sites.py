"""The package's own matrix solves outside the learners (PLIV's projection, the CATE's HC0 bread,
the linear SCM fit) map one matrix at a time under `vmap` (batched CPU LAPACK kernels can
deadlock XLA's thread pool on a 2-core machine; see `learners._base.sequential_under_vmap`):
the vmapped program holds a loop, not a batched kernel, and gives the loop's numbers."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from jaxcausal.dml import _cate, _pliv
from jaxcausal.scm import _fit


def _check(fn, *batched):
    out = jax.vmap(fn)(*batched)
    loop = [fn(*(a[i] for a in batched)) for i in range(batched[0].shape[0])]
    for got, want in zip(jax.tree.leaves(out), zip(*[jax.tree.leaves(r) for r in loop])):
        np.testing.assert_allclose(got, np.stack(want), rtol=1e-10, atol=1e-12)
    jaxpr = str(jax.make_jaxpr(jax.vmap(fn))(*batched))
    assert "scan" in jaxpr


def test_pliv_projection_and_cate_bread_map_one_matrix_at_a_time():
    k1, k2 = jr.split(jr.key(0))
    w = jr.normal(k1, (3, 50))
    v = jr.normal(k2, (3, 50, 4))
    _check(_pliv._project, w, v)
    y = jr.normal(k1, (3, 60))
    b = jnp.concatenate([jnp.ones((3, 60, 1)), jr.normal(k2, (3, 60, 2))], axis=-1)
    _check(_cate._ols_hc0, y, b)


def test_linear_scm_fit_maps_one_node_at_a_time():
    x = jr.normal(jr.key(1), (2, 80, 3))
    w = jnp.ones((2, 80))
    mask = jnp.broadcast_to(jnp.array([[False, True, True], [False, False, True],
                                       [False, False, False]]), (2, 3, 3))
    _check(_fit._fit_linear, x, w, mask)
