"""Run by `test_sharding.py` in a child process with 4 host CPU devices; prints one JSON line.

The parent sets `XLA_FLAGS=--xla_force_host_platform_device_count=4` (it must be set before JAX
starts, hence the separate process) and asserts on the numbers reported here.
"""

import json

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

with install_import_hook("jaxcausal", "beartype.beartype"):
    import jaxcausal as jc  # noqa: E402


def small_fn(a, w, c):
    return jnp.tanh(a @ w) * c, jnp.sum(a**2)


def max_diff(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def n_devices_holding(tree):
    return min(
        len(leaf.sharding.device_set) for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    )


def leading_axis_split(tree):
    """Whether every array leaf is split along its leading axis into one shard per device."""
    shards = [
        {tuple(s.data.shape)[0] for s in leaf.addressable_shards}
        for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    ]
    sizes = [leaf.shape[0] for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]
    return all(s == {n // 4} for s, n in zip(shards, sizes))


def check_sharded_vmap():
    out = {}
    w = jr.normal(jr.key(1), (5, 2))
    for size in (8, 6, 1):
        a = jr.normal(jr.key(size), (size, 3, 5))
        got = jc.parallel.sharded_vmap(small_fn, in_axes=(0, None, None))(a, w, 2.0)
        ref = jax.vmap(small_fn, in_axes=(0, None, None))(a, w, 2.0)
        out[f"vmap_diff_{size}"] = max_diff(got, ref)
        out[f"shape_{size}"] = [list(x.shape) for x in got]
        out[f"devices_{size}"] = n_devices_holding(got)
        if size % 4 == 0:
            out[f"split_{size}"] = leading_axis_split(got)
    return out


def _squared_error(model, data, weights, *, key):
    x, y = data
    pred = jax.vmap(model)(x)
    return jc.train.weighted_mean((pred - y) ** 2, weights)


def check_fit_ensemble():
    members, n = 8, 64
    kx, ky, km, kw = jr.split(jr.key(0), 4)
    x = jr.normal(kx, (n, 3))
    y = jnp.sin(x[:, 0]) + 0.1 * jr.normal(ky, (n,))
    models = eqx.filter_vmap(lambda k: jc.nn.MLP(3, "scalar", 8, 1, key=k))(jr.split(km, members))
    weights = (jr.uniform(kw, (members, n)) > 0.3).astype(float)
    opt = optax.adam(1e-2)
    kwargs = dict(key=jr.key(1), max_steps=40, batch_size=16, eval_every=10)
    ref = jc.train.fit_ensemble(_squared_error, models, (x, y), opt, weights=weights, **kwargs)
    mesh = jc.parallel.batch_mesh()
    s_models, s_weights = jc.parallel.shard_batch((models, weights), mesh)
    got = jc.train.fit_ensemble(_squared_error, s_models, (x, y), opt, weights=s_weights, **kwargs)
    return {
        "ensemble_inputs_split": leading_axis_split((s_models, s_weights)),
        "ensemble_model_diff": max_diff(got.model, ref.model),
        "ensemble_loss_diff": max_diff(got.train_loss, ref.train_loss),
        "ensemble_devices": n_devices_holding(got.model),
        "ensemble_output_split": leading_axis_split(got.model),
        "ensemble_trained": max_diff(got.model, models) > 1e-3,
        "ensemble_loss_finite": bool(jnp.all(jnp.isfinite(got.train_loss))),
    }


def check_simulate():
    # A study of 7 replications (not a multiple of 4) on 4 devices, as one batch per device and
    # two at a time per device, against one device: the same per-replication numbers.
    est = jc.dml.PLR(jc.learners.Linear(), jc.learners.Linear(), n_folds=2)

    def dgp(k):
        return jc.datasets.make_plr_CCDDHNR2018(n_obs=40, dim_x=3, key=k), 0.5

    one = jc.parallel.batch_mesh(jax.devices()[:1])
    ref = jc.dml.simulate(est, dgp, key=jr.key(5), n_sims=7, summarize=False, mesh=one)
    report = {}
    for bs in (None, 2):
        got = jc.dml.simulate(est, dgp, key=jr.key(5), n_sims=7, summarize=False, batch_size=bs)
        report[f"simulate_diff_{bs}"] = float(np.max(np.abs(got["theta"] - ref["theta"])))
    return report


def check_errors():
    try:
        jc.parallel.shard_batch({"w": jnp.ones((6, 2))})
    except ValueError as err:
        return {"indivisible_error": str(err)}
    return {"indivisible_error": ""}


if __name__ == "__main__":
    report = {"n_devices": jax.device_count(), "x64": bool(jax.config.jax_enable_x64)}
    report.update(check_sharded_vmap())
    report.update(check_fit_ensemble())
    report.update(check_simulate())
    report.update(check_errors())
    print(json.dumps(report))
