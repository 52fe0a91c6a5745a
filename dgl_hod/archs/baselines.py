"""Baselines for HOD-GNN, built with the same encoders, readout, head and registry: MPNNs and subgraph GNNs.

Registered architectures (``dgl_hod.create_model(name, **config)``):

- ``gin``: GIN (``dgl.nn.GINConv``), node features only.
- ``gine``: GINE (``dgl.nn.GINEConv``) with categorical bond features (one edge encoder per layer).
- ``gine-rwse``: GINE whose input node embedding also gets an MLP of the random-walk structural encoding
  ``RWSE_v = (P_vv, (P^2)_vv, ..., (P^k)_vv)`` (the diagonal of the random-walk matrix powers, as
  ``dgl.random_walk_pe``), computed per batch with one batched dense matmul per step over the padded per-graph
  transition matrices.
- ``ds-gnn``: DS-GNN (ESAN): a Siamese GINE on every subgraph of the bag (:mod:`dgl_hod.nn.subgraphs`),
  per-subgraph readout, a per-subgraph MLP, then DeepSets aggregation (mean/sum) over each graph's subgraphs.
- ``dss-gnn``: DSS-GNN (ESAN): layer ``l`` updates every bag node ``(s, v)`` with
  ``GINE_l(subgraph s)[v] + GINE'_l(G, agg_{s'} h_{(s', .)})[v]``: a GINE on its subgraph plus a GINE on the
  original graph applied to the cross-subgraph aggregate (mean over the copies of each original node); then the same
  invariant readout as DS-GNN.

All share ``CategoricalEncoder`` node/edge encoders, a residual layer ``h <- h + dropout(act(norm(conv(h))))``, node
readout ``readout`` (sum/mean) and the head ``Linear(D, D) - ReLU - Linear(D, num_tasks)``.  ``embed`` returns
``(B, D)`` graph embeddings, ``forward`` ``(B, num_tasks)``.  ``node_feat=None`` means featureless graphs;
``edge_feat=None`` encodes every edge as bond id 0.

Normalisation: ``norm="batch"`` (default; BatchNorm1d over the nodes of the mini-batch -- or of the bag -- as in
ESAN and the standard ZINC GIN/GINE set-ups; it couples the graphs of a batch in training mode only, and stays
invariant to node permutations either way), ``"layer"`` (LayerNorm per node) or ``"none"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import dgl
import torch
from dgl.nn import GINConv, GINEConv
from torch import Tensor, nn

from ..nn.encoders import CategoricalEncoder
from ..nn.subgraphs import MARKED, POLICIES, subgraph_bag
from .base import READOUTS, GraphModel, constant_node_feat, readout
from .registry import register_arch

__all__ = ["DSGNN", "DSSGNN", "GIN", "GINE", "GINERWSE", "rwse"]

NORMS = ("batch", "layer", "none")


# ----------------------------------------------------------------------------------------------- configs


@dataclass
class MPNNConfig:
    """Config of ``gin`` / ``gine``.

    Args:
        node_feat_dims: vocabulary size of each node feature column (``get_info(ds).node_feat_dims``).
        edge_feat_dims: same for edges (``gine`` and subgraph GNNs; ignored by ``gin``).
        num_tasks: output size of the head.
        hidden_dim: width D of every layer.
        num_layers: message-passing layers.
        readout: node -> graph readout, ``"sum"`` or ``"mean"``.
        norm: ``"batch"``, ``"layer"`` or ``"none"`` after every convolution.
        dropout: dropout after every layer.
        residual: add the layer input to its output.
    """

    node_feat_dims: tuple = (1,)
    edge_feat_dims: tuple = (1,)
    num_tasks: int = 1
    hidden_dim: int = 64
    num_layers: int = 4
    readout: str = "sum"
    norm: str = "batch"
    dropout: float = 0.0
    residual: bool = True

    def validate(self) -> None:
        self.node_feat_dims = tuple(int(v) for v in self.node_feat_dims)
        self.edge_feat_dims = tuple(int(v) for v in self.edge_feat_dims)
        for name in ("num_tasks", "hidden_dim", "num_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not self.node_feat_dims or min(self.node_feat_dims) < 1:
            raise ValueError(f"node_feat_dims must be non-empty positive vocab sizes, got {self.node_feat_dims!r}")
        if not self.edge_feat_dims or min(self.edge_feat_dims) < 1:
            raise ValueError(f"edge_feat_dims must be non-empty positive vocab sizes, got {self.edge_feat_dims!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


@dataclass
class RWSEConfig(MPNNConfig):
    """Config of ``gine-rwse``: :class:`MPNNConfig` plus

    Args:
        rwse_steps: k, the number of random-walk steps (RWSE dimension).
        rwse_encoder: ``"linear"`` or ``"mlp"`` (Linear-ReLU-Linear) from the k-dim RWSE to D, added to the node
            embedding.
    """

    rwse_steps: int = 16
    rwse_encoder: str = "mlp"

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.rwse_steps, int) or self.rwse_steps < 1:
            raise ValueError(f"rwse_steps must be a positive int, got {self.rwse_steps!r}")
        if self.rwse_encoder not in ("linear", "mlp"):
            raise ValueError(f"rwse_encoder must be 'linear' or 'mlp', got {self.rwse_encoder!r}")


@dataclass
class SubgraphConfig(MPNNConfig):
    """Config of ``ds-gnn`` / ``dss-gnn``: :class:`MPNNConfig` plus

    Args:
        policy: subgraph policy, one of ``"node_marked"``, ``"node_deleted"``, ``"ego"``, ``"ego_plus"``.
        ego_radius: ego-net radius (``ego`` / ``ego_plus``).
        subgraph_readout: aggregation of subgraph embeddings into the graph embedding (DeepSets), ``"mean"``
            (ESAN's choice) or ``"sum"``.
        cross_aggregation: ``dss-gnn`` only: aggregation of the copies of each original node across subgraphs,
            ``"mean"`` (ESAN) or ``"sum"``.
    """

    policy: str = "node_marked"
    ego_radius: int = 2
    subgraph_readout: str = "mean"
    cross_aggregation: str = "mean"

    def validate(self) -> None:
        super().validate()
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if not isinstance(self.ego_radius, int) or self.ego_radius < 0:
            raise ValueError(f"ego_radius must be an int >= 0, got {self.ego_radius!r}")
        if self.subgraph_readout not in READOUTS:
            raise ValueError(f"subgraph_readout must be one of {READOUTS}, got {self.subgraph_readout!r}")
        if self.cross_aggregation not in READOUTS:
            raise ValueError(f"cross_aggregation must be one of {READOUTS}, got {self.cross_aggregation!r}")


# ----------------------------------------------------------------------------------------------- building blocks


def _mlp(dim: int, norm: str) -> nn.Sequential:
    """GIN's update MLP: Linear - norm - ReLU - Linear."""
    return nn.Sequential(nn.Linear(dim, dim), _norm(norm, dim), nn.ReLU(), nn.Linear(dim, dim))


def _norm(norm: str, dim: int) -> nn.Module:
    return {"batch": lambda: nn.BatchNorm1d(dim), "layer": lambda: nn.LayerNorm(dim),
            "none": nn.Identity}[norm]()


def _head(dim: int, num_tasks: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, num_tasks))


