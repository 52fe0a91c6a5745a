"""Expressivity suite: reliability protocol, counts on a few pairs, generic over any model."""

import dgl
import torch

from dgl_hod.expressivity import expressivity_counts, format_table, model_factory, pair_distinguished, permute_graph

SMALL = dict(hidden_dim=16, base_hidden_dim=8, base_layers=3, downstream_layers=1, jet_mode="sparse")


def test_permute_graph_is_an_isomorphism():
    g = dgl.graph((torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 0])), num_nodes=5)
    g.ndata["feat"] = torch.arange(5)
    perm = torch.tensor([4, 2, 0, 1, 3])
    h = permute_graph(g, perm)
    assert torch.equal(h.ndata["feat"], perm)
    src, dst = h.edges()
    assert {(int(perm[a]), int(perm[b])) for a, b in zip(src, dst)} == {(0, 1), (1, 2), (2, 3), (3, 0)}


def test_a_graph_is_never_distinguished_from_its_relabeling():
    from dgl_hod.datasets import load_dataset

    ds = load_dataset("sr25")
    torch.manual_seed(0)
    model = model_factory("hod-gnn", order=1, **SMALL)("sr25").double().eval()
    g = ds.graph(3)
    gen = torch.Generator().manual_seed(0)
    r = pair_distinguished(model, g, permute_graph(g, torch.randperm(g.num_nodes(), generator=gen)), "sr25", 3, gen)
    assert not r["distinguished"] and r["spread"] < 1e-10


def test_counts_order0_vs_order1_on_csl_and_brec_basic():
    res = {}
    for order in (0, 1):
        res[f"k{order}"] = expressivity_counts(
            model_factory("hod-gnn", order=order, **SMALL), sets=("csl", "brec"), num_perms=2, max_pairs=6
        )
    assert res["k0"]["csl"]["distinguished"] == 0 and res["k0"]["brec"]["distinguished"] == 0
    assert res["k1"]["csl"]["distinguished"] == 6  # node marking separates the CSL skip lengths
    assert res["k1"]["brec"]["per_category"]["basic"]["distinguished"] >= 5
    assert res["k1"]["csl"]["evaluated"] == 6 and res["k1"]["csl"]["total"] == 45
    table = format_table(res)
    assert "| k1 |" in table and "of 6" in table
