r"""The downstream GNN of HOD-GNN: residual GINE (bond features) or GIN layers on the derivative-augmented features.

Each layer (DGL's :class:`dgl.nn.GINEConv` / :class:`dgl.nn.GINConv`):

.. math::
    h_v' = h_v + \mathrm{Dropout}\Big(\sigma\big(\mathrm{Norm}\big(\mathrm{MLP}\big((1 + \epsilon) h_v +
           \sum_{w \to v} \mathrm{ReLU}(h_w + e_{wv})\big)\big)\big)\Big)

(GIN: the message is :math:`h_w`).  ``Norm`` is BatchNorm (default; it uses batch statistics only in training
mode, so the model is a per-node function in eval mode), LayerNorm or none.
"""

from __future__ import annotations

import dgl
from dgl.nn import GINConv, GINEConv
from torch import Tensor, nn

__all__ = ["DownstreamGNN", "NORMS"]

NORMS = ("batch", "layer", "none")


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    return nn.Identity()


def _act(name: str) -> nn.Module:
    return {
        "silu": nn.SiLU,
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
        "softplus": nn.Softplus,
        "sigmoid": nn.Sigmoid,
        "identity": nn.Identity,
    }[name]()


class DownstreamGNN(nn.Module):
    r"""Stack of residual GINE/GIN layers (module docstring).

    Args:
        dim: node (and edge) feature width ``D``; constant through the stack.
        num_layers: number of layers (0 gives the identity).
        use_edges: GINE with edge features of width ``D`` (else GIN).
        activation: activation inside the MLPs and after the norm.
        norm: ``"batch"``, ``"layer"`` or ``"none"``.
        dropout: dropout on each residual branch.

    Shapes: ``h`` ``(N, D)``, ``e`` ``(E, D)`` -> ``(N, D)``.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        use_edges: bool = True,
        activation: str = "silu",
        norm: str = "batch",
        dropout: float = 0.0,
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.use_edges, self.dim, self.norm_kind = use_edges, dim, norm
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(num_layers):
            mlp = nn.Sequential(nn.Linear(dim, dim), _act(activation), nn.Linear(dim, dim))
            self.convs.append(GINEConv(mlp, learn_eps=True) if use_edges else GINConv(mlp, learn_eps=True))
            self.norms.append(_norm(norm, dim))
        self.act = _act(activation)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        for conv, norm in zip(self.convs, self.norms):
            for m in conv.apply_func:
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            conv.eps.data.zero_()
            if hasattr(norm, "reset_parameters"):
                norm.reset_parameters()
            if hasattr(norm, "reset_running_stats"):
                norm.reset_running_stats()

    def forward(self, g: dgl.DGLGraph, h: Tensor, e: Tensor | None = None) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            out = conv(g, h, e) if self.use_edges else conv(g, h)
            h = h + self.dropout(self.act(norm(out)))
        return h

    def extra_repr(self) -> str:
        return f"{'GINE' if self.use_edges else 'GIN'} x {len(self.convs)}, dim={self.dim}, norm={self.norm_kind}"
