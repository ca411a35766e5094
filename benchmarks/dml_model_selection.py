r"""PLR with the default `MLP()` nuisances against `CV()` and `Stacked()` model selection, on
data-generating processes that none of the defaults was chosen on.

Each generator draws `(CausalData, theta)` from a key; every study is one `jc.dml.simulate` call
(all data sets of a generator in one compiled program, sharded over the CPU devices). PLR uses 5
cross-fitting folds and one repetition; `CV`/`Stacked` select inside every fold on 3 inner folds.
The table reports bias (and bias over the mean standard error), RMSE, the standard deviation of
the estimates against the mean se, coverage of the 95 % interval, and the time of the study and
of one fit (first call with compilation, then warm).

Generators (theta = 0.5; covariates, first-stage noise and outcome noise independent):

- `threshold` (non-smooth, n = 1000, p = 10, uniform covariates): treatment and outcome
  confounded through indicator functions and a kink,
  $m(x) = 0.6\,1\{x_1 > 0\} + 0.4\,1\{x_2 > 0.3\} + 0.3 |x_3|$,
  $g(x) = 1\{x_1 > 0\}(1 + 0.5 x_4) + 0.6\,1\{x_2 > 0.3\} - 0.5 |x_3|$.
- `sparse_hd` (linear, sparse, high-dimensional: n = 500, p = 100, Toeplitz(0.7) normal
  covariates): six active covariates in each equation, three of them shared.
- `interactions` (smooth, interaction-heavy, n = 2000, p = 20, normal covariates): products and
  smooth functions of pairs, $m(x) = \tanh(x_1 x_2) + 0.5 \sin(x_3) x_4 + 0.3 x_5$,
  $g(x) = 0.5 x_1 x_3 + \cos(x_2) x_4 + 0.5 \tanh(x_1 + x_5) + 0.3 x_2 x_6$.
- `small_smooth` (n = 250, p = 5, normal covariates):
  $m(x) = \sigma(3 x_1) - 0.5 + 0.3 (x_2^2 - 1)$, $g(x) = x_1^2 + \sin(2 x_2) + 0.5 x_3$.

Full run (idle 2-core CPU, expected about 80 minutes; `JAXCAUSAL_CACHE=0` so that first calls
include their compilation instead of reading it from the persistent cache of an earlier run):

    JAXCAUSAL_CACHE=0 XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python benchmarks/dml_model_selection.py \
        --n-sims 100 --out benchmarks/results/dml_model_selection.json \
        --figure benchmarks/results/dml_model_selection.png

Check run (a few data sets): `python benchmarks/dml_model_selection.py --n-sims 4`. The
cost of one vmapped MLP family per width (why `CV` does not pad every width to the largest):
`python benchmarks/dml_model_selection.py --width-cost`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import jaxcausal as jc

THETA = 0.5


def _data(y, d, x):
    names = tuple(f"X{i + 1}" for i in range(x.shape[1]))
    return jc.CausalData(y, d, x, y_name="y", t_names=("d",), x_names=names)


def _ind(a):
    return (a > 0).astype(a.dtype)


def threshold(key, n_obs=1000, dim_x=10):
    kx, kv, ke = jr.split(key, 3)
    x = jr.uniform(kx, (n_obs, dim_x), minval=-1.0, maxval=1.0)
    m = 0.6 * _ind(x[:, 0]) + 0.4 * _ind(x[:, 1] - 0.3) + 0.3 * jnp.abs(x[:, 2])
    g = _ind(x[:, 0]) * (1.0 + 0.5 * x[:, 3]) + 0.6 * _ind(x[:, 1] - 0.3) - 0.5 * jnp.abs(x[:, 2])
    d = m + jr.normal(kv, (n_obs,))
    return _data(THETA * d + g + jr.normal(ke, (n_obs,)), d, x), THETA


def sparse_hd(key, n_obs=500, dim_x=100):
    kx, kv, ke = jr.split(key, 3)
    lags = jnp.abs(jnp.arange(dim_x)[:, None] - jnp.arange(dim_x)[None, :])
    chol = jnp.linalg.cholesky(jnp.power(0.7, lags.astype(jnp.result_type(float))))
    x = jr.normal(kx, (n_obs, dim_x)) @ chol.T
    beta_m = jnp.zeros(dim_x).at[jnp.array([0, 3, 7, 12, 40, 77])].set(
        jnp.array([0.8, -0.6, 0.5, 0.4, -0.3, 0.3]))
    beta_g = jnp.zeros(dim_x).at[jnp.array([0, 3, 7, 25, 50, 90])].set(
        jnp.array([1.0, 0.7, -0.5, 0.6, 0.4, -0.4]))
    d = x @ beta_m + jr.normal(kv, (n_obs,))
    return _data(THETA * d + x @ beta_g + jr.normal(ke, (n_obs,)), d, x), THETA


def interactions(key, n_obs=2000, dim_x=20):
    kx, kv, ke = jr.split(key, 3)
    x = jr.normal(kx, (n_obs, dim_x))
    m = jnp.tanh(x[:, 0] * x[:, 1]) + 0.5 * jnp.sin(x[:, 2]) * x[:, 3] + 0.3 * x[:, 4]
    g = (0.5 * x[:, 0] * x[:, 2] + jnp.cos(x[:, 1]) * x[:, 3] + 0.5 * jnp.tanh(x[:, 0] + x[:, 4])
         + 0.3 * x[:, 1] * x[:, 5])
    d = m + jr.normal(kv, (n_obs,))
    return _data(THETA * d + g + jr.normal(ke, (n_obs,)), d, x), THETA


def small_smooth(key, n_obs=250, dim_x=5):
    kx, kv, ke = jr.split(key, 3)
    x = jr.normal(kx, (n_obs, dim_x))
    m = jax.nn.sigmoid(3.0 * x[:, 0]) - 0.5 + 0.3 * (x[:, 1] ** 2 - 1.0)
    g = x[:, 0] ** 2 + jnp.sin(2.0 * x[:, 1]) + 0.5 * x[:, 2]
    d = m + jr.normal(kv, (n_obs,))
    return _data(THETA * d + g + jr.normal(ke, (n_obs,)), d, x), THETA


GENERATORS = {"threshold": threshold, "sparse_hd": sparse_hd, "interactions": interactions,
              "small_smooth": small_smooth}
METHODS = {
    "MLP()": jc.learners.MLP,
    "CV()": jc.learners.CV,
    "Stacked()": jc.learners.Stacked,
    "Boosting()": jc.learners.Boosting,
}


def _one_fit_times(est, dgp):
    """Seconds of a first fit (compilation included) and of a second, warm fit."""
    fit = jax.jit(lambda k: est.fit(dgp(k)[0], key=k).theta)
    times = []
    for k in (jr.key(10_000), jr.key(10_001)):
        start = time.perf_counter()
        jax.block_until_ready(fit(k))
        times.append(time.perf_counter() - start)
    return times


def run(gen_name, method, n_sims, key):
    learner = METHODS[method]()
    est = jc.dml.PLR(learner, learner, n_folds=5, n_rep=1)
    dgp = GENERATORS[gen_name]
    start = time.perf_counter()
    table = jc.dml.simulate(est, dgp, key=key, n_sims=n_sims, progress=False)
    study_s = time.perf_counter() - start
    first_s, warm_s = _one_fit_times(est, dgp)
    row = table.loc["d"]
    n_ok = int(row["n_sims"] - row["n_failed"])
    out = {
        "generator": gen_name, "method": method, "n_sims": int(row["n_sims"]),
        "n_failed": int(row["n_failed"]), "bias": float(row["bias"]),
        "bias_over_se": float(row["bias_over_se"]),
        # Monte Carlo standard error of the bias, in units of the mean se
        "mc_se_bias_over_se": float(row["sd"] / np.sqrt(max(n_ok, 1)) / row["mean_se"]),
        "rmse": float(row["rmse"]), "sd": float(row["sd"]), "mean_se": float(row["mean_se"]),
        "coverage": float(row["coverage"]), "study_s": study_s, "fit_first_s": first_s,
        "fit_warm_s": warm_s,
    }
    print(json.dumps(out), flush=True)
    return out


def width_costs(widths=(16, 32, 64), n_obs=400, dim_x=10):
    """Why `CV` fits one vmapped program per network size instead of padding every width to the
    largest: the warm time of a family of eight MLPs (learning rates x weight decays) on 4 masks
    (3 inner folds + the refit), per width, and its compilation."""
    x = jr.normal(jr.key(0), (n_obs, dim_x))
    y = jnp.sin(2.0 * x[:, 0]) + x[:, 1] ** 2 + 0.5 * jr.normal(jr.key(1), (n_obs,))
    masks = (jnp.arange(n_obs)[None, :] % 4 != jnp.arange(4)[:, None]).astype(x.dtype)
    masks = masks.at[3].set(1.0)
    lrs = jnp.repeat(jnp.array([1e-3, 3e-3, 1e-2, 3e-2]), 2)
    wds = jnp.tile(jnp.array([0.1, 1.0]), 4)
    out = []
    for width in widths:
        def fit(lr, wd, w, k, width=width):
            mlp = jc.learners.MLP(width=width, depth=1, learning_rate=lr, weight_decay=wd,
                                  max_steps=1000)
            return mlp.fit(x, y, key=k, weights=w)(x)

        fam = jax.jit(jax.vmap(jax.vmap(fit, (None, None, 0, 0)), (0, 0, None, None)))
        keys = jr.split(jr.key(2), 4)
        start = time.perf_counter()
        compiled = fam.lower(lrs, wds, masks, keys).compile()
        compile_s = time.perf_counter() - start
        jax.block_until_ready(compiled(lrs, wds, masks, keys))
        start = time.perf_counter()
        jax.block_until_ready(compiled(lrs, wds, masks, keys))
        row = {"width": width, "compile_s": compile_s, "warm_s": time.perf_counter() - start}
        print(json.dumps(row), flush=True)
        out.append(row)
    per_width = sum(r["warm_s"] for r in out)
    padded = len(out) * out[-1]["warm_s"]
    print(f"one vmap per width: {per_width:.2f} s warm + {sum(r['compile_s'] for r in out):.1f} s "
          f"compile; all padded to width {out[-1]['width']}: about {padded:.2f} s warm + "
          f"{out[-1]['compile_s']:.1f} s compile")
    return {"rows": out, "per_width_warm_s": per_width, "padded_warm_s_estimate": padded}


def run_isolated(gen_name, method, n_sims):
    """`run` in a fresh Python process: compile times are not helped by programs an earlier study
    left in memory, and a study that stalls cannot hold up the others (one did, once, in a long
    shared process on a loaded machine)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--in-process", "--n-sims", str(n_sims),
           "--generators", gen_name, "--methods", method]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    print(json.dumps(rows[0]), flush=True)
    return rows[0]


