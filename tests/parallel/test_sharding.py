import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

CHILD = Path(__file__).with_name("_sharded_child.py")


@pytest.fixture(scope="module")
def four_devices():
    """Runs `_sharded_child.py` on 4 forced host CPU devices and returns its JSON report."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(CHILD)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_child_sees_four_devices_in_x64(four_devices):
    assert four_devices["n_devices"] == 4
    assert four_devices["x64"]


@pytest.mark.parametrize("size", [8, 6, 1])
def test_sharded_vmap_equals_vmap_on_four_devices(four_devices, size):
    # Each element is computed on its own device; only the kernels' rounding may differ (float64).
    assert four_devices[f"vmap_diff_{size}"] < 1e-12
    assert four_devices[f"shape_{size}"] == [[size, 3, 2], [size]]
    assert four_devices[f"devices_{size}"] == 4


@pytest.mark.parametrize("batch_size", [None, 2])
def test_simulate_on_four_devices_equals_one_device(four_devices, batch_size):
    assert four_devices[f"simulate_diff_{batch_size}"] < 1e-12


def test_sharded_vmap_output_is_split_over_four_devices(four_devices):
    assert four_devices["split_8"]


def test_fit_ensemble_sharded_equals_unsharded(four_devices):
    assert four_devices["ensemble_inputs_split"]
    assert four_devices["ensemble_output_split"]
    assert four_devices["ensemble_devices"] == 4
    assert four_devices["ensemble_trained"]
    assert four_devices["ensemble_loss_finite"]
    # 40 Adam steps in float64: sharding must not change the members beyond rounding.
    assert four_devices["ensemble_model_diff"] < 1e-9
    assert four_devices["ensemble_loss_diff"] < 1e-9


def test_shard_batch_rejects_indivisible_batch(four_devices):
    msg = four_devices["indivisible_error"]
    assert "size 6" in msg and "not divisible by the 4 devices" in msg and "['w']" in msg


# In-process tests: one device here (conftest does not force more).


def _f(a, b, c):
    return jnp.sin(a) @ b + c, jnp.sum(a)


@pytest.mark.parametrize("size", [1, 5])
def test_sharded_vmap_one_device_equals_jit_vmap(getkey, size):
    a = jr.normal(getkey(), (size, 3, 4))
    b = jr.normal(getkey(), (4, 2))
    got = jc.parallel.sharded_vmap(_f, in_axes=(0, None, None))(a, b, 1.5)
    ref = jax.jit(jax.vmap(_f, in_axes=(0, None, None)))(a, b, 1.5)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-13, atol=1e-13)


def test_sharded_vmap_batches_any_axis_and_keys(getkey):
    keys = jr.split(getkey(), 3)
    a = jr.normal(getkey(), (2, 3))  # batched along axis 1
    got = jc.parallel.sharded_vmap(lambda k, v: jr.normal(k, (2,)) + v, in_axes=(0, 1))(keys, a)
    ref = jax.vmap(lambda k, v: jr.normal(k, (2,)) + v, in_axes=(0, 1))(keys, a)
    np.testing.assert_allclose(got, ref, rtol=1e-13)


def test_sharded_vmap_leaves_non_arrays_alone(getkey):
    x = jr.normal(getkey(), (4, 2))
    got = jc.parallel.sharded_vmap(lambda v, scale, name: (v * scale, name))(x, 2.0, "tag")
    np.testing.assert_allclose(got[0], 2.0 * x)
    assert got[1] == "tag"


def test_sharded_vmap_fits_learners_per_mask(getkey):
    x = jr.normal(getkey(), (30, 2))
    y = x @ jnp.array([1.0, -2.0]) + 0.5
    masks = (jr.uniform(getkey(), (3, 30)) > 0.3).astype(float)
    keys = jr.split(getkey(), 3)
    learner = jc.learners.Linear()
    preds = jc.parallel.sharded_vmap(
        lambda k, w, xx, yy: learner.fit(xx, yy, key=k, weights=w), in_axes=(0, 0, None, None)
    )(keys, masks, x, y)
    for e in range(3):
        one = learner.fit(x, y, key=keys[e], weights=masks[e])
        np.testing.assert_allclose(preds.coef[e], one.coef, rtol=1e-10)


def test_sharded_vmap_does_not_recompile(getkey):
    @eqx.debug.assert_max_traces(max_traces=1)
    def g(v):
        return v * 2.0

    mapped = jc.parallel.sharded_vmap(g)
    mapped(jr.normal(getkey(), (3, 2)))
    mapped(jr.normal(getkey(), (3, 2)))


def test_batch_mesh_defaults_to_all_devices():
    mesh = jc.parallel.batch_mesh()
    assert mesh.axis_names == ("batch",)
    assert mesh.devices.size == jax.device_count()
    assert jc.parallel.batch_mesh(axis_name="members").axis_names == ("members",)


def test_shard_batch_places_arrays_and_keeps_other_leaves(getkey):
    tree = {"w": jr.normal(getkey(), (4, 3)), "name": "fold", "k": jr.split(getkey(), 4)}
    out = jc.parallel.shard_batch(tree)
    assert out["name"] == "fold"
    np.testing.assert_array_equal(out["w"], tree["w"])
    assert out["w"].sharding.spec[0] == "batch"


def test_errors_name_the_problem(getkey):
    with pytest.raises(ValueError, match="devices is empty"):
        jc.parallel.batch_mesh([])
    # The message is ours, or beartype's when the annotations are checked (as under pytest).
    with pytest.raises(TypeError, match="mesh"):
        jc.parallel.shard_batch(jnp.ones(2), mesh="cpu")
    with pytest.raises(ValueError, match=r"scalar leaf at \['s'\]"):
        jc.parallel.shard_batch({"s": jnp.ones(())})
    with pytest.raises(ValueError, match="disagree on the batch size: got sizes \\[2, 3\\]"):
        jc.parallel.sharded_vmap(lambda a, b: a + b)(jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="no batched array"):
        jc.parallel.sharded_vmap(lambda a: a, in_axes=None)(jnp.ones(2))
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function got 2"):
        jc.parallel.sharded_vmap(lambda a, b: a, in_axes=(0,))(jnp.ones(2), jnp.ones(2))
    with pytest.raises(ValueError, match="axis 2 of an array of shape \\(2,\\)"):
        jc.parallel.sharded_vmap(lambda a: a, in_axes=2)(jnp.ones(2))
    with pytest.raises(TypeError, match="fn"):
        jc.parallel.sharded_vmap(3)


def test_import_does_not_start_the_backend():
    # `jax.distributed.initialize()` (many hosts) and the CPU device count must be set before JAX
    # starts its backend, so importing jaxcausal must not run any JAX computation.
    code = (
        "import jaxcausal\n"
        "from jax._src import xla_bridge\n"
        "assert not xla_bridge.backends_are_initialized(), 'import jaxcausal started JAX'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


class _Tagged(eqx.Module):
    value: jax.Array
    count: jax.Array
    scale: float  # a non-array leaf of the output
    tag: str = eqx.field(static=True)


_MAP_TRACES = [0]


def _tagged(a, b):
    _MAP_TRACES[0] += 1
    return _Tagged(a * 2.0 + jnp.sum(b), jnp.sum(b > 0), 1.5, "t")


@pytest.mark.parametrize("batch_size", [None, 1, 2, 3, 7, 10])
def test_sharded_map_equals_vmap_for_any_batch_size(batch_size):
    a = jnp.arange(7.0)
    b = jr.normal(jr.key(0), (7, 3))
    got = jc.parallel.sharded_map(_tagged, batch_size=batch_size)(a, b)
    ref = jax.vmap(lambda x, y: _tagged(x, y).value)(a, b)
    np.testing.assert_allclose(got.value, ref, rtol=1e-12)
    np.testing.assert_array_equal(got.count, jnp.sum(b > 0, axis=1))
    assert got.scale == 1.5 and got.tag == "t"


def test_a_new_sharded_map_of_the_same_function_does_not_recompile():
    a, b = jnp.arange(5.0), jnp.ones((5, 2))
    jc.parallel.sharded_map(_tagged, batch_size=2)(a, b)
    before = _MAP_TRACES[0]
    jc.parallel.sharded_map(_tagged, batch_size=2)(a + 1.0, b)
    assert _MAP_TRACES[0] == before


@pytest.mark.parametrize("bad", [0, -1, True])
def test_sharded_map_rejects_a_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        jc.parallel.sharded_map(_tagged, batch_size=bad)