def _segment_reduce(index: Tensor, src: Tensor, num: int, op: str) -> Tensor:
    """Sum or mean of rows of ``src`` grouped by ``index`` into ``num`` rows (empty groups give zeros)."""
    out = src.new_zeros(num, src.shape[1]).index_add_(0, index, src)
    if op == "mean":
        count = torch.bincount(index, minlength=num).clamp_(min=1).to(src.dtype)
        out = out / count.unsqueeze(1)
    return out


class GINEBlock(nn.Module):
    """One residual layer ``h <- h + dropout(relu(norm(conv(h, e))))`` around ``dgl.nn.GINEConv`` (or ``GINConv``
    when ``edges=False``), with its own bond encoder."""

    def __init__(self, dim: int, edge_feat_dims: tuple | None, norm: str, dropout: float, residual: bool):
        super().__init__()
        self.edge_encoder = CategoricalEncoder(edge_feat_dims, dim) if edge_feat_dims else None
        self.conv = GINEConv(_mlp(dim, norm), learn_eps=True) if edge_feat_dims else \
            GINConv(_mlp(dim, norm), aggregator_type="sum", learn_eps=True)
        self.norm = _norm(norm, dim)
        self.dropout = nn.Dropout(dropout)
        self.residual = residual

    def conv_out(self, g: dgl.DGLGraph, h: Tensor, e: Tensor | None) -> Tensor:
        """Normalised convolution output (before activation)."""
        if self.edge_encoder is None:
            return self.norm(self.conv(g, h))
        return self.norm(self.conv(g, h, self.edge_encoder(e)))

    def finish(self, h: Tensor, out: Tensor) -> Tensor:
        out = self.dropout(torch.relu(out))
        return h + out if self.residual else out

    def forward(self, g: dgl.DGLGraph, h: Tensor, e: Tensor | None = None) -> Tensor:
        return self.finish(h, self.conv_out(g, h, e))


