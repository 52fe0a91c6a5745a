r"""The residual GINE/GIN layer, and the downstream GNN of HOD-GNN built from it.

One layer (DGL's :class:`dgl.nn.GINEConv` / :class:`dgl.nn.GINConv` with a learnable :math:`\epsilon`):

.. math::
    h_v' = h_v + \mathrm{Dropout}\Big(\sigma\big(\mathrm{Norm}\big(\mathrm{MLP}\big((1 + \epsilon) h_v +
           \sum_{w \to v} \mathrm{ReLU}(h_w + e_{wv})\big)\big)\big)\Big), \qquad
    \mathrm{MLP} = \mathrm{Linear} \to \sigma \to \mathrm{Linear}

(GIN: the message is :math:`h_w`).  ``Norm`` is BatchNorm (default; it uses batch statistics only in training
mode, so the model is a per-node function in eval mode), LayerNorm or none (:func:`~dgl_hod.nn.common.norm_layer`).
:class:`ResidualGINELayer` is that layer; HOD-GNN's :class:`DownstreamGNN` and every baseline
(:mod:`dgl_hod.archs.baselines`) stack it.

Example:
    >>> import dgl, torch
    >>> g = dgl.graph(([0, 1, 2], [1, 2, 0]))
    >>> layer = ResidualGINELayer(8, use_edges=True).eval()
    >>> layer(g, torch.randn(3, 8), torch.randn(3, 8)).shape
    torch.Size([3, 8])
"""

from __future__ import annotations

import re
from typing import Any

import dgl
from dgl.nn import GINConv, GINEConv
from torch import Tensor, nn

from .common import NORMS, mlp, norm_layer
from .common import activation as make_activation

__all__ = ["NORMS", "DownstreamGNN", "ResidualGINELayer"]


class ResidualGINELayer(nn.Module):
    r"""``h <- h + dropout(act(norm(conv(g, h, e))))`` (module docstring) with ``conv`` a GINE (GIN) convolution.

    Args:
        dim: node (and edge) feature width ``D``.
        use_edges: GINE with edge features of width ``D`` (else GIN: ``e`` is ignored).
        activation: name in :data:`~dgl_hod.nn.common.ACTIVATIONS`, used inside the MLP and after the norm.
        norm: ``"batch"``, ``"layer"`` or ``"none"``.
        dropout: dropout on the residual branch.

    Shapes: ``h`` ``(N, D)``, ``e`` ``(E, D)`` -> ``(N, D)``.

    :meth:`conv_out` and :meth:`finish` split the layer in two for layers that add other terms to the
    normalised convolution before the residual update (DSS-GNN).
    """

    def __init__(
        self, dim: int, use_edges: bool = True, activation: str = "silu", norm: str = "batch", dropout: float = 0.0
    ):
        super().__init__()
        apply_func = mlp(dim, dim, dim, activation)
        self.use_edges = use_edges
        self.conv = GINEConv(apply_func, learn_eps=True) if use_edges else GINConv(apply_func, learn_eps=True)
        self.norm = norm_layer(norm, dim)
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        """Fresh MLP weights, ``eps = 0``, fresh norm parameters and statistics."""
        for m in self.conv.apply_func:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        self.conv.eps.data.zero_()
        if hasattr(self.norm, "reset_parameters"):
            self.norm.reset_parameters()  # BatchNorm1d's also resets the running statistics

    def conv_out(self, g: dgl.DGLGraph, h: Tensor, e: Tensor | None = None) -> Tensor:
        """The normalised convolution ``norm(conv(g, h, e))`` (the residual branch before the activation)."""
        return self.norm(self.conv(g, h, e) if self.use_edges else self.conv(g, h))

    def finish(self, h: Tensor, out: Tensor) -> Tensor:
        """The residual update ``h + dropout(act(out))``."""
        return h + self.dropout(self.act(out))

    def forward(self, g: dgl.DGLGraph, h: Tensor, e: Tensor | None = None) -> Tensor:
        return self.finish(h, self.conv_out(g, h, e))


# Shipped hod-gnn weights name the layer parameters ``convs.{i}.*`` (the GINE conv) and ``norms.{i}.*`` (its norm),
# from when DownstreamGNN held two lists; ``layers.{i}.conv.*`` / ``layers.{i}.norm.*`` are the module names now.
_SAVED = re.compile(r"(convs|norms)\.(\d+)\.(.*)")
_LIVE = re.compile(r"layers\.(\d+)\.(conv|norm)\.(.*)")


class DownstreamGNN(nn.Module):
    r"""Stack of :class:`ResidualGINELayer` (module docstring): HOD-GNN's downstream GNN.

    Args:
        dim: node (and edge) feature width ``D``; constant through the stack.
        num_layers: number of layers (0 gives the identity).
        use_edges: GINE with edge features of width ``D`` (else GIN).
        activation: activation inside the MLPs and after the norm.
        norm: ``"batch"``, ``"layer"`` or ``"none"``.
        dropout: dropout on each residual branch.

    Shapes: ``h`` ``(N, D)``, ``e`` ``(E, D)`` -> ``(N, D)``.

    State dicts use the key names of the shipped weights (``convs.{i}.*``, ``norms.{i}.*``); loading accepts those
    and the module names (``layers.{i}.conv.*``, ``layers.{i}.norm.*``).
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
        self.layers = nn.ModuleList(
            ResidualGINELayer(dim, use_edges, activation, norm, dropout) for _ in range(num_layers)
        )
        self._register_state_dict_hook(_to_saved_names)
        self._register_load_state_dict_pre_hook(_from_saved_names)

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, g: dgl.DGLGraph, h: Tensor, e: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            h = layer(g, h, e)
        return h

    def extra_repr(self) -> str:
        return f"{'GINE' if self.use_edges else 'GIN'} x {len(self.layers)}, dim={self.dim}, norm={self.norm_kind}"


def _to_saved_names(module: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict hook: ``layers.{i}.conv.*`` -> ``convs.{i}.*`` and ``layers.{i}.norm.*`` -> ``norms.{i}.*``."""
    items = list(state.items())
    state.clear()
    for key, value in items:
        m = _LIVE.fullmatch(key[len(prefix) :]) if key.startswith(prefix) else None
        state[f"{prefix}{m.group(2)}s.{m.group(1)}.{m.group(3)}" if m else key] = value


def _from_saved_names(state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load pre-hook: the inverse of :func:`_to_saved_names` (keys already in module form are left as they are)."""
    for key in [k for k in state if k.startswith(prefix)]:
        m = _SAVED.fullmatch(key[len(prefix) :])
        if m:
            state[f"{prefix}layers.{m.group(2)}.{m.group(1)[:-1]}.{m.group(3)}"] = state.pop(key)
