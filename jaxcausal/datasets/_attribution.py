"""Data sets of causal attribution studies: the synthetic SCM of Reddy et al. (2024), Auto-MPG."""

from __future__ import annotations

import functools
import importlib.resources
import io
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jaxtyping import Array, Float, PRNGKeyArray


class AttributionData(NamedTuple):
    """A data set for causal attributions.

    - `data`: DataFrame of the features and the outcome on the scale the network sees (min-max
      scaled to [0, 1] column by column).
    - `features`: the network's inputs, in column order; `outcome`: the target's name.
    - `adjacency`: `(d, d)` 0/1 DAG among the features (`adjacency[i, j]`: `features[i] ->
      features[j]`).
    - `scm`: the true SCM on the same scale as `data` (features, outcome and latent causes), for
      [`jaxcausal.attribution.true_effects`][]; `None` for real data.
    - `raw`: the data before scaling; `low`, `span`: the scaling, `data = (raw - low) / span`.
    """

    data: pd.DataFrame
    features: tuple[str, ...]
    outcome: str
    adjacency: np.ndarray
    scm: object
    raw: pd.DataFrame
    low: pd.Series
    span: pd.Series


class SyntheticProgram(eqx.Module):
    r"""The synthetic SCM of Reddy et al. (2024), on a min-max scale.

    On the raw scale: $w = u + \varepsilon_w$ with $u \sim U(-1, 1)$ (the paper's evenly spaced
    grid); $z = w/2 + \varepsilon_z$; $x = -z - w + \varepsilon_x$; $y = x^3 + \log(z^2 + 10^{-5})
    + \varepsilon_y$; all $\varepsilon \sim \mathcal{N}(0, 0.1^2)$. Every variable $v$ is written
    as $(v_{raw} - \mathrm{low}_v) / \mathrm{span}_v$ (order `w, z, x, y`), so interventions and
    effects are on the scale of the network.
    """

    low: Float[Array, " 4"]
    span: Float[Array, " 4"]

    def __call__(self) -> None:
        low, span = self.low, self.span

        def site(name, k, raw_loc):
            scaled = numpyro.sample(name, dist.Normal((raw_loc - low[k]) / span[k], 0.1 / span[k]))
            return low[k] + span[k] * scaled

        u = numpyro.sample("u_w", dist.Uniform(-1.0, 1.0))
        w = site("w", 0, u)
        z = site("z", 1, 0.5 * w)
        x = site("x", 2, -z - w)
        site("y", 3, x**3 + jnp.log(z**2 + 1e-5))


def attribution_synthetic(n: int = 1000, *, key: PRNGKeyArray) -> AttributionData:
    """The synthetic data of Reddy et al. (2024): W -> Z, W -> X, Z -> X, X -> Y, Z -> Y.

    `n` units are drawn from the SCM of [`jaxcausal.datasets.SyntheticProgram`][] with `key`; the
    min-max scaling is taken from them (as the authors scale their data), and the returned
    `scm` is the same SCM on that scale: with the same key it reproduces `data` unit by unit, and
    its effect curves are the truth on the network's scale. The authors' evaluation instead fitted a
    degree-2 polynomial to the data as "ground truth"; use this SCM.

    **Returns:** [`jaxcausal.datasets.AttributionData`][] with features `("w", "z", "x")` and
    outcome `"y"`.
    """
    from ..scm import SCM

    names = ("w", "z", "x", "y")
    unit = SyntheticProgram(low=jnp.zeros((4,)), span=jnp.ones((4,)))
    draws = SCM(unit).sample(n, key=key)
    raw = pd.DataFrame({v: np.asarray(draws[v]) for v in names})
    low, span = raw.min(), raw.max() - raw.min()
    program = SyntheticProgram(
        low=jnp.asarray(low.to_numpy()), span=jnp.asarray(span.to_numpy())
    )
    adjacency = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    return AttributionData(
        data=(raw - low) / span, features=names[:3], outcome="y", adjacency=adjacency,
        scm=SCM(program), raw=raw, low=low, span=span,
    )


AUTO_MPG_FEATURES = ("cylinders", "displacement", "horsepower", "weight", "acceleration")

_AUTO_MPG_COLUMNS = {
    "Cylinders": "cylinders", "Displacement": "displacement", "Horsepower": "horsepower",
    "Weight_in_lbs": "weight", "Acceleration": "acceleration", "Miles_per_Gallon": "mpg",
}


@functools.cache
def _auto_mpg_raw() -> pd.DataFrame:
    text = importlib.resources.files("jaxcausal.datasets").joinpath("data", "auto_mpg.csv")
    df = pd.read_csv(io.StringIO(text.read_text()))
    df = df[list(_AUTO_MPG_COLUMNS)].rename(columns=_AUTO_MPG_COLUMNS).dropna()
    return df.reset_index(drop=True).astype(float)


def auto_mpg() -> AttributionData:
    """The UCI Auto-MPG data (392 cars with complete records), with the causal graph of Reddy et
    al. (2024) among its inputs: cylinders -> displacement, weight, horsepower; displacement ->
    horsepower; weight, horsepower -> acceleration. The target is `mpg`.

    Real data: there is no true SCM (`scm` is `None`). A model-based reference is an SCM fitted on
    the graph with `mpg` as a child of every feature (see `benchmarks/attribution.py`). Shipped
    with the package; provenance in `datasets/data/README.md`.
    """
    raw = _auto_mpg_raw().copy()
    cols = list(AUTO_MPG_FEATURES) + ["mpg"]
    raw = raw[cols]
    low, span = raw.min(), raw.max() - raw.min()
    idx = {v: k for k, v in enumerate(AUTO_MPG_FEATURES)}
    adjacency = np.zeros((5, 5), dtype=int)
    for cause, effect in [
        ("cylinders", "displacement"), ("cylinders", "weight"), ("cylinders", "horsepower"),
        ("displacement", "horsepower"), ("weight", "acceleration"),
        ("horsepower", "acceleration"),
    ]:
        adjacency[idx[cause], idx[effect]] = 1
    return AttributionData(
        data=(raw - low) / span, features=AUTO_MPG_FEATURES, outcome="mpg",
        adjacency=adjacency, scm=None, raw=raw, low=low, span=span,
    )
