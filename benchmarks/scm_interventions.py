"""Batched interventions, shifts and counterfactuals: jaxcausal against DoWhy's `gcm` loop.

The SCM: 20 nodes, a random DAG (edge probability 0.2 in a fixed order), mechanisms
`x_j = b_j + sum_i W_ij tanh(x_i) + s_j * eps_j` with Gaussian noise. jaxcausal runs it as a
NumPyro program; DoWhy gets the very same mechanisms as custom prediction models
(`AdditiveNoiseModel` with a NumPy `tanh` regression and a fixed `ScipyDistribution` noise).

Workloads:
1. 1000 hard interventions (random node, random value) x 10,000 samples each: jaxcausal's
   `interventional_means` in one compiled call (NaN masks let every row target a different
   node), with fresh noise per intervention (as DoWhy) and with `common_noise=True` (the same
   10,000 units under every intervention: the noise is drawn once); DoWhy's
   `gcm.interventional_samples` once per intervention, timed on a subset and extrapolated
   linearly (stated in the output).
2. A grid of shift interventions (every node x 10 shifts = 200) x 10,000 samples.
3. Counterfactuals for 10,000 observed units under one hard intervention (`counterfactual` vs
   `gcm.counterfactual_samples`): additive noise, so both are exact and must agree unit by unit.
4. The time to infer the target of one shift intervention from 1,000 cells
   (`infer_interventions`, NUTS with the target summed out).

Means are compared within Monte Carlo error: for each compared intervention and node,
|mean_jc - mean_dowhy| / (sd * sqrt(2 / n)) should look like |N(0, 1)|.

    python benchmarks/scm_interventions.py   # writes benchmarks/results/scm_interventions.json
    JAXCAUSAL_SMALL=1 python benchmarks/scm_interventions.py   # quick, small sizes
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpyro
import numpyro.distributions as dist

import jaxcausal as jc

SMALL = os.environ.get("JAXCAUSAL_SMALL", "0") == "1"
D = 20
N_SAMPLES = 1_000 if SMALL else 10_000
N_HARD = 50 if SMALL else 1000
N_DOWHY = 10 if SMALL else 50  # DoWhy interventions actually run (then extrapolated)
SHIFTS = np.linspace(-1.0, 1.0, 10)
N_UNITS = 1_000 if SMALL else 10_000
CHUNK = 50


def make_scm(seed: int = 0):
    rng = np.random.default_rng(seed)
    mask = np.triu(rng.random((D, D)) < 0.2, 1)
    w = mask * rng.uniform(0.5, 1.5, (D, D)) * rng.choice([-1.0, 1.0], (D, D))
    b = rng.normal(size=D) * 0.5
    s = rng.uniform(0.3, 1.0, D)
    names = [f"x{j:02d}" for j in range(D)]
    parents = [list(np.flatnonzero(mask[:, j])) for j in range(D)]
    wj, bj, sj = (jnp.asarray(a, jnp.float32) for a in (w, b, s))

    def model():
        values = []
        for j, v in enumerate(names):
            loc = bj[j]
            for i in parents[j]:
                loc = loc + wj[i, j] * jnp.tanh(values[i])
            values.append(numpyro.sample(v, dist.Normal(loc, sj[j])))

    return jc.scm.SCM(model), (names, w, b, s, parents)


def make_dowhy(names, w, b, s, parents):
    import networkx as nx
    from dowhy import gcm
    from dowhy.gcm.causal_models import PARENTS_DURING_FIT
    from scipy import stats

    class TanhMean(gcm.ml.PredictionModel):
        """The same mechanism as the NumPyro program; DoWhy passes parents sorted by name."""

        def __init__(self, coef, intercept):
            self.coef, self.intercept = np.asarray(coef), float(intercept)

        def fit(self, X, Y):
            pass

        def predict(self, X):
            return (np.tanh(np.asarray(X)) @ self.coef + self.intercept).reshape(-1, 1)

        def clone(self):
            return TanhMean(self.coef, self.intercept)

    g = nx.DiGraph()
    g.add_nodes_from(names)
    g.add_edges_from((names[i], names[j]) for j in range(D) for i in parents[j])
    model = gcm.InvertibleStructuralCausalModel(g)
    for j, v in enumerate(names):
        pa = sorted(g.predecessors(v))
        model.graph.nodes[v][PARENTS_DURING_FIT] = pa  # mechanisms given, not learned
        if not pa:
            model.set_causal_mechanism(v, gcm.ScipyDistribution(stats.norm, loc=b[j], scale=s[j]))
            continue
        coef = [w[names.index(p), j] for p in pa]
        noise = gcm.ScipyDistribution(stats.norm, loc=0.0, scale=s[j])
        model.set_causal_mechanism(v, gcm.AdditiveNoiseModel(TanhMean(coef, b[j]), noise))
    return gcm, model


def timed(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def hard_workload(scm, names, gcm, dmodel, sds):
    rng = np.random.default_rng(1)
    nodes = rng.integers(0, D, N_HARD)
    vals = rng.normal(size=N_HARD) * 1.5
    table = np.full((N_HARD, D), np.nan, np.float32)
    table[np.arange(N_HARD), nodes] = vals
    ivs = {v: jnp.asarray(table[:, j]) for j, v in enumerate(names)}

    def run(k, common):
        return jc.scm.interventional_means(
            scm, ivs, N_SAMPLES, key=jr.key(k), chunk=CHUNK, common_noise=common
        )

    first, t_first = timed(lambda: run(0, False))
    _, t_warm = timed(lambda: run(1, False))
    common, t_first_c = timed(lambda: run(0, True))
    _, t_warm_c = timed(lambda: run(1, True))
    t0 = time.perf_counter()
    z, zc = [], []
    for i in range(N_DOWHY):
        v = names[nodes[i]]
        theirs = gcm.interventional_samples(
            dmodel, {v: (lambda x, c=float(vals[i]): c)}, num_samples_to_draw=N_SAMPLES
        )
        for j, u in enumerate(names):
            se = sds[j] * np.sqrt(2.0 / N_SAMPLES)
            if u != v:
                z.append(abs(float(first[u][i]) - theirs[u].mean()) / se)
                zc.append(abs(float(common[u][i]) - theirs[u].mean()) / se)
    t_dowhy = (time.perf_counter() - t0) / N_DOWHY * N_HARD
    return {
        "interventions": N_HARD, "samples_each": N_SAMPLES,
        "jaxcausal_first_s": t_first, "jaxcausal_warm_s": t_warm,
        "jaxcausal_common_noise_first_s": t_first_c, "jaxcausal_common_noise_warm_s": t_warm_c,
        "common_noise_mean_abs_z": float(np.mean(zc)), "common_noise_max_abs_z": float(np.max(zc)),
        "dowhy_s_extrapolated": t_dowhy, "dowhy_interventions_run": N_DOWHY,
        "mean_abs_z": float(np.mean(z)), "max_abs_z": float(np.max(z)), "n_compared": len(z),
    }


def shift_workload(scm, names, gcm, dmodel, sds):
    grid = [(j, d) for j in range(D) for d in SHIFTS]
    table = np.full((len(grid), D), np.nan, np.float32)
    for r, (j, d) in enumerate(grid):
        table[r, j] = d
    ivs = {v: jnp.asarray(table[:, j]) for j, v in enumerate(names)}

    def run(k, common):
        return jc.scm.interventional_means(
            scm, ivs, N_SAMPLES, key=jr.key(k), kind=jc.scm.Shift(), chunk=CHUNK,
            common_noise=common,
        )

    first, t_first = timed(lambda: run(0, False))
    _, t_warm = timed(lambda: run(1, False))
    _, t_first_c = timed(lambda: run(0, True))
    _, t_warm_c = timed(lambda: run(1, True))
    rows = np.random.default_rng(2).choice(len(grid), N_DOWHY, replace=False)
    t0 = time.perf_counter()
    z = []
    for r in rows:
        j, d = grid[r]
        theirs = gcm.interventional_samples(
            dmodel, {names[j]: (lambda x, c=float(d): x + c)}, num_samples_to_draw=N_SAMPLES
        )
        for k, u in enumerate(names):
            z.append(abs(float(first[u][r]) - theirs[u].mean()) / (sds[k] * np.sqrt(2 / N_SAMPLES)))
    t_dowhy = (time.perf_counter() - t0) / len(rows) * len(grid)
    return {
        "interventions": len(grid), "samples_each": N_SAMPLES,
        "jaxcausal_first_s": t_first, "jaxcausal_warm_s": t_warm,
        "jaxcausal_common_noise_first_s": t_first_c, "jaxcausal_common_noise_warm_s": t_warm_c,
        "dowhy_s_extrapolated": t_dowhy, "dowhy_interventions_run": len(rows),
        "mean_abs_z": float(np.mean(z)), "max_abs_z": float(np.max(z)), "n_compared": len(z),
    }


def counterfactual_workload(scm, names, gcm, dmodel):
    import pandas as pd

    obs = scm.sample(N_UNITS, key=jr.key(3))
    target = names[3]
    cf, t_first = timed(lambda: scm.counterfactual(obs, {target: 1.0}))
    obs2 = scm.sample(N_UNITS, key=jr.key(4))
    _, t_warm = timed(lambda: scm.counterfactual(obs2, {target: 1.0}))
    df = pd.DataFrame({v: np.asarray(obs[v], np.float64) for v in names})
    t0 = time.perf_counter()
    theirs = gcm.counterfactual_samples(dmodel, {target: lambda x: 1.0}, observed_data=df)
    t_dowhy = time.perf_counter() - t0
    gap = max(float(np.max(np.abs(np.asarray(cf[v]) - theirs[v].to_numpy()))) for v in names)
    return {
        "units": N_UNITS, "jaxcausal_first_s": t_first, "jaxcausal_warm_s": t_warm,
        "dowhy_s": t_dowhy, "max_abs_unit_difference": gap,
    }


def inference_workload(scm, names):
    after = scm.shift({names[5]: 1.0}).sample(1000, key=jr.key(5))
    nuts = jc.scm.NUTS(num_warmup=100, num_samples=100) if SMALL else jc.scm.NUTS(300, 300)
    out = {"rows": 1000, "true_target": names[5]}
    for label, method in [
        (f"NUTS({nuts.num_warmup}, {nuts.num_samples})", nuts),
        ("SVI(2000 steps)", jc.scm.SVI(steps=2000)),
    ]:
        post, t = timed(
            lambda m=method: jc.scm.infer_interventions(scm, after, key=jr.key(6), method=m)
        )
        out[label] = {
            "top_target": post.summary().index[0],
            "p_true_target": float(post.target_probs[5]), "seconds": t,
        }
    return out


def main() -> dict:
    warnings.filterwarnings("ignore")
    scm, (names, w, b, s, parents) = make_scm()
    gcm, dmodel = make_dowhy(names, w, b, s, parents)
    np.random.seed(0)  # DoWhy samples from NumPy's global generator
    base = scm.sample(50_000, key=jr.key(9))
    sds = np.array([float(jnp.std(base[v])) for v in names])
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
        f"devices {[d.platform for d in jax.devices()]}",
        "small": SMALL,
        "hard": hard_workload(scm, names, gcm, dmodel, sds),
        "shift": shift_workload(scm, names, gcm, dmodel, sds),
        "counterfactual": counterfactual_workload(scm, names, gcm, dmodel),
        "infer_target": inference_workload(scm, names),
    }
    for k, v in results.items():
        print(k, v)
    return results


if __name__ == "__main__":
    out = main()
    path = Path(__file__).parent / "results" / "scm_interventions.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
