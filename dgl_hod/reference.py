"""Independent references for the jet engine: a pure-torch forward and derivatives by ``torch.func``.

DGL's sparse kernels are ``autograd.Function`` s without functorch support, so this module re-implements
:class:`~dgl_hod.BaseMPNN`'s forward with ``index_add`` on an edge list (a different formulation, sharing only the
parameters) and differentiates it with ``torch.func``.  Used by the tests (exactness) and the benchmarks (speed).
"""

from __future__ import annotations

import dgl
import torch
from torch import Tensor
from torch.func import jacfwd, jacrev, vmap

from .nn.base_mpnn import BaseMPNN

__all__ = ["REFERENCE_ACTIVATIONS", "reference_forward", "reference_jets"]

#: the activations written with primitive ops only (every one of them has forward- and reverse-mode AD in torch,
#: unlike e.g. ``aten::silu_backward``), independent of the closed-form derivatives in :mod:`dgl_hod.jets`
REFERENCE_ACTIVATIONS = {
    "identity": lambda y: y,
    "relu": lambda y: torch.where(y > 0, y, torch.zeros_like(y)),
    "sigmoid": lambda y: 1 / (1 + torch.exp(-y)),
    "silu": lambda y: y / (1 + torch.exp(-y)),
    "softplus": lambda y: torch.log1p(torch.exp(-y.abs())) + torch.where(y > 0, y, torch.zeros_like(y)),
    "tanh": torch.tanh,
    "gelu": lambda y: 0.5 * y * (1 + torch.erf(y / 2**0.5)),
}


def reference_forward(base: BaseMPNN, src: Tensor, dst: Tensor, x: Tensor, e: Tensor | None, marks: Tensor) -> Tensor:
    """``base(g, x, e, marks)`` in plain torch over the edge list ``src -> dst`` (functorch-compatible)."""
    n = x.shape[0]
    h = x + marks @ base.mark_directions.to(x.dtype)
    for layer in base.layers:
        act = REFERENCE_ACTIVATIONS[layer.activation]
        msg = h[src] if layer.edge_lin is None else act(h[src] + layer.edge_lin(e))
        agg = torch.zeros(n, msg.shape[1], dtype=msg.dtype, device=msg.device).index_add(0, dst, msg)
        if layer.aggregation == "mean":
            deg = torch.zeros(n, dtype=msg.dtype, device=msg.device).index_add(
                0, dst, torch.ones_like(dst, dtype=msg.dtype)
            )
            agg = agg / deg.clamp(min=1).unsqueeze(1)
        a = (1 + layer.eps) * h + agg
        h = act(layer.lin2(act(layer.lin1(a))))
    return h


def reference_jets(
    base: BaseMPNN,
    g: dgl.DGLGraph,
    x: Tensor,
    e: Tensor | None = None,
    order: int = 1,
) -> list[Tensor]:
    """``[D1, .., DK]`` of a single graph by ``torch.func`` (reverse mode once, then forward mode), shapes as
    :meth:`dgl_hod.GraphJets.dense`: ``(n, n, r, C)``, ``(n, n, n, r, C)``, ...
    """
    src, dst = g.edges()
    n, r = g.num_nodes(), base.num_marks

    def per_direction(j: Tensor) -> list[Tensor]:
        def f(m: Tensor) -> Tensor:
            return reference_forward(base, src, dst, x, e, m[:, None] * j[None, :])

        fun = jacrev(f)  # (n, C, n)
        outs = []
        for k in range(order):
            if k:
                fun = jacfwd(fun)
            outs.append(fun(torch.zeros(n, dtype=x.dtype, device=x.device)))
        # (v, C, u1, .., uk) -> (v, u1, .., uk, C)
        return [d.movedim(1, -1) for d in outs]

    eye = torch.eye(r, dtype=x.dtype, device=x.device)
    per_dir = vmap(per_direction)(eye)  # each (r, n, .., C)
    return [d.movedim(0, -2) for d in per_dir]
