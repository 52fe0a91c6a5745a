r"""Jet algebra: derivative selections (k, m) and the one place where derivative jets are combined.

A *jet* of a node-wise quantity :math:`y` (shape ``(N, C)``) holds :math:`y` and a selection of its partial
derivatives with respect to the marks :math:`\epsilon_{u,j}` of single nodes, all along the same marking direction
:math:`j`.  A derivative is named by the *multiset* of its marked nodes; written with distinct nodes
:math:`w_1 < .. < w_q` and their multiplicities :math:`\alpha = (a_1, .., a_q)` (a *pattern*, a composition of the
total order :math:`|\alpha| = a_1 + .. + a_q`) it is

.. math::
    y^{(\alpha)}_v[w_1, .., w_q] = \frac{\partial^{|\alpha|} y_v}
        {\partial \epsilon_{w_1,j}^{a_1} \cdots \partial \epsilon_{w_q,j}^{a_q}} .

**Selections.** :class:`Selection` ``(k, m, max_order)`` keeps exactly the patterns with at most ``k`` distinct
nodes (``q <= k``), each of multiplicity at most ``m`` (``a_i <= m``) and total order at most ``max_order``.  The set
is closed under the chain rule: every block of a partition of an admissible multiset is a sub-multiset, hence
admissible, so the chain rule below never needs a derivative outside the selection.  ``k = 1`` keeps the *pure*
derivatives :math:`\partial^\alpha y_v / \partial\epsilon_u^\alpha`, ``alpha = 1..m`` (univariate Taylor arithmetic
per (v, u) pair); ``Selection.from_order(K) = (k=K, m=K, max_order=K)`` keeps every multiset of total order
``<= K`` (the engine's former ``order=K``).

How the entries of a pattern are stored is the business of a :class:`JetLayout` (dense per graph, or sparse over
receptive fields): a pattern with ``q`` distinct nodes lives on the layout's *level* ``q`` (tuples of ``q`` distinct
nodes).  Everything that happens node- or edge-wise is expressed here:

* linear maps act on every component, the bias only on the value;
* an elementwise function :math:`f` applies the higher-order chain rule (Faà di Bruno) in multi-index form:

  .. math::
      f(y)^{(\alpha)} = \sum_{b=1}^{|\alpha|} f^{(b)}(y) \, B_{\alpha,b}, \qquad
      B_{\alpha,b} = \sum_{\pi} c_\pi \prod_{\beta \in \pi} y^{(\beta)}[w_{\mathrm{supp}\,\beta}]

  over the multiset partitions :math:`\pi` of :math:`\{w_1^{a_1}, .., w_q^{a_q}\}` into ``b`` blocks, with
  :math:`c_\pi` the number of set partitions of the :math:`|\alpha|` labelled slots that give :math:`\pi`
  (:func:`pattern_partitions`).  For ``k = 1`` these are the integer partitions of ``alpha`` (e.g.
  :math:`f(y)^{(2)} = f' y^{(2)} + f'' (y^{(1)})^2`, :math:`f(y)^{(4)} = f' y^{(4)} + 4 f'' y^{(1)} y^{(3)} +
  3 f'' (y^{(2)})^2 + 6 f''' (y^{(1)})^2 y^{(2)} + f'''' (y^{(1)})^4`): all factors live on the same (v, u) rows.

The Bell terms :math:`B_{\alpha,b}` depend only on the derivative components, while :math:`f^{(b)}` is evaluated at
the value.  Message functions such as GINE's :math:`\sigma(h_w + W e_{wv})` therefore split into node-level Bell terms
times edge-level coefficients, which DGL aggregates with the fused ``u_mul_e`` + ``sum`` builtins without ever
materialising per-edge jets (see :meth:`JetLayout.aggregate`).

ReLU and the identity have zero second and higher derivatives, so a ReLU network's jets of order >= 2 come only from
products of first-order terms through later smooth maps (and vanish if every activation is ReLU): that is the exact
answer, not an approximation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Protocol

import torch
from torch import Tensor

__all__ = [
    "ACTIVATIONS",
    "MAX_ORDER",
    "TORCH_ACTIVATIONS",
    "Jet",
    "JetLayout",
    "Pattern",
    "Selection",
    "activation_derivatives",
    "add_scaled",
    "aggregate",
    "aggregate_activated_messages",
    "bell_terms",
    "check_activation",
    "elementwise",
    "linear",
    "pattern_partitions",
    "set_partitions",
]

#: highest total derivative order the engine computes (activation derivatives and chain-rule tables go this far)
MAX_ORDER = 8

#: multiplicities ``(a_1, .., a_q)`` of the ``q`` distinct marked nodes of a derivative, in node order
Pattern = tuple[int, ...]


# --------------------------------------------------------------------------------------------------------------------
# Elementwise functions and their derivatives f, f', .., f^(n) (closed forms, all differentiable in torch)
# --------------------------------------------------------------------------------------------------------------------
def _horner(coeffs: Sequence[int], x: Tensor) -> Tensor:
    """``sum_i coeffs[i] x^i`` (integer coefficients, low to high)."""
    if len(coeffs) == 1:
        return torch.full_like(x, float(coeffs[0]))
    out = coeffs[-1] * x
    for c in reversed(coeffs[1:-1]):
        out = (out + c) * x
    return out + coeffs[0]


def _poly_mul(a: Sequence[int], b: Sequence[int]) -> list[int]:
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return out


def _poly_add(a: Sequence[int], b: Sequence[int]) -> list[int]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n)]


def _poly_diff(a: Sequence[int]) -> list[int]:
    return [i * c for i, c in enumerate(a)][1:] or [0]


@cache
def _chain_polys(kind: str, order: int) -> tuple[tuple[int, ...], ...]:
    r"""Polynomials ``Q_n`` with ``g^{(n)} = g' Q_n(g)`` for ``n = 1..order``, where ``g' = P(g)``.

    ``kind="sigmoid"``: :math:`s' = s - s^2`; ``kind="tanh"``: :math:`t' = 1 - t^2`.  From
    :math:`g^{(n+1)} = \frac{d}{dg}[P(g) Q_n(g)]\, P(g)`: :math:`Q_{n+1} = (P Q_n)'`, :math:`Q_1 = 1`.
    """
    p = [0, 1, -1] if kind == "sigmoid" else [1, 0, -1]
    qs = [[1]]
    for _ in range(order - 1):
        qs.append(_poly_diff(_poly_mul(p, qs[-1])))
    return tuple(tuple(q) for q in qs)


@cache
def _hermite(n: int) -> tuple[int, ...]:
    """Probabilists' Hermite polynomial ``He_n`` (``He_{n+1} = x He_n - n He_{n-1}``), coefficients low to high."""
    if n == 0:
        return (1,)
    if n == 1:
        return (0, 1)
    return tuple(_poly_add([0, *_hermite(n - 1)], [-(n - 1) * c for c in _hermite(n - 2)]))


