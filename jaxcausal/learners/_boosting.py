r"""Gradient-boosted decision stumps: a non-smooth nuisance learner, compiled and vmappable.

Smooth learners (least squares, MLPs) make alike errors in $E[Y \mid X]$ and $E[D \mid X]$ when
the truth has steps or kinks, and those errors do not cancel in a DML score. Boosted stumps
(depth-one trees, an additive model of step functions) are the usual candidate of another kind;
here they are written so that a whole cross-fit of them (every fold, repetition and candidate)
is one `vmap`ped, compiled program.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._checks import is_concrete
from .._compile import filter_jit, jit
from ._base import AbstractLearner, AbstractPredictor, _weighted_mean, prepare_xyw


class BoostingPredictor(AbstractPredictor):
    r"""$F(x) = F_0 + \eta \sum_r (\text{left}_r$ if $x_{j_r} \le t_r$ else $\text{right}_r)$;
    a classifier returns $\sigma(F)$.

    - `feature`, `threshold`, `left`, `right`: the stumps, one per round (`(n_rounds,)` each);
      a round that found no admissible split has `left = right = 0`.
    - `base`: $F_0$ (the weighted mean, or its log-odds for a classifier);
      `learning_rate`: $\eta$.
    """

    feature: Int[Array, " R"]
    threshold: Float[Array, " R"]
    left: Float[Array, " R"]
    right: Float[Array, " R"]
    base: Float[Array, ""]
    learning_rate: Float[Array, ""]
    classifier: bool = eqx.field(static=True, default=False)

    def raw(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        """$F(x)$ (log-odds for a classifier)."""
        if x.ndim == 1:
            x = x[:, None]
        return _raw(self, x)

    def __call__(self, x: Float[Array, "n p"]) -> Float[Array, " n"]:
        f = self.raw(x)
        return jax.nn.sigmoid(f) if self.classifier else f


@filter_jit
def _raw(pred: BoostingPredictor, x: Array) -> Array:
    cols = x[:, pred.feature]  # (n, R)
    steps = jnp.where(cols <= pred.threshold[None, :], pred.left[None, :], pred.right[None, :])
    return pred.base + pred.learning_rate * jnp.sum(steps, axis=1)


def _candidate_thresholds(x: Array, w: Array, n_bins: int | None) -> Array:
    """`(p, K)` nondecreasing split points per column, from the rows with positive weight only:
    midpoints between a weighted value and the next larger weighted value, at every weighted
    value (`n_bins=None`, K = n) or at the `n_bins - 1` inner weighted quantiles."""
    n = x.shape[0]
    order = jnp.argsort(x, axis=0)  # independent of w: shared by a vmap over fold masks
    xs = jnp.take_along_axis(x, order, axis=0)
    ws = w[order]

    def column(xs_j, ws_j):
        valid = ws_j > 0
        low = jax.lax.cummax(jnp.where(valid, xs_j, -jnp.inf))
        up = jax.lax.cummin(jnp.where(valid, xs_j, jnp.inf), reverse=True)
        if n_bins is None:
            pos = jnp.arange(n)
        else:
            cw = jnp.cumsum(ws_j)
            q = jnp.arange(1, n_bins, dtype=x.dtype) / n_bins
            pos = jnp.minimum(jnp.searchsorted(cw, q * cw[-1], side="left"), n - 1)
        lo = low[pos]
        nxt = jnp.searchsorted(xs_j, lo, side="right")
        hi = jnp.where(nxt < n, up[jnp.minimum(nxt, n - 1)], jnp.inf)
        both = jnp.isfinite(lo) & jnp.isfinite(hi)
        mid = jnp.where(both, 0.5 * lo + 0.5 * jnp.where(both, hi, 0.0), lo)
        return mid

    return jax.vmap(column, in_axes=(1, 1))(xs, ws)


@functools.partial(jit, static_argnames=("n_rounds", "n_bins", "classifier"))
def _fit_boosting(x, y, w, learning_rate, l2, min_leaf, n_rounds, n_bins, classifier):
    # jitted so that eager fits reuse one compiled program per shape (the scan's body would
    # otherwise be traced and compiled again on every call)
    n, p = x.shape
    thr = _candidate_thresholds(x, w, n_bins)  # (p, K)
    k = thr.shape[1]
    # bin of each row per column: row i is left of threshold b iff b >= idx[i, j]
    idx = jax.vmap(lambda t, col: jnp.searchsorted(t, col, side="left"), in_axes=(0, 1),
                   out_axes=1)(thr, x)
    seg = (idx + (k + 1) * jnp.arange(p)[None, :]).ravel()
    total = jnp.sum(w)
    mean = jnp.clip(_weighted_mean(y, w, total), 1e-6, 1 - 1e-6) if classifier else \
        _weighted_mean(y, w, total)
    base = jnp.log(mean) - jnp.log1p(-mean) if classifier else mean

    def per_bin(v):  # (n,) -> (p, K) sums over the rows left of each threshold
        sums = jax.ops.segment_sum(jnp.broadcast_to(v[:, None], (n, p)).ravel(), seg,
                                   num_segments=p * (k + 1)).reshape(p, k + 1)
        return jnp.cumsum(sums, axis=1)[:, :k], jnp.sum(v)

    count_left, count = per_bin(w)

    def round_(f, _):
        if classifier:
            prob = jax.nn.sigmoid(f)
            g = w * (y - prob)
            hl, hs = per_bin(w * prob * (1.0 - prob))
        else:  # the Hessian of the squared loss is the weight: its sums are the counts
            g = w * (y - f)
            hl, hs = count_left, count
        gl, gs = per_bin(g)
        gr, hr = gs - gl, hs - hl
        ok = (count_left >= min_leaf) & (count - count_left >= min_leaf) & (hl > 0) & (hr > 0)
        gain = gl**2 / (hl + l2) + gr**2 / (hr + l2)
        best = jnp.argmax(jnp.where(ok, gain, -jnp.inf).ravel())
        j, b = best // k, best % k
        found = ok[j, b]
        left = jnp.where(found, gl[j, b] / (hl[j, b] + l2), 0.0)
        right = jnp.where(found, gr[j, b] / (hr[j, b] + l2), 0.0)
        t = thr[j, b]
        f = f + learning_rate * jnp.where(x[:, j] <= t, left, right)
        return f, (j.astype(jnp.int32), t, left, right)

    f0 = jnp.full((n,), base, x.dtype)
    _, (feat, t, left, right) = jax.lax.scan(round_, f0, None, length=n_rounds)
    return BoostingPredictor(feature=feat, threshold=t, left=left, right=right,
                             base=jnp.asarray(base, x.dtype),
                             learning_rate=jnp.asarray(learning_rate, x.dtype),
                             classifier=classifier)


class Boosting(AbstractLearner):
    r"""Gradient-boosted decision stumps (squared loss, or the logistic loss for a classifier).

    Each of `n_rounds` rounds fits one stump, a split $x_j \le t$ with a value on each side, to
    the gradient of the loss by the Newton rule of XGBoost: over every column $j$ and candidate
    threshold $t$ it maximises $G_L^2/(H_L + \lambda) + G_R^2/(H_R + \lambda)$ ($G$, $H$: sums of
    the weighted gradients and Hessians on each side), among splits that leave at least
    `min_leaf` weight on each side, and adds $\eta\, G/(H + \lambda)$ of the side a row falls
    on. With the squared loss, `l2 = 0`, `n_bins = None` and `min_leaf = 1` this is
    scikit-learn's `GradientBoostingRegressor(max_depth=1)` (same splits, same values).

    Candidate thresholds come from the rows with positive weight only (rows with weight 0 do not
    influence the fit): with `n_bins=None` the midpoints between consecutive distinct values,
    otherwise the `n_bins - 1` inner weighted quantiles (each moved to the midpoint with the next
    larger value). Only the order of each column matters, so the fit does not depend on the
    columns' units: right at float32 on raw covariates from 1e-3 to 1e5.

    **Arguments:**

    - `n_rounds` (static): boosting rounds. `learning_rate` $\eta$ (array, sweepable).
    - `l2`: $\lambda$, the ridge penalty on each leaf value (array, sweepable; 1 by default,
      as XGBoost).
    - `min_leaf`: least total weight on each side of a split (array, sweepable).
    - `n_bins` (static): number of quantile bins per column (`None`: every distinct value).
    - `classifier` (static): fit a binary target with the logistic loss and predict
      probabilities.
    """

    n_rounds: int = eqx.field(static=True, default=200)
    learning_rate: Float[Array, ""] = eqx.field(default=0.1, converter=jnp.asarray)
    l2: Float[Array, ""] = eqx.field(default=1.0, converter=jnp.asarray)
    min_leaf: Float[Array, ""] = eqx.field(default=10.0, converter=jnp.asarray)
    n_bins: int | None = eqx.field(static=True, default=32)
    classifier: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.n_rounds, int) or self.n_rounds < 1:
            raise ValueError(f"n_rounds must be a positive integer; got {self.n_rounds}")
        if self.n_bins is not None and (not isinstance(self.n_bins, int) or self.n_bins < 2):
            raise ValueError(f"n_bins must be None or an integer >= 2; got {self.n_bins}")
        for name in ("learning_rate", "l2", "min_leaf"):
            value = getattr(self, name)
            if is_concrete(value) and value.ndim == 0:
                v = float(value)
                bad = v <= 0 if name == "learning_rate" else v < 0
                if bad or v != v:
                    want = "positive" if name == "learning_rate" else "non-negative"
                    raise ValueError(f"{name} must be {want}; got {v}")

    @property
    def is_classifier(self) -> bool:
        return self.classifier

    def fit(
        self,
        x: Float[Array, "n p"],
        y: Float[Array, " n"],
        *,
        key: PRNGKeyArray | None = None,
        weights: Float[Array, " n"] | None = None,
    ) -> BoostingPredictor:
        """Boosts `n_rounds` stumps on the rows with positive weight; `key` is accepted for the
        common contract and not used (the fit is deterministic)."""
        del key
        x, y, w = prepare_xyw(x, y, weights, binary=self.classifier,
                              who="Boosting(classifier=True)")
        dt = x.dtype
        return _fit_boosting(
            x, y, w, jnp.asarray(self.learning_rate, dt), jnp.asarray(self.l2, dt),
            jnp.asarray(self.min_leaf, dt), self.n_rounds, self.n_bins, self.classifier,
        )
