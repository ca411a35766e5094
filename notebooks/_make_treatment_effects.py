"""Writes `treatment_effects.ipynb` from the cells below.

Run `python notebooks/_make_treatment_effects.py` after editing the cells.

The notebook is executed by `tests/test_notebooks.py` at small size (`JAXCAUSAL_SMALL=1`).
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", """# Treatment-effect neural models: IHDP and an Arctic time series

`jaxcausal.te` holds TARNet, CFR (MMD or Wasserstein balancing), Dragonnet, CEVAE, a T-learner,
OLS, and the knowledge-guided time-series VAE KGCM-VAE. Every model is a configuration object;
`fit(data, *, key)` returns an immutable fitted model with `effect(x)`, `potential_outcomes(x)` and
`ate(x)`. `jc.te.fit_batch` trains one model per replication (or seed) in **one compiled call**.

Set `JAXCAUSAL_SMALL=1` to run at a tiny size (the test suite does)."""),
    ("code", """import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np

import jaxcausal as jc

SMALL = os.environ.get("JAXCAUSAL_SMALL", "0") == "1"
N_REPS = 2 if SMALL else 20
STEPS = 60 if SMALL else 3000
N_DAYS = 200 if SMALL else 1620
WINDOW = 8 if SMALL else 30
training = jc.te.Training(max_steps=STEPS)
print(f"jaxcausal {jc.__version__}, jax {jax.__version__}, devices: {jax.devices()}")"""),
    ("md", """## 1. IHDP, response surface B

`jc.datasets.ihdp(r, key=...)` draws replication `r` of Hill's (2011) semi-synthetic benchmark from
the shipped covariates: 747 children (139 treated), 25 covariates, a nonlinear control surface and
an average effect on the treated of exactly 4."""),
    ("code", """rep = jc.datasets.ihdp(0, key=jr.key(2017))
t_all = jnp.concatenate([rep.train.t[:, 0], rep.test.t[:, 0]])
tau_all = jnp.concatenate([rep.tau_train, rep.tau_test])
print("units", t_all.shape[0], "treated", int(t_all.sum()), "covariates", rep.train.n_features)
print("ATT", float(tau_all[t_all == 1].mean()),
      "sd of individual effects", float(tau_all.std()))"""),
    ("md", """One model, one replication: fit, then query individual effects on held-out units."""),
    ("code", """cfr = jc.te.CFR(ipm=jc.te.Wasserstein(), alpha=1.0, training=training)
fitted = cfr.fit(rep.train, key=jr.key(0))
est = fitted.effect(rep.test.x)
print("sqrt PEHE (test)", float(jc.metrics.pehe(rep.tau_test, est)),
      " ATE error", float(jc.metrics.ate_error(rep.tau_test, est)))
plt.scatter(rep.tau_test, est, s=8)
plt.xlabel("true effect"); plt.ylabel("CFR-Wass estimate"); plt.axline((0, 0), slope=1, c="k")
plt.show()"""),
    ("md", """## 2. Many replications in one compiled call

`ihdp_replications(R)` stacks R replications; `fit_batch` vmaps the whole fit (initialisation,
training loop with early stopping, standardisation) over them."""),
    ("code", """reps = jc.datasets.ihdp_replications(N_REPS, key=jr.key(2017))
models = {
    "OLS": jc.te.OLS(),
    "T-learner": jc.te.TLearner(training=training),
    "TARNet": jc.te.TARNet(training=training),
    "CFR-MMD": jc.te.CFR(ipm=jc.te.MMD(), training=training),
    "Dragonnet": jc.te.Dragonnet(training=training),
    "CEVAE": jc.te.CEVAE(training=training, n_samples=20 if SMALL else 100),
}
if SMALL:  # the test suite runs this notebook: two models keep it short
    models = {k: models[k] for k in ("OLS", "TARNet")}
