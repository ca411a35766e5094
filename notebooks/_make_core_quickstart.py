"""Writes `core_quickstart.ipynb` from the cells below: `python notebooks/_make_core_quickstart.py`
(add `--execute` to store the outputs of a full-size run).

Keeping the notebook's source here makes review and edits plain Python; the committed notebook is
regenerated from it and executed by `tests/test_notebooks.py` (at small size).
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    (
        "md",
        """# jaxcausal quickstart: data, learners, ensembles in one call, sharding

This notebook walks through the core every causal method of jaxcausal stands on:

1. `CausalData`, the pytree every estimator takes, built from a pandas DataFrame;
2. nuisance learners (`Linear`, `MLP`): a configuration object whose `fit(x, y, *, key, weights)`
   returns a fitted predictor;
3. cross-fitting as **weight masks**: one MLP per fold and repetition, all fitted in **one compiled,
   vmapped call**,
   sharded over every device (GPUs, TPUs, or CPU devices) with `jaxcausal.parallel.sharded_vmap`;
4. the training engine underneath, `jaxcausal.train.fit_ensemble`.

Set `JAXCAUSAL_SMALL=1` to run it at a tiny size (the test suite does).""",
    ),
    (
        "code",
        """import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import optax
import pandas as pd

import jaxcausal as jc

SMALL = os.environ.get("JAXCAUSAL_SMALL", "0") == "1"
N = 300 if SMALL else 2000
N_FOLDS, N_REP = (2, 2) if SMALL else (5, 4)
MAX_STEPS = 60 if SMALL else 1000
print(f"jaxcausal {jc.__version__}, jax {jax.__version__}, devices: {jax.devices()}")""",
    ),
    (
        "md",
        """## 1. `CausalData` from pandas

A partially linear model: the treatment `d` depends on the covariates, and the outcome is
`y = 0.5 d + g(x) + noise`. Randomness comes from explicit JAX keys, never from a global seed.""",
    ),
    (
        "code",
        """k_x, k_d, k_y = jr.split(jr.key(0), 3)
x = np.asarray(jr.normal(k_x, (N, 5)))
d = np.tanh(x[:, 0]) + 0.5 * np.asarray(jr.normal(k_d, (N,)))
y = 0.5 * d + np.sin(2 * x[:, 1]) + 0.5 * x[:, 2] ** 2 + 0.5 * np.asarray(jr.normal(k_y, (N,)))
df = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)]).assign(d=d, y=y)

data = jc.CausalData.from_pandas(df, y="y", t="d", x=[f"x{i}" for i in range(5)])
print(data.n_obs, "rows;", data.n_treatments, "treatment;", data.n_features, "covariates")
data.to_pandas().head()""",
    ),
    (
        "md",
        """Bad input is refused with a message naming the column (here a missing value):""",
    ),
    (
        "code",
        """bad = df.copy()
bad.loc[3, "x1"] = np.nan
try:
    jc.CausalData.from_pandas(bad, y="y", t="d")
except ValueError as err:
    print("ValueError:", err)""",
    ),
    (
        "md",
        """## 2. Learners: configuration in, fitted predictor out

A learner holds only its settings; `fit` returns a new immutable predictor, called on a batch.""",
    ),
    (
        "code",
        """def r2(y_true, pred):
    return float(1 - jnp.mean((y_true - pred) ** 2) / jnp.var(y_true))


linear = jc.learners.Linear().fit(data.x, data.y, key=jr.key(1))
mlp_learner = jc.learners.MLP(width=32, depth=2, max_steps=MAX_STEPS, batch_size=128)
mlp = mlp_learner.fit(data.x, data.y, key=jr.key(2))
print(f"in-sample R^2: linear {r2(data.y, linear(data.x)):.3f}, MLP {r2(data.y, mlp(data.x)):.3f}")
print(f"MLP: {int(mlp.n_steps)} steps, best parameters from step {int(mlp.best_step)}")""",
    ),
    (
        "md",
        """## 3. Cross-fitting as weight masks, fitted in one call

Every fold of every repetition is a 0/1 mask over **all** rows, so all fits have the same shapes
and become a single batched computation: one MLP per fold and repetition, compiled once. Rows with
weight 0 do not influence a fit, so the predictions on them are out-of-fold.

