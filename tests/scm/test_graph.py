import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import jaxcausal as jc

from ._models import linear_program, random_linear


def test_graph_from_program_is_topological():
    names, w, b, s = random_linear(0, d=6)
    g = jc.scm.SCM(linear_program(names, w, b, s)).graph
    assert g.names == tuple(names)
    np.testing.assert_array_equal(g.adjacency, w != 0)
    for j, v in enumerate(g.names):
        assert all(g.names.index(p) < j for p in g.parents(v))


def test_graph_relations():
    g = jc.scm.Graph.from_parents({"y": ["x", "z"], "x": ["z"], "z": [], "w": ["y"], "u": []})
    assert g.names.index("z") < g.names.index("x") < g.names.index("y") < g.names.index("w")
    assert g.ancestors("w") == tuple(v for v in g.names if v in {"x", "y", "z"})
    assert g.descendants("z") == tuple(v for v in g.names if v in {"x", "y", "w"})
    assert g.children("x") == ("y",)
    assert set(g.edges) == {("z", "x"), ("x", "y"), ("z", "y"), ("y", "w")}
    assert g.ancestors("u") == () and g.descendants("u") == ()


def test_from_adjacency_sorts_and_round_trips():
    adj = np.array([[0, 0, 0], [1, 0, 1], [1, 0, 0]])  # b -> a, b -> c, c -> a
    g = jc.scm.Graph.from_adjacency(adj, ["a", "b", "c"])
    assert g.names == ("b", "c", "a")
    order = [g.index(v) for v in ["a", "b", "c"]]
    np.testing.assert_array_equal(g.adjacency[np.ix_(order, order)], adj.astype(bool))


def test_cycle_is_an_error():
    adj = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="cycle"):
        jc.scm.Graph.from_adjacency(adj, ["a", "b", "c"])
    with pytest.raises(ValueError, match="cycle"):
        jc.scm.SCM.from_graph(adj, ["a", "b", "c"])


@pytest.mark.parametrize(
    "adj, names, match",
    [
        (np.zeros((2, 3)), ["a", "b"], "square"),
        (np.zeros((2, 2)), ["a"], "one entry per row"),
        (np.eye(2), ["a", "b"], "self-loops"),
        (np.full((2, 2), 2), ["a", "b"], "0/1"),
        (np.zeros((2, 2)), ["a", "a"], "unique"),
    ],
)
def test_malformed_adjacency(adj, names, match):
    with pytest.raises(ValueError, match=match):
        jc.scm.Graph.from_adjacency(adj, names)


def _observed():
    numpyro.sample("x", dist.Normal(0.0, 1.0), obs=1.0)


def _plate():
    with numpyro.plate("n", 3):
        numpyro.sample("x", dist.Normal(0.0, 1.0))


def _vector():
    numpyro.sample("x", dist.Normal(0.0, 1.0).expand([2]))


def _empty():
    return 1.0


def _needs_args(a):
    numpyro.sample("x", dist.Normal(a, 1.0))


@pytest.mark.parametrize(
    "model, err, match",
    [
        (_observed, ValueError, "observed sites"),
        (_plate, ValueError, "plates"),
        (_vector, ValueError, "must be a scalar"),
        (_empty, ValueError, "no sample sites"),
        (_needs_args, TypeError, "takes no arguments"),
        (3.0, TypeError, "callable"),
    ],
)
def test_malformed_program(model, err, match):
    with pytest.raises(err, match=match):
        jc.scm.SCM(model)


def test_unknown_node_names():
    g = jc.scm.Graph.from_parents({"a": [], "b": ["a"]})
    with pytest.raises(KeyError, match="unknown node 'c'"):
        g.parents("c")
    with pytest.raises(ValueError, match="parents of 'b' name unknown nodes"):
        jc.scm.Graph.from_parents({"b": ["c"]})
