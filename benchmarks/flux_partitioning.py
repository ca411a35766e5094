"""Carbon-flux partitioning: jaxcausal's DML R-learner against EconML on the same synthetic site.

NEE = -LUE(X) * SW_IN + RECO(X) + noise on daytime half-hours of `jc.datasets.q10_synthetic`, with
drivers X = (TA, VPD, SW_POT_sm, SW_POT_sm_diff). The light-use efficiency LUE(X) is the
heterogeneous effect of SW_IN on NEE (with a minus sign). Compared on identical data:

- `jc.hybrid.FluxPartitioning` (MLP nuisances and MLP final stage, 5 folds);
- EconML `NonParamDML` with MLP nuisances and an MLP final stage (scikit-learn `MLPRegressor`),
  and with gradient-boosting nuisances and a random-forest final stage;
- EconML `CausalForestDML` with gradient-boosting nuisances.

Reported per method: correlation of the estimated LUE(x) with the truth, R^2 of GPP, RMSE of GPP
and of LUE, and wall time (jaxcausal's compile time included).

    python benchmarks/flux_partitioning.py            # n = 4000 daytime rows, 3 sites
    python benchmarks/flux_partitioning.py --quick    # one small site
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import jax
import jax.random as jr
import numpy as np

import jaxcausal as jc

DRIVERS = ["TA", "VPD", "SW_POT_sm", "SW_POT_sm_diff"]


def daytime_site(key, n_rows):
    df, truth = jc.datasets.q10_synthetic(key, n_obs=3 * n_rows, years=2)
    day = np.flatnonzero(df["SW_POT"].to_numpy() > 0)[:n_rows]
    return df.iloc[day].reset_index(drop=True), {
        k: v[day] for k, v in truth.items() if isinstance(v, np.ndarray)
    }


def quality(lue_hat, truth, sw_in) -> dict:
    lue_hat = np.asarray(lue_hat, dtype=float)
    gpp_hat = lue_hat * sw_in
    gpp, lue = truth["GPP"], truth["LUE"]
    return {
        "corr_lue": float(np.corrcoef(lue_hat, lue)[0, 1]),
        "r2_gpp": float(1 - np.sum((gpp_hat - gpp) ** 2) / np.sum((gpp - gpp.mean()) ** 2)),
        "rmse_gpp": float(np.sqrt(np.mean((gpp_hat - gpp) ** 2))),
        "rmse_lue": float(np.sqrt(np.mean((lue_hat - lue) ** 2))),
    }


def run_jaxcausal(df, truth, key) -> dict:
    data = jc.CausalData.from_pandas(df, y="NEE", t="SW_IN", x=DRIVERS)
    start = time.perf_counter()
    res = jc.hybrid.FluxPartitioning().fit(data, key=key)
    jax.block_until_ready(res.lue)
    seconds = time.perf_counter() - start
    return {**quality(res.lue, truth, df["SW_IN"].to_numpy()), "seconds": seconds}


def run_econml(df, truth, name) -> dict:
    from econml.dml import CausalForestDML, NonParamDML
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    def mlp():
        return MLPRegressor(
            hidden_layer_sizes=(32, 32), early_stopping=True, max_iter=500, random_state=0
        )

    # Standardised drivers for every EconML model (its final stage takes sample weights, which a
    # scaling pipeline would not pass on); jaxcausal's MLP standardises internally.
    x = StandardScaler().fit_transform(df[DRIVERS].to_numpy())
    y, t = df["NEE"].to_numpy(), df["SW_IN"].to_numpy()
    if name == "EconML NonParamDML (MLP)":
        est = NonParamDML(model_y=mlp(), model_t=mlp(), model_final=mlp(), cv=5, random_state=0)
    elif name == "EconML NonParamDML (boosting + forest)":
        est = NonParamDML(
            model_y=HistGradientBoostingRegressor(),
            model_t=HistGradientBoostingRegressor(),
            model_final=RandomForestRegressor(min_samples_leaf=10, random_state=0),
            cv=5,
            random_state=0,
        )
    else:
        est = CausalForestDML(
            model_y=HistGradientBoostingRegressor(),
            model_t=HistGradientBoostingRegressor(),
            cv=5,
            random_state=0,
        )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(y, t, X=x)
        lue_hat = -est.effect(x)
    seconds = time.perf_counter() - start
    return {**quality(lue_hat, truth, t), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-rows", type=int, default=4000)
    parser.add_argument("--sites", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.n_rows, args.sites = 1500, 1
    methods = [
        "jaxcausal FluxPartitioning (MLP)",
        "EconML NonParamDML (MLP)",
        "EconML NonParamDML (boosting + forest)",
        "EconML CausalForestDML",
    ]
    results = {m: [] for m in methods}
    for s in range(args.sites):
        df, truth = daytime_site(jr.key(100 + s), args.n_rows)
        for m in methods:
            row = (
                run_jaxcausal(df, truth, jr.key(s))
                if m.startswith("jaxcausal")
                else run_econml(df, truth, m)
            )
            results[m].append(row)
            print(
                f"site {s} {m:<40} corr(LUE) {row['corr_lue']:.3f}  R2(GPP) "
                f"{row['r2_gpp']:.3f}  {row['seconds']:.1f} s"
            )
    table = {
        m: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} for m, rows in results.items()
    }
    print(f"\n{'method':<40} {'corr LUE':>8} {'R2 GPP':>7} {'RMSE GPP':>8} {'time s':>7}")
    for m, r in table.items():
        print(
            f"{m:<40} {r['corr_lue']:8.3f} {r['r2_gpp']:7.3f} {r['rmse_gpp']:8.3f} "
            f"{r['seconds']:7.1f}"
        )
    out = Path(__file__).parent / "results" / "flux_partitioning.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "table": table, "per_site": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
