r"""How an interventional expectation $\mathbb{E}[f(X)]$ of the network is computed."""

from __future__ import annotations

import equinox as eqx


class AbstractEstimator(eqx.Module):
    """An estimator of $\\mathbb{E}[f(X)]$ in each interventional world."""


class MonteCarlo(AbstractEstimator):
    r"""$\frac{1}{n}\sum_{u=1}^{n} f(x_u)$ over `n` units drawn from the input SCM under the
    intervention.

    Every world and every $\alpha$ uses the same exogenous noise (common random numbers), so the
    curves are smooth in $\alpha$ and contrasts between worlds (direct, indirect) are paired unit
    by unit. The standard error of each point is returned in `Curves.se`.

    **Arguments:** `n`: units per world.
    """

    n: int = eqx.field(static=True, default=2000)

    def __check_init__(self):
        if not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"n must be an integer of at least 2, got {self.n!r}")


class AbstractMoments(eqx.Module):
    """Where the Taylor estimator takes the mean and covariance of the inputs from."""


class LinearGaussianMoments(AbstractMoments):
    r"""Exact moments of a linear-Gaussian input SCM: with $x = \mu + G\varepsilon$ the
    observational structural map ($G$ its noise Jacobian) and $a_i$ the total effects of $X_i$,
    $do(X_i = v)$ gives $\mu + a_i (v - \mu_i)$ and factor $(I - a_i e_i^\top) G$. For a
    [`jaxcausal.scm.LinearGaussianProgram`][] these come from its weights in closed form
    (triangular solves, no Monte Carlo); for a NumPyro program, from the Jacobians of the program
    (exact when every mechanism is affine with Normal noise, checked when the program's values are
    known)."""


class SampledMoments(AbstractMoments):
    """Moments estimated from `n` units drawn in each interventional world (any input SCM)."""

    n: int = eqx.field(static=True, default=2000)

    def __check_init__(self):
        if not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"n must be an integer of at least 2, got {self.n!r}")


class Taylor(AbstractEstimator):
    r"""Second-order Taylor expansion of $f$ around the interventional mean (Chattopadhyay et
    al. 2019):

    $$\mathbb{E}[f(X)] \approx f(\mu_\alpha) + \tfrac12 \operatorname{tr}\big(\nabla^2 f(\mu_\alpha)
    \,\Sigma_\alpha\big)$$

    with $\mu_\alpha, \Sigma_\alpha$ the mean and covariance of the inputs in the world (row and
    column $i$ of $\Sigma$ are zero: $X_i$ is fixed). Exact for a quadratic $f$. The trace is
    computed with Hessian-vector products (forward-over-reverse), never a dense Hessian per point
    unless the covariance has more factors than there are inputs: with $\Sigma = L L^\top$,
    $\operatorname{tr}(H\Sigma) = \sum_k l_k^\top H l_k$.

    **Arguments:**

    - `hutchinson`: `None` for the exact trace, or a number `k` of Rademacher probes $z_j$:
      $\operatorname{tr}(H\Sigma) \approx \frac1k \sum_j (L z_j)^\top H (L z_j)$, unbiased, with
      `k` Hessian-vector products per point whatever the number of inputs (the probes are shared
      by every point, so the curves stay smooth). Needs a `key`.
    - `moments`: [`jaxcausal.attribution.LinearGaussianMoments`][] or
      [`jaxcausal.attribution.SampledMoments`][]; `None` picks the exact moments where the input
      SCM is linear-Gaussian and `SampledMoments()` otherwise.

    $f$ must be twice differentiable with JAX. A piecewise-linear $f$ (a ReLU network) has a zero
    Hessian almost everywhere, so the correction term vanishes and the estimate is $f(\mu_\alpha)$:
    [`jaxcausal.attribution.ace`][] warns when that happens; use
    [`jaxcausal.attribution.MonteCarlo`][] for such networks.
    """

    hutchinson: int | None = eqx.field(static=True, default=None)
    moments: AbstractMoments | None = None

    def __check_init__(self):
        if self.hutchinson is not None and (
            not isinstance(self.hutchinson, int) or self.hutchinson < 1
        ):
            raise ValueError(
                f"hutchinson must be None or a positive number of probes, got {self.hutchinson!r}"
            )
        if self.moments is not None and not isinstance(self.moments, AbstractMoments):
            raise TypeError(
                "moments must be LinearGaussianMoments(), SampledMoments(n) or None; got "
                f"{type(self.moments).__name__}"
            )
