"""Q10 of ecosystem respiration: DML against the naive regression, DoubleML and end-to-end hybrids.

Reproduces the synthetic experiment of Cohrs et al. (2024), "Causal hybrid modeling with double
machine learning", offline. Over many generated sites (true Q10 = 1.5, drivers of base respiration
`SW_POT_sm`, `SW_POT_sm_diff`), it reports the mean, standard deviation and 95%-interval coverage of
Q10 for

- the naive regression of log RECO on (TA - 15)/10;
- jaxcausal DML (PLR on the log scale) with MLP nuisances, every fold, repetition and site in one
  batched call (`jc.dml.simulate`);
- DoubleML with random forests, the paper's recipe, on fewer sites (it is slow);
- the end-to-end hybrid with {no regularisation, dropout 0.2} x {TA kept out of, put into, the
  network's inputs}, one model per site, all sites in one batched call;

and a data-efficiency curve of DML over n = 100 * 2^i rows. It writes a JSON file and a PNG figure.

    python benchmarks/hybrid_q10.py --quick                       # a few minutes on 2 CPU cores
    python benchmarks/hybrid_q10.py --n-data 100 --n-rep 20       # the full study (GPU-sized)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import jaxcausal as jc

TRUTH = 1.5
T_REF = 15.0
DRIVERS = ("SW_POT_sm", "SW_POT_sm_diff")
RESULTS = Path(__file__).parent / "results"


def site(key, n_obs: int, years: int):
    cols, _ = jc.datasets.q10_arrays(key, n_obs=n_obs, years=years, q10=TRUTH, t_ref=T_REF)
    x = jnp.stack([cols[c] for c in DRIVERS], axis=1)
    return cols["RECO"], cols["TA"], x


def log_site(key, n_obs: int, years: int):
    reco, ta, x = site(key, n_obs, years)
    data = jc.CausalData(y=jnp.log(reco), t=(ta - T_REF) / 10.0, x=x, x_names=DRIVERS)
    return data, jnp.log(TRUTH)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree.leaves(out) if not hasattr(out, "to_numpy") else 0)
    return out, time.perf_counter() - start


def _summary(q10: np.ndarray, lower=None, upper=None, seconds=None) -> dict:
    sd = float(np.std(q10, ddof=1)) if q10.size > 1 else float("nan")
    row = {"mean": float(np.mean(q10)), "sd": sd, "n": int(q10.size)}
    if lower is not None:
        row["coverage"] = float(np.mean((lower <= TRUTH) & (TRUTH <= upper)))
        row["mean_ci_width"] = float(np.mean(upper - lower))
    if seconds is not None:
        row["seconds"] = seconds
    return row


def naive(keys, n_obs, years) -> dict:
    def one(k):
        reco, ta, _ = site(k, n_obs, years)
        tau = (ta - T_REF) / 10.0
        slope = jnp.cov(tau, jnp.log(reco))[0, 1] / jnp.var(tau, ddof=1)
        return jnp.exp(slope)

    q10, seconds = _timed(lambda: jax.jit(jax.vmap(one))(keys))
    return _summary(np.asarray(q10), seconds=seconds)


def dml(n_data, n_obs, years, n_rep, key) -> tuple[dict, np.ndarray]:
    mlp = jc.learners.MLP()
    est = jc.dml.PLR(mlp, mlp, n_folds=5, n_rep=n_rep)
    rows, seconds = _timed(
        lambda: jc.dml.simulate(
            est, lambda k: log_site(k, n_obs, years), key=key, n_sims=n_data, summarize=False
        )
    )
    q10 = np.exp(rows["theta"].to_numpy())
    lo, hi = np.exp(rows["lower"].to_numpy()), np.exp(rows["upper"].to_numpy())
    return _summary(q10, lo, hi, seconds), q10


def end_to_end(keys, n_obs, years, **kwargs) -> tuple[dict, np.ndarray]:
    model = jc.hybrid.EndToEndQ10(n_members=1, **kwargs)

    def one(k):
        reco, ta, x = site(k, n_obs, years)
        data = jc.CausalData(y=reco, t=ta, x=x)
        return model.fit(data, key=jr.fold_in(k, 1)).q10

    q10, seconds = _timed(lambda: eqx.filter_jit(jax.vmap(one))(keys))
    q10 = np.asarray(q10)
    return _summary(q10, seconds=seconds), q10


def doubleml_forest(keys, n_obs, years, n_rep) -> tuple[dict, np.ndarray]:
    import doubleml
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor
    from threadpoolctl import threadpool_limits

    estimates, lows, highs = [], [], []
    start = time.perf_counter()
    for k in keys:
        reco, ta, x = (np.asarray(a, dtype=float) for a in site(k, n_obs, years))
        df = pd.DataFrame(x, columns=list(DRIVERS))
        df["y"], df["d"] = np.log(reco), (ta - T_REF) / 10.0
        data = doubleml.DoubleMLData(df, y_col="y", d_cols="d", x_cols=list(DRIVERS))
        forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, n_jobs=-1)
        with threadpool_limits(1):
            fit = doubleml.DoubleMLPLR(data, forest, forest, n_folds=5, n_rep=n_rep).fit()
        ci = fit.confint().to_numpy()[0]
        estimates.append(np.exp(fit.coef[0]))
        lows.append(np.exp(ci[0]))
        highs.append(np.exp(ci[1]))
    seconds = time.perf_counter() - start
    q10 = np.array(estimates)
    return _summary(q10, np.array(lows), np.array(highs), seconds), q10


def efficiency(sizes, n_data, years, n_rep, key) -> list[dict]:
    rows = []
    for n in sizes:
        row, _ = dml(n_data, n, years, n_rep, jr.fold_in(key, n))
        rows.append({"n_obs": n, **row})
        print(
            f"  n = {n:5d}: Q10 {row['mean']:.3f} +- {row['sd']:.3f}, coverage "
            f"{row['coverage']:.2f}, {row['seconds']:.1f} s"
        )
    return rows


def figure(estimates: dict, curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    names = list(estimates)
    ax.boxplot([estimates[n] for n in names], orientation="horizontal", tick_labels=names)
    ax.axvline(TRUTH, color="k", ls="--", lw=1, label="true Q10")
    ax.set_xlabel("estimated Q10")
    ax.legend(loc="lower right")
    ns = [r["n_obs"] for r in curve]
    mean = np.array([r["mean"] for r in curve])
    sd = np.array([r["sd"] for r in curve])
    bx.errorbar(ns, mean, yerr=sd, marker="o", capsize=3, label="DML mean +- sd")
    bx.axhline(TRUTH, color="k", ls="--", lw=1)
    bx.set_xscale("log", base=2)
    bx.set_xticks(ns, [str(n) for n in ns])
    bx.minorticks_off()
    bx.set_xlabel("rows per site")
    bx.set_ylabel("Q10")
    bx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small study for a laptop CPU")
    parser.add_argument("--n-data", type=int, default=100, help="generated sites")
    parser.add_argument("--n-obs", type=int, default=5000, help="half-hours per site")
    parser.add_argument("--years", type=int, default=2, help="years simulated per site")
    parser.add_argument("--n-rep", type=int, default=20, help="DML repetitions")
    parser.add_argument("--doubleml-data", type=int, default=10, help="sites for DoubleML")
    parser.add_argument("--doubleml-rep", type=int, default=1, help="DoubleML repetitions")
    parser.add_argument("--max-log2", type=int, default=6, help="largest n is 100 * 2^this")
    parser.add_argument("--skip-doubleml", action="store_true", help="e.g. where it is missing")
    parser.add_argument("--doubleml-only", action="store_true", help="only the DoubleML row")
    parser.add_argument("--tag", default="", help="suffix of the output files")
    args = parser.parse_args()
    if args.quick:
        args.n_data, args.n_obs, args.n_rep, args.doubleml_data, args.max_log2 = 8, 2000, 2, 2, 4
    device = jax.devices()[0]
    print(
        f"device: {device.device_kind}; sites {args.n_data} x {args.n_obs} rows; "
        f"DML 5 folds x {args.n_rep} rep"
    )
    keys = jr.split(jr.key(0), args.n_data)
    tag = args.tag or device.platform
    RESULTS.mkdir(exist_ok=True)
    if args.doubleml_only:
        row, q10 = doubleml_forest(
            keys[: args.doubleml_data], args.n_obs, args.years, args.doubleml_rep
        )
        print(f"DoubleML (random forest): {row}")
        out = RESULTS / f"hybrid_q10_doubleml_{tag}.json"
        out.write_text(json.dumps({"args": vars(args), "row": row, "q10": q10.tolist()}, indent=2))
        return
    table, estimates = {}, {}
    table["naive regression"] = naive(keys, args.n_obs, args.years)
    row, estimates["jaxcausal DML (MLP)"] = dml(
        args.n_data, args.n_obs, args.years, args.n_rep, jr.key(0)
    )
    table["jaxcausal DML (MLP)"] = row
    if not args.skip_doubleml:
        row, estimates["DoubleML (random forest)"] = doubleml_forest(
            keys[: args.doubleml_data], args.n_obs, args.years, args.doubleml_rep
        )
        table["DoubleML (random forest)"] = row
    variants = {
        "end-to-end": {},
        "end-to-end, dropout 0.2": {"dropout": 0.2},
        "end-to-end, TA in network": {"ta_in_network": True},
        "end-to-end, TA in network, dropout 0.2": {"ta_in_network": True, "dropout": 0.2},
    }
    for name, kwargs in variants.items():
        table[name], estimates[name] = end_to_end(keys, args.n_obs, args.years, **kwargs)
    print(f"\n{'method':<40} {'mean':>6} {'sd':>6} {'coverage':>8} {'time s':>8}")
    for name, r in table.items():
        cov = f"{r['coverage']:.2f}" if "coverage" in r else "-"
        print(f"{name:<40} {r['mean']:6.3f} {r['sd']:6.3f} {cov:>8} {r['seconds']:8.1f}")
    print("\ndata efficiency (DML):")
    sizes = [100 * 2**i for i in range(args.max_log2 + 1)]
    curve = efficiency(sizes, args.n_data, args.years, min(args.n_rep, 5), jr.key(1))
    meta = {"device": device.device_kind, "args": vars(args), "jax": jax.__version__}
    out = RESULTS / f"hybrid_q10_{tag}.json"
    out.write_text(json.dumps({"meta": meta, "table": table, "efficiency": curve}, indent=2))
    figure(estimates, curve, RESULTS / f"hybrid_q10_{tag}.png")
    print(f"wrote {out} and the figure next to it")


if __name__ == "__main__":
    main()
