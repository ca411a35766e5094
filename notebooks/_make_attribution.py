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
$y = x^3 + \\log(z^2 + 10^{-5})$ plus noise. The data set comes with its SCM on the min-max scale the network sees, so the truth is on
the network's scale.
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

`ERM` is plain training with a linear-Gaussian SCM fitted on the input graph for explanations;
`AnteHoc` learns causal links among the inputs (small MLPs) together with the network, in two
phases, and explains with them. Five seeds train in one `vmap`ped call.
""")
code("""
training = A.Training(steps=STEPS)
keys = jr.split(jr.key(2), 2 if SMALL else 5)
fits = {
    "ERM": eqx.filter_vmap(lambda k: A.ERM(graph, training=training).fit(x, y, key=k))(keys),
    "AnteHoc": eqx.filter_vmap(
        lambda k: A.AnteHoc(graph, training=training).fit(x, y, key=k))(keys),
}
seed0 = {name: jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, f)
         for name, f in fits.items()}
type(seed0["AnteHoc"].inputs.model).__name__, type(seed0["ERM"].inputs.model).__name__
""")
md("""
Every feature times every $\\alpha$ is one compiled call. `MonteCarlo(n)` averages the network over
units drawn from the input SCM in each world (the same units in every world, so contrasts are
paired and `Total = NaturalDirect + NaturalIndirect` holds exactly); `Taylor()` is the
second-order expansion of Chattopadhyay et al. with Hessian-vector products, exact moments for a
linear-Gaussian input SCM.
""")
code("""
model = seed0["ERM"]
curves = {
    name: model.ace(grid, effect=effect, estimator=A.MonteCarlo(N_MC), key=jr.key(3))
    for name, effect in [("total", A.Total()), ("direct", A.ControlledDirect()),
                         ("indirect", A.Indirect()), ("nde", A.NaturalDirect()),
                         ("nie", A.NaturalIndirect())]
}
gap = float(jnp.max(jnp.abs(curves["nde"].values + curves["nie"].values - curves["total"].values)))
taylor = model.ace(grid, effect=A.Total(), estimator=A.Taylor())
print(f"max |NDE + NIE - Total| = {gap:.1e}")
print("Taylor vs Monte Carlo RMSE:", np.round(np.asarray(A.curve_rmse(taylor, curves["total"])), 4))
""")
code("""
fig, axes = plt.subplots(3, 3, figsize=(11, 8), sharex=True)
for row, kind in enumerate(["total", "direct", "indirect"]):
    curves[kind].plot(truth=truth[kind], axes=axes[row], label=f"ERM {kind}")
plt.tight_layout()
""")
md("""
## Accuracy over seeds

RMSE between centred curves, mean over features; the CA baseline reports the controlled direct
effect as *the* effect, which misses the indirect part of W and Z.
""")
code("""
def scores(fitted, effect, kind, estimator):
    values = eqx.filter_vmap(
        lambda m: m.ace(grid, effect=effect, estimator=estimator, key=jr.key(4)).values)(fitted)
    t = truth[kind]
    return np.array([
        float(jnp.mean(A.curve_rmse(eqx.tree_at(lambda c: c.values, t, v), t))) for v in values
    ])

rows = []
for name, fitted in fits.items():
    for kind, effect in [("total", A.Total()), ("indirect", A.Indirect())]:
        r = scores(fitted, effect, kind, A.MonteCarlo(N_MC))
        rows.append({"method": name, "curve": kind, "RMSE": r.mean(),
                     "s.e.": r.std() / np.sqrt(len(r))})
ca = scores(fits["ERM"], A.ControlledDirect(), "total", A.Taylor())
rows.append({"method": "CA (controlled direct as the effect)", "curve": "total", "RMSE": ca.mean(),
             "s.e.": ca.std() / np.sqrt(len(ca))})
pd.DataFrame(rows).round(3)
""")
md("""
## Auto-MPG: real data, a model-based reference

Cylinders cause displacement, weight and horsepower; displacement causes horsepower; weight and
horsepower cause acceleration. Without a true SCM, the reference is an SCM fitted on that graph
with `mpg` as a child of every feature (additive-noise MLPs): a model, not the truth.
""")
code("""
mpg = jc.datasets.auto_mpg()
names = list(mpg.features) + ["mpg"]
adj = np.zeros((6, 6), dtype=int)
adj[:5, :5] = mpg.adjacency
adj[:5, 5] = 1
mechanisms = jc.scm.AdditiveNoiseMLP(max_steps=200 if SMALL else 2000)
template = jc.scm.SCM.from_graph(adj, names, mechanisms=mechanisms, key=jr.key(5))
reference = jc.scm.fit(template, mpg.data, key=jr.key(6))
ref_total = A.true_effects(reference, outcome="mpg", features=mpg.features, alphas=grid,
                           key=jr.key(7), n=N_TRUTH)
mpg_graph = jc.scm.Graph.from_adjacency(mpg.adjacency, mpg.features)
antehoc = A.AnteHoc(mpg_graph, training=training).fit(
    mpg.data[list(mpg.features)], mpg.data["mpg"], key=jr.key(8))
mpg_total = antehoc.ace(grid, estimator=A.MonteCarlo(N_MC), key=jr.key(9))
print("total-effect RMSE per feature:", np.round(np.asarray(A.curve_rmse(mpg_total, ref_total)), 3))
mpg_total.plot(truth=ref_total, label="AnteHoc");
""")
md("""
## Prior knowledge while training

Heavier cars use more fuel: `EffectPrior` adds a penalty on the network's total-effect curve of
`weight` (differentiable through `ace`), here that it decreases, and CREDO pulls input gradients
towards prior derivatives.
""")
code("""
prior = A.EffectPrior({"weight": A.Monotone(increasing=False)}, weight=10.0, graph=mpg_graph,
                      training=training).fit(mpg.data[list(mpg.features)], mpg.data["mpg"],
                                             key=jr.key(10))
w_curve = prior.ace(grid, estimator=A.Taylor())["weight"]
print("largest increase of the weight curve:", float(jnp.max(jnp.diff(w_curve))))
""")
md("""
`benchmarks/attribution.py` runs these comparisons on four data sets (synthetic, Auto-MPG, Asia,
Sachs) with five seeds each, and times `ace` against the reference PyTorch loop; the table is in
`benchmarks/README.md`.
""")

kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb = new_notebook(cells=cells, metadata={"kernelspec": kernel})
nbformat.write(nb, str(Path(__file__).resolve().parent / "attribution.ipynb"))
