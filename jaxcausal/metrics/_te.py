"""Errors of treatment-effect estimates and the maximum mean discrepancy between two samples."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_ndim, is_concrete


def _pair(tau: ArrayLike, tau_hat: ArrayLike) -> tuple[Array, Array]:
    tau = as_float_array(tau, "tau")
    tau_hat = as_float_array(tau_hat, "tau_hat")
    check_ndim(tau, (1,), "tau", "a vector of individual effects (n,)")
    check_ndim(tau_hat, (1,), "tau_hat", "a vector of estimated individual effects (n,)")
    if tau.shape != tau_hat.shape:
        raise ValueError(
            f"tau and tau_hat must have the same shape; got {tuple(tau.shape)} and "
            f"{tuple(tau_hat.shape)}"
        )
    return tau, tau_hat


def pehe(tau: ArrayLike, tau_hat: ArrayLike, *, squared: bool = False) -> Float[Array, ""]:
    r"""Precision in estimating heterogeneous effects (Hill 2011).

    $\mathrm{PEHE} = \frac1n \sum_i (\hat\tau(x_i) - \tau(x_i))^2$. By default the square root,
    $\sqrt{\mathrm{PEHE}}$, is returned, as the IHDP literature reports it.

    **Arguments:**

    - `tau`: true individual effects, shape `(n,)`.
    - `tau_hat`: estimated individual effects, shape `(n,)`.
    - `squared`: return PEHE itself instead of its square root.

    **Returns:** a scalar.
    """
    tau, tau_hat = _pair(tau, tau_hat)
    value = jnp.mean((tau_hat - tau) ** 2)
    return value if squared else jnp.sqrt(value)


def ate_error(tau: ArrayLike, tau_hat: ArrayLike) -> Float[Array, ""]:
    r"""Absolute error of the average effect:
    $|\frac1n\sum_i \hat\tau(x_i) - \frac1n\sum_i\tau(x_i)|$.

    **Arguments:**

    - `tau`: true individual effects, shape `(n,)`.
    - `tau_hat`: estimated individual effects, shape `(n,)`.

    **Returns:** a scalar.
    """
    tau, tau_hat = _pair(tau, tau_hat)
    return jnp.abs(jnp.mean(tau_hat) - jnp.mean(tau))


def gaussian_kernel(
    a: Float[Array, "m d"], b: Float[Array, "n d"], bandwidth: float | Array
) -> Float[Array, "m n"]:
    r"""Gaussian kernel matrix $k(a_i, b_j) = \exp(-\lVert a_i - b_j\rVert^2 / (2\sigma^2))$,
    $\sigma$ = `bandwidth`."""
    sq = (
        jnp.sum(a**2, axis=1)[:, None]
        + jnp.sum(b**2, axis=1)[None, :]
        - 2.0 * a @ b.T
    )
    return jnp.exp(-jnp.maximum(sq, 0.0) / (2.0 * bandwidth**2))


def _off_diagonal_mean(k: Array) -> Array:
    m = k.shape[0]
    return (jnp.sum(k) - jnp.trace(k)) / (m * (m - 1))


def mmd(
    x: ArrayLike,
    y: ArrayLike,
    *,
    bandwidth: float | Array = 1.0,
    unbiased: bool = False,
    paired: bool = False,
) -> Float[Array, ""]:
    r"""Squared maximum mean discrepancy between two samples with a Gaussian kernel.

    With $k$ the Gaussian kernel of width $\sigma$ (`bandwidth`), samples $x_1..x_m$ and $y_1..y_n$:

    - **V-statistic** (default, biased): $\frac1{m^2}\sum_{i,j}k(x_i,x_j) + \frac1{n^2}\sum_{i,j}
      k(y_i,y_j) - \frac2{mn}\sum_{i,j}k(x_i,y_j)$. Always $\ge 0$, exactly zero when the two
      samples are identical, and biased upwards (its mean is positive even when both samples come
      from one distribution).
    - **U-statistic** (`unbiased=True`, Gretton et al. 2012, eq. 3): the within-sample sums skip
      $i = j$ and are divided by $m(m-1)$ and $n(n-1)$; the cross term is unchanged. Its
      expectation is exactly $\mathrm{MMD}^2$ (zero for equal distributions), so it can be
      negative, and it is **not** zero for two identical samples (the cross term keeps the
      diagonal $k(x_i, x_i) = 1$, so it is negative there).
    - **Paired U-statistic** (`unbiased=True, paired=True`, Gretton et al. 2012, Lemma 6; needs
      $m = n$): every sum skips $i = j$, $\frac1{m(m-1)}\sum_{i\ne j} k(x_i,x_j) + k(y_i,y_j) -
      k(x_i,y_j) - k(x_j,y_i)$. Also unbiased, and exactly zero for identical samples.

    **Arguments:**

    - `x`: first sample `(m, d)` (or `(m,)` for one dimension).
    - `y`: second sample `(n, d)` (or `(n,)`).
    - `bandwidth`: kernel width $\sigma > 0$.
    - `unbiased`: the U-statistic instead of the V-statistic (needs at least 2 rows per sample).
    - `paired`: the paired U-statistic (only with `unbiased=True` and equal sample sizes).

    **Returns:** the squared MMD estimate, a scalar.

    **References:** Gretton, Borgwardt, Rasch, Schölkopf and Smola (2012), *A kernel two-sample
    test*, JMLR 13.
    """
    x = as_float_array(x, "x")
    y = as_float_array(y, "y")
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    check_ndim(x, (2,), "x", "a sample of shape (m, d)")
    check_ndim(y, (2,), "y", "a sample of shape (n, d)")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same number of columns; got {x.shape[1]} and {y.shape[1]}"
        )
    if is_concrete(bandwidth) and not float(jnp.asarray(bandwidth)) > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    if paired and not unbiased:
        raise ValueError("paired=True is the paired U-statistic and needs unbiased=True")
    if paired and x.shape[0] != y.shape[0]:
        raise ValueError(
            f"paired=True needs samples of equal size; got {x.shape[0]} and {y.shape[0]} rows"
        )
    if unbiased and min(x.shape[0], y.shape[0]) < 2:
        raise ValueError("unbiased=True needs at least 2 rows in x and in y")
    kxx = gaussian_kernel(x, x, bandwidth)
    kyy = gaussian_kernel(y, y, bandwidth)
    kxy = gaussian_kernel(x, y, bandwidth)
    if not unbiased:
        return jnp.mean(kxx) + jnp.mean(kyy) - 2.0 * jnp.mean(kxy)
    if paired:
        return _off_diagonal_mean(kxx + kyy - kxy - kxy.T)
    return _off_diagonal_mean(kxx) + _off_diagonal_mean(kyy) - 2.0 * jnp.mean(kxy)
