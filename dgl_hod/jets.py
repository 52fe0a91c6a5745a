r"""Jet algebra: the one place where derivative jets are combined.

A *jet* of a node-wise quantity :math:`y` (shape ``(N, C)``) holds :math:`y` and its partial derivatives with respect
to the marks :math:`\epsilon_{u,j}` of single nodes, all taken along the same marking direction :math:`j`:

.. math::
    y^{(0)}_v = y_v, \quad
    y^{(1)}_{v}[u] = \frac{\partial y_v}{\partial \epsilon_{u,j}}, \quad
    y^{(2)}_{v}[u, w] = \frac{\partial^2 y_v}{\partial \epsilon_{u,j}\,\partial \epsilon_{w,j}}, \dots

Component :math:`k` is a symmetric tensor in its :math:`k` *slots* (the marked nodes).  How the slots are stored is
the business of a :class:`JetLayout` (dense per graph, or sparse over receptive fields); this module only needs a
layout's :meth:`~JetLayout.product`, which multiplies components placed on chosen slots.

Everything that happens node- or edge-wise is expressed here:

* linear maps act on every component, the bias only on component 0;
* an elementwise function :math:`f` applies the higher-order chain rule (Faà di Bruno) with set partitions
  :math:`\pi` of the slots :math:`\{1..k\}`:

  .. math::
      f(y)^{(k)} = \sum_{m=1}^{k} f^{(m)}(y^{(0)}) \, B_{k,m}, \qquad
      B_{k,m}[u_1..u_k] = \sum_{\pi,\ |\pi| = m} \prod_{b \in \pi} y^{(|b|)}[u_b]

  (for :math:`k = 2`: :math:`f' y^{(2)}[u,w] + f'' y^{(1)}[u]\,y^{(1)}[w]`).

The Bell terms :math:`B_{k,m}` depend only on the derivative components, while :math:`f^{(m)}` is evaluated at the
value.  Message functions such as GINE's :math:`\sigma(h_w + W e_{wv})` therefore split into node-level Bell terms
times edge-level coefficients, which DGL aggregates with the fused ``u_mul_e`` + ``sum`` builtins without ever
materialising per-edge jets (see :meth:`JetLayout.aggregate`).

ReLU and the identity have zero second and higher derivatives, so a ReLU network's jets of order >= 2 come only from
products of first-order terms through later smooth maps (and vanish if every activation is ReLU): that is the exact
answer, not an approximation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import torch
from torch import Tensor

__all__ = [
    "ACTIVATIONS",
    "Jet",
    "JetLayout",
    "activation_derivatives",
    "add_scaled",
    "aggregate",
    "aggregate_activated_messages",
    "bell_terms",
    "elementwise",
    "linear",
    "set_partitions",
]

MAX_ORDER = 3


# --------------------------------------------------------------------------------------------------------------------
# Elementwise functions and their derivatives f, f', f'', f''' (closed forms, all differentiable in torch)
# --------------------------------------------------------------------------------------------------------------------
def _identity(y: Tensor, order: int) -> list[Tensor]:
    one, zero = torch.ones_like(y), torch.zeros_like(y)
    return [y, one, zero, zero][: order + 1]


def _relu(y: Tensor, order: int) -> list[Tensor]:
    # ReLU'' = 0 away from 0 (and we take ReLU'(0) = 0, as torch's autograd does).
    zero = torch.zeros_like(y)
    return [torch.relu(y), (y > 0).to(y.dtype), zero, zero][: order + 1]


def _sigmoid_derivs(y: Tensor) -> list[Tensor]:
    s = torch.sigmoid(y)
    d1 = s * (1 - s)
    d2 = d1 * (1 - 2 * s)
    d3 = d1 * (1 - 6 * s + 6 * s * s)
    return [s, d1, d2, d3]


def _sigmoid(y: Tensor, order: int) -> list[Tensor]:
    return _sigmoid_derivs(y)[: order + 1]


def _silu(y: Tensor, order: int) -> list[Tensor]:
    s, s1, s2, s3 = _sigmoid_derivs(y)
    # (y s)^(m) = m s^(m-1) + y s^(m)
    return [y * s, s + y * s1, 2 * s1 + y * s2, 3 * s2 + y * s3][: order + 1]


def _softplus(y: Tensor, order: int) -> list[Tensor]:
    s, s1, s2, _ = _sigmoid_derivs(y)
    return [torch.nn.functional.softplus(y), s, s1, s2][: order + 1]


def _tanh(y: Tensor, order: int) -> list[Tensor]:
    t = torch.tanh(y)
    d1 = 1 - t * t
    return [t, d1, -2 * t * d1, -2 * d1 * (1 - 3 * t * t)][: order + 1]


def _gelu(y: Tensor, order: int) -> list[Tensor]:
    # exact (erf) GELU: f = y Phi(y);  f' = Phi + y phi;  f'' = phi (2 - y^2);  f''' = phi (y^3 - 4 y)
    phi = torch.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(y / math.sqrt(2)))
    return [y * cdf, cdf + y * phi, phi * (2 - y * y), phi * (y * y * y - 4 * y)][: order + 1]


#: name -> function ``(y, order) -> [f(y), f'(y), ..., f^(order)(y)]``
ACTIVATIONS: dict[str, Callable[[Tensor, int], list[Tensor]]] = {
    "identity": _identity,
    "relu": _relu,
    "sigmoid": _sigmoid,
    "silu": _silu,
    "softplus": _softplus,
    "tanh": _tanh,
    "gelu": _gelu,
}

#: torch modules computing the same activations (for plain forward passes and reference implementations)
TORCH_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": lambda y: y,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "silu": torch.nn.functional.silu,
    "softplus": torch.nn.functional.softplus,
    "tanh": torch.tanh,
    "gelu": torch.nn.functional.gelu,
}


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return name


def activation_derivatives(name: str, y: Tensor, order: int) -> list[Tensor]:
    """``[f(y), f'(y), ..., f^(order)(y)]`` for the activation called ``name`` (order <= 3)."""
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"derivative order must be in 0..{MAX_ORDER}, got {order}")
    return ACTIVATIONS[check_activation(name)](y, order)


