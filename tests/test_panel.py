"""PanelData: long DataFrames in and out, balanced panels only, groups checked by name."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxcausal as jc


def long_frame(n=4, periods=(1, 2, 3), groups=(2, 0, 3, 2)):
    rows = []
    for i in range(n):
        for t in periods:
            rows.append({"id": 10 * (n - i), "t": t, "y": i + 0.1 * t, "g": groups[i],
                         "x1": float(i), "x2": float(i * t)})
    return pd.DataFrame(rows)


def test_from_pandas_round_trip_sorted_by_id():
    df = long_frame()
    panel = jc.PanelData.from_pandas(df, y="y", g="g", time="t", id="id", x=["x1", "x2"])
    assert panel.t_values == (1.0, 2.0, 3.0) and panel.g_values == (2.0, 3.0)
    assert panel.y.shape == (4, 3) and panel.x.shape == (4, 3, 2)  # x2 varies over time
    # units in id order (10, 20, 30, 40) = rows 3, 2, 1, 0 of the frame; integer 0 = never
    np.testing.assert_array_equal(np.asarray(panel.g), [2.0, 3.0, np.inf, 2.0])
    np.testing.assert_allclose(np.asarray(panel.y[0]), [3.1, 3.2, 3.3])
    back = panel.to_pandas()
    assert list(back.columns) == ["id", "t", "y", "g", "x1", "x2"] and len(back) == 12
    constant = jc.PanelData.from_pandas(df, y="y", g="g", time="t", id="id", x=["x1"])
    assert constant.x.shape == (4, 1)


def test_float_groups_use_inf_or_nan_for_never_treated():
    df = long_frame().astype({"g": float})
    df.loc[df["g"] == 0, "g"] = np.nan
    panel = jc.PanelData.from_pandas(df, y="y", g="g", time="t", id="id")
    assert panel.x_names == ("x1", "x2") and np.isinf(np.asarray(panel.g)).sum() == 1


def test_panel_errors_name_the_argument():
    df = long_frame()
    kw = dict(y="y", g="g", time="t", id="id")
    with pytest.raises(ValueError, match=r"unbalanced: id 40 has no row for period\(s\) \[2\]"):
        jc.PanelData.from_pandas(df.drop(index=1), **kw)
    with pytest.raises(ValueError, match="id 40 has several rows for period 1"):
        jc.PanelData.from_pandas(pd.concat([df, df.iloc[:1]]), **kw)
    varying = df.copy()
    varying.loc[0, "g"] = 3
    with pytest.raises(ValueError, match="g .column 'g'. varies within id 40"):
        jc.PanelData.from_pandas(varying, **kw)
    late = df.replace({"g": {3: 7}})
    with pytest.raises(ValueError, match="g_values has the group 7, which is not one of the"):
        jc.PanelData.from_pandas(late, **kw)
    with pytest.raises(ValueError, match="time names unknown column"):
        jc.PanelData.from_pandas(df, y="y", g="g", time="period", id="id")
    with pytest.raises(ValueError, match="column 'y' .given as y. contains NaN"):
        jc.PanelData.from_pandas(df.assign(y=np.where(df.index == 2, np.nan, df["y"])), **kw)
    with pytest.raises(ValueError, match="y must have at least two periods"):
        jc.PanelData(np.ones((3, 1)), np.zeros(3, int), np.ones((3, 2)))
    with pytest.raises(ValueError, match="g contains NaN"):
        jc.PanelData(np.ones((3, 2)), [np.nan, 1.0, np.inf], np.ones((3, 2)))
    with pytest.raises(ValueError, match="g has first treatment period 1, which is not one of"):
        jc.PanelData(np.ones((3, 2)), [1.0, 1.0, np.inf], np.ones((3, 2)), g_values=[0.0])
    with pytest.raises(ValueError, match="t_values must list the 2 periods"):
        jc.PanelData(np.ones((3, 2)), [1.0, 1.0, np.inf], np.ones((3, 2)), t_values=[0, 1, 2])
    with pytest.raises(ValueError, match="x has shape"):
        jc.PanelData(np.ones((3, 2)), [1.0, 1.0, np.inf], np.ones((3, 3, 2)))


def test_panel_under_jit_needs_static_groups():
    def make(y, g):
        return jc.PanelData(y, g, jnp.ones((3, 1)), g_values=(1.0,))

    panel = jax.jit(make)(jnp.ones((3, 2)), jnp.array([1.0, jnp.inf, 1.0]))
    assert panel.g_values == (1.0,)
    with pytest.raises(ValueError, match="g_values must be given when g is traced"):
        jax.jit(lambda g: jc.PanelData(jnp.ones((3, 2)), g, jnp.ones((3, 1))))(jnp.ones(3))
    # (panels drawn under vmap: tests/dml/test_did_multi.py::test_didmulti_in_simulate)
