"""The engine's known-zero skipping (jets.Jet.zero / marked_input) changes speed only: the jets of the base MPNN
equal those of the same pass with every component computed in full (the pre-skipping engine)."""

from __future__ import annotations

import dgl
import pytest
import torch

from dgl_hod import jets as J
from dgl_hod.nn.base_mpnn import BaseMPNN
from dgl_hod.nn.layouts import DenseLayout, SparseLayout


def _full_pass(base: BaseMPNN, g: dgl.DGLGraph, x: torch.Tensor, e: torch.Tensor, sel: J.Selection, mode: str):
    """Reference: the input jet with real zero tensors and no known-zero flags, through the same layers."""
    layout = DenseLayout(g) if mode == "dense" else SparseLayout(g, base.num_layers, sel.levels)
    first = layout.init_marks(base.mark_directions.to(x.dtype))
    comps = {a: first if a == (1,) else layout.zeros(len(a), first) for a in sel.patterns}
    jet = J.Jet(x, comps, layout)
    for layer in base.layers:
        jet = layer.forward_jet(g, jet, e)
    return jet


@pytest.mark.parametrize(("mode", "k", "m"), [("sparse", 2, 2), ("sparse", 3, 1), ("dense", 2, 2), ("sparse", 1, 3)])
def test_known_zero_skipping_gives_the_full_jets(mode: str, k: int, m: int) -> None:
    torch.manual_seed(0)
    g = dgl.batch([dgl.graph(([0, 1, 2, 3, 1], [1, 2, 3, 0, 3])), dgl.graph(([0, 1, 2], [1, 2, 0]))])
    g = dgl.add_reverse_edges(g)
    x = torch.randn(g.num_nodes(), 6, dtype=torch.float64)
    e = torch.randn(g.num_edges(), 6, dtype=torch.float64)
    base = BaseMPNN(6, 5, 3, edge_dim=6, activation="silu", num_marks=2).double()
    got = base.jets(g, x, e, k=k, m=m, mode=mode)
    ref = _full_pass(base, g, x, e, got.selection, mode)
    torch.testing.assert_close(got.h, ref.value, rtol=0, atol=0)
    assert set(got.components) == set(ref.comps)
    for alpha, comp in got.components.items():
        assert ref.comps[alpha].abs().max() > 0  # every component is really computed (not a trivial zero)
        torch.testing.assert_close(comp, ref.comps[alpha], rtol=1e-12, atol=1e-14)


def test_first_layer_skips_the_level2_work_of_the_marked_input() -> None:
    g = dgl.add_reverse_edges(dgl.graph(([0, 1, 2], [1, 2, 3])))
    layout = SparseLayout(g, 2, 2)
    x = torch.randn(4, 3)
    first = layout.init_marks(torch.randn(1, 3))
    sel = J.Selection(2, 1)
    comps = {a: first if a == (1,) else layout.zeros(len(a), first) for a in sel.patterns}
    jet = J.Jet(x, comps, layout, zero=frozenset({(1, 1)}), marked_input=True)
    agg = J.aggregate_activated_messages(jet, torch.randn(g.num_edges(), 3), "silu")
    assert agg.zero == frozenset({(1, 1)})  # the marked input gives no level-2 messages
    assert agg.comps[(1, 1)].shape == comps[(1, 1)].shape and not agg.comps[(1, 1)].any()
