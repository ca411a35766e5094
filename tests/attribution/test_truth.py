import itertools

import numpy as np

import jaxcausal as jc

from ..scm._models import closed_form, linear_scm

A = jc.attribution
N = 20_000


def test_true_effects_of_a_linear_outcome_match_path_formulas(key):
    scm, (names, w, b, s) = linear_scm(31)
    feats, out = names[:4], 4
    grid = np.linspace(-1.0, 1.0, 5)
    a0 = 0.2
    mu_obs, _ = closed_form(w, b, s)

    def outcome_mean(means, i, alpha):
        # E[x4] when x_i = alpha and the other features have the given means: x4's mechanism.
        m = means.copy()
        m[i] = alpha
        return b[out] + m[:4] @ w[:4, out]

    exact = {"Total": np.zeros((4, 5)), "ControlledDirect": np.zeros((4, 5)),
             "NaturalDirect": np.zeros((4, 5)), "NaturalIndirect": np.zeros((4, 5))}
    for i in range(4):
        mu_ref, _ = closed_form(w, b, s, do={i: a0})
        for k, alpha in enumerate(grid):
            total = closed_form(w, b, s, do={i: alpha})[0][out]
            natural = outcome_mean(mu_ref, i, alpha)
            exact["Total"][i, k] = total
            exact["ControlledDirect"][i, k] = outcome_mean(mu_obs, i, alpha)
            exact["NaturalDirect"][i, k] = natural - mu_ref[out]
            exact["NaturalIndirect"][i, k] = total - natural
    curves = {}
    for name, effect in [("Total", A.Total()), ("ControlledDirect", A.ControlledDirect()),
                         ("NaturalDirect", A.NaturalDirect(reference=a0)),
                         ("NaturalIndirect", A.NaturalIndirect(reference=a0))]:
        curves[name] = A.true_effects(scm, outcome="x4", features=feats, alphas=grid,
                                      effect=effect, key=key, n=N)
        # Unbiased Monte Carlo with paired worlds: within 5 standard errors everywhere.
        np.testing.assert_array_less(
            np.abs(np.asarray(curves[name].raw) - exact[name]),
            5 * np.asarray(curves[name].se) + 1e-10,
        )
    np.testing.assert_allclose(
        curves["NaturalDirect"].values + curves["NaturalIndirect"].values,
        curves["Total"].values, atol=1e-10,
    )


def _enumerate(bn, outcome, level, do):
    """P(outcome = level | do(node = value)) by summing the joint over every configuration."""
    cards = [len(st) for st in bn.states]
    tables = [np.asarray(t) for t in bn.tables]
    total = 0.0
    for config in itertools.product(*[range(c) for c in cards]):
        value = dict(zip(bn.names, config))
        if any(value[v] != lv for v, lv in do.items()):
            continue
        p = 1.0
        for v, pa, t in zip(bn.names, bn.parents, tables):
            if v not in do:
                p *= t[tuple(value[q] for q in pa) + (value[v],)]
        total += p * (value[outcome] == level)
    return total


def test_true_effects_on_a_discrete_network_match_enumeration(key):
    bn = jc.datasets.asia_network()
    feats = tuple(v for v in bn.names if v != "dysp")
    truth = A.true_effects(bn.scm, outcome="dysp", features=feats, alphas=[0.0, 1.0],
                           key=key, n=N, output=0)
    exact = np.array([[_enumerate(bn, "dysp", 0, {v: lv}) for lv in (0, 1)] for v in feats])
    # Frequencies of N units: 5 binomial standard errors (at most 0.5 / sqrt(N) each).
    np.testing.assert_array_less(np.abs(np.asarray(truth.raw) - exact), 5 * 0.5 / np.sqrt(N))
