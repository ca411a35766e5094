r"""The Hill-function perturbation suite of the GIM paper (Schneider et al., ICML 2025), offline.

A causal model over `d` variables (a random DAG; linear-Gaussian, or nonlinear with `tanh`
mechanisms) is perturbed by drugs. Drug $k$ has a descriptor $z_k \sim \mathcal N(0, I_p)$ from
which everything about it follows through fixed random maps of the suite:

- its targets: variable $j$ is targeted when the score $z_k^\top u_j$ ($\lVert u_j\rVert = 1$)
  exceeds the level at which `targets_per_drug` variables are expected to be hit (at least one:
  the top score);
- its dose response on target $j$: $s_{kj}(c) = a_{kj} c^{h_k} / (K_k^{h_k} + c^{h_k})$ with
  amplitude $a_{kj} = \mathrm{sign}(r)(1 + |r|)$, $r = z_k^\top v_j$, half-maximal dose
  $K_k = e^{0.5\, z_k^\top v_K}$ and Hill coefficient $h_k = 1 + 3\,\sigma(z_k^\top v_h)$
  (unit vectors $v$).

A perturbation is a drug at a dose $c$; it shifts each target's mechanism by $s_{kj}(c)$ and its
features are $(z_k, c)$. Train: `n_drugs` drugs at doses 0.5, 1, 1.5, 2 with `n_cells` cells each,
plus `n_control` control cells. Partially out of distribution: the same drugs at 0.25, 0.75,
1.25, 1.75, 2.25. Fully out of distribution: `n_new_drugs` new drugs at the training doses.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray
from scipy.special import ndtri

TRAIN_DOSES = (0.5, 1.0, 1.5, 2.0)
PARTIAL_DOSES = (0.25, 0.75, 1.25, 1.75, 2.25)


class HillSplit(NamedTuple):
    """One split: `x` `(N, d)`, `context` `(N,)` (-1 control), `features` `(K, p + 1)`
    (descriptor, dose), `targets` `(K, d)` booleans, `shifts` `(K, d)` true shifts (0 off
    target), `drug` `(K,)` drug index, `dose` `(K,)`. `data` builds the
    [`jaxcausal.gim.PerturbationData`][]."""

    x: np.ndarray
    context: np.ndarray
    features: np.ndarray
    targets: np.ndarray
    shifts: np.ndarray
    drug: np.ndarray
    dose: np.ndarray
    names: tuple[str, ...]

    @property
    def data(self) -> Any:
        from ..gim import PerturbationData

        return PerturbationData(self.x, self.context, self.features, names=self.names)


class HillSuite(NamedTuple):
    """What [`jaxcausal.datasets.hill_suite`][] returns: the `train`, `partial` (same drugs, new
    doses) and `full` (new drugs) splits, the true `scm` (a [`jaxcausal.scm.SCM`][] without
    interventions), its `adjacency` (`[i, j]`: `names[i] -> names[j]`), `names` and whether it is
    `linear`."""

    train: HillSplit
    partial: HillSplit
    full: HillSplit
    scm: Any
    adjacency: np.ndarray
    names: tuple[str, ...]
    linear: bool


class _TanhProgram(eqx.Module):
    """$x_j = b_j + \\sum_i W_{ij} \\tanh(x_i) + \\sigma_j \\varepsilon_j$ as a NumPyro program."""

    graph: Any
    weights: Any
    bias: Any
    scale: Any

    def loc(self, j, values):
        out = self.bias[j]
        for p in self.graph.parent_names[j]:
            out = out + self.weights[self.graph.index(p), j] * jnp.tanh(values[p])
        return out

    def __call__(self):
        import numpyro
        import numpyro.distributions as dist

        values = {}
        for j, v in enumerate(self.graph.names):
            values[v] = numpyro.sample(v, dist.Normal(self.loc(j, values), self.scale[j]))


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=0, keepdims=True)


def _cells(w, b, s, shifts, counts, linear, order, rng_normal):
    """Cells of each context: `shifts` `(K, d)` per context, `counts` cells each."""
    rows = np.repeat(np.arange(len(counts)), counts)
    eps = rng_normal((rows.size, w.shape[0])) * s[None, :]
    u = b[None, :] + shifts[rows] + eps
    if linear:
        return np.linalg.solve((np.eye(w.shape[0]) - w).T, u.T).T
    x = np.zeros_like(u)
    for j in order:
        x[:, j] = u[:, j] + np.tanh(x) @ w[:, j]
    return x


def hill_suite(
    key: PRNGKeyArray,
    *,
    d: int = 10,
    linear: bool = True,
    n_drugs: int = 40,
    n_new_drugs: int = 20,
    n_cells: int = 50,
    n_test_cells: int = 100,
    n_control: int = 800,
    n_descriptors: int = 4,
    targets_per_drug: float = 1.5,
    edges_per_node: float = 1.0,
) -> HillSuite:
    """Simulates the Hill-function suite (see the module docstring).

    **Arguments:** `key`; `d` variables; `linear` or `tanh` mechanisms; `n_drugs` training and
    `n_new_drugs` new drugs; `n_cells` cells per training perturbation, `n_test_cells` per test
    perturbation, `n_control` control cells (in train; the test splits get `n_test_cells`);
    `n_descriptors` descriptor dimensions; `targets_per_drug` expected targets;
    `edges_per_node` expected parents per variable. Weights are $\\pm U(0.5, 1)$, biases
    $N(0, 1)$, noise sds $U(0.5, 1)$.
    """
    if d < 2 or n_drugs < 1 or n_new_drugs < 1 or n_cells < 1 or n_control < 2:
        raise ValueError("d >= 2, n_drugs, n_new_drugs, n_cells >= 1 and n_control >= 2 needed")
    seed = int(jr.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    names = tuple(f"x{j}" for j in range(d))
    order = rng.permutation(d)
    rank = np.empty(d, int)
    rank[order] = np.arange(d)
    p_edge = min(1.0, 2.0 * edges_per_node / (d - 1))
    adj = (rng.random((d, d)) < p_edge) & (rank[:, None] < rank[None, :])
    w = adj * rng.uniform(0.5, 1.0, (d, d)) * rng.choice([-1.0, 1.0], (d, d))
    b, s = rng.normal(size=d), rng.uniform(0.5, 1.0, d)
    p = n_descriptors
    u_t, v_a = _unit(rng.normal(size=(p, d))), _unit(rng.normal(size=(p, d)))
    v_k, v_h = _unit(rng.normal(size=(p, 1)))[:, 0], _unit(rng.normal(size=(p, 1)))[:, 0]
    level = ndtri(1.0 - min(targets_per_drug / d, 0.99))

    def drugs(n):
        z = rng.normal(size=(n, p))
        score = z @ u_t
        tgt = score > level
        tgt[np.arange(n), np.argmax(score, axis=1)] = True
        r = z @ v_a
        amp = np.sign(r) * (1.0 + np.abs(r))
        return z, tgt, amp, np.exp(0.5 * z @ v_k), 1.0 + 3.0 / (1.0 + np.exp(-(z @ v_h)))

    def split(drug_params, doses, n_per, n_ctrl, drug_offset=0):
        z, tgt, amp, kk, hh = drug_params
        k_idx = np.repeat(np.arange(len(z)), len(doses))
        dose = np.tile(np.asarray(doses, float), len(z))
        strength = amp[k_idx] * (dose**hh[k_idx] / (kk[k_idx] ** hh[k_idx] + dose**hh[k_idx]))[
            :, None]
        shifts = np.where(tgt[k_idx], strength, 0.0)
        counts = np.concatenate([[n_ctrl], np.full(len(k_idx), n_per)])
        all_shifts = np.concatenate([np.zeros((1, d)), shifts])
        x = _cells(w, b, s, all_shifts, counts, linear, order, lambda n: rng.normal(size=n))
        context = np.repeat(np.arange(-1, len(k_idx)), counts)
        feats = np.concatenate([z[k_idx], dose[:, None]], axis=1)
        return HillSplit(x, context, feats, tgt[k_idx], shifts, k_idx + drug_offset, dose, names)

    old, new = drugs(n_drugs), drugs(n_new_drugs)
    train = split(old, TRAIN_DOSES, n_cells, n_control)
    partial = split(old, PARTIAL_DOSES, n_test_cells, n_test_cells)
    full = split(new, TRAIN_DOSES, n_test_cells, n_test_cells, drug_offset=n_drugs)
    return HillSuite(train, partial, full, _truth(adj, w, b, s, names, linear), adj.astype(int),
                     names, linear)


def _truth(adj, w, b, s, names, linear):
    from .. import scm as jscm

    template = jscm.SCM.from_graph(adj.astype(int), names)
    graph = template.graph
    perm = [names.index(v) for v in graph.names]
    arrays = tuple(jnp.asarray(a) for a in (w[np.ix_(perm, perm)], b[perm], s[perm]))
    if linear:
        program = eqx.tree_at(lambda q: (q.weights, q.bias, q.scale), template.program, arrays)
    else:
        program = _TanhProgram(graph, *arrays)
    return jscm.SCM(program, graph=graph, deterministic=())


