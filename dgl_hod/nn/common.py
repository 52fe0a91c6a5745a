r"""Small building blocks shared by every model: activation and norm tables, segment reductions, node positions.

One copy of each, so that an activation name, a norm name or "the graph of each node" means the same thing in the
base MPNN, the derivative encoders, the downstream GNN and the baselines.

Example:
    >>> import dgl, torch
    >>> g = dgl.batch([dgl.graph(([0], [1])), dgl.graph(([], []), num_nodes=3)])
    >>> graph_ids(g).tolist(), local_ids(g).tolist()
    ([0, 0, 1, 1, 1], [0, 1, 0, 1, 2])
    >>> segment_reduce(torch.ones(5, 2), graph_ids(g), 3, "sum").tolist()
    [[2.0, 2.0], [3.0, 3.0], [0.0, 0.0]]
"""

from __future__ import annotations

import dgl
import torch
from torch import Tensor, nn

from ..utils import did_you_mean

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "REDUCTIONS",
    "activation",
    "dense_adjacency",
    "graph_ids",
    "local_ids",
    "mlp",
    "norm_layer",
    "segment_ids",
    "segment_positions",
    "segment_reduce",
    "task_head",
]

#: activation name -> ``torch.nn`` module class (the names :func:`activation` accepts)
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

#: per-node normalisations after a convolution: BatchNorm1d over the nodes of the mini-batch, LayerNorm, none
NORMS = ("batch", "layer", "none")

#: segment reductions of :func:`segment_reduce`
REDUCTIONS = ("sum", "mean")


def activation(name: str) -> nn.Module:
    """A new activation module called ``name`` (a key of :data:`ACTIVATIONS`).

    Raises:
        ValueError: for an unknown name, listing the choices.

    Example:
        >>> activation("silu")
        SiLU()
    """
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}.{did_you_mean(str(name), ACTIVATIONS)} Choose one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


def mlp(in_dim: int, hidden_dim: int, out_dim: int, activation_name: str = "silu") -> nn.Sequential:
    """The two-layer MLP used throughout: ``Linear(in, hidden) - act - Linear(hidden, out)``.

    Example:
        >>> mlp(4, 8, 2)
        Sequential(
          (0): Linear(in_features=4, out_features=8, bias=True)
          (1): SiLU()
          (2): Linear(in_features=8, out_features=2, bias=True)
        )
    """
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), activation(activation_name), nn.Linear(hidden_dim, out_dim))


def task_head(dim: int, num_tasks: int, activation_name: str = "silu", dropout: float = 0.0) -> nn.Sequential:
    """The task head of every model: ``Linear(D, D) - act - Dropout - Linear(D, num_tasks)`` (``(B, D) -> (B, T)``).

    Its parameters are ``head.0.*`` and ``head.3.*`` when stored as ``model.head`` (the zoo replaces exactly
    ``head.*`` for a new task).
    """
    return nn.Sequential(
        nn.Linear(dim, dim), activation(activation_name), nn.Dropout(dropout), nn.Linear(dim, num_tasks)
    )


def norm_layer(kind: str, dim: int) -> nn.Module:
    """``"batch"`` -> ``BatchNorm1d(dim)``, ``"layer"`` -> ``LayerNorm(dim)``, ``"none"`` -> ``Identity()``.

    BatchNorm uses batch statistics only in training mode, so in eval mode a model is a per-node function (a graph's
    output does not depend on the other graphs of its batch).

    Example:
        >>> norm_layer("layer", 4)
        LayerNorm((4,), eps=1e-05, elementwise_affine=True)
    """
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}.{did_you_mean(str(kind), NORMS)} Choose one of {NORMS}")


def segment_reduce(src: Tensor, index: Tensor, num: int, op: str = "sum") -> Tensor:
    r"""Rows of ``src`` summed (or averaged) by group: ``out[i] = op_{r : index[r] = i} src[r]``.

    Shapes: ``src`` ``(M, D)``, ``index`` ``(M,)`` int64 in ``[0, num)`` (any order) -> ``(num, D)``; empty groups
    give zeros (also for ``"mean"``).

    Example:
        >>> segment_reduce(torch.tensor([[1.0], [3.0], [5.0]]), torch.tensor([0, 0, 2]), 3, "mean").tolist()
        [[2.0], [0.0], [5.0]]
    """
    if op not in REDUCTIONS:
        raise ValueError(f"segment reduction must be one of {REDUCTIONS}, got {op!r}")
    out = src.new_zeros(num, *src.shape[1:]).index_add_(0, index, src)
    if op == "mean":
        count = torch.bincount(index, minlength=num).clamp_(min=1).to(src.dtype)
        out = out / count.view(-1, *([1] * (src.dim() - 1)))
    return out


def segment_ids(counts: Tensor) -> Tensor:
    """Segment id of every position for consecutive segments of sizes ``counts``: ``[0]*c0 + [1]*c1 + ...``.

    Example:
        >>> segment_ids(torch.tensor([2, 0, 1])).tolist()
        [0, 0, 2]
    """
    return torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)


def segment_positions(counts: Tensor) -> tuple[Tensor, Tensor]:
    """(segment id, position within its segment) of every position, for consecutive segments of sizes ``counts``.

    Example:
        >>> [t.tolist() for t in segment_positions(torch.tensor([2, 0, 3]))]
        [[0, 0, 2, 2, 2], [0, 1, 0, 1, 2]]
    """
    seg = segment_ids(counts)
    starts = torch.cumsum(counts, 0) - counts
    return seg, torch.arange(len(seg), device=counts.device) - starts[seg]


def graph_ids(g: dgl.DGLGraph) -> Tensor:
    """``(N,)`` the graph (position in the batch) of each node of a batched graph."""
    return segment_ids(g.batch_num_nodes())


def local_ids(g: dgl.DGLGraph) -> Tensor:
    """``(N,)`` the position of each node within its own graph of a batched graph."""
    return segment_positions(g.batch_num_nodes())[1]


def dense_adjacency(g: dgl.DGLGraph, dtype: torch.dtype = torch.float32) -> Tensor:
    """Per-graph adjacency matrices padded to the largest graph: ``A[b, i, j]`` = number of edges ``i -> j`` of graph
    ``b`` (local node ids; parallel edges counted, self-loops on the diagonal).

    Shape ``(B, n_max, n_max)``; ``n_max = 0`` when the batch has no nodes.

    Example:
        >>> g = dgl.batch([dgl.graph(([0, 0], [1, 1])), dgl.graph(([0], [0]))])
        >>> dense_adjacency(g).tolist()
        [[[0.0, 2.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]]
    """
    counts = g.batch_num_nodes()
    n_max = int(counts.max()) if g.num_nodes() else 0
    graph_of, local = segment_positions(counts)
    src, dst = g.edges()
    adj = torch.zeros(g.batch_size, n_max, n_max, dtype=dtype, device=g.device)
    ones = torch.ones(len(src), dtype=dtype, device=g.device)
    return adj.index_put_((graph_of[src], local[src], local[dst]), ones, accumulate=True)
