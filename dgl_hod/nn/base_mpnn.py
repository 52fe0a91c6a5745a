r"""The base message-passing network of HOD-GNN and its exact derivative jets.

Each layer is GIN (linear messages) or GINE (messages :math:`\sigma(h_w + W_e e_{wv})`, for bond features):

.. math::
    a_v = (1 + \epsilon)\, h_v + \operatorname{AGG}_{w \to v} \; m(h_w, e_{wv}), \qquad
    h_v' = \sigma\big(W_2\, \sigma(W_1 a_v + b_1) + b_2\big)

with ``AGG`` a sum (default) or a mean over in-neighbours.  The input is marked along ``r`` learnable directions
:math:`c_1..c_r`: :math:`h^{(0)}_u = x_u + \sum_j \epsilon_{u,j} c_j`.  :meth:`BaseMPNN.jets` returns, in one forward
pass, the derivatives of :math:`h^{(T)}` with respect to the marks at :math:`\epsilon = 0` (all mixed partials over
tuples of nodes of the same graph, per direction), by pushing jets through the layers with :mod:`dgl_hod.jets`.
There is no batch-statistics normalisation: it would couple the graphs of a batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
from torch import Tensor, nn

from .. import jets as jetlib
from .layouts import DenseLayout, SparseLayout

__all__ = ["BaseMPNN", "GraphJets", "JetGINLayer", "JetMemoryError"]

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
class GraphJets:
    """Output of :meth:`BaseMPNN.jets`: the embeddings and their derivative components.

    Attributes:
        h: ``(N, C)`` node embeddings :math:`h^{(T)}` (at marks = 0).
        derivatives: ``[D1, .., DK]`` in the layout's storage: dense ``(N, P, .., P, r, C)``, sparse ``(M_k, r, C)``.
        layout: the :class:`~dgl_hod.nn.layouts.DenseLayout` or :class:`~dgl_hod.nn.layouts.SparseLayout`.
    """

    h: Tensor
    derivatives: list[Tensor]
    layout: DenseLayout | SparseLayout

    @property
    def order(self) -> int:
        return len(self.derivatives)

    @property
    def mode(self) -> str:
        return self.layout.mode

    def dense(self, i: int) -> list[Tensor]:
        """Graph ``i``'s jets ``[D1, D2, ..]`` of shapes ``(n, n, r, C)``, ``(n, n, n, r, C)``, ...

        ``Dk[v, u_1, .., u_k, j, c] = d^k h_{v,c} / d marks_{u_1,j} .. d marks_{u_k,j}``, nodes in graph ``i``'s order.
        """
        batch_size = self.layout.graph.batch_size
        if not 0 <= i < batch_size:
            raise IndexError(f"graph index {i} out of range for a batch of {batch_size} graphs")
        return [self.layout.graph_block(d, k + 1, i) for k, d in enumerate(self.derivatives)]


def _available_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


class BaseMPNN(nn.Module):
    r"""Base MPNN of HOD-GNN: stacked :class:`JetGINLayer` with marked inputs and exact derivative jets.

    .. math::
        h^{(0)}_u = x_u + \sum_{j=1}^{r} \epsilon_{u,j}\, c_j, \qquad h^{(t)} = \mathrm{Layer}_t(h^{(t-1)}),

    and :meth:`jets` returns :math:`\partial^k h^{(T)}_{v} / \partial \epsilon_{u_1,j} \cdots \partial \epsilon_{u_k,j}`
    at :math:`\epsilon = 0` for all nodes :math:`v, u_1..u_k` of the same graph and each direction :math:`j`.

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
        init: ``"default"`` (PyTorch's init, marks ~ N(0, 1)) or ``"rwse"``: constant input channel, identity weights,
            no self term (:math:`\epsilon = -1`), identity activation, mean aggregation and marks on channel 0.  Then
            ``D1[v, v, j, 0]`` after ``T`` layers is the ``T``-step random-walk return probability
            :math:`(P^T)_{vv}` (``dgl.random_walk_pe``), when the input is ``x = 1`` on channel 0.
            ``"rwse"`` overrides ``activation`` and ``aggregation``.

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
        if init not in ("default", "rwse"):
            raise ValueError(f"init must be 'default' or 'rwse', got {init!r}")
        if init == "rwse":
            activation, aggregation = "identity", "mean"
        self.in_dim, self.hidden_dim, self.num_layers = in_dim, hidden_dim, num_layers
        self.edge_dim, self.num_marks, self.init = edge_dim, num_marks, init
        self.activation = activation
        self.mark_directions = nn.Parameter(torch.empty(num_marks, in_dim))
        self.layers = nn.ModuleList(
            JetGINLayer(
                in_dim if t == 0 else hidden_dim,
                hidden_dim,
                edge_dim,
                activation,
                aggregation,
                eps=-1.0 if init == "rwse" else 0.0,
                train_eps=train_eps,
            )
            for t in range(num_layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()
        if self.init == "rwse":
            with torch.no_grad():
                self.mark_directions.zero_()
                self.mark_directions[:, 0] = 1.0
                for layer in self.layers:
                    layer.lin1.weight.copy_(torch.eye(*layer.lin1.weight.shape))
                    layer.lin2.weight.copy_(torch.eye(*layer.lin2.weight.shape))
                    layer.lin1.bias.zero_()
                    layer.lin2.bias.zero_()
                    if layer.edge_lin is not None:
                        layer.edge_lin.weight.zero_()
                        layer.edge_lin.bias.zero_()
        else:
            nn.init.normal_(self.mark_directions)

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
        if torch.isnan(x).any():
            raise ValueError("node features contain NaN; clean or impute them before the base MPNN")
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
        if torch.isnan(e).any():
            raise ValueError("edge features contain NaN; clean or impute them before the base MPNN")

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
    def jet_memory_bytes(self, layout: DenseLayout | SparseLayout, order: int, itemsize: int, grad: bool) -> int:
        """Estimated peak bytes of a jet pass: the jets' size (all orders) times a measured factor.

        The factor counts the tensors alive at the peak: with autograd, a per-layer number of jet-sized tensors
        kept for the backward pass; without, a fixed number of temporaries.  The sparse layout also keeps index
        tensors and per-tuple-edge weights (GINE), hence larger factors.  Measured (peak RSS of forward + backward
        over the jet entries, ZINC batches of 64-256 graphs, width 32, GIN and GINE, depth 3-8) and set so that the
        estimate is 0.9-1.6x the measured peak: dense 6 per layer (grad) / 8 (no grad); sparse 12 per layer at
        order 1 and 20 at order >= 2 (grad) / 14 (no grad).
        """
        width = max(self.in_dim, self.hidden_dim)
        entries = sum(layout.num_entries(k) for k in range(1, order + 1))
        per_jet = entries * self.num_marks * width * itemsize
        if layout.mode == "dense":
            factor = 6 * self.num_layers if grad else 8
        else:
            factor = (12 if order == 1 else 20) * self.num_layers if grad else 14
        return per_jet * factor

    def jets(
        self,
        g: dgl.DGLGraph,
        x: Tensor,
        e: Tensor | None = None,
        order: int = 1,
        mode: str = "dense",
        max_memory_gb: float | None = None,
    ) -> GraphJets:
        """Embeddings and derivative jets of total order ``<= order`` in one forward pass.

        Args:
            g: a (batched) graph; nodes of different graphs never interact.
            x: ``(N, in_dim)`` node features.  e: ``(E, edge_dim)`` edge features (GINE).
            order: ``K`` in 1..3.
            mode: ``"dense"`` (per graph, padded to the largest graph) or ``"sparse"`` (only ``T``-hop
                receptive fields; for big graphs).
            max_memory_gb: refuse (:class:`JetMemoryError`) when the estimate of :meth:`jet_memory_bytes` exceeds
                this; default 75% of the machine's RAM.
        """
        if not isinstance(order, int) or not 1 <= order <= jetlib.MAX_ORDER:
            raise ValueError(f"order must be an int in 1..{jetlib.MAX_ORDER}, got {order!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self._check_inputs(g, x, e)
        layout = DenseLayout(g) if mode == "dense" else SparseLayout(g, self.num_layers, order)
        need = self.jet_memory_bytes(layout, order, x.element_size(), torch.is_grad_enabled())
        limit = (max_memory_gb * 2**30) if max_memory_gb is not None else 0.75 * _available_memory_bytes()
        if need > limit:
            hint = "mode='sparse', " if mode == "dense" else ""
            raise JetMemoryError(
                f"{mode} order-{order} jets for this batch need about {need / 2**30:.2f} GiB "
                f"({layout.num_entries(order):,} order-{order} entries x {self.num_marks} marks x "
                f"{max(self.in_dim, self.hidden_dim)} channels, {self.num_layers} layers) but the limit is "
                f"{limit / 2**30:.2f} GiB; use {hint}a smaller order, smaller batches or width, or raise max_memory_gb"
            )
        directions = self.mark_directions.to(x.dtype)
        jet = jetlib.Jet([x] + layout.init_marks(directions, order), layout)
        for layer in self.layers:
            jet = layer.forward_jet(g, jet, e)
        return GraphJets(jet.value, jet.comps[1:], layout)

    def extra_repr(self) -> str:
        return f"num_marks={self.num_marks}, init={self.init}"