def _inputs(g: dgl.DGLGraph, node_feat: Tensor | None, edge_feat: Tensor | None) -> tuple[Tensor, Tensor]:
    if node_feat is None:
        node_feat = constant_node_feat(g)
    if edge_feat is None:
        edge_feat = torch.zeros(g.num_edges(), dtype=torch.long, device=g.device)
    return node_feat, edge_feat


# ----------------------------------------------------------------------------------------------- MPNNs


@register_arch("gine", MPNNConfig)
class GINE(GraphModel):
    """GINE (Hu et al. 2020): residual ``dgl.nn.GINEConv`` layers with per-layer bond encoders."""

    use_edges = True

    def __init__(self, config: MPNNConfig):
        super().__init__()
        self.config = c = config
        self.node_encoder = CategoricalEncoder(c.node_feat_dims, c.hidden_dim)
        edims = c.edge_feat_dims if self.use_edges else None
        self.layers = nn.ModuleList(GINEBlock(c.hidden_dim, edims, c.norm, c.dropout, c.residual)
                                    for _ in range(c.num_layers))
        self.head = _head(c.hidden_dim, c.num_tasks)

    def node_input(self, g: dgl.DGLGraph, node_feat: Tensor) -> Tensor:
        return self.node_encoder(node_feat)

    def node_embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None,
                   edge_feat: Tensor | None = None) -> Tensor:
        node_feat, edge_feat = _inputs(g, node_feat, edge_feat)
        h = self.node_input(g, node_feat)
        for layer in self.layers:
            h = layer(g, h, edge_feat)
        return h

    def embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        return readout(g, self.node_embed(g, node_feat, edge_feat), self.config.readout)


@register_arch("gin", MPNNConfig)
class GIN(GINE):
    """GIN (Xu et al. 2019): residual ``dgl.nn.GINConv`` layers; edge features are ignored."""

    use_edges = False


def rwse(g: dgl.DGLGraph, steps: int) -> Tensor:
    """Random-walk structural encoding ``(N, steps)``, float32, equal to ``dgl.random_walk_pe(g, steps)`` graph by
    graph, computed for the whole batch at once on the padded transition matrices ``(B, n_max, n_max)``.

    Like DGL: ``P = D_out^{-1} A`` with parallel edges counted, rows of sink nodes stay zero.
    """
    dev = g.device
    nn_ = g.batch_num_nodes()
    if g.num_nodes() == 0:
        return torch.zeros(0, steps, device=dev)
    graph_of = torch.repeat_interleave(torch.arange(g.batch_size, device=dev), nn_)
    local = torch.arange(g.num_nodes(), device=dev) - (torch.cumsum(nn_, 0) - nn_)[graph_of]
    B, n_max = g.batch_size, int(nn_.max())
    src, dst = g.edges()
    P = torch.zeros(B, n_max, n_max, dtype=torch.float64, device=dev)
    P.index_put_((graph_of[src], local[src], local[dst]), torch.ones(len(src), dtype=torch.float64, device=dev),
                 accumulate=True)
    P = P / (P.sum(2, keepdim=True) + 1e-30)
    out, power = [], P
    for step in range(steps):
        if step:
            power = torch.bmm(power, P)
        out.append(power.diagonal(dim1=1, dim2=2))
    pe = torch.stack(out, -1)                     # (B, n_max, steps)
    return pe[graph_of, local].float()


