"""Subgraph selection policies (ESAN, Bevilacqua et al. ICLR 2022) as vectorised DGL graph transforms.

A policy maps every graph ``G`` of a (batched) graph to a *bag* of subgraphs, one per root node ``r`` of ``G``:

=================  =====================================================  ============
policy             nodes of the subgraph of root ``r``                    root marked
=================  =====================================================  ============
``node_marked``    all nodes of ``G`` (a full copy)                       yes
``node_deleted``   all nodes of ``G`` except ``r`` (``G - r``)            --
``ego``            nodes at distance <= ``radius`` from ``r``             no
``ego_plus``       same as ``ego``                                        yes
=================  =====================================================  ============

Each subgraph is the *induced* subgraph on its node set (edge features follow through ``orig_edge_id``).
Difference to ESAN's reference code (PyG): ESAN keeps the deleted node / the nodes outside the ego-net as isolated
nodes of every subgraph; here they are dropped, which gives smaller bags and the textbook definitions (an isolated
copy of ``v`` only ever sees its own input features, so it adds a per-graph bag-of-features term and no structure).

The whole mini-batch becomes **one** batched DGL graph, the *bag*, whose components are the subgraphs, in order of
their root's global node id (so subgraph ``s`` is rooted at node ``s`` of the input batch; components may be empty,
e.g. ``node_deleted`` on a one-node graph).  Its fields:

- ``bag.ndata["subgraph_id"]`` (int64): the subgraph (= root node id in the input batch) of each bag node;
- ``bag.ndata["orig_node_id"]``: the input-batch node that each bag node copies;
- ``bag.ndata["orig_graph_id"]``: the input graph of each bag node;
- ``bag.ndata["is_root"]`` (int64 0/1): 1 on the root copy where the policy marks roots, 0 everywhere otherwise;
- ``bag.edata["orig_edge_id"]``: the input-batch edge that each bag edge copies (gather edge features with it);
- ``bag.batch_num_nodes()`` / ``bag.batch_num_edges()``: per-subgraph sizes (``dgl.readout_nodes`` works per
  subgraph); subgraph ``s`` belongs to input graph ``graph_ids(g)[s]`` (:func:`dgl_hod.nn.common.graph_ids`).

Construction is vectorised over the whole batch (no Python loop over nodes or graphs): candidate (root, node) and
(root, edge) pairs are enumerated with ``repeat_interleave``; ego-net membership comes from ``radius`` boolean
matrix products on the padded per-graph adjacency ``(B, n_max, n_max)``.  Bags are not cached: shuffled mini-batches
would rarely hit a per-batch cache, and building one is a small part of a DS-/DSS-GNN training step (measured in
``docs/baselines.md``).

Example:
    >>> import dgl
    >>> bag = subgraph_bag(dgl.graph(([0, 1, 1, 2], [1, 0, 2, 1])), "node_deleted")
    >>> bag.batch_num_nodes().tolist(), bag.ndata["orig_node_id"].tolist()
    ([2, 2, 2], [1, 2, 0, 2, 0, 1])
"""

from __future__ import annotations

import dgl
import torch
from dgl.transforms import BaseTransform
from torch import Tensor

from .common import dense_adjacency, segment_positions

__all__ = [
    "POLICIES",
    "EgoNets",
    "EgoPlus",
    "NodeDeleted",
    "NodeMarked",
    "SubgraphPolicy",
    "get_policy",
    "subgraph_bag",
]

POLICIES = ("node_marked", "node_deleted", "ego", "ego_plus")
MARKED = {"node_marked": True, "node_deleted": False, "ego": False, "ego_plus": True}


def _reachable(g: dgl.DGLGraph, radius: int) -> Tensor:
    """``(B, n_max, n_max)`` bool: node j within ``radius`` hops of node i (following edge directions), per graph."""
    adj = (dense_adjacency(g) > 0).float()
    B, n_max = adj.shape[:2]
    reach = torch.eye(n_max, dtype=adj.dtype, device=g.device).expand(B, n_max, n_max).clone()
    frontier = reach
    for _ in range(min(radius, max(n_max - 1, 0))):
        frontier = (torch.bmm(frontier, adj) > 0).float()
        new = torch.clamp(reach + frontier, max=1.0)
        if torch.equal(new, reach):
            break
        reach = new
    return reach > 0


