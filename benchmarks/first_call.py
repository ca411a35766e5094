"""First answers: one-off scripts (import, build data, fit once, print) in fresh processes,
jaxcausal against its peer, run twice.

A new user's first script pays for everything: the interpreter, the imports, compiling, and the
computation. For each entry point this runs a one-off jaxcausal script and the same script written
for the peer (DoubleML, DoWhy's `gcm` and causal model, CATENets) as fresh Python processes in the
same run, alternating, and then both again: the second jaxcausal run finds its programs in JAX's
persistent compilation cache (a fresh directory per entry point, `jc.enable_compilation_cache()`
at the top of every script, as the README recommends). Each process reports

- `total`: wall time of the whole process (what the user waits for), measured by this script;
- `import`: the script's import lines;
- `compile`: time inside JAX's tracing, lowering and XLA compilation (or loading from the
  persistent cache), the union of the spans JAX's monitoring reports, so nested spans count once;
- `compute`: the rest of the script (its data, fit and print) after compile is taken out.

    python benchmarks/first_call.py                    # every entry point, about 10 min idle
    python benchmarks/first_call.py --only dml_irm_linear scm_sachs_query
    python benchmarks/first_call.py --quick            # small sizes, a smoke run (~4 min)
    python benchmarks/first_call.py --list             # the entry points and their scripts

Writes `benchmarks/results/first_call.json` (or `--out`) and prints the table of
`benchmarks/README.md`. The TE row's peer is CATENets' TARNet in its own virtual environment
(`--catenets-python`, default `/tmp/venv_cat/bin/python`; see `te_catenets.py` for how to make
it); without it that row has no peer. Scripts write their data with the same NumPy generator on
both sides where the peer cannot call jaxcausal's generators (IHDP and the Q10 site are drawn once
by jaxcausal and saved for the peer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPLIT = "# --- body\n"

# ---------------------------------------------------------------------------------------------
# The one-off scripts. `{n}` and friends are filled from SIZES; `{data}` is the shared data dir.

DML_DATA = """
rng = np.random.default_rng(0)
n, p = {n}, 20
x = rng.normal(size=(n, p))
m = 1.0 / (1.0 + np.exp(-(x[:, 0] - 0.5 * x[:, 1])))
d = {treatment}
y = 0.5 * d + x[:, 0] + np.sin(x[:, 1]) + 0.5 * x[:, 2] ** 2 + rng.normal(size=n)
"""

JC_HEAD = """
import numpy as np
import jax.random as jr
import jaxcausal as jc

jc.enable_compilation_cache()
"""

DOUBLEML_HEAD = """
import warnings
import numpy as np
import pandas as pd
import doubleml as dml
from sklearn.base import clone
warnings.simplefilter("ignore")
"""


def dml_scripts(model: str, learners: str, n: int) -> tuple[str, str]:
    treatment = "(rng.random(n) < m).astype(float)" if model == "IRM" else "m + rng.normal(size=n)"
    data = DML_DATA.format(n=n, treatment=treatment)
    jc_learners = {
        ("PLR", "linear"): "jc.learners.Linear(), jc.learners.Linear()",
        ("IRM", "linear"): "jc.learners.Linear(), jc.learners.Logistic()",
        ("PLR", "mlp"): "jc.learners.MLP(), jc.learners.MLP()",
        ("IRM", "mlp"): "jc.learners.MLP(), jc.learners.MLP(classifier=True)",
    }[model, learners]
    sk_imports = {
        "linear": "from sklearn.linear_model import LinearRegression, LogisticRegression",
        "mlp": "from sklearn.neural_network import MLPClassifier, MLPRegressor",
    }[learners]
    sk_learners = {
        ("PLR", "linear"): "LinearRegression(), LinearRegression()",
        ("IRM", "linear"): "LinearRegression(), LogisticRegression()",
        ("PLR", "mlp"): "MLPRegressor(hidden_layer_sizes=(64, 64)), "
                        "MLPRegressor(hidden_layer_sizes=(64, 64))",
        ("IRM", "mlp"): "MLPRegressor(hidden_layer_sizes=(64, 64)), "
                        "MLPClassifier(hidden_layer_sizes=(64, 64))",
    }[model, learners]
    ours = JC_HEAD + SPLIT + data + f"""