def _sigmoid_derivs(y: Tensor, order: int) -> list[Tensor]:
    s = torch.sigmoid(y)
    if order == 0:
        return [s]
    d1 = s * (1 - s)
    return [s, d1] + [d1 * _horner(q, s) for q in _chain_polys("sigmoid", order)[1:]]


def _identity(y: Tensor, order: int) -> list[Tensor]:
    one, zero = torch.ones_like(y), torch.zeros_like(y)
    return ([y, one] + [zero] * order)[: order + 1]


def _relu(y: Tensor, order: int) -> list[Tensor]:
    # ReLU'' = 0 away from 0 (and we take ReLU'(0) = 0, as torch's autograd does).
    zero = torch.zeros_like(y)
    return ([torch.relu(y), (y > 0).to(y.dtype)] + [zero] * order)[: order + 1]


def _sigmoid(y: Tensor, order: int) -> list[Tensor]:
    return _sigmoid_derivs(y, order)


def _silu(y: Tensor, order: int) -> list[Tensor]:
    s = _sigmoid_derivs(y, order)
    # (y s)^(n) = n s^(n-1) + y s^(n)
    out = [y * s[0]]
    if order >= 1:
        out.append(s[0] + y * s[1])
    return out + [n * s[n - 1] + y * s[n] for n in range(2, order + 1)]


def _softplus(y: Tensor, order: int) -> list[Tensor]:
    out = [torch.nn.functional.softplus(y)]
    return out + _sigmoid_derivs(y, order - 1) if order >= 1 else out