def subgraph_bag(g: dgl.DGLGraph, policy: str = "node_marked", radius: int = 2) -> dgl.DGLGraph:
    """The bag of subgraphs of every graph in ``g`` under ``policy`` (see the module docstring for the fields).

    Args:
        g: a graph or a batch of graphs (``dgl.batch``); features are not copied -- gather them with
            ``orig_node_id`` / ``orig_edge_id``.
        policy: one of :data:`POLICIES`.
        radius: ego-net radius ``h >= 0`` (``ego`` / ``ego_plus`` only).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if policy in ("ego", "ego_plus") and (not isinstance(radius, int) or radius < 0):
        raise ValueError(f"ego radius must be an int >= 0, got {radius!r}")
    dev = g.device
    nn_, ne_ = g.batch_num_nodes(), g.batch_num_edges()
    graph_of, local = segment_positions(nn_)  # per input node
    node_off = torch.cumsum(nn_, 0) - nn_
    edge_off = torch.cumsum(ne_, 0) - ne_
    # candidate (root s, node v) pairs: every node v of the root's graph, root-major
    cand_counts = nn_[graph_of]
    p_root, p_loc = segment_positions(cand_counts)
    p_graph = graph_of[p_root]
    p_node = node_off[p_graph] + p_loc
    if policy == "node_marked":
        keep = torch.ones(len(p_root), dtype=torch.bool, device=dev)
    elif policy == "node_deleted":
        keep = p_node != p_root
    else:
        keep = _reachable(g, radius)[p_graph, local[p_root], p_loc]
    bag_index = torch.cumsum(keep.long(), 0) - 1  # candidate position -> bag node id (where kept)
    cand_start = torch.cumsum(cand_counts, 0) - cand_counts
    # candidate (root s, edge e) pairs: every edge of the root's graph
    e_root, e_loc = segment_positions(ne_[graph_of])
    e_edge = edge_off[graph_of[e_root]] + e_loc
    src, dst = g.edges()
    pos_src = cand_start[e_root] + local[src[e_edge]]
    pos_dst = cand_start[e_root] + local[dst[e_edge]]
    ekeep = keep[pos_src] & keep[pos_dst]
    bag = dgl.graph((bag_index[pos_src[ekeep]], bag_index[pos_dst[ekeep]]), num_nodes=int(keep.sum()), device=dev)
    sub_id = p_root[keep]
    bag.ndata["subgraph_id"] = sub_id
    bag.ndata["orig_node_id"] = p_node[keep]
    bag.ndata["orig_graph_id"] = p_graph[keep]
    root = (p_node[keep] == sub_id) if MARKED[policy] else torch.zeros_like(sub_id, dtype=torch.bool)
    bag.ndata["is_root"] = root.long()
    bag.edata["orig_edge_id"] = e_edge[ekeep]
    num_sub = g.num_nodes()
    bag.set_batch_num_nodes(torch.bincount(sub_id, minlength=num_sub))
    bag.set_batch_num_edges(torch.bincount(e_root[ekeep], minlength=num_sub))
    return bag


class SubgraphPolicy(BaseTransform):
    """A subgraph policy as a DGL transform: ``policy(g) -> bag`` (see :func:`subgraph_bag`)."""

    name: str = ""

    def __init__(self, radius: int = 2):
        self.radius = radius

    def __call__(self, g: dgl.DGLGraph) -> dgl.DGLGraph:
        return subgraph_bag(g, self.name, self.radius)

    @property
    def marks_root(self) -> bool:
        """Whether the policy marks the root copy (``bag.ndata["is_root"]``); DS-/DSS-GNN embed the mark."""
        return MARKED[self.name]

    def __repr__(self) -> str:
        extra = f"(radius={self.radius})" if self.name.startswith("ego") else "()"
        return type(self).__name__ + extra


class NodeMarked(SubgraphPolicy):
    name = "node_marked"


class NodeDeleted(SubgraphPolicy):
    name = "node_deleted"


class EgoNets(SubgraphPolicy):
    name = "ego"


class EgoPlus(SubgraphPolicy):
    name = "ego_plus"


def get_policy(name: str, radius: int = 2) -> SubgraphPolicy:
    cls = {c.name: c for c in (NodeMarked, NodeDeleted, EgoNets, EgoPlus)}.get(name)
    if cls is None:
        raise ValueError(f"policy must be one of {POLICIES}, got {name!r}")
    return cls(radius)
