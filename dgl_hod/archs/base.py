"""The contract shared by every architecture of the zoo (HOD-GNN and the baselines)."""
from __future__ import annotations

import dataclasses

import dgl
import torch
from torch import Tensor, nn

__all__ = ["GraphModel", "constant_node_feat", "readout"]

READOUTS = ("sum", "mean")


def readout(g: dgl.DGLGraph, h: Tensor, op: str) -> Tensor:
    """Graph embeddings ``(B, D)`` from node embeddings ``(N, D)`` (sum or mean over each graph's nodes)."""
    if op not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {op!r}")
    with g.local_scope():
        g.ndata["_h"] = h
        return dgl.readout_nodes(g, "_h", op=op)


def constant_node_feat(g: dgl.DGLGraph) -> Tensor:
    """The constant-feature convention for featureless graphs: category id 0 for every node (vocab size 1)."""
    return torch.zeros(g.num_nodes(), dtype=torch.long, device=g.device)


class GraphModel(nn.Module):
    """Base class: ``forward(g, node_feat, edge_feat=None) -> (B, num_tasks)`` and ``embed(...) -> (B, D)``.

    Subclasses set ``self.config`` (their config dataclass) and ``self.head`` (the task head, whose parameters are
    named ``head.*``: the zoo drops exactly those when ``num_tasks`` changes), and implement :meth:`embed`.
    ``node_feat=None`` means featureless graphs (:func:`constant_node_feat`).
    """

    head: nn.Module
    config: object

    def embed(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, g: dgl.DGLGraph, node_feat: Tensor | None = None, edge_feat: Tensor | None = None) -> Tensor:
        return self.head(self.embed(g, node_feat, edge_feat))

    def reset_parameters(self) -> None:
        """Re-initialise every submodule once: the outermost ``reset_parameters`` of each branch wins (so a
        module's own special init, e.g. BaseMPNN's ``rwse``, is not undone by its children's defaults)."""
        def visit(module: nn.Module) -> None:
            for child in module.children():
                if hasattr(child, "reset_parameters"):
                    child.reset_parameters()
                else:
                    visit(child)
        visit(self)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)
