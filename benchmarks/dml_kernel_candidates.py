"""Does kernel ridge regression help `Stacked()` on the small smooth design? (#12)

On 100 data sets of `small_smooth` (n = 250, p = 5; `dml_model_selection.py`), seeds 0-99, PLR
with 5 folds and one repetition, four ways:

- `stacked`: jaxcausal `Stacked()` with the default grid;
- `stacked_krr`: the same plus six `KernelRidge` candidates (alpha in {0.01, 0.1, 1}, gamma in
  {0.25, 1});
- `sklearn_krr`: a NumPy PLR (partialling out) with scikit-learn's `GridSearchCV(KernelRidge)`
  on standardised columns (3 inner folds) for both nuisances;
- `oracle`: the same NumPy PLR with the true nuisance functions.

Prints bias over the mean se (with its Monte Carlo error), sd over the mean se, coverage of the
95 % interval and RMSE per method. Float64 for the NumPy halves, JAX's default float32 for
jaxcausal. About 15 minutes on 2 CPU cores:

    python benchmarks/dml_kernel_candidates.py --n-sims 100
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.random as jr
import numpy as np

import jaxcausal as jc

sys.path.insert(0, os.path.dirname(__file__))
from dml_model_selection import small_smooth  # noqa: E402

THETA = 0.5


def _summary(name, est):
    v = np.asarray(est)
    b = v[:, 0] - THETA
    se = v[:, 1].mean()
    print(f"{name:12s} bias/se {b.mean() / se:+.2f} (± {b.std() / np.sqrt(len(b)) / se:.2f})  "
          f"sd/se {b.std() / se:.2f}  coverage {np.mean(np.abs(b) < 1.96 * v[:, 1]):.2f}  "
          f"RMSE {np.sqrt(np.mean(b**2)):.4f}", flush=True)


def _numpy_plr(y, d, x, fit=None, oracle=None):
    from sklearn.model_selection import KFold

    n = len(y)
    uy, ud = np.zeros(n), np.zeros(n)
    for tr, te in KFold(5, shuffle=True, random_state=0).split(x):
        if oracle is not None:
            uy[te] = y[te] - oracle[0][te]
            ud[te] = d[te] - oracle[1][te]
        else:
            uy[te] = y[te] - fit().fit(x[tr], y[tr]).predict(x[te])
            ud[te] = d[te] - fit().fit(x[tr], d[tr]).predict(x[te])
    th = (ud @ uy) / (ud @ ud)
    psi = (uy - th * ud) * ud
    return th, np.sqrt(np.mean(psi**2) / np.mean(ud**2) ** 2 / n)


def _sklearn_krr():
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), KernelRidge(kernel="rbf"))
    grid = {"kernelridge__alpha": [0.01, 0.1, 1.0, 10.0],
            "kernelridge__gamma": [0.02, 0.05, 0.1, 0.2, 0.5]}
    return GridSearchCV(pipe, grid, cv=3)


def _jaxcausal(learner, n_sims):
    est = jc.dml.PLR(learner, learner, n_folds=5, n_rep=1)

    @jax.jit
    def fit(data, key):
        res = est.fit(data, key=key)
        return res.theta, res.se

    out = []
    for s in range(n_sims):
        th, se = fit(small_smooth(jr.key(s))[0], jr.key(1000 + s))
        out.append((float(th.ravel()[0]), float(se.ravel()[0])))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-sims", type=int, default=100)
    args = parser.parse_args()
    krr = tuple(jc.learners.KernelRidge(alpha=a, gamma=g) for a in (0.01, 0.1, 1.0)
                for g in (0.25, 1.0))
    for name, learner in (("stacked", jc.learners.Stacked()),
                          ("stacked_krr", jc.learners.Stacked(
                              jc.learners.default_candidates() + krr))):
        start = time.perf_counter()
        _summary(name, _jaxcausal(learner, args.n_sims))
        print(f"  {time.perf_counter() - start:.0f} s", flush=True)
    with jax.enable_x64(True):
        rows = {"sklearn_krr": [], "oracle": []}
        for s in range(args.n_sims):
            data, _ = small_smooth(jr.key(s))
            y, d, x = (np.asarray(a, np.float64) for a in (data.y, data.t[:, 0], data.x))
            m = 1 / (1 + np.exp(-3 * x[:, 0])) - 0.5 + 0.3 * (x[:, 1] ** 2 - 1)
            g = x[:, 0] ** 2 + np.sin(2 * x[:, 1]) + 0.5 * x[:, 2]
            rows["oracle"].append(_numpy_plr(y, d, x, oracle=(THETA * m + g, m)))
            rows["sklearn_krr"].append(_numpy_plr(y, d, x, fit=_sklearn_krr))
    for name, est in rows.items():
        _summary(name, est)


if __name__ == "__main__":
    main()
