"""Baselines for HOD-GNN, built with the same encoders, readout, head and registry: MPNNs and subgraph GNNs.

Registered architectures (``dgl_hod.create_model(name, **config)``):

- ``gin``: GIN (``dgl.nn.GINConv``), node features only.
- ``gine``: GINE (``dgl.nn.GINEConv``) with categorical bond features (one edge encoder shared by the layers).
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

For fair comparisons everything around the message passing is HOD-GNN's: ``CategoricalEncoder`` node/edge
encoders (config keys ``node_vocab`` / ``edge_vocab``; ``edge_vocab=None`` gives GIN messages), the residual layer
of its downstream GNN ``h <- h + dropout(act(norm(GINEConv_MLP(h, e))))`` with MLP ``Linear - act - Linear``, the
node readout ``readout`` (sum/mean) and the head ``Linear - act - Dropout - Linear``.  ``embed`` returns ``(B, D)``
graph embeddings, ``forward`` ``(B, num_tasks)``.  ``node_feat=None`` means featureless graphs and is
accepted only by models whose node vocabulary is ``(1,)``; a model with an edge vocabulary refuses
``edge_feat=None`` (:meth:`~dgl_hod.archs.base.GraphModel.encode_inputs`): encoding missing features as id 0 would
predict for another molecule.

Normalisation: ``norm="batch"`` (default; BatchNorm1d over the nodes of the mini-batch -- or of the bag -- as in
ESAN and the standard ZINC GIN/GINE set-ups; it couples the graphs of a batch in training mode only, and stays
invariant to node permutations either way), ``"layer"`` (LayerNorm per node) or ``"none"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import torch
from torch import Tensor, nn

from ..nn.common import NORMS, dense_adjacency, graph_ids, local_ids, mlp, segment_reduce, task_head
from ..nn.downstream import ResidualGINELayer
from ..nn.encoders import CategoricalEncoder
from ..nn.subgraphs import POLICIES, get_policy, subgraph_bag
from .base import READOUTS, GraphConfig, GraphModel, readout
from .registry import register_arch

__all__ = ["DSGNN", "DSSGNN", "GIN", "GINE", "GINERWSE", "rwse"]

ACTIVATIONS = ("silu", "relu")  # the activations the baselines accept (of dgl_hod.nn.common.ACTIVATIONS)


# ----------------------------------------------------------------------------------------------- configs


@dataclass
class MPNNConfig(GraphConfig):
    """Config of ``gin`` / ``gine`` (key names and defaults as ``hod-gnn``'s where they mean the same thing).

    Args:
        node_vocab: vocabulary size per categorical node-feature column (``get_info(ds).node_feat_dims``;
            ``(1,)`` for featureless graphs).
        edge_vocab: same for edges; ``None``: no edge features (GIN messages). Ignored by ``gin``.
        num_tasks: output size of the head.
        hidden_dim: width D of every layer.
        num_layers: message-passing layers.
        activation: ``"silu"`` (as HOD-GNN's downstream GNN and head) or ``"relu"``.
        norm: ``"batch"``, ``"layer"`` or ``"none"`` after every convolution.
        readout: node -> graph readout, ``"sum"`` or ``"mean"``.
        dropout: dropout on every residual branch and in the head.
    """

    num_layers: int = 4
    activation: str = "silu"
    norm: str = "batch"
    readout: str = "sum"
    dropout: float = 0.0

    def validate(self) -> None:
        self.check_int("num_tasks", "hidden_dim", "num_layers")
        self.check_vocabs()
        self.check_choices((("activation", ACTIVATIONS), ("norm", NORMS), ("readout", READOUTS)))
        self.check_dropout()


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
        self.check_int("rwse_steps")
        self.check_choices((("rwse_encoder", ("linear", "mlp")),))


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
        self.check_int("ego_radius", minimum=0)
        self.check_choices((("policy", POLICIES), ("subgraph_readout", READOUTS), ("cross_aggregation", READOUTS)))


# ----------------------------------------------------------------------------------------------- building blocks


class _Encoders(GraphModel):
    """Node encoder, shared edge encoder (``None`` without edge vocabulary or when ``use_edges`` is false), head."""

    use_edges = True
    config: MPNNConfig

    def _build_io(self, c: MPNNConfig) -> None:
        self.config = c
        self.node_encoder = CategoricalEncoder(c.node_vocab, c.hidden_dim)
        self.edge_encoder = (
            CategoricalEncoder(c.edge_vocab, c.hidden_dim) if self.use_edges and c.edge_vocab is not None else None
        )
        self.head = task_head(c.hidden_dim, c.num_tasks, c.activation, c.dropout)  # the same head as hod-gnn

    def _blocks(self, c: MPNNConfig) -> nn.ModuleList:
        return nn.ModuleList(
            ResidualGINELayer(c.hidden_dim, self.edge_encoder is not None, c.activation, c.norm, c.dropout)
            for _ in range(c.num_layers)
        )


# ----------------------------------------------------------------------------------------------- MPNNs


@register_arch("gine", MPNNConfig)
class GINE(_Encoders):
    """GINE (Hu et al. 2020): residual ``dgl.nn.GINEConv`` layers over encoded bond features."""

    def __init__(self, config: MPNNConfig):
        super().__init__()
        self._build_io(config)
        self.layers = self._blocks(config)

    def node_input(self, g: dgl.DGLGraph, x: Tensor) -> Tensor:
        return x

    def node_embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        x, e = self.encode_inputs(g, node_feat, edge_feat)
        h = self.node_input(g, x)
        for layer in self.layers:
            h = layer(g, h, e)
        return h

    def embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        return readout(g, self.node_embed(g, node_feat, edge_feat), self.config.readout)


@register_arch("gin", MPNNConfig)
class GIN(GINE):
    """GIN (Xu et al. 2019): residual ``dgl.nn.GINConv`` layers; edge features are ignored."""

    use_edges = False


def rwse(g: dgl.DGLGraph, steps: int) -> Tensor:
    r"""Random-walk structural encoding ``(N, steps)``, float32, equal to ``dgl.random_walk_pe(g, steps)`` graph by
    graph: :math:`\mathrm{RWSE}_v = (P_{vv}, (P^2)_{vv}, \dots, (P^k)_{vv})`.

    Computed for the whole batch at once on the padded transition matrices ``(B, n_max, n_max)`` (float64, one
    ``bmm`` per step; ``dgl.random_walk_pe`` on a batch would build one dense ``N x N`` matrix).  Not cached: training
    batches are reshuffled every epoch, so a per-batch cache would rarely hit (timings: ``docs/baselines.md``).
    Like DGL: ``P = D_out^{-1} A`` with parallel edges counted; rows of sink nodes stay zero.

    Example:
        >>> rwse(dgl.graph(([0, 1, 1, 2], [1, 0, 2, 1])), 2)[:, 1].tolist()  # return probability after 2 steps
        [0.5, 1.0, 0.5]
    """
    if g.num_nodes() == 0:
        return torch.zeros(0, steps, device=g.device)
    P = dense_adjacency(g, torch.float64)
    P = P / (P.sum(2, keepdim=True) + 1e-30)
    out, power = [], P
    for step in range(steps):
        if step:
            power = torch.bmm(power, P)
        out.append(power.diagonal(dim1=1, dim2=2))
    pe = torch.stack(out, -1)  # (B, n_max, steps)
    return pe[graph_ids(g), local_ids(g)].float()


@register_arch("gine-rwse", RWSEConfig)
class GINERWSE(GINE):
    """GINE with an encoding of the random-walk structural encoding added to the input node embedding."""

    config: RWSEConfig

    def __init__(self, config: RWSEConfig):
        super().__init__(config)
        k, d = config.rwse_steps, config.hidden_dim
        self.rwse_encoder = nn.Linear(k, d) if config.rwse_encoder == "linear" else mlp(k, d, d, config.activation)

    def node_input(self, g: dgl.DGLGraph, x: Tensor) -> Tensor:
        return x + self.rwse_encoder(rwse(g, self.config.rwse_steps).to(x.dtype))


# ----------------------------------------------------------------------------------------------- subgraph GNNs


class _SubgraphGNN(_Encoders):
    """Shared parts of DS-/DSS-GNN: bag construction, input encoding (plus a root-mark embedding for marking
    policies), invariant readout (nodes -> subgraphs -> per-subgraph MLP -> DeepSets aggregation over each graph's
    subgraphs).
    """

    config: SubgraphConfig

    def __init__(self, config: SubgraphConfig):
        super().__init__()
        self._build_io(config)
        d = config.hidden_dim
        self.mark_embedding = nn.Embedding(2, d) if get_policy(config.policy).marks_root else None
        self.layers = self._blocks(config)
        self.subgraph_mlp = mlp(d, d, d, config.activation)

    def bag(self, g: dgl.DGLGraph) -> dgl.DGLGraph:
        """The bag of subgraphs of ``g`` under the configured policy (:func:`dgl_hod.nn.subgraphs.subgraph_bag`)."""
        return subgraph_bag(g, self.config.policy, self.config.ego_radius)

    def subgraph_embed(
        self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None
    ) -> Tensor:
        """Subgraph embeddings ``(N, D)``: row ``s`` is the subgraph rooted at node ``s`` of ``g``."""
        x, e = self.encode_inputs(g, node_feat, edge_feat)
        bag = self.bag(g)
        h = x[bag.ndata["orig_node_id"]]
        if self.mark_embedding is not None:
            h = h + self.mark_embedding(bag.ndata["is_root"])
        e_bag = e[bag.edata["orig_edge_id"]] if e is not None else None
        h = self.message_passing(g, bag, h, e, e_bag)
        h_sub = segment_reduce(h, bag.ndata["subgraph_id"], g.num_nodes(), self.config.readout)
        return self.subgraph_mlp(h_sub)

    def embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        h_sub = self.subgraph_embed(g, node_feat, edge_feat)
        return segment_reduce(h_sub, graph_ids(g), g.batch_size, self.config.subgraph_readout)

    def message_passing(self, g, bag, h, e, e_bag):
        raise NotImplementedError


@register_arch("ds-gnn", SubgraphConfig)
class DSGNN(_SubgraphGNN):
    """DS-GNN (ESAN): a Siamese GINE over the bag of subgraphs, then DeepSets over subgraph embeddings."""

    def message_passing(self, g, bag, h, e, e_bag):
        for layer in self.layers:
            h = layer(bag, h, e_bag)
        return h


@register_arch("dss-gnn", SubgraphConfig)
class DSSGNN(_SubgraphGNN):
    """DSS-GNN (ESAN): every layer adds a GINE on the original graph over the cross-subgraph aggregate of each
    node's copies, broadcast back to the copies.
    """

    def __init__(self, config: SubgraphConfig):
        super().__init__(config)
        self.cross_layers = self._blocks(config)

    def message_passing(self, g, bag, h, e, e_bag):
        orig = bag.ndata["orig_node_id"]
        for layer, cross in zip(self.layers, self.cross_layers):
            agg = segment_reduce(h, orig, g.num_nodes(), self.config.cross_aggregation)  # (N, D)
            out = layer.conv_out(bag, h, e_bag) + cross.conv_out(g, agg, e)[orig]
            h = layer.finish(h, out)
        return h
