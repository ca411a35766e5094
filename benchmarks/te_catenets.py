"""Training time and sqrt(PEHE) of jaxcausal's TARNet and Dragonnet against CATENets on IHDP.

The K replications of `te_ihdp.py` (response surface B, base key 2017) are drawn with jaxcausal and
saved to an `.npz`; a worker process in a separate virtual environment with CATENets fits their
TARNet and DragonNet (JAX, and the PyTorch TARNet) one replication at a time, first with their
defaults and then with settings matched to jaxcausal's where their API allows (learning rate,
batch size, validation share, patience and step budget, no batch norm in the torch net; same
widths and depths, which are already CATENets' defaults). Then jaxcausal fits the same
replications: batched over all K (`jc.te.fit_batch`, first call and warm call) and one
replication at a time. Fit seconds per replication are reported next to within-sample (training
units) and out-of-sample (75 test units) sqrt(PEHE).

CATENets pins old scientific packages, so it is not a dependency of jaxcausal; make its venv with

    python3 -m venv /tmp/venv_cat && /tmp/venv_cat/bin/pip install torch==2.13.0 catenets

and run (one pinned core, as in `benchmarks/README.md`):

    python benchmarks/te_catenets.py                      # 10 replications
    python benchmarks/te_catenets.py --quick              # 2 replications, short budgets (smoke)
    python benchmarks/te_catenets.py --catenets-python /path/to/venv/bin/python

The worker (`--worker`) needs only NumPy, CATENets and PyTorch; it never imports jaxcausal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_PYTHON = "/tmp/venv_cat/bin/python"
# jaxcausal's `jc.te.Training()` defaults, which the "matched" CATENets rows translate to epochs.
OURS = {"learning_rate": 1e-3, "weight_decay": 1e-4, "batch_size": 128, "val_fraction": 0.2,
        "max_steps": 3000, "eval_every": 20, "patience": 50}
PEERS = ["jax-TARNet", "jax-DragonNet", "torch-TARNet"]


def pehe(tau: np.ndarray, tau_hat: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(tau_hat, dtype=np.float64).ravel() - tau) ** 2)))


def mean_se(v) -> tuple[float, float]:
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


# ---------------------------------------------------------------------------------------------
# Worker: runs in the CATENets environment.


def matched_settings(n_train: int, quick: bool) -> dict:
    """jaxcausal's step-based budget in CATENets' epoch units (an epoch = round(n_fit / batch)
    minibatches; CATENets validates once per epoch, jaxcausal every 20 steps)."""
    n_fit = n_train - int(round(OURS["val_fraction"] * n_train))
    per_epoch = max(1, int(round(n_fit / OURS["batch_size"])))
    max_steps = 300 if quick else OURS["max_steps"]
    patience_steps = OURS["patience"] * OURS["eval_every"]
    return {"batch_size": OURS["batch_size"], "val_split_prop": OURS["val_fraction"],
            "n_iter": math.ceil(max_steps / per_epoch),
            "patience": math.ceil(patience_steps / per_epoch), "n_iter_min": 0}


def peer_configs(name: str, n_train: int, quick: bool) -> dict[str, dict]:
    matched = matched_settings(n_train, quick)
    quick_cap = {"n_iter": 60} if quick else {}
    if name.startswith("jax-"):
        # CATENets' JAX penalty_l2 is an L2 term in the loss, not AdamW's decoupled decay.
        mine = {**matched, "step_size": OURS["learning_rate"], "penalty_l2": OURS["weight_decay"]}
    else:
        # No batch norm, like jaxcausal's (and CATENets' JAX) networks; their torch default has it.
        mine = {**matched, "lr": OURS["learning_rate"], "weight_decay": OURS["weight_decay"],
                "batch_norm": False}
    return {"defaults": quick_cap, "matched": mine}


def worker(args) -> None:
    import importlib.metadata

    import torch

    torch.set_num_threads(1)
    data = np.load(args.worker)
    k = data["y_train"].shape[0]
    n_train = data["y_train"].shape[1]
    out = {"catenets": importlib.metadata.version("catenets"), "torch": torch.__version__,
           "results": {}}
    try:
        import jax

        out["jax"] = jax.__version__
    except ImportError:
        pass
    for peer in args.peers:
        for setting, kwargs in peer_configs(peer, n_train, args.quick).items():
            row = {"kwargs": kwargs, "fit_s": [], "pehe_in": [], "pehe_out": []}
            for r in range(k):
                x, y, w = data["x_train"][r], data["y_train"][r], data["t_train"][r]
                model = _make_peer(peer, x.shape[1], seed=r, **kwargs)
                start = time.perf_counter()
                model.fit(x, y, w)
                if peer.startswith("jax-"):
                    jax.block_until_ready(model._params)
                row["fit_s"].append(time.perf_counter() - start)
                for part, tau in (("in", data["tau_train"][r]), ("out", data["tau_test"][r])):
                    xs = x if part == "in" else data["x_test"][r]
                    tau_hat = model.predict(xs)
                    if hasattr(tau_hat, "detach"):
                        tau_hat = tau_hat.detach().numpy()
                    row[f"pehe_{part}"].append(pehe(tau, tau_hat))
                print(f"  {peer} ({setting}) rep {r}: {row['fit_s'][-1]:.1f} s, sqrtPEHE in "
                      f"{row['pehe_in'][-1]:.2f} out {row['pehe_out'][-1]:.2f}", flush=True)
            out["results"][f"{peer} ({setting})"] = row
            Path(args.worker_out).write_text(json.dumps(out, indent=2))


def _make_peer(peer: str, n_features: int, *, seed: int, **kwargs):
    if peer == "jax-TARNet":
        from catenets.models.jax import TARNet

        return TARNet(seed=seed, **kwargs)
    if peer == "jax-DragonNet":
        from catenets.models.jax import DragonNet

        return DragonNet(seed=seed, **kwargs)
    if peer == "torch-TARNet":
        import torch
        from catenets.models.torch import TARNet

        # CATENets' torch loop shuffles with the global NumPy generator; seed it per replication.
        np.random.seed(seed)
        torch.manual_seed(seed)
        return TARNet(n_features, seed=seed, **kwargs)
    raise ValueError(f"unknown peer {peer!r}; choose from {PEERS}")


# ---------------------------------------------------------------------------------------------
# Driver: runs in the jaxcausal environment.


def ours(reps, quick: bool) -> dict[str, dict]:
    import equinox as eqx
    import jax
    import jax.random as jr

    import jaxcausal as jc

    training = jc.te.Training(max_steps=300 if quick else OURS["max_steps"])
    k = reps.train.y.shape[0]
    tau_in, tau_out = np.asarray(reps.tau_train), np.asarray(reps.tau_test)
    results = {}
    for name, model in {"TARNet": jc.te.TARNet(training=training),
                        "Dragonnet": jc.te.Dragonnet(training=training)}.items():
        key = jr.key(0)
        times = []
        for _ in range(2):
            start = time.perf_counter()
            # all K in one vmapped batch (fit_batch's CPU default would run them one at a time)
            fitted = jax.block_until_ready(
                jc.te.fit_batch(model, reps.train, key=key, batch_size=reps.train.y.shape[0]))
            times.append(time.perf_counter() - start)
        eff = eqx.filter_vmap(lambda m, x: m.effect(x))
        e_in, e_out = np.asarray(eff(fitted, reps.train.x)), np.asarray(eff(fitted, reps.test.x))
        results[f"jaxcausal {name} (batched)"] = {
            "first_call_s": times[0], "warm_call_s": times[1],
            "pehe_in": [pehe(tau_in[r], e_in[r]) for r in range(k)],
            "pehe_out": [pehe(tau_out[r], e_out[r]) for r in range(k)],
        }
        keys = jr.split(key, k)  # the keys fit_batch gives replication r
        row = {"fit_s": [], "pehe_in": [], "pehe_out": []}
        for r in range(k):
            data = jax.tree.map(lambda a: a[r], reps.train)  # noqa: B023
            start = time.perf_counter()
            one = jax.block_until_ready(model.fit(data, key=keys[r]))
            row["fit_s"].append(time.perf_counter() - start)
            row["pehe_in"].append(pehe(tau_in[r], one.effect(reps.train.x[r])))
            row["pehe_out"].append(pehe(tau_out[r], one.effect(reps.test.x[r])))
        results[f"jaxcausal {name} (one at a time)"] = row
        print(f"  jaxcausal {name}: batched {times[0]:.1f} s first, {times[1]:.1f} s warm; one at "
              f"a time {row['fit_s'][0]:.1f} s first, {np.mean(row['fit_s'][1:]):.2f} s/rep",
              flush=True)
    return results


def summarise(results: dict, k: int) -> dict[str, dict]:
    rows = {}
    for name, r in results.items():
        if "fit_s" in r:
            later = r["fit_s"][1:] or r["fit_s"]
            first, per_rep = r["fit_s"][0], float(np.mean(later))
        else:
            first, per_rep = r["first_call_s"], r["warm_call_s"] / k
        rows[name] = {"first_s": first, "s_per_rep": per_rep,
                      "pehe_in": mean_se(r["pehe_in"]), "pehe_out": mean_se(r["pehe_out"])}
    for name, row in rows.items():
        model = "Dragonnet" if "Dragon" in name else "TARNet"
        base = rows.get(f"jaxcausal {model} (one at a time)")
        row["ratio_vs_ours"] = row["s_per_rep"] / base["s_per_rep"] if base else None
    return rows


def table(rows: dict, meta: dict) -> str:
    fmt = lambda m: f"{m[0]:.2f} ± {m[1]:.2f}"  # noqa: E731
    lines = [
        f"{meta['replications']} IHDP replications; {meta['machine']}",
        "| implementation (settings) | first fit s | fit s / rep (later) | × ours (one at a time) "
        "| √PEHE in | √PEHE out |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        ratio = "–" if r["ratio_vs_ours"] is None else f"{r['ratio_vs_ours']:.1f}"
        lines.append(f"| {name} | {r['first_s']:.1f} | {r['s_per_rep']:.2f} | {ratio} | "
                     f"{fmt(r['pehe_in'])} | {fmt(r['pehe_out'])} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=None, help="replications (default 10)")
    parser.add_argument("--quick", action="store_true", help="2 replications, short budgets")
    parser.add_argument("--catenets-python", default=DEFAULT_PYTHON if Path(DEFAULT_PYTHON).exists()
                        else None, help="python of a venv with CATENets and PyTorch")
    parser.add_argument("--peers", nargs="*", default=PEERS, choices=PEERS)
    parser.add_argument("--out", default=None, help="JSON path")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.catenets_python is None:
        parser.error(f"no CATENets venv at {DEFAULT_PYTHON}; pass --catenets-python")

    import jax
    import jax.random as jr

    import jaxcausal as jc

    k = args.reps or (2 if args.quick else 10)
    reps = jc.datasets.ihdp_replications(k, key=jr.key(2017))  # te_ihdp.py's replications
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        npz, worker_out = Path(tmp) / "ihdp.npz", Path(tmp) / "peers.json"
        np.savez(npz, x_train=np.asarray(reps.train.x), y_train=np.asarray(reps.train.y),
                 t_train=np.asarray(reps.train.t[..., 0]), x_test=np.asarray(reps.test.x),
                 tau_train=np.asarray(reps.tau_train), tau_test=np.asarray(reps.tau_test))
        if args.peers:
            cmd = [args.catenets_python, __file__, "--worker", str(npz), "--worker-out",
                   str(worker_out), "--peers", *args.peers] + (["--quick"] if args.quick else [])
            print("CATENets:", flush=True)
            subprocess.run(cmd, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            peer = json.loads(worker_out.read_text())
            results.update({f"CATENets {k_}": v for k_, v in peer["results"].items()})
        else:
            peer = {}
    print("jaxcausal:", flush=True)
    results.update(ours(reps, args.quick))
    rows = summarise(results, k)
    meta = {
        "replications": k, "quick": args.quick, "jax": jax.__version__,
        "catenets": peer.get("catenets"), "catenets_jax": peer.get("jax"),
        "torch": peer.get("torch"), "device": str(jax.devices()[0]),
        "platform": platform.platform(), "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "machine": f"{len(os.sched_getaffinity(0))} CPU core(s) pinned, {jax.devices()[0]}",
        "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
        "ours_training": OURS,
    }
    print(table(rows, meta))
    name = Path(__file__).stem + ("_quick" if args.quick else "") + "_cpu"
    out = Path(args.out or Path(__file__).parent / "results" / f"{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "summary": rows, "raw": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