# --------------------------------------------------------------------------------------------------------------------
# Set partitions and Bell terms
# --------------------------------------------------------------------------------------------------------------------
@cache
def set_partitions(k: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """All set partitions of the slots ``(0, .., k-1)``; each block is a sorted tuple of slots.

    >>> set_partitions(2)
    (((0, 1),), ((0,), (1,)))
    """
    if k == 0:
        return ((),)
    out = []
    for part in set_partitions(k - 1):
        # slot k-1 joins an existing block, or opens its own block
        for i in range(len(part)):
            out.append(part[:i] + (part[i] + (k - 1,),) + part[i + 1 :])
        out.append(part + ((k - 1,),))
    return tuple(tuple(sorted(p)) for p in out)


class JetLayout(Protocol):
    """How the derivative components of a jet are stored (see :mod:`dgl_hod.nn.layouts`)."""

    def product(
        self, factors: Sequence[tuple[Tensor, tuple[int, ...]]], order: int, out: Tensor | None = None
    ) -> Tensor:
        """``out +`` the order-``order`` component whose entry at slots ``(u_1..u_k)`` is
        ``prod_i factor_i[u_{slots_i}]`` (at least two factors; their slots partition ``0..order-1``).
        """

    def expand(self, node_values: Tensor, order: int) -> Tensor:
        """Node-wise ``(N, C)`` values broadcast against the order-``order`` component (for chain-rule factors)."""

    def aggregate(self, comp: Tensor, order: int, edge_weight: Tensor | None = None) -> Tensor:
        """``out[v] = sum_{w -> v} edge_weight[w->v] * comp[w]`` over the graph's edges, for a component;
        ``edge_weight`` has shape ``(E, C)`` and is indexed by the graph's edge ids.
        """

    def aggregate_edges(self, edge_values: Tensor) -> Tensor:
        """``out[v] = sum_{w -> v} edge_values[w->v]`` for edge values of shape ``(E, C)``."""


@dataclass
class Jet:
    """Value and derivative components ``[y0, y1, .., yK]`` of a node-wise quantity, with their layout.

    Shapes: ``y0`` is ``(N, C)``; component ``k >= 1`` is ``(*slots_k, r, C)`` where the leading dims index
    (node, marked nodes) as the layout defines, ``r`` is the number of marking directions.
    """

    comps: list[Tensor]
    layout: JetLayout

    @property
    def order(self) -> int:
        return len(self.comps) - 1

    @property
    def value(self) -> Tensor:
        return self.comps[0]

    def scale_nodes(self, s: Tensor) -> Jet:
        """Multiply node ``v``'s components by ``s[v]``; ``s`` has shape ``(N, 1)`` or ``(N, C)``."""
        return Jet([c * self.layout.expand(s, k) if k else c * s for k, c in enumerate(self.comps)], self.layout)


def _partition_sum(
    jet: Jet, k: int, partitions: Sequence[tuple[tuple[int, ...], ...]], coeffs: Sequence[Tensor] | None = None
) -> Tensor:
    r"""``sum_{pi in partitions} [coeffs[|pi|] *] prod_{b in pi} y_{|b|}[slots b]`` for order-``k`` slots.

    A node-wise coefficient is folded into the smallest factor before the outer product, and each product is
    accumulated with a fused ``addcmul``: both keep the number of passes over full order-``k`` tensors minimal.
    """
    out = None
    for part in sorted(partitions, key=len):
        if len(part) == 1:
            term = jet.comps[k] if coeffs is None else jet.layout.expand(coeffs[1], k) * jet.comps[k]
            out = term if out is None else out + term
            continue
        factors = [(jet.comps[len(b)], b) for b in sorted(part, key=len)]
        if coeffs is not None:
            comp, slots = factors[0]
            factors[0] = (jet.layout.expand(coeffs[len(part)], len(slots)) * comp, slots)
        out = jet.layout.product(factors, k, out=out)
    return out  # type: ignore[return-value]


def bell_terms(jet: Jet, k: int) -> list[Tensor]:
    r"""``[B_{k,1}, .., B_{k,k}]``: the Faà di Bruno sums over set partitions of ``k`` slots into ``m`` blocks."""
    return [_partition_sum(jet, k, [p for p in set_partitions(k) if len(p) == m]) for m in range(1, k + 1)]


def elementwise(jet: Jet, activation: str) -> Jet:
    """Jet of ``f(y)`` for the elementwise activation ``f`` (Faà di Bruno)."""
    if activation == "identity":
        return jet
    coeffs = activation_derivatives(activation, jet.value, jet.order)
    comps = [coeffs[0]] + [_partition_sum(jet, k, set_partitions(k), coeffs) for k in range(1, jet.order + 1)]
    return Jet(comps, jet.layout)


def aggregate_activated_messages(jet: Jet, edge_preact: Tensor, activation: str) -> Jet:
    r"""Jet of :math:`a_v = \sum_{w \to v} f(h_w + b_{wv})` where only :math:`h` carries derivatives.

    ``edge_preact`` is :math:`z_{wv} = h^{(0)}_w + b_{wv}` of shape ``(E, C)``.  By Faà di Bruno, component ``k`` is
    :math:`\sum_m \sum_{w \to v} f^{(m)}(z_{wv}) B_{k,m}(h)[w]`: node-level Bell terms weighted by edge-level
    coefficients, which the layout aggregates with DGL's fused ``u_mul_e`` + ``sum`` (no per-edge jets are stored).
    """
    coeffs = activation_derivatives(activation, edge_preact, jet.order)
    layout = jet.layout
    comps = [layout.aggregate_edges(coeffs[0])]
    for k in range(1, jet.order + 1):
        terms = bell_terms(jet, k)
        comps.append(sum(layout.aggregate(t, k, edge_weight=coeffs[m + 1]) for m, t in enumerate(terms)))
    return Jet(comps, layout)


def aggregate(jet: Jet) -> Jet:
    r"""Jet of :math:`a_v = \sum_{w \to v} h_w` (linear: every component is aggregated alike)."""
    return Jet([jet.layout.aggregate(c, k) for k, c in enumerate(jet.comps)], jet.layout)


def add_scaled(jet: Jet, scale: Tensor, other: Jet) -> Jet:
    """Jet of ``scale * y + other`` for a scalar (0-dim, differentiable) ``scale``; one fused pass per component."""
    return Jet([torch.addcmul(o, c, scale) for c, o in zip(jet.comps, other.comps)], jet.layout)


def linear(jet: Jet, weight: Tensor, bias: Tensor | None = None) -> Jet:
    """Jet of ``y @ weight.T + bias`` (torch ``Linear`` convention); the bias enters only the value."""
    comps = [torch.nn.functional.linear(c, weight, bias if k == 0 else None) for k, c in enumerate(jet.comps)]
    return Jet(comps, jet.layout)
