r"""The base message-passing network of HOD-GNN and its exact derivative jets.

Each layer is GIN (linear messages) or GINE (messages :math:`\sigma(h_w + W_e e_{wv})`, for bond features):

.. math::
    a_v = (1 + \epsilon)\, h_v + \operatorname{AGG}_{w \to v} \; m(h_w, e_{wv}), \qquad
    h_v' = \sigma\big(W_2\, \sigma(W_1 a_v + b_1) + b_2\big)

with ``AGG`` a sum (default) or a mean over in-neighbours.  The input is marked along ``r`` learnable directions
:math:`c_1..c_r`: :math:`h^{(0)}_u = x_u + \sum_j \epsilon_{u,j} c_j`.  :meth:`BaseMPNN.jets` returns, in one forward
pass, a selection ``(k, m)`` of the derivatives of :math:`h^{(T)}` with respect to the marks at :math:`\epsilon = 0`
(every multiset of marked nodes of the same graph with at most ``k`` distinct nodes, each at most ``m`` times; per
direction), by pushing jets through the layers with :mod:`dgl_hod.jets`.
There is no batch-statistics normalisation: it would couple the graphs of a batch.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field

import dgl
import dgl.function as fn
import torch
from torch import Tensor, nn

from .. import jets as jetlib
from ..jets import JetLayout, Pattern, Selection
from .common import segment_ids, segment_reduce
from .layouts import DenseLayout, SparseLayout

__all__ = [
    "DEFAULT_EPS",
    "INITS",
    "rwse_operating_point",
    "BaseMPNN",
    "GraphJets",
    "JetGINLayer",
    "JetMemoryError",
    "LayerDiagonal",
]

MODES = ("dense", "sparse")
AGGREGATIONS = ("sum", "mean")


class JetMemoryError(MemoryError):
    """The requested jets would not fit in the memory budget."""


class JetGINLayer(nn.Module):
    r"""One GIN/GINE layer that runs on plain features and on jets.

    Args:
        in_dim: input channels.
        out_dim: output channels (also the MLP's hidden width).
        edge_dim: edge feature channels; ``None`` gives GIN's linear messages, an int GINE's
            :math:`\sigma(h_w + W_e e_{wv})`.
        activation: one of :data:`dgl_hod.jets.ACTIVATIONS`.
        aggregation: ``"sum"`` or ``"mean"`` over in-neighbours (a node without in-edges receives 0).
        train_eps: learn :math:`\epsilon` (else it stays at ``eps``).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        edge_dim: int | None = None,
        activation: str = "silu",
        aggregation: str = "sum",
        eps: float = 0.0,
        train_eps: bool = True,
    ):
        super().__init__()
        self.activation = jetlib.check_activation(activation)
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.aggregation = aggregation
        self.in_dim, self.out_dim, self.edge_dim = in_dim, out_dim, edge_dim
        self.edge_lin = nn.Linear(edge_dim, in_dim) if edge_dim is not None else None
        self.lin1 = nn.Linear(in_dim, out_dim)
        self.lin2 = nn.Linear(out_dim, out_dim)
        self.init_eps = eps
        if train_eps:
            self.eps = nn.Parameter(torch.tensor(float(eps)))
        else:
            self.register_buffer("eps", torch.tensor(float(eps)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.edge_lin, self.lin1, self.lin2):
            if lin is not None:
                lin.reset_parameters()
        with torch.no_grad():
            self.eps.fill_(self.init_eps)

    def _inv_degree(self, g: dgl.DGLGraph, like: Tensor) -> Tensor:
        return 1.0 / g.in_degrees().clamp(min=1).to(like.dtype).unsqueeze(1)

    def forward(self, g: dgl.DGLGraph, h: Tensor, e: Tensor | None = None) -> Tensor:
        """Plain forward: ``h`` (N, in_dim), ``e`` (E, edge_dim) -> (N, out_dim)."""
        act = jetlib.TORCH_ACTIVATIONS[self.activation]
        with g.local_scope():
            g.ndata["h"] = h
            if self.edge_lin is None:
                g.update_all(fn.copy_u("h", "m"), fn.sum("m", "a"))
            else:
                g.apply_edges(fn.copy_u("h", "hs"))
                g.edata["m"] = act(g.edata["hs"] + self.edge_lin(e))
                g.update_all(fn.copy_e("m", "m"), fn.sum("m", "a"))
            agg = g.ndata["a"]
        if self.aggregation == "mean":
            agg = agg * self._inv_degree(g, h)
        a = (1 + self.eps) * h + agg
        return act(self.lin2(act(self.lin1(a))))

    def forward_jet(self, g: dgl.DGLGraph, jet: jetlib.Jet, e: Tensor | None = None) -> jetlib.Jet:
        """The same layer on a jet: aggregation with DGL, node-wise maps with the chain rule."""
        if self.edge_lin is None:
            agg = jetlib.aggregate(jet)
        else:
            src, _ = g.edges()
            agg = jetlib.aggregate_activated_messages(jet, jet.value[src] + self.edge_lin(e), self.activation)
        if self.aggregation == "mean":
            agg = agg.scale_nodes(self._inv_degree(g, jet.value))
        a = jetlib.add_scaled(jet, 1 + self.eps, agg)
        out = jetlib.elementwise(jetlib.linear(a, self.lin1.weight, self.lin1.bias), self.activation)
        return jetlib.elementwise(jetlib.linear(out, self.lin2.weight, self.lin2.bias), self.activation)

    def extra_repr(self) -> str:
        kind = "GIN" if self.edge_dim is None else f"GINE(edge_dim={self.edge_dim})"
        return f"{kind}, {self.in_dim} -> {self.out_dim}, activation={self.activation}, aggregation={self.aggregation}"


@dataclass
class LayerDiagonal:
    r"""The first-order self-derivative of one base layer ``t`` (``BaseMPNN.jets(..., layer_diagonals=True)``).

    Attributes:
        diagonal: ``(N, r, C)``, :math:`\partial h^{(t)}_{v,c} / \partial\epsilon_{v,j}` (node ``v``'s response
            to its own mark after ``t`` layers).
        sum_squares: ``(B, r, C)``, :math:`\sum_{v, u \in G} (\partial h^{(t)}_{v,c} / \partial\epsilon_{u,j})^2`
            per graph, over every pair (zeros outside the receptive field included): the scale of layer ``t``'s
            whole first-order jet, for normalisation.
    """

    diagonal: Tensor
    sum_squares: Tensor

    @classmethod
    def of(cls, layout: JetLayout, comp: Tensor) -> LayerDiagonal:
        """Read a level-1 component through the layout's own reader (any layout)."""
        rows = layout.rows(1)
        values = layout.values(comp, 1)
        sizes = layout.graph_sizes
        on_diag = (rows[:, 0] == rows[:, 1]).nonzero().squeeze(1)
        diag = values.new_zeros(layout.num_nodes, *values.shape[1:]).index_copy(0, rows[on_diag, 0], values[on_diag])
        graph = segment_ids(sizes)[rows[:, 0]]
        return cls(diag, segment_reduce(values * values, graph, len(sizes)))


@dataclass
class GraphJets:
    r"""Output of :meth:`BaseMPNN.jets`: the embeddings and the selected derivative components.

    Attributes:
        h: ``(N, C)`` node embeddings :math:`h^{(T)}` (at marks = 0).
        components: pattern ``alpha`` -> its component in the layout's storage (see :mod:`dgl_hod.jets`): the
            derivative :math:`\partial^{|\alpha|} h_v / \partial\epsilon_{w_1}^{a_1} \cdots
            \partial\epsilon_{w_q}^{a_q}` on level ``q`` (dense ``(N, P, .., P, r, C)``, sparse ``(M_q, r, C)``).
        layout: the :class:`~dgl_hod.jets.JetLayout` (dense or sparse).
        selection: the :class:`~dgl_hod.jets.Selection` ``(k, m, max_order)`` computed.
        layer_diagonals: with ``jets(..., layer_diagonals=True)``, one :class:`LayerDiagonal` per base layer
            ``t = 1..T`` (the first-order self-derivatives :math:`\partial h^{(t)}_v / \partial\epsilon_v`);
            else empty.
    """

    h: Tensor
    components: dict[Pattern, Tensor]
    layout: JetLayout
    selection: Selection
    layer_diagonals: list[LayerDiagonal] = field(default_factory=list)

    @property
    def order(self) -> int:
        """Highest total derivative order carried."""
        return self.selection.total

    @property
    def mode(self) -> str:
        return self.layout.mode

    @property
    def derivatives(self) -> list[Tensor]:
        """The stored components in the selection's order (the first is always the first derivative ``(1,)``)."""
        return list(self.components.values())

    def _check_index(self, i: int) -> int:
        batch_size = len(self.layout.graph_sizes)
        if not isinstance(i, int) or not 0 <= i < batch_size:
            raise IndexError(f"graph index {i!r} out of range for a batch of {batch_size} graphs")
        return int(self.layout.graph_sizes[i])

    def pure(self, i: int) -> list[Tensor]:
        r"""Graph ``i``'s pure derivatives ``[D(1), .., D(m)]``, each ``(n, n, r, C)``:
        ``D(alpha)[v, u, j, c]`` :math:`= \partial^\alpha h_{v,c} / \partial\epsilon_{u,j}^\alpha` (every
        selection has them, up to ``min(m, max_order)``), nodes in graph ``i``'s order.
        """
        self._check_index(i)
        out = []
        for alpha in range(1, self.selection.total + 1):
            if (alpha,) not in self.components:
                break
            out.append(self.layout.graph_block(self.components[(alpha,)], 1, i))
        return out

    def rows(self, order: int) -> tuple[Tensor, Tensor, Tensor]:
        """Every selected derivative of total order ``order`` as rows, one per multiset of marked nodes.

        Returns:
            ``(index, values, multiplicity)``: ``index`` ``(M, order+1)`` global node ids ``(v, u_1 <= .. <= u_K)``,
            sorted lexicographically; ``values`` ``(M, r, C)``; ``multiplicity`` ``(M,)`` the number of ordered
            tuples the multiset stands for (``K! / prod a_i!``), in the values' dtype.
        """
        index, values, mult = [], [], []
        for alpha in self.selection.patterns_of_order(order):
            q = len(alpha)
            idx = self.layout.rows(q)
            repeat = torch.tensor([0] + [1 + i for i, a in enumerate(alpha) for _ in range(a)], device=idx.device)
            index.append(idx[:, repeat])
            values.append(self.layout.values(self.components[alpha], q))
            count = math.factorial(order) // math.prod(math.factorial(a) for a in alpha)
            mult.append(torch.full((len(idx),), float(count), dtype=self.h.dtype, device=idx.device))
        if not index:
            raise ValueError(f"no derivative of total order {order} in the selection {self.selection}")
        ind, val, mul = torch.cat(index), torch.cat(values), torch.cat(mult)
        if len(index) > 1:  # merge the patterns' rows into one lexicographic order (as if stored together)
            perm = torch.arange(len(ind), device=ind.device)
            for col in reversed(range(ind.shape[1])):
                perm = perm[torch.sort(ind[perm, col], stable=True).indices]
            ind, val, mul = ind[perm], val[perm], mul[perm]
        return ind, val, mul

    def dense(self, i: int) -> list[Tensor]:
        """Graph ``i``'s full symmetric jets ``[D1, D2, ..]`` of shapes ``(n, n, r, C)``, ``(n, n, n, r, C)``, ...

        ``Dk[v, u_1, .., u_k, j, c] = d^k h_{v,c} / d marks_{u_1,j} .. d marks_{u_k,j}``, nodes in graph ``i``'s order.
        Needs every multiset of each total order (``Selection.from_order(K)``, or ``k, m >= K``); for ``k = 1``
        selections use :meth:`pure`.
        """
        n = self._check_index(i)
        start = int(self.layout.graph_sizes[:i].sum())
        out = []
        for order in range(1, self.selection.total + 1):
            if not self.selection.is_full(order):
                raise ValueError(
                    f"dense({i}) needs every derivative of total order {order}, but the selection "
                    f"({self.selection}) keeps only some; read pure({i}) for k = 1, or compute the jets with "
                    f"order=K (k = m = K)"
                )
            index, values, _ = self.rows(order)
            sel = ((index[:, 0] >= start) & (index[:, 0] < start + n)).nonzero().squeeze(1)
            index, values = index[sel] - start, values[sel]
            block = values.new_zeros(n, *(n,) * order, *values.shape[1:])
            for perm in set(itertools.permutations(range(1, order + 1))):
                block = block.index_put((index[:, 0], *(index[:, p] for p in perm)), values)
            out.append(block)
        return out


def _zeros_like(layout: JetLayout, level: int, like: Tensor) -> Tensor:
    """A zero level-``level`` component with the trailing ``(r, C)`` of ``like``: one channel filled, broadcast."""
    one = layout.zeros(level, like[..., :1])
    return one.expand(*one.shape[:-1], like.shape[-1])


def _available_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


INITS = ("default", "rwse", "rwse-linear")

DEFAULT_EPS = 0.5
r"""Initial GIN :math:`\epsilon` of a fresh base MPNN (``init="default"``); see ``BaseMPNN``'s ``eps``."""


def rwse_operating_point(activation: str) -> tuple[float, float, float]:
    r"""``(z0, a0, s0)``: the pre-activation :math:`z_0`, value :math:`a_0 = \sigma(z_0)` and slope
    :math:`s_0 = \sigma'(z_0)` at which ``init="rwse"`` holds channel 0.

    :math:`z_0 = 0` (``relu``: 1, where its slope is 1): the values and slopes there are exact binary fractions for
    every activation but ``softplus`` (:math:`a_0 = \log 2`), so the RWSE identity holds to the last bit.

    Example:
        >>> rwse_operating_point("silu"), rwse_operating_point("tanh")
        ((0.0, 0.0, 0.5), (0.0, 0.0, 1.0))
    """
    z0 = 1.0 if jetlib.check_activation(activation) == "relu" else 0.0
    z = torch.tensor(z0, dtype=torch.float64, requires_grad=True)
    a = jetlib.TORCH_ACTIVATIONS[activation](z)
    (s,) = torch.autograd.grad(a, z)
    if float(s) == 0.0:  # pragma: no cover - every activation of jets.ACTIVATIONS has a nonzero slope here
        raise ValueError(f"activation {activation!r} has zero slope at {z0}: no RWSE operating point")
    return z0, float(a), float(s)


class BaseMPNN(nn.Module):
    r"""Base MPNN of HOD-GNN: stacked :class:`JetGINLayer` with marked inputs and exact derivative jets.

    .. math::
        h^{(0)}_u = x_u + \sum_{j=1}^{r} \epsilon_{u,j}\, c_j, \qquad h^{(t)} = \mathrm{Layer}_t(h^{(t-1)}),

    and :meth:`jets` returns :math:`\partial^K h^{(T)}_{v} / \partial \epsilon_{u_1,j} \cdots \partial \epsilon_{u_K,j}`
    at :math:`\epsilon = 0` for the selected multisets :math:`\{u_1..u_K\}` of nodes of ``v``'s graph (at most ``k``
    distinct nodes, each at most ``m`` times) and each direction :math:`j`.

    Args:
        in_dim: input feature size ``d_in`` (the marking directions live in this space).
        hidden_dim: width ``C`` of every layer.
        num_layers: depth ``T``.
        edge_dim: edge feature size for GINE messages; ``None`` for GIN.
        activation: ``"silu"`` (default), ``"relu"``, ``"tanh"``, ``"softplus"``, ``"sigmoid"``, ``"gelu"`` or
            ``"identity"``.  ReLU and identity have zero 2nd+ derivatives (exact, not an approximation).
        num_marks: number ``r`` of marking directions.
        aggregation: ``"sum"`` or ``"mean"``.
        train_eps: learn GIN's :math:`\epsilon`.
        init: ``"default"`` (PyTorch's init, marks ~ N(0, 1)), ``"rwse"`` or ``"rwse-linear"``.

            ``"rwse"`` (the paper's RWSE starting point, any activation): no self term (:math:`\epsilon = -1`),
            mean aggregation, marks with component 1 on channel 0, and channel 0 of every layer wired as a scaled
            identity held at an operating point :math:`z_0` of the activation (:func:`rwse_operating_point`):
            row 0 of ``lin1``/``lin2`` is :math:`e_0 / \sigma'(z_0)` and the biases keep channel 0's value at
            :math:`\sigma(z_0)`.  Channel 0 then passes derivatives through each layer with gain exactly 1, so
            ``D1[v, u, j, 0] = (P^T)_{vu}`` with :math:`P = D^{-1}A` and the diagonal is ``dgl.random_walk_pe``'s
            step ``T``, when the input is ``x = 0`` on channel 0 (:class:`~dgl_hod.archs.hod_gnn.HODGNN` sets its
            node encoder so).  Every other weight keeps PyTorch's init, the activation stays nonlinear (second and
            higher derivatives are not zero) and everything is trainable.  ``"rwse"`` sets ``aggregation="mean"``.

            ``"rwse-linear"`` (the earlier variant): identity weights, zero biases, ``activation="identity"``, mean
            aggregation, :math:`\epsilon = -1`, marks on channel 0: ``D1[v, v, j, 0] = (P^T)_{vv}`` for any input,
            but the base is linear and stays linear.
        eps: initial :math:`\epsilon` of every layer.  ``None``: :data:`DEFAULT_EPS` (0.5) for ``"default"`` and
            -1 for the RWSE inits (which need it).  :math:`\epsilon = 0` (the value before 2026-12, kept by the old
            zoo entries) puts a fresh GIN on a symmetry: the aggregation matrix is :math:`A + I`, and graphs whose
            looped adjacency matrices are two-fold isomorphic (:math:`A_2 + I = P (A_1 + I) R^\top` for
            permutations :math:`P \ne R`) get the SAME network function after an even number of layers, so all
            their jets agree (docs/paper-model.md, "Initialisation").  Any :math:`1 + \epsilon \notin \{0, 1\}`
            breaks this.

    Shapes:
        - input: graph with ``N`` nodes, ``x`` ``(N, in_dim)``, ``e`` ``(E, edge_dim)``, ``marks`` ``(N, r)``
        - output of ``forward``: ``(N, hidden_dim)``

    Example:
        >>> import dgl, torch
        >>> from dgl_hod import BaseMPNN
        >>> g = dgl.graph(([0, 1, 2], [1, 2, 0]))
        >>> base = BaseMPNN(in_dim=4, hidden_dim=8, num_layers=2)
        >>> base(g, torch.randn(3, 4)).shape
        torch.Size([3, 8])
        >>> D1, D2 = base.jets(g, torch.randn(3, 4), order=2).dense(0)
        >>> D1.shape, D2.shape
        (torch.Size([3, 3, 1, 8]), torch.Size([3, 3, 3, 1, 8]))
        >>> [d.shape for d in base.jets(g, torch.randn(3, 4), k=1, m=4, mode="sparse").pure(0)][3]
        torch.Size([3, 3, 1, 8])
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        num_layers: int,
        edge_dim: int | None = None,
        activation: str = "silu",
        num_marks: int = 1,
        aggregation: str = "sum",
        train_eps: bool = True,
        init: str = "default",
        eps: float | None = None,
    ):
        super().__init__()
        for name, value in (
            ("in_dim", in_dim),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
            ("num_marks", num_marks),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if init != "default" and eps not in (None, -1.0):
            raise ValueError(
                f"init={init!r} needs eps = -1 (no self term: the random walk moves at every step), got eps={eps!r}; "
                f"leave eps unset"
            )
        if eps is None:
            eps = DEFAULT_EPS if init == "default" else -1.0
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
            raise ValueError(f"eps must be a finite float, got {eps!r}")
        if init == "rwse-linear":
            activation = "identity"
        if init != "default":
            aggregation = "mean"
        self.in_dim, self.hidden_dim, self.num_layers = in_dim, hidden_dim, num_layers
        self.edge_dim, self.num_marks, self.init = edge_dim, num_marks, init
        self.activation, self.init_eps = activation, float(eps)
        self.mark_directions = nn.Parameter(torch.empty(num_marks, in_dim))
        self.layers = nn.ModuleList(
            JetGINLayer(
                in_dim if t == 0 else hidden_dim,
                hidden_dim,
                edge_dim,
                activation,
                aggregation,
                eps=float(eps),
                train_eps=train_eps,
            )
            for t in range(num_layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()
        if self.init == "rwse-linear":
            with torch.no_grad():
                self.mark_directions.zero_()
                self.mark_directions[:, 0] = 1.0
                for layer in self.layers:
                    w = layer.lin1.weight
                    w.copy_(torch.eye(*w.shape, dtype=w.dtype, device=w.device))
                    w = layer.lin2.weight
                    w.copy_(torch.eye(*w.shape, dtype=w.dtype, device=w.device))
                    layer.lin1.bias.zero_()
                    layer.lin2.bias.zero_()
                    if layer.edge_lin is not None:
                        layer.edge_lin.weight.zero_()
                        layer.edge_lin.bias.zero_()
        elif self.init == "rwse":
            self._init_rwse_channel()
        else:
            nn.init.normal_(self.mark_directions)

    def _init_rwse_channel(self) -> None:
        r"""Wire channel 0 as a unit-gain random-walk channel (``init="rwse"``; the class docstring).

        Layer ``t`` receives the value ``v_t`` on channel 0 (``v_1 = 0``, the input; then :math:`a_0 = \sigma(z_0)`)
        and slope :math:`s_0 = \sigma'(z_0)`.  GIN: ``lin1`` row 0 is :math:`e_0 / s_0`, bias
        :math:`z_0 - v_t / s_0`; GINE first sends the message :math:`\sigma(h_w + b_e)` with ``edge_lin`` row 0 zero
        and :math:`b_e = z_0 - v_t` (value :math:`a_0`, slope :math:`s_0`), so ``lin1`` row 0 is
        :math:`e_0 / s_0^2`, bias :math:`z_0 - a_0 / s_0^2`.  ``lin2`` row 0 is :math:`e_0 / s_0`, bias
        :math:`z_0 - a_0 / s_0`.  The product of slopes and weights on channel 0 is 1 in every layer.
        """
        z0, a0, s0 = rwse_operating_point(self.activation)
        with torch.no_grad():
            nn.init.normal_(self.mark_directions)
            self.mark_directions[:, 0] = 1.0
            value = 0.0  # channel 0 of the input
            for layer in self.layers:
                w1 = 1.0 / s0
                if layer.edge_lin is not None:
                    layer.edge_lin.weight[0].zero_()
                    layer.edge_lin.bias[0] = z0 - value
                    value, w1 = a0, 1.0 / (s0 * s0)
                for lin, w, v in ((layer.lin1, w1, value), (layer.lin2, 1.0 / s0, a0)):
                    lin.weight[0].zero_()
                    lin.weight[0, 0] = w
                    lin.bias[0] = z0 - w * v
                value = a0

    # -- validation ---------------------------------------------------------------------------------------------------
    def _check_inputs(self, g: dgl.DGLGraph, x: Tensor, e: Tensor | None) -> None:
        if not isinstance(g, dgl.DGLGraph):
            raise TypeError(f"g must be a dgl.DGLGraph, got {type(g).__name__}")
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.in_dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"node features must have shape (num_nodes, in_dim) = ({g.num_nodes()}, {self.in_dim}), "
                f"got {shape}; build BaseMPNN with in_dim matching your features"
            )
        if x.shape[0] != g.num_nodes():
            raise ValueError(f"node features have {x.shape[0]} rows but the graph has {g.num_nodes()} nodes")
        if not x.is_floating_point():
            raise TypeError(f"node features must be floating point, got {x.dtype}; embed categorical ids first")
        if not torch.isfinite(x).all():
            raise ValueError("node features contain NaN or inf; clean or impute them before the base MPNN")
        if self.edge_dim is None:
            return
        if e is None:
            raise ValueError(
                f"this BaseMPNN uses GINE messages (edge_dim={self.edge_dim}) and needs edge features "
                f"of shape (num_edges, {self.edge_dim}); pass e=..., or build it with edge_dim=None (GIN)"
            )
        if e.dim() != 2 or e.shape != (g.num_edges(), self.edge_dim):
            raise ValueError(
                f"edge features must have shape (num_edges, edge_dim) = ({g.num_edges()}, "
                f"{self.edge_dim}), got {tuple(e.shape)}"
            )
        if not torch.isfinite(e).all():
            raise ValueError("edge features contain NaN or inf; clean or impute them before the base MPNN")

    # -- plain forward ------------------------------------------------------------------------------------------------
    def forward(self, g: dgl.DGLGraph, x: Tensor, e: Tensor | None = None, marks: Tensor | None = None) -> Tensor:
        """Node embeddings ``(N, hidden_dim)`` of the (optionally marked) input."""
        self._check_inputs(g, x, e)
        if marks is not None:
            if marks.shape != (g.num_nodes(), self.num_marks):
                raise ValueError(
                    f"marks must have shape (num_nodes, num_marks) = ({g.num_nodes()}, "
                    f"{self.num_marks}), got {tuple(marks.shape)}"
                )
            x = x + marks.to(x.dtype) @ self.mark_directions.to(x.dtype)
        h = x
        for layer in self.layers:
            h = layer(g, h, e)
        return h

    # -- jets ---------------------------------------------------------------------------------------------------------
    def jet_memory_bytes(self, layout: JetLayout, selection: Selection, itemsize: int, grad: bool) -> int:
        """Estimated peak bytes of a jet pass: the jets' size (all selected patterns) times a measured factor.

        The factor counts the tensors alive at the peak: with autograd, a per-layer number of jet-sized tensors
        kept for the backward pass; without, a fixed number of temporaries.  The sparse layout also keeps index
        tensors and per-tuple-edge weights (GINE), hence larger factors.  Measured (peak RSS of forward + backward
        over the jet entries, ZINC batches of 64-256 graphs, width 32, GIN and GINE, depth 3-8) and set so that the
        estimate is 0.9-1.6x the measured peak: dense 6 per layer (grad) / 8 (no grad); sparse 12 per layer at
        total order 1 and 20 above (grad) / 14 (no grad).
        """
        width = max(self.in_dim, self.hidden_dim)
        entries = sum(layout.num_entries(len(alpha)) for alpha in selection.patterns)
        per_jet = entries * self.num_marks * width * itemsize
        if layout.mode == "dense":
            factor = 6 * self.num_layers if grad else 8
        else:
            factor = (12 if selection.total == 1 else 20) * self.num_layers if grad else 14
        return per_jet * factor

    @staticmethod
    def jet_selection(
        k: int | None = None, m: int | None = None, max_order: int | None = None, order: int | None = None
    ) -> Selection:
        """The :class:`~dgl_hod.jets.Selection` meant by :meth:`jets`' arguments (validated, one-line errors).

        ``order=K`` (every multiset of total order ``<= K``) is ``k=K, m=K, max_order=K``; otherwise ``k`` and ``m``
        default to 1.
        """
        if order is not None:
            if k is not None or m is not None or max_order is not None:
                raise ValueError(
                    f"give either order={order!r} (every derivative of total order <= order) or k/m/max_order, "
                    f"not both; order=K means k=K, m=K, max_order=K"
                )
            if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= jetlib.MAX_ORDER:
                raise ValueError(f"order must be an int in 1..{jetlib.MAX_ORDER}, got {order!r}")
            return Selection.from_order(order)
        return Selection(1 if k is None else k, 1 if m is None else m, max_order)

    def jets(
        self,
        g: dgl.DGLGraph,
        x: Tensor,
        e: Tensor | None = None,
        k: int | None = None,
        m: int | None = None,
        mode: str = "dense",
        max_order: int | None = None,
        order: int | None = None,
        max_memory_gb: float | None = None,
        layer_diagonals: bool = False,
    ) -> GraphJets:
        r"""Embeddings and the selected derivative jets in one forward pass.

        Computes exactly the derivatives whose multiset of marked nodes has at most ``k`` distinct nodes, each with
        multiplicity at most ``m``, and total order at most ``max_order`` (:class:`~dgl_hod.jets.Selection`).
        ``k = 1`` gives the pure derivatives :math:`\partial^\alpha h_v / \partial\epsilon_u^\alpha`,
        ``alpha = 1..m`` (:meth:`GraphJets.pure`), stored in ``n * |ball| * m`` entries (sparse).

        Args:
            g: a (batched) graph; nodes of different graphs never interact.
            x: ``(N, in_dim)`` node features.
            e: ``(E, edge_dim)`` edge features (GINE).
            k: most distinct marked nodes per derivative (default 1).
            m: highest order in any one node (default 1).
            mode: ``"dense"`` (per graph, padded to the largest graph) or ``"sparse"`` (only ``T``-hop
                receptive fields; for big graphs).
            max_order: cap on the total order (default ``k * m``; at most :data:`~dgl_hod.jets.MAX_ORDER`).
            order: shorthand for ``k=order, m=order, max_order=order``: every derivative of total order
                ``<= order`` (:meth:`GraphJets.dense`); exclusive with ``k``/``m``/``max_order``.
            max_memory_gb: refuse (:class:`JetMemoryError`) when the estimate of :meth:`jet_memory_bytes` exceeds
                this; default 75% of the machine's RAM.
            layer_diagonals: also record, after every layer ``t``, the first-order self-derivatives
                :math:`\partial h^{(t)}_v / \partial\epsilon_v` and the per-graph scale of that layer's first-order
                jet (:attr:`GraphJets.layer_diagonals`; the per-layer derivatives of issue 13).

        Example:
            >>> import dgl, torch
            >>> g = dgl.graph(([0, 1, 2], [1, 2, 0]))
            >>> base = BaseMPNN(in_dim=4, hidden_dim=8, num_layers=2)
            >>> [d.shape for d in base.jets(g, torch.randn(3, 4), k=1, m=3, mode="sparse").pure(0)]
            [torch.Size([3, 3, 1, 8]), torch.Size([3, 3, 1, 8]), torch.Size([3, 3, 1, 8])]
        """
        selection = self.jet_selection(k, m, max_order, order)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self._check_inputs(g, x, e)
        layout = DenseLayout(g) if mode == "dense" else SparseLayout(g, self.num_layers, selection.levels)
        need = self.jet_memory_bytes(layout, selection, x.element_size(), torch.is_grad_enabled())
        limit = (max_memory_gb * 2**30) if max_memory_gb is not None else 0.75 * _available_memory_bytes()
        if need > limit:
            hint = "mode='sparse', " if mode == "dense" else ""
            entries = sum(layout.num_entries(len(alpha)) for alpha in selection.patterns)
            raise JetMemoryError(
                f"{mode} jets ({selection}) for this batch need about {need / 2**30:.2f} GiB "
                f"({entries:,} entries x {self.num_marks} marks x {max(self.in_dim, self.hidden_dim)} channels, "
                f"{self.num_layers} layers) but the limit is {limit / 2**30:.2f} GiB; use {hint}a smaller k or m, "
                f"smaller batches or width, or raise max_memory_gb"
            )
        directions = self.mark_directions.to(x.dtype)
        # pure jets (k = 1) in the sparse layout grow with the receptive field: layer t stores only the t-hop pairs
        # (every other derivative is still zero), starting from the N pairs (v, v) of the marked input
        start: JetLayout = layout.at_depth(0) if isinstance(layout, SparseLayout) and selection.levels == 1 else layout
        first = start.init_marks(directions)
        # the higher components of the input are zero: broadcast views, and known to the engine, which skips every
        # term they would zero (speed only; see jets.Jet)
        comps = {
            alpha: first if alpha == (1,) else _zeros_like(start, len(alpha), first) for alpha in selection.patterns
        }
        known_zero = frozenset(alpha for alpha in selection.patterns if alpha != (1,))
        jet = jetlib.Jet(x, comps, start, zero=known_zero, marked_input=layout.mode == "sparse")
        diagonals = []
        for layer in self.layers:
            jet = layer.forward_jet(g, jet, e)
            if layer_diagonals:
                diagonals.append(LayerDiagonal.of(jet.layout, jet.comps[(1,)]))
        # after T layers the ball rows are the layout's own level-1 rows (same pairs, same order)
        return GraphJets(jet.value, jet.comps, layout, selection, diagonals)

    def extra_repr(self) -> str:
        return f"num_marks={self.num_marks}, init={self.init}"
