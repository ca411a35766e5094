"""Parity with DoWhy's `gcm` on the same SCM (DoWhy is a test-only peer)."""

import numpy as np
import pytest

from ._models import closed_form, linear_scm

gcm = pytest.importorskip("dowhy.gcm")
nx = pytest.importorskip("networkx")
stats = pytest.importorskip("scipy.stats")
PARENTS_DURING_FIT = pytest.importorskip("dowhy.gcm.causal_models").PARENTS_DURING_FIT


class _LinearMean(gcm.ml.PredictionModel):
    """Our linear mechanism as a DoWhy prediction model (parents arrive sorted by name)."""

    def __init__(self, coef, intercept):
        self.coef, self.intercept = np.asarray(coef), float(intercept)

    def fit(self, X, Y):
        pass

    def predict(self, X):
        return (np.asarray(X) @ self.coef + self.intercept).reshape(-1, 1)

    def clone(self):
        return _LinearMean(self.coef, self.intercept)


def _dowhy_model(names, w, b, s, invertible=False):
    g = nx.DiGraph()
    g.add_nodes_from(names)
    g.add_edges_from((names[i], names[j]) for i, j in zip(*np.nonzero(w)))
    model = (gcm.InvertibleStructuralCausalModel if invertible else gcm.StructuralCausalModel)(g)
    for j, v in enumerate(names):
        parents = sorted(g.predecessors(v))
        # The mechanisms are given, not learned: mark them as fitted to these parents.
        model.graph.nodes[v][PARENTS_DURING_FIT] = parents
        if not parents:
            model.set_causal_mechanism(v, gcm.ScipyDistribution(stats.norm, loc=b[j], scale=s[j]))
            continue
        coef = [w[names.index(p), j] for p in parents]
        noise = gcm.ScipyDistribution(stats.norm, loc=0.0, scale=s[j])
        model.set_causal_mechanism(v, gcm.AdditiveNoiseModel(_LinearMean(coef, b[j]), noise))
    return model


def test_interventional_means_agree_with_dowhy(key):
    scm, (names, w, b, s) = linear_scm(0)
    n = 20_000
    np.random.seed(0)  # DoWhy draws from NumPy's global generator
    theirs = gcm.interventional_samples(
        _dowhy_model(names, w, b, s), {"x2": lambda x: 1.7}, num_samples_to_draw=n
    )
    ours = scm.do({"x2": 1.7}).sample(n, key=key)
    _, cov = closed_form(w, b, s, do={2: 1.7})
    sd = np.sqrt(np.diag(cov))
    for j, v in enumerate(names):
        # Two independent Monte Carlo means: the difference has sd sd_j * sqrt(2 / n); 5 of them.
        gap = abs(float(np.mean(ours[v])) - float(theirs[v].mean()))
        assert gap <= 5 * sd[j] * np.sqrt(2 / n) + 1e-12, (v, gap)