`jc.parallel.sharded_vmap(fn, in_axes=...)` is `eqx.filter_jit(eqx.filter_vmap(fn))` with the
batched arguments placed across a mesh of all devices (here: the members). On one CPU it is just
`jit(vmap)`; on several GPUs each device fits its share of the members. It pads the batch to a
multiple of the device count, so any number of members works.""",
    ),
    (
        "code",
        """def fold_masks(key, n, n_folds, n_rep):
    ids = jax.vmap(lambda k: jr.permutation(k, n) % n_folds)(jr.split(key, n_rep))
    return (ids[:, None, :] == jnp.arange(n_folds)[None, :, None]).reshape(n_rep * n_folds, n)


in_fold = fold_masks(jr.key(3), N, N_FOLDS, N_REP)  # (members, n): rows held out
train_masks = 1.0 - in_fold.astype(data.x.dtype)
keys = jr.split(jr.key(4), N_FOLDS * N_REP)


def fit_member(key, weights, x, y):
    return mlp_learner.fit(x, y, key=key, weights=weights)


# Batch over the keys and masks (axis 0); x and y are shared by every member (None).
fit_all = jc.parallel.sharded_vmap(fit_member, in_axes=(0, 0, None, None))
for call in ("first (compiles)", "second (cached)"):
    start = time.perf_counter()
    predictors = jax.block_until_ready(fit_all(keys, train_masks, data.x, data.y))
    print(f"{call}: {time.perf_counter() - start:.2f} s for {len(keys)} MLPs")
print("mesh:", jc.parallel.batch_mesh())""",
    ),
    (
        "code",
        """preds = eqx.filter_vmap(lambda p: p(data.x))(predictors)  # (members, n)
oof = jnp.sum((preds * in_fold).reshape(N_REP, N_FOLDS, N), axis=1)  # (n_rep, n)
print("out-of-fold R^2 per repetition:", np.round([r2(data.y, o) for o in oof], 3))

fig, ax = plt.subplots(figsize=(4, 4))
ax.scatter(data.y, oof[0], s=4, alpha=0.5)
ax.set(xlabel="y", ylabel="out-of-fold prediction (repetition 1)")
lims = [float(data.y.min()), float(data.y.max())]
ax.plot(lims, lims, color="k", lw=1)
plt.show()""",
    ),
    (
        "md",
        """The batched fit is the same computation as fitting the members one at a time with the
same keys and masks (up to floating-point rounding):""",
    ),
    (
        "code",
        """for e in range(2):
    one = mlp_learner.fit(data.x, data.y, key=keys[e], weights=train_masks[e])
    gap = float(jnp.max(jnp.abs(one(data.x) - preds[e])))
    print(f"member {e}: max |one-at-a-time - batched| = {gap:.2e}")""",
    ),
    (
        "md",
        """## 4. The engine underneath: `jaxcausal.train.fit_ensemble`

Learners train through the package's one compiled loop. It can be used directly with any Equinox
model and a weighted-mean loss: here an ensemble of `jaxcausal.nn.MLP`s, one per mask, with
early stopping on a random fifth of each member's training rows (the out-of-fold rows stay
unseen). To spread such an ensemble over devices, place its inputs with
`jc.parallel.shard_batch((models, weights, val_weights))` first (the member count must then be a
multiple of the device count).""",
    ),
    (
        "code",
        """def squared_error(model, batch, weights, *, key):
    xb, yb = batch
    return jc.train.weighted_mean((jax.vmap(model)(xb) - yb) ** 2, weights)


members = len(keys)
x_std = (data.x - data.x.mean(0)[None, :]) / data.x.std(0)[None, :]
make_net = lambda k: jc.nn.MLP(5, "scalar", 32, 2, key=k)
models = eqx.filter_vmap(make_net)(jr.split(jr.key(5), members))
is_val = (jr.uniform(jr.key(6), train_masks.shape) < 0.2).astype(data.x.dtype)
result = jc.train.fit_ensemble(
    squared_error, models, (x_std, data.y), optax.adam(3e-3), key=jr.key(7),
    weights=train_masks * (1 - is_val), val_weights=train_masks * is_val,
    max_steps=MAX_STEPS, batch_size=128, patience=10,
)
print("best step per member:", np.asarray(result.best_step))
best_val = np.nanmin(np.asarray(result.val_loss), axis=1)
print("best validation loss per member:", np.round(best_val, 3))""",
    ),
]


def build() -> nbformat.NotebookNode:
    cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    import sys

    path = Path(__file__).with_name("core_quickstart.ipynb")
    nb = build()
    if "--execute" in sys.argv:  # store the outputs of a full-size run in the notebook
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=600, kernel_name="python3").execute(cwd=str(path.parent))
    nbformat.write(nb, path)
    print(f"wrote {path}")