data = jc.CausalData(y=y, t=d, x=x)
res = jc.dml.{model}({jc_learners}, n_folds=5).fit(data, key=jr.key(0))
print(res.summary())
"""
    peer = DOUBLEML_HEAD + sk_imports + "\n" + SPLIT + data + f"""
df = pd.DataFrame(x, columns=[f"x{{j}}" for j in range(p)]).assign(y=y, d=d)
obj = dml.DoubleMLData(df, "y", "d")
res = dml.DoubleML{model}(obj, {sk_learners}, n_folds=5).fit()
print(res.summary)
"""
    return ours, peer


SACHS_JC = JC_HEAD + SPLIT + """
s = jc.datasets.sachs()
logged = {{v: np.log(s.data[v].to_numpy(dtype=float)) for v in s.names}}
scm = jc.scm.fit(jc.scm.SCM.from_graph(s.adjacency, s.names), logged)
{query}
"""

SACHS_DOWHY = """
import warnings
import numpy as np
import pandas as pd
import networkx as nx
from dowhy import gcm
warnings.simplefilter("ignore")
gcm.config.disable_progress_bars()
""" + SPLIT + """
raw = pd.read_csv("{data}/sachs_cytometry.csv")
graph = pd.read_csv("{data}/sachs_consensus_graph.csv")
names = list(raw.columns)
df = np.log(raw.astype(float))
g = nx.DiGraph()
g.add_nodes_from(names)
g.add_edges_from(e for e in zip(graph["Cause"], graph["Effect"]) if e != ("PIP2", "PIP3"))
scm = gcm.{cls}(g)
for v in names:
    if list(g.predecessors(v)):
        scm.set_causal_mechanism(v, gcm.AdditiveNoiseModel(gcm.ml.create_linear_regressor()))
    else:
        scm.set_causal_mechanism(v, gcm.{root}())
gcm.fit(scm, df)
{query}
"""

QUERY_JC = """draws = scm.do({"PKC": 2.0}).sample(10_000, key=jr.key(0))
print({v: round(float(a.mean()), 3) for v, a in draws.items()})"""
QUERY_DOWHY = """draws = gcm.interventional_samples(scm, {"PKC": lambda v: 2.0},
                                  num_samples_to_draw=10_000)
print(draws.mean().round(3).to_dict())"""
CF_JC = """observed = {v: a[:1000] for v, a in logged.items()}
cf = scm.counterfactual(observed, {"PKC": 2.0})
print({v: round(float(a.mean()), 3) for v, a in cf.items()})"""
CF_DOWHY = """cf = gcm.counterfactual_samples(scm, {"PKC": lambda v: 2.0},
                               observed_data=df.iloc[:1000])
print(cf.mean().round(3).to_dict())"""

MEDIATION_DATA = """
rng = np.random.default_rng(0)
n = 5000
w = rng.normal(size=n)
t = 0.5 * w + rng.normal(size=n)
med = 0.8 * t + 0.3 * w + rng.normal(size=n)
y = 0.4 * t + 1.2 * med - 0.5 * w + rng.normal(size=n)
"""
MEDIATION_JC = JC_HEAD + SPLIT + MEDIATION_DATA + """
adjacency = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
template = jc.scm.SCM.from_graph(adjacency, ["w", "t", "m", "y"])
scm = jc.scm.fit(template, {"w": w, "t": t, "m": med, "y": y})
effects = jc.scm.mediation(scm, treatment="t", mediator="m", outcome="y", key=jr.key(0))
print(effects.summary())
"""
MEDIATION_DOWHY = """
import warnings
import numpy as np
import pandas as pd
from dowhy import CausalModel
from dowhy.causal_estimators.linear_regression_estimator import LinearRegressionEstimator
warnings.simplefilter("ignore")
""" + SPLIT + MEDIATION_DATA + """
df = pd.DataFrame({"w": w, "t": t, "m": med, "y": y})
model = CausalModel(df, treatment="t", outcome="y",
                    graph="digraph {w -> t; w -> m; w -> y; t -> m; t -> y; m -> y}")
for kind in ("nonparametric-nde", "nonparametric-nie"):
    estimand = model.identify_effect(estimand_type=kind)
    est = model.estimate_effect(
        estimand, method_name="mediation.two_stage_regression", confidence_intervals=False,
        test_significance=False,
        method_params={"first_stage_model": LinearRegressionEstimator,
                       "second_stage_model": LinearRegressionEstimator},
    )
    print(kind, round(float(est.value), 3))