@register_arch("gine-rwse", RWSEConfig)
class GINERWSE(GINE):
    """GINE with random-walk structural encodings added to the input node embedding."""

    def __init__(self, config: RWSEConfig):
        super().__init__(config)
        k, d = config.rwse_steps, config.hidden_dim
        self.rwse_encoder = nn.Linear(k, d) if config.rwse_encoder == "linear" else \
            nn.Sequential(nn.Linear(k, d), nn.ReLU(), nn.Linear(d, d))

    def node_input(self, g: dgl.DGLGraph, node_feat: Tensor) -> Tensor:
        pe = rwse(g, self.config.rwse_steps).to(self.node_encoder.embeddings[0].weight.dtype)
        return self.node_encoder(node_feat) + self.rwse_encoder(pe)


# ----------------------------------------------------------------------------------------------- subgraph GNNs


class _SubgraphGNN(GraphModel):
    """Shared parts of DS-/DSS-GNN: bag construction, input encoding (plus a root-mark embedding), invariant
    readout (nodes -> subgraphs -> per-subgraph MLP -> DeepSets aggregation over each graph's subgraphs)."""

    def __init__(self, config: SubgraphConfig):
        super().__init__()
        self.config = c = config
        d = c.hidden_dim
        self.node_encoder = CategoricalEncoder(c.node_feat_dims, d)
        self.mark_embedding = nn.Embedding(2, d) if MARKED[c.policy] else None
        self.layers = nn.ModuleList(GINEBlock(d, c.edge_feat_dims, c.norm, c.dropout, c.residual)
                                    for _ in range(c.num_layers))
        self.subgraph_mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.head = _head(d, c.num_tasks)

    def bag(self, g: dgl.DGLGraph) -> dgl.DGLGraph:
        return subgraph_bag(g, self.config.policy, self.config.ego_radius)

    def embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        c = self.config
        node_feat, edge_feat = _inputs(g, node_feat, edge_feat)
        bag = self.bag(g)
        h = self.node_encoder(node_feat[bag.ndata["orig_node_id"]])
        if self.mark_embedding is not None:
            h = h + self.mark_embedding(bag.ndata["is_root"])
        h = self.message_passing(g, bag, h, edge_feat)
        num_sub = g.num_nodes()
        h_sub = _segment_reduce(bag.ndata["subgraph_id"], h, num_sub, c.readout)       # (S, D)
        h_sub = self.subgraph_mlp(h_sub)
        graph_of = torch.repeat_interleave(torch.arange(g.batch_size, device=g.device), g.batch_num_nodes())
        return _segment_reduce(graph_of, h_sub, g.batch_size, c.subgraph_readout)       # (B, D)

    def message_passing(self, g, bag, h, edge_feat):
        raise NotImplementedError


@register_arch("ds-gnn", SubgraphConfig)
class DSGNN(_SubgraphGNN):
    """DS-GNN (ESAN): a Siamese GINE over the bag of subgraphs, then DeepSets over subgraph embeddings."""

    def message_passing(self, g, bag, h, edge_feat):
        e_bag = edge_feat[bag.edata["orig_edge_id"]]
        for layer in self.layers:
            h = layer(bag, h, e_bag)
        return h


@register_arch("dss-gnn", SubgraphConfig)
class DSSGNN(_SubgraphGNN):
    """DSS-GNN (ESAN): every layer adds a GINE on the original graph over the cross-subgraph aggregate of each
    node's copies, broadcast back to the copies."""

    def __init__(self, config: SubgraphConfig):
        super().__init__(config)
        c = config
        self.cross_layers = nn.ModuleList(GINEBlock(c.hidden_dim, c.edge_feat_dims, c.norm, c.dropout, c.residual)
                                          for _ in range(c.num_layers))

    def message_passing(self, g, bag, h, edge_feat):
        e_bag = edge_feat[bag.edata["orig_edge_id"]]
        orig = bag.ndata["orig_node_id"]
        for layer, cross in zip(self.layers, self.cross_layers):
            agg = _segment_reduce(orig, h, g.num_nodes(), self.config.cross_aggregation)   # (N, D)
            out = layer.conv_out(bag, h, e_bag) + cross.conv_out(g, agg, edge_feat)[orig]
            h = layer.finish(h, out)
        return h
