import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import jaxcausal as jc

from ..scm._models import linear_scm
from ..scm.test_discrete import _bn
from ._common import quadratic

A = jc.attribution
GRID = jnp.linspace(-1.0, 1.0, 4)


@pytest.fixture(scope="module")
def scm():
    return linear_scm(41)[0]


def _numpy_network(x):
    # Leaves JAX: not differentiable.
    return jax.pure_callback(lambda v: np.sum(np.asarray(v) ** 2),
                             jax.ShapeDtypeStruct((), x.dtype), x)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(f=jc.nn.MLP(4, "scalar", 4, 1, key=jr.key(0))), ValueError,
         "f could not be evaluated on one input vector of size 5"),
        (dict(features=["x0", "nope"]), ValueError, r"features names nodes \['nope'\]"),
        (dict(features="x0"), TypeError, "features must be a list of node names"),
        (dict(alphas=jnp.array([0.0, jnp.nan])), ValueError, "alphas contains NaN"),
        (dict(alphas=jnp.zeros((3, 4))), ValueError, r"alphas must have shape \(m,\)"),
        (dict(f=_numpy_network, estimator=A.Taylor()), ValueError,
         "f must be twice differentiable with JAX"),
        (dict(f=lambda x: jnp.stack([x[0], x[1]])), ValueError, "pass output=j"),
        (dict(f=lambda x: jnp.stack([x[0], x[1]]), output=2), ValueError, "output must index"),
        (dict(key=None), ValueError, "key is required"),
        (dict(effect="total"), TypeError, "effect must be Total()"),
        (dict(estimator="taylor"), TypeError, "estimator must be MonteCarlo"),
        (dict(chunk=0), ValueError, "chunk must be a positive integer"),
        (dict(inputs=None), TypeError, "inputs must be a jaxcausal.scm.SCM"),
        (dict(effect=A.NaturalDirect(reference=jnp.zeros(3))), ValueError,
         r"reference must be a scalar or one value per feature \(5,\)"),
    ],
)
def test_ace_bad_input(scm, kwargs, err, match):
    args = dict(f=quadratic(0), inputs=scm, alphas=GRID, estimator=A.MonteCarlo(8),
                key=jr.key(0))
    args.update(kwargs)
    f, inputs, alphas = args.pop("f"), args.pop("inputs"), args.pop("alphas")
    with pytest.raises(err, match=match):
        A.ace(f, inputs, alphas, **args)


def test_estimator_and_method_settings_are_checked():
    with pytest.raises(ValueError, match="n must be an integer of at least 2"):
        A.MonteCarlo(1)
    with pytest.raises(ValueError, match="hutchinson must be None or a positive number"):
        A.Taylor(hutchinson=0)
    with pytest.raises(ValueError, match="the graph has a cycle"):
        A.AnteHoc(jc.scm.Graph.from_adjacency([[0, 1], [1, 0]], ["a", "b"]))
    # Under the test suite's jaxtyping hook the annotation check answers first; both name the
    # argument.
    with pytest.raises(TypeError, match="graph"):
        A.AnteHoc(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="priors"):
        A.CREDO({"a": 1.0})
    with pytest.raises(ValueError, match="output must name the class"):
        A.CREDO({"a": lambda v: v}, task=A.Classification(2))
    with pytest.raises(TypeError, match="curves"):
        A.EffectPrior({"a": 0.0})
    with pytest.raises(ValueError, match="n_classes must be an integer of at least 2"):
        A.Classification(1)


def test_discrete_inputs_need_levels_and_a_reference():
    bn = jc.scm.SCM(_bn)
    feats = ("a", "b", "c")
    f = quadratic(0, d=3)
    with pytest.raises(ValueError, match="reference must be given for NaturalDirect on the "
                                         r"discrete features \['a', 'b', 'c'\]"):
        A.ace(f, bn, [0.0, 1.0], features=feats, effect=A.NaturalDirect(), key=jr.key(0))
    with pytest.raises(ValueError, match="alphas for the discrete feature 'a' must be integer"):
        A.ace(f, bn, [0.0, 0.5], features=feats, key=jr.key(0))


def test_relu_network_warns_that_taylor_drops_the_spread(scm):
    net = jc.nn.MLP(5, "scalar", 8, 1, activation=jax.nn.relu, key=jr.key(0))
    with pytest.warns(UserWarning, match="Hessian of f is zero at every point"):
        A.ace(net, scm, GRID, estimator=A.Taylor())


def test_true_effects_bad_input(scm):
    with pytest.raises(ValueError, match="must not be one of the features"):
        A.true_effects(scm, outcome="x4", features=["x3", "x4"], alphas=GRID, key=jr.key(0))
    with pytest.raises(ValueError, match="output is for a discrete outcome"):
        A.true_effects(scm, outcome="x4", features=["x3"], alphas=GRID, key=jr.key(0), output=1)
    with pytest.raises(ValueError, match="outcome 'c' is discrete: pass output=c"):
        A.true_effects(jc.scm.SCM(_bn), outcome="c", features=["a"], alphas=[0.0, 1.0],
                       key=jr.key(0))
