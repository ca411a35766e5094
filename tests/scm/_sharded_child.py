"""Run by `test_sharding.py` in a child process with 4 host CPU devices; prints one JSON line."""

import json

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402

import jaxcausal as jc  # noqa: E402


def model():
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    x = numpyro.sample("x", dist.Normal(0.8 * z, 1.0))
    numpyro.sample("y", dist.Normal(1.5 * x - z, 0.5))


scm = jc.scm.SCM(model)
values = {"x": jnp.linspace(-1.0, 1.0, 8)}
plain = jc.scm.interventional_means(scm, values, 200, key=jr.key(0))
sharded = jc.scm.interventional_means(scm, jc.parallel.shard_batch(values), 200, key=jr.key(0))
print(json.dumps({
    "n_devices": len(jax.devices()),
    "diff": max(float(jnp.max(jnp.abs(plain[v] - sharded[v]))) for v in plain),
    "out_devices": len(sharded["y"].sharding.device_set),
}))