"""

TE_JC = JC_HEAD + SPLIT + """
rep = jc.datasets.ihdp(0, key=jr.key(0))
fitted = jc.te.TARNet({training}).fit(rep.train, key=jr.key(1))
print("sqrt(PEHE)", float(jc.metrics.pehe(rep.tau_test, fitted.effect(rep.test.x))))
"""
TE_CATENETS = """
import warnings
import numpy as np
from catenets.models.jax import TARNet
warnings.simplefilter("ignore")
""" + SPLIT + """
rep = np.load("{data}/ihdp0.npz")
model = TARNet({training})
model.fit(rep["x"], rep["y"], rep["t"])
tau = np.asarray(model.predict(rep["x_test"])).ravel()
print("sqrt(PEHE)", float(np.sqrt(np.mean((tau - rep["tau_test"]) ** 2))))
"""

Q10_JC = JC_HEAD + SPLIT + """
df, truth = jc.datasets.q10_synthetic(jr.key(0), n_obs={n}, q10=1.5)
data = jc.CausalData.from_pandas(df, y="RECO", t="TA", x=["SW_POT_sm", "SW_POT_sm_diff"])
mlp = jc.learners.MLP(max_steps={steps})
res = jc.hybrid.Q10DML(mlp, mlp, n_folds=5, n_rep={n_rep}).fit(data, key=jr.key(1))
print(res.summary())
"""
Q10_DOUBLEML = DOUBLEML_HEAD + "from sklearn.neural_network import MLPRegressor\n" + SPLIT + """
df = pd.read_csv("{data}/q10_site.csv")
frame = pd.DataFrame({{"y": np.log(df["RECO"]), "tau": (df["TA"] - 15.0) / 10.0,
                       "SW_POT_sm": df["SW_POT_sm"], "SW_POT_sm_diff": df["SW_POT_sm_diff"]}})
obj = dml.DoubleMLData(frame, "y", "tau")
res = dml.DoubleMLPLR(obj, MLPRegressor(hidden_layer_sizes=(64, 64)),
                      MLPRegressor(hidden_layer_sizes=(64, 64)), n_folds=5, n_rep={n_rep}).fit()
print("Q10", float(np.exp(res.coef[0])))
"""

PREP = """
import numpy as np, jax.random as jr, jaxcausal as jc
out = {data!r}
rep = jc.datasets.ihdp(0, key=jr.key(0))
np.savez(out + "/ihdp0.npz", x=np.asarray(rep.train.x), y=np.asarray(rep.train.y),
         t=np.asarray(rep.train.t[:, 0]), x_test=np.asarray(rep.test.x),
         tau_test=np.asarray(rep.tau_test))