effects = eqx.filter_vmap(lambda m, x: m.effect(x))
for name, model in models.items():
    start = time.perf_counter()
    fits = jax.block_until_ready(jc.te.fit_batch(model, reps.train, key=jr.key(1)))
    pehe_in = jax.vmap(jc.metrics.pehe)(reps.tau_train, effects(fits, reps.train.x))
    pehe_out = jax.vmap(jc.metrics.pehe)(reps.tau_test, effects(fits, reps.test.x))
    seconds = time.perf_counter() - start
    print(f"{name:10s} sqrt PEHE in {float(pehe_in.mean()):.2f}  out {float(pehe_out.mean()):.2f}"
          f"   ({seconds:.1f} s for {N_REPS} replications, compile included)")"""),
    ("md", """## 3. The MMD and its two estimators

`jc.metrics.mmd` is the squared MMD with a Gaussian kernel. The V-statistic is biased upwards but
exactly zero for identical samples; the U-statistic is unbiased (it can be negative); the paired
U-statistic is unbiased and zero for identical samples too."""),
    ("code", """x = jr.normal(jr.key(0), (200, 2))
y = jr.normal(jr.key(1), (200, 2))
for label, b in [("same sample", x), ("same law", y), ("shifted", y + 1.0)]:
    print(f"{label:12s} V {float(jc.metrics.mmd(x, b)):+.4f}"
          f"  U {float(jc.metrics.mmd(x, b, unbiased=True)):+.4f}"
          f"  paired U {float(jc.metrics.mmd(x, b, unbiased=True, paired=True)):+.4f}")"""),
    ("md", """## 4. KGCM-VAE on a synthetic Arctic series

`arctic_synthetic` simulates daily `uoe, von, total_vel, zos, sithick` with seasonal cycles and
autocorrelated noise; the treatment comes from `velocity_modulated_treatment` (a smoothed signal
amplified by a sigmoid of the velocity anomaly) and has a known effect on ice thickness. Units are
days, covariates the previous `WINDOW` days. KGCM-VAE encodes a window with a GRU into a latent
confounder, predicts treatment and outcome from it, reconstructs the covariates with a decoder
masked by the physical causal graph, and balances treated and control latent codes with MMD."""),
    ("code", """sim = jc.datasets.arctic_synthetic(jr.key(0), n_days=N_DAYS)
data, tau = sim.windows(WINDOW)
print(jc.datasets.arctic_adjacency())
sim.to_pandas()[["zos", "sithick", "effect"]].plot(subplots=True, figsize=(8, 5))
plt.show()"""),
    ("code", """arctic_models = {
    "KGCM-VAE": jc.te.KGCMVAE(window=WINDOW, adjacency=jc.datasets.arctic_adjacency(),
                              training=training),
    "KGCM-VAE, no MMD, no adjacency": jc.te.KGCMVAE(window=WINDOW, use_mmd=False,
                                                    use_adjacency=False, training=training),
    "GRU T-learner": jc.te.GRUTLearner(window=WINDOW, training=training),
}
if SMALL:
    arctic_models = {"KGCM-VAE": arctic_models["KGCM-VAE"]}
print(f"{'zero effect':32s} sqrt PEHE {float(jc.metrics.pehe(tau, 0 * tau)):.3f}")
fits = {}
for name, model in arctic_models.items():
    fits[name] = model.fit(data, key=jr.key(0))
    print(f"{name:32s} sqrt PEHE {float(jc.metrics.pehe(tau, fits[name].effect(data.x))):.3f}")
dec = fits["KGCM-VAE"].net.decoder
print("masked decoder weights all zero:",
      bool(jnp.all(jnp.where(dec.mask[:, None, :], 0.0, dec.first_weight) == 0)))"""),
    ("md", """See `benchmarks/te_ihdp.py` and `benchmarks/te_arctic.py` for the full comparisons
(100 IHDP replications, 10 Arctic seeds) and `benchmarks/README.md` for the latest tables."""),
]


def main():
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                for kind, src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python",
    }
    path = Path(__file__).with_name("treatment_effects.ipynb")
    nbformat.write(nb, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
