"""Generates notebooks/attribution.ipynb (run: python notebooks/_make_attribution.py)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []


def md(text):
    cells.append(new_markdown_cell(text.strip()))


def code(text):
    cells.append(new_code_cell(text.strip()))


md("""
# Causal attributions: direct, indirect and total effects of a network's inputs

A trained network $f$ explains itself through interventional curves
$\\mathbb{E}[f(X) \\mid do(x_i = \\alpha)]$ (Chattopadhyay et al., ICML 2019). When the inputs cause
each other, an intervention on $x_i$ also moves its descendants, and the effect splits into a
direct and an indirect part (Reddy et al., AAAI 2024). `jc.attribution` treats the network and
an SCM of its inputs as one SCM, computes every feature's curve over a grid in one compiled call,
and trains networks whose effects are captured (ante-hoc) or follow prior knowledge.

Set `JAXCAUSAL_SMALL=1` for a quick run (the test suite does).
""")
code("""
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import jaxcausal as jc

jax.config.update("jax_enable_x64", True)
A = jc.attribution
SMALL = os.environ.get("JAXCAUSAL_SMALL", "0") == "1"
STEPS = 100 if SMALL else 3000
N_TRUTH = 2_000 if SMALL else 200_000
N_MC = 200 if SMALL else 4000
M = 12 if SMALL else 100
grid = jnp.linspace(0.0, 1.0, M)
""")
md("""
## The synthetic SCM of Reddy et al.

$W \\to Z$, $W \\to X$, $Z \\to X$, $X \\to Y$, $Z \\to Y$ with
$y = x^3 + \\log(z^2 + 10^{-5})$ plus noise. The data set comes with its SCM on the min-max
scale the network sees, so the truth is on the network's scale.
""")
code("""
ds = jc.datasets.attribution_synthetic(1000, key=jr.key(0))
graph = jc.scm.Graph.from_adjacency(ds.adjacency, ds.features)
x, y = ds.data[list(ds.features)], ds.data["y"].to_numpy()
print(ds.scm.graph.parent_names)
ds.data.describe().loc[["mean", "std", "min", "max"]]
""")
md("""
The true effect curves of the SCM's own outcome: total, controlled direct (the other inputs keep
their observational values) and indirect (total minus direct).
""")
code("""
truth = {
    name: A.true_effects(ds.scm, outcome="y", features=ds.features, alphas=grid, effect=effect,
                         key=jr.key(1), n=N_TRUTH)
    for name, effect in [("total", A.Total()), ("direct", A.ControlledDirect()),
                         ("indirect", A.Indirect())]
}
truth["total"].plot(label="true total");
""")
md("""
## Train, then explain

`AnteHoc` learns causal links among the inputs (small MLPs) together with the network, in two
phases, and explains the network with the SCM the links form. `fit` is pure, so several seeds
train in one `vmap`ped call: `eqx.filter_vmap(lambda k: method.fit(x, y, key=k))(keys)`.
""")
code("""
method = A.AnteHoc(graph, training=A.Training(steps=STEPS))
model = method.fit(x, y, key=jr.key(2))
type(model.inputs.program).__name__, model.inputs.graph.parent_names
""")
md("""
Every feature times every $\\alpha$ is one compiled call. `MonteCarlo(n)` averages the network over
units drawn from the input SCM in each world (the same units in every world, so contrasts are
paired: `NaturalDirect() + NaturalIndirect()` add up to `Total()` exactly); `Taylor()` is the
second-order expansion of Chattopadhyay et al. with Hessian-vector products.
""")
code("""
curves = {
    name: model.ace(grid, effect=effect, estimator=A.MonteCarlo(N_MC), key=jr.key(3))
    for name, effect in [("total", A.Total()), ("direct", A.ControlledDirect()),
                         ("indirect", A.Indirect())]
}
pd.DataFrame({kind: np.asarray(A.curve_rmse(curves[kind], truth[kind]))
              for kind in ("total", "direct", "indirect")}, index=ds.features).round(3)
""")
code("""
fig, axes = plt.subplots(3, 3, figsize=(11, 8), sharex=True)
for row, kind in enumerate(["total", "direct", "indirect"]):
    curves[kind].plot(truth=truth[kind], axes=axes[row], label=f"AnteHoc {kind}")
plt.tight_layout()
""")
md("""
The causal attributions of Chattopadhyay et al. report the controlled direct effect as *the*
effect, computed by the Taylor expansion at the data's mean and covariance: for $W$, whose
effect on $Y$ is entirely indirect, that curve is flat, while the total effect is not.
""")
code("""
ca = model.ace(grid, effect=A.ControlledDirect(), estimator=A.Taylor(), key=jr.key(4))
for label, c in [("CA-style curves", ca), ("AnteHoc totals", curves["total"])]:
    print(f"total RMSE of {label}:", np.round(np.asarray(A.curve_rmse(c, truth["total"])), 3))
""")
md("""
## Auto-MPG: real data, a model-based reference

Cylinders cause displacement, weight and horsepower; displacement causes horsepower; weight and
horsepower cause acceleration. Without a true SCM, the reference is an SCM fitted on that graph
with `mpg` as a child of every feature (additive-noise MLPs): a model, not the truth. Here the
network is trained plainly (`ERM`) and explained with a linear-Gaussian SCM fitted on the graph.
""")
code("""
mpg = jc.datasets.auto_mpg()
names = list(mpg.features) + ["mpg"]
adj = np.zeros((6, 6), dtype=int)
adj[:5, :5] = mpg.adjacency
adj[:5, 5] = 1
# (a linear-Gaussian reference at the small size the test suite runs: a smoke test only)
mechanisms = jc.scm.LinearGaussian() if SMALL else jc.scm.AdditiveNoiseMLP()
template = jc.scm.SCM.from_graph(adj, names, mechanisms=mechanisms, key=jr.key(5))
reference = jc.scm.fit(template, mpg.data, key=jr.key(6))
ref_total = A.true_effects(reference, outcome="mpg", features=mpg.features, alphas=grid,
                           key=jr.key(7), n=N_TRUTH)
mpg_graph = jc.scm.Graph.from_adjacency(mpg.adjacency, mpg.features)
erm = A.ERM(mpg_graph, training=A.Training(steps=STEPS)).fit(
    mpg.data[list(mpg.features)], mpg.data["mpg"], key=jr.key(8))
mpg_total = erm.ace(grid, estimator=A.Taylor())   # exact moments: a linear-Gaussian input SCM
print("total-effect RMSE per feature:", np.round(np.asarray(A.curve_rmse(mpg_total, ref_total)), 3))
mpg_total.plot(truth=ref_total, label="ERM, Total");
""")
md("""
`jc.attribution.ERM`, `CREDO` (priors on input gradients) and `EffectPrior` (priors on the
effect curves themselves: `Monotone`, `Zero`, `Shape`) train the same way.
`benchmarks/attribution.py` compares all of them on four data sets (synthetic, Auto-MPG, Asia,
Sachs) with five seeds each, and times `ace` against the reference PyTorch loop; the table is in
`benchmarks/README.md`.
""")

kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb = new_notebook(cells=cells, metadata={"kernelspec": kernel})
nbformat.write(nb, str(Path(__file__).resolve().parent / "attribution.ipynb"))