def _tanh(y: Tensor, order: int) -> list[Tensor]:
    t = torch.tanh(y)
    if order == 0:
        return [t]
    d1 = 1 - t * t
    return [t, d1] + [d1 * _horner(q, t) for q in _chain_polys("tanh", order)[1:]]


def _gelu(y: Tensor, order: int) -> list[Tensor]:
    # exact (erf) GELU: f = y Phi(y);  f' = Phi + y phi;  f^(n) = (-1)^n phi (He_{n-2} - He_n) for n >= 2
    phi = torch.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(y / math.sqrt(2)))
    out = [y * cdf, cdf + y * phi][: order + 1]
    for n in range(2, order + 1):
        poly = _poly_add(_hermite(n - 2), [-c for c in _hermite(n)])
        out.append(phi * _horner([(-1) ** n * c for c in poly], y))
    return out


#: name -> function ``(y, order) -> [f(y), f'(y), ..., f^(order)(y)]`` (any order up to :data:`MAX_ORDER`)
ACTIVATIONS: dict[str, Callable[[Tensor, int], list[Tensor]]] = {
    "identity": _identity,
    "relu": _relu,
    "sigmoid": _sigmoid,
    "silu": _silu,
    "softplus": _softplus,
    "tanh": _tanh,
    "gelu": _gelu,
}

