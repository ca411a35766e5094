"""Random linear-Gaussian SCMs as plain NumPyro programs, with their closed forms."""

import numpy as np
import numpyro
import numpyro.distributions as dist


def random_linear(seed: int, d: int = 5, p: float = 0.6):
    """Upper-triangular weights W (W[i, j]: i -> j), bias b and noise scales s."""
    rng = np.random.default_rng(seed)
    mask = np.triu(rng.random((d, d)) < p, 1)
    w = mask * rng.uniform(0.5, 1.5, (d, d)) * rng.choice([-1.0, 1.0], (d, d))
    b = rng.normal(size=d)
    s = rng.uniform(0.5, 1.5, d)
    names = [f"x{i}" for i in range(d)]
    return names, w, b, s


def linear_program(names, w, b, s):
    def model():
        values = {}
        for j, v in enumerate(names):
            loc = b[j]
            for i in range(j):
                if w[i, j] != 0:
                    loc = loc + w[i, j] * values[names[i]]
            values[v] = numpyro.sample(v, dist.Normal(loc, s[j]))

    return model


def closed_form(w, b, s, do=None):
    """Mean and covariance of x = W^T x + b + s * eps, optionally under do({index: value})."""
    w, b, s = w.copy(), b.copy(), s.copy()
    for k, v in (do or {}).items():
        w[:, k] = 0.0
        b[k] = v
        s[k] = 0.0
    a = np.linalg.inv(np.eye(len(b)) - w.T)
    return a @ b, a @ np.diag(s**2) @ a.T


def total_effect(w, i, j):
    """d E[x_j | do(x_i)] / d x_i of a linear SCM."""
    a = np.linalg.inv(np.eye(w.shape[0]) - w.T)
    w2 = w.copy()
    w2[:, i] = 0.0
    a2 = np.linalg.inv(np.eye(w.shape[0]) - w2.T)
    return a2[j, i] if i != j else 1.0 + 0 * a[0, 0]


def linear_scm(seed: int, d: int = 5):
    """The same random linear SCM as a `from_graph` program over the complete DAG (absent edges
    have weight 0), so every seed shares one compiled sampler."""
    import equinox as eqx
    import jax.numpy as jnp

    import jaxcausal as jc

    names, w, b, s = random_linear(seed, d)
    full = np.triu(np.ones((d, d)), 1)
    scm = jc.scm.SCM.from_graph(full, names)
    program = eqx.tree_at(
        lambda p: (p.weights, p.bias, p.scale), scm.model,
        (jnp.asarray(w), jnp.asarray(b), jnp.asarray(s)),
    )
    return jc.scm.SCM(program, graph=scm.graph, deterministic=()), (names, w, b, s)