df, _ = jc.datasets.q10_synthetic(jr.key(0), n_obs={q10_n}, q10=1.5)
df.to_csv(out + "/q10_site.csv", index=False)
"""

SIZES = {
    "full": {"dml_linear_n": 16_000, "dml_mlp_n": 2000, "q10_n": 6000, "q10_rep": 2,
             "q10_steps": 2000, "te_training": "", "catenets_training": ""},
    "quick": {"dml_linear_n": 2000, "dml_mlp_n": 500, "q10_n": 1000, "q10_rep": 1,
              "q10_steps": 300, "te_training": "training=jc.te.Training(max_steps=300)",
              "catenets_training": "n_iter=300"},
}


def scenarios(size: dict, data_dir: str, catenets: str | None) -> dict[str, dict]:
    sachs = str(ROOT / "jaxcausal" / "datasets" / "data")
    out = {}
    for model, learners, n in [("PLR", "linear", size["dml_linear_n"]),
                               ("IRM", "linear", size["dml_linear_n"]),
                               ("PLR", "mlp", size["dml_mlp_n"]),
                               ("IRM", "mlp", size["dml_mlp_n"])]:
        ours, peer = dml_scripts(model, learners, n)
        what = f"DML {model}, {'linear/logistic' if learners == 'linear' else 'MLP'} nuisances"
        out[f"dml_{model.lower()}_{learners}"] = {
            "what": f"{what}, n={n}, 5 folds", "ours": ours,
            "peer": ("DoubleML", peer, sys.executable)}
    out["scm_sachs_query"] = {
        "what": "Sachs: fit linear mechanisms + one do() query, 10,000 samples",
        "ours": SACHS_JC.format(query=QUERY_JC),
        "peer": ("DoWhy gcm", SACHS_DOWHY.format(
            data=sachs, cls="StructuralCausalModel", root="EmpiricalDistribution",
            query=QUERY_DOWHY), sys.executable)}
    out["scm_counterfactual"] = {
        "what": "Sachs: fit linear mechanisms + counterfactuals of 1000 cells",
        "ours": SACHS_JC.format(query=CF_JC),
        "peer": ("DoWhy gcm", SACHS_DOWHY.format(
            data=sachs, cls="InvertibleStructuralCausalModel", root="EmpiricalDistribution",
            query=CF_DOWHY), sys.executable)}
    out["scm_mediation"] = {
        "what": "mediation (NDE, NIE) of a fitted 4-node linear SCM, n=5000",
        "ours": MEDIATION_JC, "peer": ("DoWhy", MEDIATION_DOWHY, sys.executable)}
    out["te_tarnet"] = {
        "what": "TARNet on IHDP replication 0",
        "ours": TE_JC.format(training=size["te_training"]),
        "peer": ("CATENets (JAX)", TE_CATENETS.format(data=data_dir,
                                                      training=size["catenets_training"]),
                 catenets) if catenets else None}
    out["demo_q10"] = {
        "what": f"the demo's Q10 fit: Q10DML, MLP nuisances, {size['q10_n']} rows, "
                f"5 folds x {size['q10_rep']} rep",
        "ours": Q10_JC.format(n=size["q10_n"], n_rep=size["q10_rep"], steps=size["q10_steps"]),
        "peer": ("DoubleML (sklearn MLP)", Q10_DOUBLEML.format(data=data_dir,
                                                              n_rep=size["q10_rep"]),
                 sys.executable)}
    return out


# ---------------------------------------------------------------------------------------------
# The probe: runs one script in this (fresh) process and reports its phases as JSON.


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(spans):
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def probe(path: str) -> None:
    text = Path(path).read_text()
    head, body = text.split(SPLIT) if SPLIT in text else ("", text)
    scope: dict = {"__name__": "__main__"}
    t0 = time.perf_counter()
    exec(compile(head, path, "exec"), scope)
    t_import = time.perf_counter() - t0
    spans: dict[str, list] = {}
    hits = [0]
    if "jax" in sys.modules:
        import jax.monitoring as mon

        def on_span(event, start, end, **kwargs):
            spans.setdefault(event.rsplit("/", 1)[-1], []).append((start, end))

        def on_event(event, **kwargs):
            if event == "/jax/compilation_cache/cache_hits":
                hits[0] += 1

        mon.register_event_time_span_listener(on_span)
        mon.register_event_listener(on_event)
    t1 = time.perf_counter()
    exec(compile(body, path, "exec"), scope)
    if "jax" in sys.modules:
        import jax

        jax.effects_barrier()
    t_body = time.perf_counter() - t1
    compile_s = _union([s for v in spans.values() for s in v])
    report = {"import_s": t_import, "body_s": t_body, "compile_s": compile_s,
              "compute_s": t_body - compile_s, "cache_hits": hits[0],
              "phases_s": {k: _union(v) for k, v in spans.items()}}
    print("FIRST_CALL_REPORT " + json.dumps(report))


# ---------------------------------------------------------------------------------------------
# The driver.


def run_script(text: str, python: str, env: dict, workdir: Path, name: str) -> dict:
    path = workdir / f"{name}.py"
    path.write_text(text)
    start = time.perf_counter()
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--probe", str(path)],
                          capture_output=True, text=True, env=env, cwd=workdir)
    total = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("FIRST_CALL_REPORT ")]
    if proc.returncode != 0 or not lines:
        return {"total_s": total, "error": (proc.stderr or proc.stdout)[-2000:]}
    report = json.loads(lines[-1].split(" ", 1)[1])
    report["total_s"] = total
    report["output"] = "\n".join(ln for ln in proc.stdout.splitlines()
                                 if not ln.startswith("FIRST_CALL_REPORT "))[-600:]
    return report


def fmt(r: dict | None) -> str:
    if r is None:
        return "—"
    if "error" in r:
        return "failed"
    parts = f"{r['total_s']:.1f} s ({r['import_s']:.1f} / "
    parts += f"{r['compile_s']:.1f} / {r['compute_s']:.1f})" if r.get("compile_s") else (
        f"– / {r['body_s']:.1f})")
    return parts


def table(rows: dict) -> str:
    lines = [
        "| entry point | jaxcausal 1st run | jaxcausal 2nd run (cache) | peer | peer 1st run | "
        "peer 2nd run | 1st / peer | 2nd / peer |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        ours1, ours2 = row["ours"]
        peer1, peer2 = row.get("peer_runs") or (None, None)
        ratio1 = ratio2 = "—"
        if peer1 and "error" not in peer1 and "error" not in ours1:
            ratio1 = f"{ours1['total_s'] / peer1['total_s']:.2f}x"
        if peer2 and "error" not in peer2 and "error" not in ours2:
            ratio2 = f"{ours2['total_s'] / peer2['total_s']:.2f}x"
        lines.append(f"| {row['what']} | {fmt(ours1)} | {fmt(ours2)} | {row.get('peer') or '—'} "
                     f"| {fmt(peer1)} | {fmt(peer2)} | {ratio1} | {ratio2} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", help="entry points to run (see --list)")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--list", action="store_true", help="print the scripts and exit")
    parser.add_argument("--no-peer", action="store_true", help="jaxcausal only")
    parser.add_argument("--catenets-python", default="/tmp/venv_cat/bin/python")
    parser.add_argument("--out", default=str(HERE / "results" / "first_call.json"))
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        return
    size = SIZES["quick" if args.quick else "full"]
    catenets = args.catenets_python if Path(args.catenets_python).exists() else None
    with tempfile.TemporaryDirectory(prefix="jaxcausal-first-call-") as tmp:
        tmp_path = Path(tmp)
        todo = scenarios(size, tmp, catenets)
        if args.list:
            for name, sc in todo.items():
                print(f"## {name}: {sc['what']}\n{sc['ours'].replace(SPLIT, '')}")
                if sc["peer"]:
                    print(f"# peer: {sc['peer'][0]}\n{sc['peer'][1].replace(SPLIT, '')}")
            return
        if args.only:
            unknown = set(args.only) - set(todo)
            if unknown:
                parser.error(f"unknown entry points {sorted(unknown)}; choose from {list(todo)}")
            todo = {k: v for k, v in todo.items() if k in args.only}
        base_env = {**os.environ, "PYTHONPATH": str(ROOT), "JAXCAUSAL_CACHE": "1",
                    "PYTHONWARNINGS": "ignore"}
        base_env.pop("JAX_COMPILATION_CACHE_DIR", None)
        if any(k in todo for k in ("te_tarnet", "demo_q10")):
            subprocess.run([sys.executable, "-c", PREP.format(data=tmp, q10_n=size["q10_n"])],
                           check=True, env={**base_env, "JAXCAUSAL_CACHE": "0"})
        rows = {}
        for name, sc in todo.items():
            env = {**base_env, "JAXCAUSAL_CACHE_DIR": str(tmp_path / f"cache-{name}")}
            peer = None if args.no_peer else sc["peer"]
            runs, peer_runs = [], []
            for attempt in (1, 2):
                runs.append(run_script(sc["ours"], sys.executable, env, tmp_path, name))
                print(f"{name} jaxcausal run {attempt}: {fmt(runs[-1])}", flush=True)
                if "error" in runs[-1]:
                    print(runs[-1]["error"], file=sys.stderr)
                if peer:
                    peer_runs.append(run_script(peer[1], peer[2], env, tmp_path, name + "_peer"))
                    print(f"{name} {peer[0]} run {attempt}: {fmt(peer_runs[-1])}", flush=True)
                    if "error" in peer_runs[-1]:
                        print(peer_runs[-1]["error"], file=sys.stderr)
            rows[name] = {"what": sc["what"], "ours": runs, "peer": peer[0] if peer else None,
                          "peer_runs": peer_runs or None,
                          "script": sc["ours"].replace(SPLIT, "")}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores "
                   f"(affinity {len(os.sched_getaffinity(0))}), "
                   f"load average {os.getloadavg()[0]:.1f} at the end",
        "command": "python benchmarks/first_call.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print()
    print("total (import / compile / compute), seconds; ratios are of the totals")
    print(table(rows))


if __name__ == "__main__":
    main()
