r"""Scalar solvers for scores that are not linear in the parameter, written for `vmap`.

The quantile models solve empirical moment conditions $\overline{\psi}(\theta) = 0$ whose score
is a step function of $\theta$ (an indicator $1\{Y \le \theta\}$). To give DoubleML 0.11's numbers
on identical inputs, the solvers take the same decisions as the SciPy routines DoubleML calls
(each is a classical algorithm, re-derived here as a `lax.while_loop` with `jnp.where` branches so
that a grid of quantiles, folds and repetitions is solved in one batched loop):

- [`jaxcausal.dml.bracket_guess`][]: DoubleML's widening search for a sign change of the score
  around a start value inside bounds;
- `brent_root`: Brent's (1973) bracketing root finder with SciPy's `brentq` steps and
  tolerances (`xtol=2e-12`, `rtol=4 eps`);
- `brent_minimize`: a downhill bracket followed by Brent's parabolic/golden-section minimiser
  with SciPy's `minimize_scalar(method="brent")` constants (`tol=1.48e-8`), which DoubleML uses on
  $|\overline{\psi}|$ for the preliminary estimate;
- `kde_at_zero`: the weighted Gaussian kernel density at 0 with Silverman's bandwidth
  (statsmodels' `KDEUnivariate`), DoubleML's estimate of the score's derivative
  $J = \partial_\theta E[\psi]$ for the standard error.

Each returns a flag instead of raising, so one failed cell of a batched study does not stop the
others; the models turn the flags into checks.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

ScalarFn = Callable[[Array], Array]

# DoubleML widens the bracket around the start value by 10 % of the bound width per step, by
# repeated addition (so the factors are 0.1, 0.2, 0.30000000000000004, ...), ten steps at most.
_WIDTHS = []
_delta = 0.1
while _delta <= 1.0:
    _WIDTHS.append(_delta)
    _delta += 0.1
del _delta

_GOLD = 1.618034  # downhill bracket expansion factor
_CGOLD = 0.3819660  # golden-section fraction of Brent's minimiser
_GROW_LIMIT = 110.0
_VERY_SMALL = 1e-21
_MIN_TOL = 1e-11


def _tolerances(dtype) -> tuple[float, float]:
    """(relative tolerance of `brent_root`, relative tolerance of `brent_minimize`)."""
    eps = float(jnp.finfo(dtype).eps)
    # SciPy's values in float64; in float32 the minimiser cannot resolve 1.48e-8 relative.
    return 4.0 * eps, max(1.48e-8, eps**0.5)


def bracket_guess(
    fn: ScalarFn, start: Float[Array, ""], lower: Float[Array, ""], upper: Float[Array, ""]
) -> tuple[Float[Array, ""], Float[Array, ""], Bool[Array, ""]]:
    r"""An interval around `start` on which `fn` changes sign.

    Tries $[\max(s - \delta L/2, l), \min(s + \delta L/2, u)]$ for $\delta = 0.1, 0.2, \dots,
    1$ and $L = u - l$, and returns the first with $\operatorname{sign} f(a) \ne
    \operatorname{sign} f(b)$ (or the widest, with the flag `False`), as DoubleML does.

    **Returns:** `(a, b, found)`.
    """
    widths = jnp.asarray(_WIDTHS, start.dtype)
    half = widths * (upper - lower) / 2
    a = jnp.maximum(start - half, lower)
    b = jnp.minimum(start + half, upper)
    fa = jax.vmap(fn)(a)
    fb = jax.vmap(fn)(b)
    differ = jnp.sign(fa) != jnp.sign(fb)
    found = jnp.any(differ)
    i = jnp.where(found, jnp.argmax(differ), len(_WIDTHS) - 1)
    return a[i], b[i], found


class _RootState(eqx.Module):
    xpre: Array
    xcur: Array
    xblk: Array
    fpre: Array
    fcur: Array
    fblk: Array
    spre: Array
    scur: Array
    n_iter: Array
    done: Array


def brent_root(
    fn: ScalarFn,
    a: Float[Array, ""],
    b: Float[Array, ""],
    *,
    xtol: float = 2e-12,
    max_iter: int = 100,
) -> tuple[Float[Array, ""], Bool[Array, ""]]:
    """A root of `fn` in `[a, b]` (where `fn(a)` and `fn(b)` differ in sign) by Brent's method.

    Inverse quadratic or linear interpolation when it shrinks the bracket fast enough, bisection
    otherwise; stops when the bracket is narrower than `xtol + 4 eps |x|` and returns the end of
    the final bracket with the smaller `|fn|`. For a step function this is the jump point, on the
    side where the score is closer to zero.

    **Returns:** `(root, converged)`; `converged` is `False` without a sign change or after
    `max_iter` steps.
    """
    rtol, _ = _tolerances(a.dtype)
    fa, fb = fn(a), fn(b)
    zero = jnp.zeros_like(a)
    state = _RootState(
        xpre=a, xcur=jnp.where(fa == 0, a, b), xblk=zero, fpre=fa,
        fcur=jnp.where(fa == 0, fa, fb), fblk=zero, spre=zero, scur=zero,
        n_iter=jnp.array(0), done=(fa == 0) | (fb == 0),
    )

    def body(s: _RootState) -> _RootState:
        opposite = s.fpre * s.fcur < 0
        xblk = jnp.where(opposite, s.xpre, s.xblk)
        fblk = jnp.where(opposite, s.fpre, s.fblk)
        spre = jnp.where(opposite, s.xcur - s.xpre, s.spre)
        scur = jnp.where(opposite, s.xcur - s.xpre, s.scur)
        # keep the better end (smaller |f|) as the current estimate
        swap = jnp.abs(fblk) < jnp.abs(s.fcur)
        xpre, xcur, xblk = (
            jnp.where(swap, s.xcur, s.xpre), jnp.where(swap, xblk, s.xcur),
            jnp.where(swap, s.xcur, xblk),
        )
        fpre, fcur, fblk = (
            jnp.where(swap, s.fcur, s.fpre), jnp.where(swap, fblk, s.fcur),
            jnp.where(swap, s.fcur, fblk),
        )
        delta = (xtol + rtol * jnp.abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        converged = (fcur == 0) | (jnp.abs(sbis) < delta)
        # secant (two points) or inverse quadratic interpolation (three points)
        secant = -fcur * (xcur - xpre) / (fcur - fpre)
        dpre = (fpre - fcur) / (xpre - xcur)
        dblk = (fblk - fcur) / (xblk - xcur)
        quadratic = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
        trial = jnp.where(xpre == xblk, secant, quadratic)
        interpolate = (jnp.abs(spre) > delta) & (jnp.abs(fcur) < jnp.abs(fpre))
        good = interpolate & (
            2 * jnp.abs(trial) < jnp.minimum(jnp.abs(spre), 3 * jnp.abs(sbis) - delta)
        )
        new_spre = jnp.where(good, scur, sbis)
        new_scur = jnp.where(good, trial, sbis)
        step = jnp.where(
            jnp.abs(new_scur) > delta, new_scur, jnp.where(sbis > 0, delta, -delta)
        )
        x_next = xcur + step
        f_next = fn(x_next)
        keep = lambda old, new: jnp.where(converged, old, new)  # noqa: E731
        return _RootState(
            xpre=keep(xpre, xcur), xcur=keep(xcur, x_next), xblk=xblk,
            fpre=keep(fpre, fcur), fcur=keep(fcur, f_next), fblk=fblk,
            spre=keep(spre, new_spre), scur=keep(scur, new_scur),
            n_iter=s.n_iter + jnp.where(converged, 0, 1), done=converged,
        )

    final = jax.lax.while_loop(lambda s: ~s.done & (s.n_iter < max_iter), body, state)
    ok = final.done & (fa * fb <= 0)
    return final.xcur, ok


class _BracketState(eqx.Module):
    xa: Array
    xb: Array
    xc: Array
    fa: Array
    fb: Array
    fc: Array
    n_iter: Array
    stop: Array


def _downhill_bracket(fn: ScalarFn, xa: Array, xb: Array, max_iter: int = 1000):
    """Three points `xa, xb, xc` (in either order) with `fn(xb)` below both ends, found by
    walking downhill from `xa, xb` with parabolic extrapolation (SciPy's `bracket`)."""
    fa, fb = fn(xa), fn(xb)
    swap = fa < fb
    xa, xb = jnp.where(swap, xb, xa), jnp.where(swap, xa, xb)
    fa, fb = jnp.where(swap, fb, fa), jnp.where(swap, fa, fb)
    xc = xb + _GOLD * (xb - xa)
    init = _BracketState(
        xa=xa, xb=xb, xc=xc, fa=fa, fb=fb, fc=fn(xc), n_iter=jnp.array(0),
        stop=jnp.array(False),
    )

    def body(s: _BracketState) -> _BracketState:
        tmp1 = (s.xb - s.xa) * (s.fb - s.fc)
        tmp2 = (s.xb - s.xc) * (s.fb - s.fa)
        val = tmp2 - tmp1
        denom = jnp.where(jnp.abs(val) < _VERY_SMALL, 2.0 * _VERY_SMALL, 2.0 * val)
        w = s.xb - ((s.xb - s.xc) * tmp2 - (s.xb - s.xa) * tmp1) / denom
        wlim = s.xb + _GROW_LIMIT * (s.xc - s.xb)
        between = (w - s.xc) * (s.xb - w) > 0.0
        capped = ~between & ((w - wlim) * (wlim - s.xc) >= 0.0)
        beyond = ~between & ~capped & ((w - wlim) * (s.xc - w) > 0.0)
        golden = s.xc + _GOLD * (s.xc - s.xb)
        p1 = jnp.where(between | beyond, w, jnp.where(capped, wlim, golden))
        f1 = fn(p1)
        # a minimum between xb and xc: done with (xb, w, xc) or (xa, xb, w)
        found_low = between & (f1 < s.fc)
        found_high = between & ~found_low & (f1 > s.fb)
        # a second evaluation: past xc after a useless interior point, or further out after
        # a successful extrapolation
        extend = beyond & (f1 < s.fc)
        p2 = jnp.where(extend, p1 + _GOLD * (p1 - s.xc), golden)
        f2 = fn(p2)
        second = (between & ~found_low & ~found_high) | extend
        # the shift xa <- xb <- xc <- w of the generic step
        new_w = jnp.where(second, p2, p1)
        new_fw = jnp.where(second, f2, f1)
        mid = jnp.where(extend, p1, s.xc)
        fmid = jnp.where(extend, f1, s.fc)
        first = jnp.where(extend, s.xc, s.xb)
        ffirst = jnp.where(extend, s.fc, s.fb)
        xa = jnp.where(found_low, s.xb, jnp.where(found_high, s.xa, first))
        xb = jnp.where(found_low, p1, jnp.where(found_high, s.xb, mid))
        xc = jnp.where(found_low, s.xc, jnp.where(found_high, p1, new_w))
        fa = jnp.where(found_low, s.fb, jnp.where(found_high, s.fa, ffirst))
        fb = jnp.where(found_low, f1, jnp.where(found_high, s.fb, fmid))
        fc = jnp.where(found_low, s.fc, jnp.where(found_high, f1, new_fw))
        return _BracketState(
            xa=xa, xb=xb, xc=xc, fa=fa, fb=fb, fc=fc, n_iter=s.n_iter + 1,
            stop=found_low | found_high,
        )

    def cond(s: _BracketState) -> Array:
        return ~s.stop & (s.fc < s.fb) & (s.n_iter <= max_iter)

    s = jax.lax.while_loop(cond, body, init)
    valid = (
        ((s.fb < s.fc) & (s.fb <= s.fa)) | ((s.fb < s.fa) & (s.fb <= s.fc))
    ) & (((s.xa < s.xb) & (s.xb < s.xc)) | ((s.xc < s.xb) & (s.xb < s.xa)))
    valid = valid & jnp.isfinite(s.xa) & jnp.isfinite(s.xb) & jnp.isfinite(s.xc)
    return s, valid


class _MinState(eqx.Module):
    a: Array
    b: Array
    x: Array
    w: Array
    v: Array
    fx: Array
    fw: Array
    fv: Array
    deltax: Array
    rat: Array
    n_iter: Array
    done: Array


def brent_minimize(
    fn: ScalarFn, a: Float[Array, ""], b: Float[Array, ""], *, max_iter: int = 500
) -> tuple[Float[Array, ""], Bool[Array, ""]]:
    """A local minimiser of `fn`, bracketed downhill from the points `a` and `b`, by Brent's
    parabolic interpolation with golden-section fallback (tolerance `1.48e-8 |x| + 1e-11`).

    **Returns:** `(x, ok)`; `ok` is `False` when no valid bracket was found or the loop hit
    `max_iter`.
    """
    _, tol = _tolerances(a.dtype)
    br, valid = _downhill_bracket(fn, a, b)
    lo, hi = jnp.minimum(br.xa, br.xc), jnp.maximum(br.xa, br.xc)
    zero = jnp.zeros_like(a)
    init = _MinState(
        a=lo, b=hi, x=br.xb, w=br.xb, v=br.xb, fx=br.fb, fw=br.fb, fv=br.fb, deltax=zero,
        rat=zero, n_iter=jnp.array(0), done=jnp.array(False),
    )

    def body(s: _MinState) -> _MinState:
        tol1 = tol * jnp.abs(s.x) + _MIN_TOL
        tol2 = 2.0 * tol1
        xmid = 0.5 * (s.a + s.b)
        converged = jnp.abs(s.x - xmid) < (tol2 - 0.5 * (s.b - s.a))
        golden_delta = jnp.where(s.x >= xmid, s.a - s.x, s.b - s.x)
        # parabola through (v, fv), (w, fw), (x, fx)
        tmp1 = (s.x - s.w) * (s.fx - s.fv)
        tmp2 = (s.x - s.v) * (s.fx - s.fw)
        p = (s.x - s.v) * tmp2 - (s.x - s.w) * tmp1
        tmp2 = 2.0 * (tmp2 - tmp1)
        p = jnp.where(tmp2 > 0.0, -p, p)
        tmp2 = jnp.abs(tmp2)
        parabolic_ok = (
            (p > tmp2 * (s.a - s.x)) & (p < tmp2 * (s.b - s.x))
            & (jnp.abs(p) < jnp.abs(0.5 * tmp2 * s.deltax))
        )
        try_parabola = jnp.abs(s.deltax) > tol1
        use_parabola = try_parabola & parabolic_ok
        rat_parabola = p * 1.0 / tmp2
        u_try = s.x + rat_parabola
        near_end = ((u_try - s.a) < tol2) | ((s.b - u_try) < tol2)
        rat_parabola = jnp.where(near_end, jnp.where(xmid - s.x >= 0, tol1, -tol1), rat_parabola)
        deltax = jnp.where(use_parabola, s.rat, golden_delta)
        rat = jnp.where(use_parabola, rat_parabola, _CGOLD * golden_delta)
        u = jnp.where(
            jnp.abs(rat) < tol1, jnp.where(rat >= 0, s.x + tol1, s.x - tol1), s.x + rat
        )
        fu = fn(u)
        worse = fu > s.fx
        # a worse point shrinks the bracket on its side and may become w or v
        a_w = jnp.where(u < s.x, u, s.a)
        b_w = jnp.where(u < s.x, s.b, u)
        to_w = (fu <= s.fw) | (s.w == s.x)
        to_v = ~to_w & ((fu <= s.fv) | (s.v == s.x) | (s.v == s.w))
        # a better (or equal) point becomes x
        a_b = jnp.where(u >= s.x, s.x, s.a)
        b_b = jnp.where(u >= s.x, s.b, s.x)
        new = _MinState(
            a=jnp.where(worse, a_w, a_b),
            b=jnp.where(worse, b_w, b_b),
            x=jnp.where(worse, s.x, u),
            w=jnp.where(worse, jnp.where(to_w, u, s.w), s.x),
            v=jnp.where(worse, jnp.where(to_w, s.w, jnp.where(to_v, u, s.v)), s.w),
            fx=jnp.where(worse, s.fx, fu),
            fw=jnp.where(worse, jnp.where(to_w, fu, s.fw), s.fx),
            fv=jnp.where(worse, jnp.where(to_w, s.fw, jnp.where(to_v, fu, s.fv)), s.fw),
            deltax=deltax,
            rat=rat,
            n_iter=s.n_iter + 1,
            done=s.done,
        )
        merged = jax.tree.map(lambda old, nw: jnp.where(converged, old, nw), s, new)
        return eqx.tree_at(lambda t: t.done, merged, converged)

    final = jax.lax.while_loop(lambda s: ~s.done & (s.n_iter < max_iter), body, init)
    return final.x, valid & final.done


def silverman_bandwidth(u: Float[Array, " n"]) -> Float[Array, ""]:
    r"""$0.9\,\min(\hat\sigma, \mathrm{IQR}/1.349)\,n^{-1/5}$ ($\hat\sigma$ with `ddof=1`; the IQR
    term only when positive), statsmodels' `bw_silverman`."""
    n = u.shape[-1]
    std = jnp.std(u, ddof=1)
    s = jnp.sort(u)
    iqr = _percentile_sorted(s, 75.0) - _percentile_sorted(s, 25.0)
    iqr = iqr / 1.349
    spread = jnp.where(iqr > 0, jnp.minimum(std, iqr), std)
    return 0.9 * spread * n ** (-0.2)


def _percentile_sorted(s: Array, per: float) -> Array:
    """SciPy's `scoreatpercentile` (linear interpolation) of sorted values."""
    n = s.shape[-1]
    idx = per / 100.0 * (n - 1)
    lo = int(idx // 1)
    frac = idx - lo
    if frac == 0:
        return s[lo]
    return s[lo] + (s[lo + 1] - s[lo]) * frac


def kde_at_zero(
    u: Float[Array, " n"], weights: Float[Array, " n"]
) -> Float[Array, ""]:
    r"""The weighted Gaussian kernel density of `u` at 0:
    $\hat f(0) = \sum_i \tilde w_i\, \varphi(u_i / h) / h$ with $\tilde w = w / \sum_i w_i$ and
    Silverman's bandwidth $h$ of all `u` (the weights do not enter the bandwidth), as
    statsmodels' `KDEUnivariate(u).fit(kernel="gau", bw="silverman", weights=w, fft=False)
    .evaluate(0)`."""
    h = silverman_bandwidth(u)
    w = weights / jnp.sum(weights)
    kernel = 0.3989422804014327 * jnp.exp(-((u / h) ** 2) / 2.0)
    return jnp.sum(kernel * w) / h


class AbstractPreliminarySolver(eqx.Module):
    """How the quantile models solve their preliminary (IPW) score on a bracket."""

    @abc.abstractmethod
    def solve(
        self, fn: ScalarFn, a: Float[Array, ""], b: Float[Array, ""], found: Bool[Array, ""]
    ) -> tuple[Float[Array, ""], Bool[Array, ""]]:
        """`(estimate, ok)` for the score `fn` and the bracket `[a, b]` (`found`: whether the
        bracket holds a sign change)."""


class BrentMinimum(AbstractPreliminarySolver):
    r"""DoubleML's preliminary solve: Brent's minimiser of $|\bar\psi(\theta)|$ started from
    the bracket (`scipy.optimize.minimize_scalar(method="brent")`), replayed step by step.

    On a step score the minimiser stops somewhere in a flat stretch, and once two of its points
    share a stretch the next parabola puts a point at their exact midpoint: which way the search
    continues is then decided by the last bits of the score values (their summation order). The
    stretch is reproducible, the point inside it is not always, so the outcome learner's targets
    $1\{Y \le \hat\theta_0\}$ (PQ, LPQ) or the CVaR's tail target can differ from
    DoubleML's when a second-half outcome lies between the two points. The default, for parity.
    """

    def solve(self, fn, a, b, found):
        del found  # DoubleML minimises on the bracket whether or not it holds a sign change
        return brent_minimize(lambda t: jnp.abs(fn(t)), a, b)


class BrentRoot(AbstractPreliminarySolver):
    r"""A root of the preliminary score by Brent's root finder (`scipy.optimize.brentq`): for a
    step score the jump where it changes sign, on the side where $|\bar\psi|$ is smaller.
    Deterministic up to the `2e-12` tolerance whatever the summation order; fails (a check)
    when the bracket holds no sign change.
    """

    def solve(self, fn, a, b, found):
        est, ok = brent_root(fn, a, b)
        return est, ok & found
