import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

import jaxcausal as jc

A = jc.attribution


def _curves(values, features, alphas=None):
    values = jnp.asarray(values)
    alphas = jnp.broadcast_to(jnp.linspace(0, 1, values.shape[1]), values.shape) \
        if alphas is None else alphas
    return A.Curves(values=values, raw=values + 1.0, se=jnp.zeros_like(values), alphas=alphas,
                    features=tuple(features), effect=A.Total())


def _frechet_by_hand(p, q):
    """The recursive definition of Eiter and Mannila (1994), memoised."""
    memo = {}

    def c(i, j):
        if (i, j) not in memo:
            d = abs(p[i] - q[j])
            if i == 0 and j == 0:
                memo[i, j] = d
            elif i == 0:
                memo[i, j] = max(c(0, j - 1), d)
            elif j == 0:
                memo[i, j] = max(c(i - 1, 0), d)
            else:
                memo[i, j] = max(min(c(i - 1, j), c(i - 1, j - 1), c(i, j - 1)), d)
        return memo[i, j]

    return c(len(p) - 1, len(q) - 1)


def test_rmse_and_frechet_against_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 12)), rng.normal(size=(3, 12))
    ours = _curves(a, ["u", "v", "w"])
    # Truth with its features in another order: curves are matched by name.
    truth = _curves(b[[2, 0, 1]], ["w", "u", "v"])
    np.testing.assert_allclose(A.curve_rmse(ours, truth), np.sqrt(((a - b) ** 2).mean(1)),
                               rtol=1e-12)
    np.testing.assert_allclose(
        A.frechet(ours, truth), [_frechet_by_hand(a[k], b[k]) for k in range(3)], rtol=1e-12
    )
    assert float(A.frechet(ours, ours).max()) == 0.0
    table = ours.to_pandas()
    assert list(table.columns) == ["feature", "alpha", "value", "raw", "se"]
    assert len(table) == 36 and table.feature.iloc[12] == "v"
    np.testing.assert_allclose(ours["v"], a[1])
    with pytest.raises(ValueError, match=r"truth has no curves for features \['u'\]"):
        A.curve_rmse(ours, _curves(b[:2], ["v", "w"]))
    with pytest.raises(ValueError, match="share their grids"):
        A.frechet(ours, _curves(b[:, :5], ["u", "v", "w"]))


def test_plot():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = _curves(np.zeros((2, 4)), ["u", "v"])
    axes = ours.plot(truth=ours, label="ours")
    assert len(axes) == 2 and axes[1].get_title() == "v"
    plt.close("all")
