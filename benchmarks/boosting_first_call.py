"""PLR with boosted-stump nuisances, one-off scripts in fresh processes: jaxcausal's
`Boosting()` against DoubleML with scikit-learn's `GradientBoostingRegressor(max_depth=1)` (the
same model: 200 rounds, learning rate 0.1), on the same data (n = 1000, p = 10, step-function
confounding, theta = 0.5), float32 for jaxcausal with columns scaled from 1e-3 to 1e5.

Each script is run twice in a fresh process (the second jaxcausal run may read JAX's persistent
cache: `JAXCAUSAL_CACHE=0` keeps it off, so both runs compile). Prints the wall time of each
process and its estimate.

    python benchmarks/boosting_first_call.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

DATA = """
import numpy as np
rng = np.random.default_rng(0)
n, p = 1000, 10
x = rng.normal(size=(n, p))
m = 1.0 * (x[:, 0] > 0) - 0.5 * (x[:, 1] > 0.5)
g = 1.5 * (x[:, 0] > 0) + np.abs(x[:, 2])
d = m + rng.normal(size=n)
y = 0.5 * d + g + rng.normal(size=n)
scales = np.logspace(-3, 5, p)
x = x * scales
"""

OURS = DATA + """
import jax.random as jr
import jaxcausal as jc
data = jc.CausalData(y.astype("float32"), d.astype("float32"), x.astype("float32"))
res = jc.dml.PLR(jc.learners.Boosting(), jc.learners.Boosting()).fit(data, key=jr.key(0))
print(f"theta {float(res.theta[0]):.4f} se {float(res.se[0]):.4f} dtype {res.dtype}")
"""

PEER = DATA + """
import doubleml as dml
from sklearn.ensemble import GradientBoostingRegressor
gb = GradientBoostingRegressor(max_depth=1, n_estimators=200, learning_rate=0.1)
obj = dml.DoubleMLData.from_arrays(x, y, d)
res = dml.DoubleMLPLR(obj, gb, gb, n_folds=5).fit()
print(f"theta {res.coef[0]:.4f} se {res.se[0]:.4f}")
"""


def run(code: str) -> tuple[float, str]:
    env = dict(os.environ, JAXCAUSAL_CACHE="0", OMP_NUM_THREADS="1")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    return time.perf_counter() - start, out.stdout.strip()


if __name__ == "__main__":
    for name, code in (("jaxcausal Boosting()", OURS), ("DoubleML + sklearn GB", PEER)):
        for attempt in (1, 2):
            seconds, line = run(code)
            print(f"{name:24s} run {attempt}: {seconds:5.1f} s  {line}", flush=True)
