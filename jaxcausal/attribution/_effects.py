r"""The estimands: which interventional expectation of the network an attribution curve measures.

For a network $f$ of inputs $X = (X_1, \dots, X_d)$ that are variables of an input SCM, feature
$i$ and an intervention value $\alpha$, write $M_i$ for the inputs that descend from $X_i$ in the
input graph and $W_i$ for the others. Each effect is a function of $\alpha$; the curves of
[`jaxcausal.attribution.ace`][] are these functions on a grid, centred by their grid mean.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class AbstractEffect(eqx.Module):
    """An estimand of [`jaxcausal.attribution.ace`][] and [`jaxcausal.attribution.true_effects`][].

    `worlds` names the interventional worlds the estimand contrasts (see `_worlds.py`); `combine`
    turns the expectations in those worlds into the effect.
    """

    @abc.abstractmethod
    def worlds(self) -> tuple[str, ...]:
        """The worlds needed, among `"total"`, `"direct"`, `"natural"`, `"natural_ref"`."""

    @abc.abstractmethod
    def combine(self, values: dict[str, Array]) -> Array:
        """The effect from the per-world expectations (or per-unit values)."""

    def needs_reference(self) -> bool:
        return False


class Total(AbstractEffect):
    r"""Total effect: $\mathbb{E}[f(X) \mid do(X_i = \alpha)]$.

    The descendants $M_i$ of $X_i$ are recomputed through the input SCM with their own noise;
    the non-descendants $W_i$ keep their observational distribution.
    """

    def worlds(self) -> tuple[str, ...]:
        return ("total",)

    def combine(self, values: dict[str, Array]) -> Array:
        return values["total"]


class ControlledDirect(AbstractEffect):
    r"""Controlled direct effect in the sense of Chattopadhyay et al. (2019):
    $\mathbb{E}_{X_{-i} \sim P(X_{-i})}[f(\alpha, X_{-i})]$.

    $X_i$ is set to $\alpha$ in the network's input only, while every other input keeps its
    observational joint distribution (the descendants do not respond). This is what the causal
    attributions of Chattopadhyay et al. compute, and what Reddy et al. (2024) call the direct
    effect.
    """

    def worlds(self) -> tuple[str, ...]:
        return ("direct",)

    def combine(self, values: dict[str, Array]) -> Array:
        return values["direct"]


class Indirect(AbstractEffect):
    r"""Indirect effect as reported by Reddy et al. (2024): total minus controlled direct,
    $\mathbb{E}[f(X) \mid do(X_i = \alpha)] - \mathbb{E}_{X_{-i}}[f(\alpha, X_{-i})]$.

    As centred curves it equals the natural indirect effect
    ([`jaxcausal.attribution.NaturalIndirect`][]) when $f$ has no interaction between $X_i$ and
    the other inputs ($f(x) = g(x_i) + h(x_{-i})$: both are then $\mathbb{E}[h \mid do(X_i =
    \alpha)]$ up to a constant). With interactions they differ: the direct term averages over the
    observational $X_{-i}$ instead of $X_{-i}$ in the world $do(X_i = a_0)$.
    """

    def worlds(self) -> tuple[str, ...]:
        return ("total", "direct")

    def combine(self, values: dict[str, Array]) -> Array:
        return values["total"] - values["direct"]


class _Natural(AbstractEffect):
    reference: Float[Array, "*d"] | None = None

    def __init__(self, reference: Any = None):
        self.reference = None if reference is None else jnp.asarray(reference, dtype=float)

    def __check_init__(self):
        if self.reference is not None and self.reference.ndim > 1:
            raise ValueError(
                "reference must be a scalar or one value per feature (d,); got shape "
                f"{tuple(self.reference.shape)}"
            )

    def needs_reference(self) -> bool:
        return True


class NaturalDirect(_Natural):
    r"""Natural direct effect (Pearl 2001) against the reference $a_0$:

    $$\mathrm{NDE}(\alpha) = \mathbb{E}[f(\alpha, M_i(a_0), W_i)]
      - \mathbb{E}[f(a_0, M_i(a_0), W_i)]$$

    where $M_i(a_0)$ are the descendants of $X_i$ in the world $do(X_i = a_0)$ and the two worlds
    share each unit's exogenous noise (common random numbers). Because $f$ is deterministic and
    $M_i$ holds every input descendant of $X_i$, the nested counterfactual only needs that one
    world, so it is defined for any input SCM, discrete ones included.

    **Arguments:** `reference`: $a_0$, a scalar or one value per feature; default the
    observational mean of each $X_i$ (a discrete feature needs an explicit level).
    """

    def worlds(self) -> tuple[str, ...]:
        return ("natural", "natural_ref")

    def combine(self, values: dict[str, Array]) -> Array:
        return values["natural"] - values["natural_ref"]


class NaturalIndirect(_Natural):
    r"""Natural indirect effect (Pearl 2001) against the reference $a_0$:

    $$\mathrm{NIE}(\alpha) = \mathbb{E}[f(\alpha, M_i(\alpha), W_i)]
      - \mathbb{E}[f(\alpha, M_i(a_0), W_i)]$$

    so that, with the same exogenous noise in every world, $\mathrm{NDE}(\alpha) +
    \mathrm{NIE}(\alpha) = \mathbb{E}[f \mid do(X_i = \alpha)] - \mathbb{E}[f \mid do(X_i = a_0)]$
    exactly, and the centred curves add up to the centred [`jaxcausal.attribution.Total`][].

    **Arguments:** `reference`: as for [`jaxcausal.attribution.NaturalDirect`][].
    """

    def worlds(self) -> tuple[str, ...]:
        return ("total", "natural")

    def combine(self, values: dict[str, Array]) -> Array:
        return values["total"] - values["natural"]