#: torch functions computing the same activations (for plain forward passes and reference implementations)
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
    """``name`` if it is one of :data:`ACTIVATIONS`, else a ``ValueError`` listing them."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return name


def activation_derivatives(name: str, y: Tensor, order: int) -> list[Tensor]:
    """``[f(y), f'(y), ..., f^(order)(y)]`` for the activation called ``name`` (``order <= MAX_ORDER``).

    Example:
        >>> [float(d) for d in activation_derivatives("tanh", torch.tensor(0.0), 3)]
        [0.0, 1.0, 0.0, -2.0]
    """
    if not isinstance(order, int) or not 0 <= order <= MAX_ORDER:
        raise ValueError(f"derivative order must be an int in 0..{MAX_ORDER}, got {order!r}")
    return ACTIVATIONS[check_activation(name)](y, order)


# --------------------------------------------------------------------------------------------------------------------
# Derivative selections
# --------------------------------------------------------------------------------------------------------------------
def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class Selection:
    r"""Which derivatives a jet carries: every multiset of marked nodes with at most ``k`` distinct nodes, each of
    multiplicity at most ``m``, and total order at most ``max_order`` (default ``k * m``).

    Attributes:
        k: most distinct marked nodes in one derivative (the paper's ``k``).
        m: highest derivative order in any one node (the paper's ``m``).
        max_order: cap on the total order (``None``: ``k * m``); at most :data:`MAX_ORDER`.

    Example:
        >>> Selection(1, 3).patterns
        ((1,), (2,), (3,))
        >>> Selection.from_order(2).patterns
        ((1,), (2,), (1, 1))
        >>> Selection(2, 2).patterns
        ((1,), (2,), (1, 1), (1, 2), (2, 1), (2, 2))
    """

    k: int
    m: int
    max_order: int | None = None

    def __post_init__(self) -> None:
        _check_positive_int("k", self.k)
        _check_positive_int("m", self.m)
        if self.max_order is not None:
            _check_positive_int("max_order", self.max_order)
        if self.total > MAX_ORDER:
            raise ValueError(
                f"derivative selection k={self.k}, m={self.m} reaches total order {self.total} > {MAX_ORDER}, the "
                f"engine's limit; cap it with max_order=<= {MAX_ORDER} or use a smaller k or m"
            )

    @classmethod
    def from_order(cls, order: int) -> Selection:
        """Every multiset of total order ``<= order``: ``(k=order, m=order, max_order=order)``."""
        _check_positive_int("order", order)
        return cls(order, order, order)

    @property
    def total(self) -> int:
        """Highest total order of a selected derivative: ``min(k * m, max_order)``."""
        return min(self.k * self.m, self.max_order if self.max_order is not None else self.k * self.m)

    @property
    def levels(self) -> int:
        """Most distinct nodes in a selected derivative (``min(k, total)``): the layouts' deepest level."""
        return min(self.k, self.total)

    @cached_property
    def patterns(self) -> tuple[Pattern, ...]:
        """The selected patterns, by total order, then number of distinct nodes, then lexicographically."""
        out: list[Pattern] = []
        for q in range(1, self.levels + 1):
            for alpha in _compositions(q, self.m):
                if sum(alpha) <= self.total:
                    out.append(alpha)
        return tuple(sorted(out, key=lambda a: (sum(a), len(a), a)))

    def admits(self, pattern: Pattern) -> bool:
        """Whether the derivative with multiplicities ``pattern`` is selected."""
        return len(pattern) <= self.k and all(1 <= a <= self.m for a in pattern) and sum(pattern) <= self.total

    def is_full(self, order: int) -> bool:
        """Whether every multiset of total order ``order`` is selected (so a full symmetric tensor can be read)."""
        return 1 <= order <= min(self.k, self.m, self.total)

    @property
    def is_pure(self) -> bool:
        r"""``k = 1``: only pure derivatives :math:`\partial^\alpha / \partial\epsilon_u^\alpha`."""
        return self.k == 1 or self.total == 1

    def patterns_of_order(self, order: int) -> tuple[Pattern, ...]:
        """Selected patterns of total order ``order``."""
        return tuple(a for a in self.patterns if sum(a) == order)

    def __str__(self) -> str:
        cap = "" if self.max_order is None or self.max_order >= self.k * self.m else f", max_order={self.max_order}"
        return f"k={self.k}, m={self.m}{cap}"


@cache
def _compositions(q: int, m: int) -> tuple[Pattern, ...]:
    """All ``q``-tuples with entries in ``1..m``."""
    if q == 0:
        return ((),)
    return tuple(a + (x,) for a in _compositions(q - 1, m) for x in range(1, m + 1))


# --------------------------------------------------------------------------------------------------------------------
# Set partitions, multiset partitions and Bell terms
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


#: a block of a multiset partition: (its pattern, the slots of the target it spans)
Block = tuple[Pattern, tuple[int, ...]]


@cache
def pattern_partitions(alpha: Pattern) -> tuple[tuple[int, tuple[Block, ...]], ...]:
    r"""Multiset partitions of :math:`\{w_1^{a_1}, .., w_q^{a_q}\}` with their Faà di Bruno counts.

    Each item is ``(count, blocks)``; a block ``(beta, slots)`` is the derivative of pattern ``beta`` in the nodes
    ``w_slots`` (``slots`` a sorted sub-tuple of ``0..q-1``), and ``count`` is the number of set partitions of the
    :math:`|\alpha|` labelled slots that give this multiset of blocks (counted, not taken from a formula).  Sorted by
    the number of blocks; blocks sorted by how many nodes they span.

    Example:
        >>> pattern_partitions((3,))
        ((1, (((3,), (0,)),)), (3, (((1,), (0,)), ((2,), (0,)))), (1, (((1,), (0,)), ((1,), (0,)), ((1,), (0,)))))
        >>> pattern_partitions((1, 1))
        ((1, (((1, 1), (0, 1)),)), (1, (((1,), (0,)), ((1,), (1,)))))
    """
    label = [i for i, a in enumerate(alpha) for _ in range(a)]
    counts: Counter[tuple[Block, ...]] = Counter()
    for part in set_partitions(len(label)):
        blocks = []
        for b in part:
            c = Counter(label[s] for s in b)
            slots = tuple(sorted(c))
            blocks.append((tuple(c[s] for s in slots), slots))
        counts[tuple(sorted(blocks, key=lambda blk: (len(blk[1]), blk[1], blk[0])))] += 1
    return tuple(sorted(((n, bl) for bl, n in counts.items()), key=lambda item: (len(item[1]), item[1])))


class JetLayout(Protocol):
    """How the derivative components of a jet are stored (see :mod:`dgl_hod.nn.layouts`).

    A pattern with ``q`` distinct marked nodes is stored on *level* ``q``: one entry per (node ``v``, tuple of ``q``
    distinct nodes of ``v``'s graph) that the layout keeps, each an ``(r, C)`` block.  Level 0 is the nodes.
    """

    mode: str
    num_nodes: int
    graph_sizes: Tensor

    def num_entries(self, level: int) -> int:
        """Stored entries of a level-``level`` component (for memory estimates)."""

    def init_marks(self, directions: Tensor) -> Tensor:
        """The level-1 component of the marked input ``x_u + sum_j marks[u, j] c_j``: ``1 * c_j`` at ``(v, v)``."""

    def zeros(self, level: int, like: Tensor) -> Tensor:
        """A zero level-``level`` component with the trailing ``(r, C)`` shape and dtype of ``like``."""

    def expand(self, node_values: Tensor, level: int) -> Tensor:
        """Node-wise ``(N, C)`` values broadcast against a level-``level`` component (chain-rule factors)."""

    def place(self, comp: Tensor, slots: tuple[int, ...], level: int) -> Tensor:
        """A level-``len(slots)`` component read at the nodes ``w_slots`` of every level-``level`` entry, broadcastable
        against level-``level`` components (the component itself when ``slots`` is every slot).
        """

    def edge_weights(self, edge_values: Tensor, level: int) -> Tensor:
        """Graph-edge values ``(E, C)`` placed on the edges that aggregate a level-``level`` component (the tuple
        edges of the sparse layout); place once, aggregate many times.
        """

    def aggregate(self, comp: Tensor, level: int, edge_weight: Tensor | None = None) -> Tensor:
        """``out[v] = sum_{w -> v} edge_weight[w->v] * comp[w]`` over the graph's edges, for a component;
        ``edge_weight`` comes from :meth:`edge_weights` for this level.  The result is stored in :meth:`grown`.
        """

    def grown(self) -> JetLayout:
        """The layout of aggregated components: this one, or (:class:`~dgl_hod.nn.layouts.BallLayout`) the one of
        the next receptive-field depth, whose ``add_lifted(base, comp, scale)`` adds ``scale * comp`` stored here.
        """

    def aggregate_edges(self, edge_values: Tensor) -> Tensor:
        """``out[v] = sum_{w -> v} edge_values[w->v]`` for edge values of shape ``(E, C)``."""

    def rows(self, level: int) -> Tensor:
        """``(M, level+1)`` global node ids ``(v, w_1 < .. < w_q)`` of every stored entry of a level-``level``
        component whose nodes are distinct and increasing, in the order of :meth:`values`.
        """

    def values(self, comp: Tensor, level: int) -> Tensor:
        """``(M, r, C)``: the entries of ``comp`` at :meth:`rows`."""

    def graph_block(self, comp: Tensor, level: int, i: int) -> Tensor:
        """Graph ``i``'s ``(n, n, .., n, r, C)`` block: the entry at ``(v, w_1..w_q)`` for every increasing tuple of
        distinct nodes (every tuple at level 1), zero elsewhere.
        """


@dataclass
class Jet:
    """Value and selected derivative components of a node-wise quantity, with their layout.

    Shapes: ``value`` is ``(N, C)``; ``comps[alpha]`` is the level-``len(alpha)`` storage of the layout, trailing
    dims ``(r, C)`` with ``r`` marking directions.  ``comps`` holds every pattern of the selection, in its order.

    Known zeros (speed only, the values are the same): the patterns in ``zero`` are identically zero (their
    components are zero tensors, possibly broadcast views), and ``marked_input`` says that the jet is the marked
    input itself (level 1 nonzero only at ``w = v``, every other level zero) stored in a layout whose tuples hold
    distinct nodes (the sparse layout; the dense one also stores coinciding slots).  The operations below skip every
    chain-rule term with a known-zero factor: in the first layer of a ``k >= 2`` selection that is all the
    level-2+ work, which would otherwise run at the input width on the largest tuple storage.
    """

    value: Tensor
    comps: dict[Pattern, Tensor]
    layout: JetLayout
    zero: frozenset[Pattern] = frozenset()
    marked_input: bool = False

    @property
    def order(self) -> int:
        """Highest total order carried."""
        return max((sum(a) for a in self.comps), default=0)

    def scale_nodes(self, s: Tensor) -> Jet:
        """Multiply node ``v``'s components by ``s[v]``; ``s`` has shape ``(N, 1)`` or ``(N, C)``."""
        comps = {a: c if a in self.zero else c * self.layout.expand(s, len(a)) for a, c in self.comps.items()}
        return Jet(self.value * s, comps, self.layout, self.zero, self.marked_input)


def _zero_on(layout: JetLayout, alpha: Pattern, comp: Tensor) -> Tensor:
    """A zero component of pattern ``alpha`` for the aggregation of ``comp`` (stored in ``layout.grown()``)."""
    grown = layout.grown()
    if grown is layout:
        return _zero_like(comp)
    one = grown.zeros(len(alpha), comp[..., :1])
    return one.expand(*one.shape[:-1], comp.shape[-1])


def _zero_like(comp: Tensor, width: int | None = None) -> Tensor:
    """A zero component shaped like ``comp`` (last dim ``width``), as a broadcast view: no memory, no fill."""
    return comp.new_zeros(()).expand(*comp.shape[:-1], comp.shape[-1] if width is None else width)


class _Monomials:
    r"""Products :math:`\prod_{\beta \in \pi} y^{(\beta)}[w_{\mathrm{supp}\,\beta}]` of a jet's components on a target
    level, computed once per chain-rule step and shared by every pattern (a product extends its cached prefix:
    ``y1*y1*y2`` reuses ``y1*y1``).
    """

    def __init__(self, jet: Jet, skip_zero: bool = True):
        self.jet = jet
        self.skip_zero = skip_zero
        self.cache: dict[tuple[tuple[Block, ...], int], Tensor | None] = {}

    def __call__(self, blocks: tuple[Block, ...], level: int) -> Tensor | None:
        """The product, or ``None`` when it is known to be zero (``skip_zero``; see :class:`Jet`)."""
        key = (blocks, level)
        if key not in self.cache:
            out: Tensor | None
            if self.skip_zero and (
                any(beta in self.jet.zero for beta, _ in blocks) or (self.jet.marked_input and level >= 2)
            ):
                # the marked input's level-1 entries live at w = v, so a product over distinct nodes w_1 < w_2 of a
                # level >= 2 tuple always has a zero factor (and its level >= 2 components are zero)
                out = None
            elif len(blocks) == 1:
                beta, slots = blocks[0]
                out = self.jet.layout.place(self.jet.comps[beta], slots, level)
            else:
                head, tail = self(blocks[:-1], level), self(blocks[-1:], level)
                out = None if head is None or tail is None else head * tail
            self.cache[key] = out
        return self.cache[key]


def bell_terms(jet: Jet, alpha: Pattern) -> list[Tensor]:
    r"""``[B_{alpha,1}, .., B_{alpha,|alpha|}]``: the Faà di Bruno sums over multiset partitions into ``b`` blocks."""
    monomials = _Monomials(jet, skip_zero=False)
    out: list[Tensor | None] = [None] * sum(alpha)
    for count, part in pattern_partitions(alpha):
        term = monomials(part, len(alpha))
        assert term is not None
        b = len(part) - 1
        prev = out[b]
        out[b] = term * count if prev is None and count != 1 else term if prev is None else prev.add(term, alpha=count)
    return [t for t in out if t is not None]


def elementwise(jet: Jet, activation: str) -> Jet:
    r"""Jet of ``f(y)`` for the elementwise activation ``f`` (Faà di Bruno).

    Component ``alpha`` is :math:`\sum_\pi c_\pi f^{(|\pi|)}(y) \prod_{\beta \in \pi} y^{(\beta)}`: each
    coefficient :math:`f^{(b)}` is expanded to a level once, each product of components is computed once
    (:class:`_Monomials`), and the sum is a chain of fused ``addcmul`` (with the count as its ``value``), so autograd
    keeps one tensor per distinct product and per coefficient, nothing per term.
    """
    if activation == "identity":
        return jet
    layout = jet.layout
    coeffs = activation_derivatives(activation, jet.value, jet.order)
    monomials = _Monomials(jet)
    expanded: dict[tuple[int, int], Tensor] = {}
    comps: dict[Pattern, Tensor] = {}
    zero = set()
    for alpha in jet.comps:
        level = len(alpha)
        out = None
        for count, part in pattern_partitions(alpha):  # the first is the single block alpha itself (count 1)
            term = monomials(part, level)
            if term is None:  # a known-zero product (see Jet)
                continue
            b = len(part)
            if (b, level) not in expanded:
                expanded[b, level] = layout.expand(coeffs[b], level)
            if out is None:
                out = expanded[b, level] * term
                out = out if count == 1 else out * count
            else:
                out = torch.addcmul(out, expanded[b, level], term, value=count)
        if out is None:
            out = _zero_like(jet.comps[alpha])
            zero.add(alpha)
        comps[alpha] = out
    return Jet(coeffs[0], comps, layout, frozenset(zero))


def aggregate_activated_messages(jet: Jet, edge_preact: Tensor, activation: str) -> Jet:
    r"""Jet of :math:`a_v = \sum_{w \to v} f(h_w + b_{wv})` where only :math:`h` carries derivatives.

    ``edge_preact`` is :math:`z_{wv} = h_w + b_{wv}` of shape ``(E, C)``.  By Faà di Bruno, component ``alpha`` is
    :math:`\sum_\pi c_\pi \sum_{w \to v} f^{(|\pi|)}(z_{wv}) \prod_{\beta\in\pi} h^{(\beta)}[w]`: node-level
    products weighted by edge-level coefficients, which the layout aggregates with DGL's fused ``u_mul_e`` + ``sum``
    (no per-edge jets are stored).  Each product is aggregated on its own and accumulated with the count as a
    scale (aggregation is linear), so no sum of products is ever materialised for autograd.
    """
    layout = jet.layout
    coeffs = activation_derivatives(activation, edge_preact, jet.order)
    monomials = _Monomials(jet)
    placed: dict[tuple[int, int], Tensor] = {}  # each coefficient placed on each level's edges once
    comps: dict[Pattern, Tensor] = {}
    zero = set()
    for alpha in jet.comps:
        level = len(alpha)
        out = None
        for count, part in pattern_partitions(alpha):
            term = monomials(part, level)
            if term is None:  # a known-zero product (see Jet)
                continue
            b = len(part)
            if (b, level) not in placed:
                placed[b, level] = layout.edge_weights(coeffs[b], level)
            agg = layout.aggregate(term, level, edge_weight=placed[b, level])
            if out is None:
                out = agg if count == 1 else agg * count
            else:
                out = torch.add(out, agg, alpha=count)
        if out is None:
            out = _zero_on(layout, alpha, jet.comps[alpha])
            zero.add(alpha)
        comps[alpha] = out
    return Jet(layout.aggregate_edges(coeffs[0]), comps, layout.grown(), frozenset(zero))


def aggregate(jet: Jet) -> Jet:
    r"""Jet of :math:`a_v = \sum_{w \to v} h_w` (linear: every component is aggregated alike)."""
    layout = jet.layout
    zero = {a for a in jet.comps if a in jet.zero or (jet.marked_input and len(a) >= 2)}
    comps = {a: _zero_on(layout, a, c) if a in zero else layout.aggregate(c, len(a)) for a, c in jet.comps.items()}
    return Jet(layout.aggregate(jet.value, 0), comps, layout.grown(), frozenset(zero))


def add_scaled(jet: Jet, scale: Tensor, other: Jet) -> Jet:
    """Jet of ``scale * y + other`` for a scalar (0-dim, differentiable) ``scale``; one fused pass per component.

    ``other`` may be stored in ``jet.layout.grown()`` (an aggregation of ``jet`` into the next receptive-field
    depth, :class:`~dgl_hod.nn.layouts.BallLayout`): ``y`` is then added onto its rows there.
    """
    comps = {}
    if other.layout is not jet.layout:
        lift = jet.layout.add_lifted  # type: ignore[attr-defined]
        for a, c in jet.comps.items():
            if a in jet.zero:
                comps[a] = other.comps[a]
            else:
                base = other.comps[a]
                comps[a] = lift(base.contiguous() if a in other.zero else base, c, scale)
        value = torch.addcmul(other.value, jet.value, scale)
        return Jet(value, comps, other.layout, jet.zero & other.zero)
    for a, c in jet.comps.items():
        if a in jet.zero:
            comps[a] = other.comps[a]
        elif a in other.zero:
            comps[a] = c * scale
        else:
            comps[a] = torch.addcmul(other.comps[a], c, scale)
    return Jet(torch.addcmul(other.value, jet.value, scale), comps, jet.layout, jet.zero & other.zero)


def linear(jet: Jet, weight: Tensor, bias: Tensor | None = None) -> Jet:
    """Jet of ``y @ weight.T + bias`` (torch ``Linear`` convention); the bias enters only the value."""
    comps = {
        a: _zero_like(c, weight.shape[0]) if a in jet.zero else torch.nn.functional.linear(c, weight)
        for a, c in jet.comps.items()
    }
    return Jet(torch.nn.functional.linear(jet.value, weight, bias), comps, jet.layout, jet.zero)
