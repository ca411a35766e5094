"""Generates notebooks/scm_basics.ipynb (run: python notebooks/_make_scm_basics.py)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []


def md(text):
    cells.append(new_markdown_cell(text.strip()))


def code(text):
    cells.append(new_code_cell(text.strip()))



md("""
# Structural causal models as NumPyro programs

A structural causal model (SCM) in jaxcausal is a NumPyro program written for one unit: every
sample site is a variable. `jc.scm.SCM` reads the causal graph from the program by tracing, and
answers causal questions about it: interventions (many at once, in one compiled `vmap`),
unit-level counterfactuals, mediation, fitting mechanisms to data, and Bayesian inference over
*which* mechanism an unknown perturbation changed.

Set `JAXCAUSAL_SMALL=1` for a quick run (the test suite does).
""")
code("""
import os

import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist

import jaxcausal as jc

jax.config.update("jax_enable_x64", True)
SMALL = os.environ.get("JAXCAUSAL_SMALL", "0") == "1"
N = 2_000 if SMALL else 50_000
""")
md("""
## The model and its graph
""")
code("""
def model():
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    x = numpyro.sample("x", dist.Normal(0.8 * z, 1.0))
    y = numpyro.sample("y", dist.Normal(1.5 * x - z, 0.5))


scm = jc.scm.SCM(model)
print(scm.graph.names, scm.graph.parents("y"), scm.graph.descendants("z"))
print(scm.graph.adjacency.astype(int))
jc.scm.plot_graph(scm);
""")
md("""
## Interventions

`do`, `shift` and `soft` return new SCMs; they compose. With the same key every unit keeps its
exogenous noise across interventions (common random numbers).
""")
code("""
key = jr.key(0)
for name, m in [
    ("observational", scm),
    ("do(x=1)", scm.do({"x": 1.0})),
    ("shift(x+0.5)", scm.shift({"x": 0.5})),
    ("soft: x noise sd 0.1", scm.soft({"x": lambda d: dist.Normal(d.loc, 0.1)})),
]:
    draws = m.sample(N, key=key)
    ey, sy = float(draws["y"].mean()), float(draws["y"].std())
    print(f"{name:22s} E[y] = {ey:+.3f}  sd(y) = {sy:.3f}")
""")
md("""
Many interventions in one compiled call: `interventional_samples` vmaps over the rows of the
values (and a NaN leaves a node alone in a row, so rows can target different nodes). The
interventional mean of `y` is `1.5 x` (the backdoor through `z` is cut), whereas the
observational regression of `y` on `x` is confounded.
""")
code("""
grid = jnp.linspace(-2.0, 2.0, 9)
out = jc.scm.interventional_samples(scm, {"x": grid}, N, key=key)
obs = scm.sample(N, key=key)
slope_obs = np.polyfit(np.asarray(obs["x"]), np.asarray(obs["y"]), 1)[0]
plt.plot(grid, out["y"].mean(axis=1), "o-", label="E[y | do(x)]")
plt.plot(grid, 1.5 * grid, "k--", label="1.5 x (truth)")
plt.plot(grid, slope_obs * grid, ":", label=f"observational slope {slope_obs:.2f}")
plt.xlabel("x"); plt.legend();
print("ATE of x on y (0 -> 1):", float(jc.scm.ate(scm, "x", "y", 0.0, 1.0, n=N, key=key)))
""")
md("""
## Counterfactuals

Abduction recovers each unit's noise (exactly, for additive-noise mechanisms), the action sets
`x`, and prediction reruns the program: "what would `y` have been for *this* unit, had `x` been 1?"
""")
code("""
units = scm.sample(5, key=jr.key(1))
cf = scm.counterfactual(units, {"x": 1.0})
for i in range(5):
    print(f"unit {i}: x = {float(units['x'][i]):+.2f}, y = {float(units['y'][i]):+.2f}"
          f"  ->  y(x=1) = {float(cf['y'][i]):+.2f}")
# Linear model: y(x=1) - y = 1.5 (1 - x), unit by unit.
print(np.allclose(cf["y"] - units["y"], 1.5 * (1.0 - units["x"])))
""")
md("""
## Mediation

With a mediator `m` on the path `t -> m -> y` and a direct edge `t -> y`, the total effect splits
into a natural direct and a natural indirect effect. For this linear model: total = 0.5 + 0.8 * 2
= 2.1, direct = 0.5, indirect = 1.6.
""")
code("""
def mediated():
    c = numpyro.sample("c", dist.Normal(0.0, 1.0))
    t = numpyro.sample("t", dist.Normal(0.5 * c, 1.0))
    m = numpyro.sample("m", dist.Normal(0.8 * t + 0.3 * c, 1.0))
    numpyro.sample("y", dist.Normal(0.5 * t + 2.0 * m - c, 1.0))


res = jc.scm.mediation(jc.scm.SCM(mediated), treatment="t", mediator="m", outcome="y",
                       a=0.0, b=1.0, n=N, key=key)
res.summary()
""")
md("""
## Fitting mechanisms to data

`SCM.from_graph` builds a parametric SCM over a known graph (`LinearGaussian()` or
`AdditiveNoiseMLP(...)`); `jc.scm.fit` learns its mechanisms from a DataFrame or dict.
""")
code("""
data = scm.sample(N, key=jr.key(2))
template = jc.scm.SCM.from_graph(scm.graph.adjacency, scm.graph.names)
fitted = jc.scm.fit(template, data)
print(np.round(np.asarray(fitted.model.weights), 2))   # weights[i, j]: names[i] -> names[j]
print(np.round(np.asarray(fitted.model.scale), 2))
""")
md("""
## Which mechanism did a perturbation change? Sachs cytometry data

Sachs et al. (2005) measured 11 signalling proteins in single cells under 9 conditions. We fit a
linear-Gaussian SCM over the consensus graph to the two observational blocks (log scale), then
ask which node the Psitectorigenin block (a PIP2 inhibitor) shifted. The discrete target is
summed out and NUTS samples the shift strengths.
""")
code("""
s = jc.datasets.sachs()
logged = {v: np.log(s.data[v].to_numpy(dtype=float)) for v in s.names}
observational = s.data["condition"].isin(s.observational).to_numpy().astype(float)
sachs_scm = jc.scm.fit(jc.scm.SCM.from_graph(s.adjacency, s.names), logged, weights=observational)

block = (s.data["condition"] == "Psitectorigenin").to_numpy()
after = {v: logged[v][block] for v in s.names}
method = jc.scm.NUTS(num_warmup=100, num_samples=100) if SMALL else jc.scm.NUTS(500, 500)
post = jc.scm.infer_interventions(sachs_scm, after, key=jr.key(3), method=method)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
jc.scm.plot_target_probs(post, ax=axes[0])
probs = dict(zip(post.names, np.asarray(post.target_probs)))
jc.scm.plot_graph(sachs_scm, ax=axes[1], highlight=probs)
post.summary().head()
""")
md("""
`benchmarks/scm_sachs.py` runs the same analysis for all seven interventional blocks and reports
the rank of each known target; inhibitors that block an enzyme's *activity* rather than the level
of the measured phosphoprotein (the AKT inhibitor, G0076 on PKC) are hard for a shift model, and
the table in `benchmarks/README.md` says so.
""")

kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb = new_notebook(cells=cells, metadata={"kernelspec": kernel})
nbformat.write(nb, str(Path(__file__).resolve().parent / "scm_basics.ipynb"))
