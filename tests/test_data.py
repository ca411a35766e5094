import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxcausal as jc


def _frame(n=6):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "d": rng.integers(0, 2, n),
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "z": rng.normal(size=n),
        }
    )


def test_arrays_are_stored_with_treatment_columns():
    data = jc.CausalData(y=np.arange(4.0), t=np.ones(4), x=np.zeros((4, 3)))
    assert data.n_obs == 4 and data.t.shape == (4, 1) and data.x.shape == (4, 3)
    assert data.n_treatments == 1 and data.n_features == 3 and data.z is None
    assert data.t_names == ("t",) and data.x_names == ("x0", "x1", "x2")


def test_pandas_round_trip_keeps_names_and_values():
    df = _frame()
    data = jc.CausalData.from_pandas(df, y="y", t="d", x=["x1", "x2"], z="z")
    assert data.t_names == ("d",) and data.x_names == ("x1", "x2") and data.z_names == ("z",)
    back = data.to_pandas()
    pd.testing.assert_frame_equal(back, df[["y", "d", "x1", "x2", "z"]].astype(float))


def test_from_pandas_default_covariates_are_the_other_columns():
    data = jc.CausalData.from_pandas(_frame(), y="y", t="d")
    assert data.x_names == ("x1", "x2", "z")


def test_is_a_pytree_that_jits_and_stacks():
    data = jc.CausalData(y=np.arange(4.0), t=np.ones(4), x=np.zeros((4, 2)))
    mean_y = jax.jit(lambda d: jnp.mean(d.y))(data)
    assert mean_y == 1.5
    stacked = jc.CausalData.stack([data, data])
    assert stacked.y.shape == (2, 4)
    assert jnp.allclose(jax.vmap(lambda d: jnp.sum(d.y))(stacked), 6.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"y": [1.0, np.nan], "t": [0, 1], "x": [[1.0], [2.0]]}, "y contains NaN"),
        ({"y": [1.0, 2.0], "t": [0, np.inf], "x": [[1.0], [2.0]]}, "t contains infinite"),
        ({"y": [1.0, 2.0], "t": [0, 1], "x": [[1.0], [np.nan]]}, "x contains NaN"),
        ({"y": [1.0, 2.0], "t": [0, 1, 1], "x": [[1.0], [2.0]]}, "t has 3 rows but y has 2"),
        ({"y": [1.0, 2.0], "t": [0, 1], "x": [[1.0]]}, "x has 1 rows but y has 2"),
        ({"y": [], "t": [], "x": np.zeros((0, 1))}, "y is empty"),
        ({"y": np.zeros((2, 2)), "t": [0, 1], "x": [[1.0], [2.0]]}, "y must be a vector"),
        ({"y": [1.0, 2.0], "t": np.zeros((2, 1, 1)), "x": [[1.0], [2.0]]}, "t must be a vector"),
        ({"y": ["a", "b"], "t": [0, 1], "x": [[1.0], [2.0]]}, "y must be numeric"),
        (
            {"y": [1.0, 2.0], "t": [0, 1], "x": [[1.0], [2.0]], "x_names": ["a", "b"]},
            "x_names must name 1",
        ),
    ],
)
def test_bad_arrays_raise_naming_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        jc.CausalData(**kwargs)


def test_from_pandas_errors_name_the_column():
    df = _frame()
    with pytest.raises(ValueError, match=r"x names unknown column\(s\) \['nope'\]"):
        jc.CausalData.from_pandas(df, y="y", t="d", x=["x1", "nope"])
    with pytest.raises(ValueError, match="y names unknown column"):
        jc.CausalData.from_pandas(df, y="outcome", t="d")
    df_text = df.assign(x2=["a"] * len(df))
    with pytest.raises(ValueError, match="column 'x2' \\(given as x\\) must be numeric"):
        jc.CausalData.from_pandas(df_text, y="y", t="d", x=["x1", "x2"])
    df_nan = df.copy()
    df_nan.loc[3, "d"] = np.nan
    with pytest.raises(ValueError, match="column 'd' \\(given as t\\) contains NaN.*row 3"):
        jc.CausalData.from_pandas(df_nan, y="y", t="d")
    # beartype (active in tests) or the function's own check: both name the argument df.
    with pytest.raises(TypeError, match="df"):
        jc.CausalData.from_pandas({"y": [1.0]}, y="y", t="d")


# --- the period indicator `time` of repeated cross-sections (DIDCS) ---


def test_time_indicator_round_trip_and_checks():
    df = _frame().assign(period=[0, 1, 0, 1, 1, 0])
    data = jc.CausalData.from_pandas(df, y="y", t="d", time="period", z=None)
    assert data.time_name == "period" and "period" not in data.x_names
    np.testing.assert_array_equal(np.asarray(data.time), [0, 1, 0, 1, 1, 0])
    assert list(data.to_pandas()["period"]) == [0, 1, 0, 1, 1, 0]
    assert jc.CausalData.from_pandas(df, y="y", t="d").time is None
    with pytest.raises(ValueError, match="time must be binary .* got values 0, 1, 2"):
        jc.CausalData.from_pandas(df.assign(period=[0, 1, 2, 1, 1, 0]), y="y", t="d",
                                  time="period")
    with pytest.raises(ValueError, match="time names unknown column"):
        jc.CausalData.from_pandas(df, y="y", t="d", time="when")
    with pytest.raises(ValueError, match="time has 3 rows but y has 6"):
        jc.CausalData(df["y"], df["d"], df[["x1"]], time=[0, 1, 0])
    with pytest.raises(ValueError, match="time contains NaN"):
        jc.CausalData(df["y"], df["d"], df[["x1"]], time=[0, 1, np.nan, 1, 1, 0])
    # traced: the check is an eqx.error_if naming time
    with pytest.raises(Exception, match="time must be binary"):
        jax.jit(lambda s: jc.CausalData(jnp.ones(2), jnp.ones(2), jnp.ones(2), time=s).time)(
            jnp.array([0.0, 3.0]))
