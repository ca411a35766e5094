import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import jaxcausal as jc

# Small networks, full batch and few steps keep every fit to a few seconds on a shared CPU.
TINY = jc.te.Training(learning_rate=1e-2, weight_decay=1e-4, max_steps=300, batch_size=None,
                      val_fraction=0.0, eval_every=50)


def make_data(key, n=400):
    """mu0 = x0 + 0.5 x1 and a heterogeneous effect tau = 1 + x1 (sd 1), confounded by x0."""
    kx, kt, ke = jr.split(key, 3)
    x = jr.normal(kx, (n, 3))
    t = jr.bernoulli(kt, jax.nn.sigmoid(0.5 * x[:, 0])).astype(x.dtype)
    tau = 1.0 + x[:, 1]
    y = x[:, 0] + 0.5 * x[:, 1] + t * tau + 0.3 * jr.normal(ke, (n,))
    return jc.CausalData(y, t, x), tau


@pytest.fixture(scope="session")
def hetero():
    return make_data(jr.key(42))


@pytest.fixture(scope="session")
def arctic():
    sim = jc.datasets.arctic_synthetic(jr.key(3), n_days=500)
    data, tau = sim.windows(8)
    return data, tau, jnp.sqrt(jnp.mean(tau**2))