def _table(rows):
    head = ("| generator | nuisances | bias / se (± MC se) | coverage | RMSE | sd / mean se | "
            "study (s) | one fit: first / warm (s) |")
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['generator']} | {r['method']} | {r['bias_over_se']:+.2f} "
            f"(± {r['mc_se_bias_over_se']:.2f}) | {r['coverage']:.2f} | {r['rmse']:.4f} | "
            f"{r['sd'] / r['mean_se']:.2f} | {r['study_s']:.0f} | "
            f"{r['fit_first_s']:.1f} / {r['fit_warm_s']:.2f} |"
        )
    return "\n".join(lines)


def _figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = list(dict.fromkeys(r["generator"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        sel = {r["generator"]: r for r in rows if r["method"] == m}
        pos = np.arange(len(gens)) + (j - (len(methods) - 1) / 2) * width
        bias = [abs(sel[g]["bias_over_se"]) if g in sel else np.nan for g in gens]
        err = [2 * sel[g]["mc_se_bias_over_se"] if g in sel else 0 for g in gens]
        cov = [sel[g]["coverage"] if g in sel else np.nan for g in gens]
        axes[0].bar(pos, bias, width, yerr=err, label=m)
        axes[1].bar(pos, cov, width, label=m)
    axes[0].axhline(0.3, color="k", ls="--", lw=1)
    axes[0].set_ylabel("|bias| / se")
    axes[1].axhspan(0.93, 0.97, color="0.85", zorder=0)
    axes[1].axhline(0.95, color="k", ls="--", lw=1)
    axes[1].set_ylim(0.0, 1.0)
    axes[1].set_ylabel("coverage of the 95 % interval")
    for ax in axes:
        ax.set_xticks(np.arange(len(gens)), gens, rotation=15)
    axes[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-sims", type=int, default=100)
    parser.add_argument("--generators", nargs="*", default=list(GENERATORS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--figure", default=None, help="PNG file for the figure")
    parser.add_argument("--in-process", action="store_true",
                        help="run every study in this process (default: one process each)")
    parser.add_argument("--plot-only", default=None, metavar="JSON",
                        help="redraw --figure from the rows of an earlier --out file")
    parser.add_argument("--width-cost", action="store_true",
                        help="only time one MLP family per width (vmap per width vs padding)")
    args = parser.parse_args()
    if args.plot_only:
        with open(args.plot_only) as f:
            rows = json.load(f)["rows"]
        print(_table(rows))
        if args.figure:
            _figure(rows, args.figure)
        return
    if args.width_cost:
        costs = width_costs()
        if args.out:
            with open(args.out, "w") as f:
                json.dump(costs, f, indent=1)
        return
    rows = []
    for gen in args.generators:
        for method in args.methods:
            if args.in_process:
                # the same data sets for every method of a generator, whichever generators run
                key = jr.key(2025 + list(GENERATORS).index(gen))
                rows.append(run(gen, method, args.n_sims, key))
            else:
                rows.append(run_isolated(gen, method, args.n_sims))
    if len(rows) > 1 or not args.in_process:
        print(_table(rows))
    if args.out:
        meta = {"devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
                "machine": platform.processor() or platform.machine(), "n_sims": args.n_sims}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    if args.figure:
        _figure(rows, args.figure)


if __name__ == "__main__":
    main()
