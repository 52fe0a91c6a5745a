"""The torch.func formulations of benchmarks/bench_jets.py compute the same tensors as dgl-hod's jets.

The engine benchmark is only a comparison of equal work if every torch.func variant it times (per graph, marked
slots of the whole batch, size buckets; index_add / gather / dense-adjacency aggregation; vmapped or looped slots)
returns the per-graph derivative blocks that ``BaseMPNN.jets`` returns.  Checked in float64 on two tiny graphs
against both ``BaseMPNN.jets`` and the independent ``dgl_hod.reference.reference_jets`` (reverse then forward mode).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import dgl
import pytest
import torch

from dgl_hod import BaseMPNN
from dgl_hod.reference import reference_jets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_jets as B  # noqa: E402


def _two_graphs():
    # a 5-cycle with a chord, then a triangle with a tail (4 nodes): different sizes, so slots pad, and the
    # larger graph first, so size order and batch order differ
    g1 = dgl.graph(([0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 2]), num_nodes=5)
    g2 = dgl.graph(([0, 1, 2, 2], [1, 2, 0, 3]), num_nodes=4)
    graphs = [dgl.add_reverse_edges(g1), dgl.add_reverse_edges(g2)]
    g = dgl.batch(graphs)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(g.num_nodes(), 5, generator=gen, dtype=torch.float64)
    etype = torch.randint(0, 3, (g.num_edges(),), generator=gen)
    e = torch.nn.functional.one_hot(etype, 3).double()
    return graphs, g, x, e


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    graphs, g, x, e = _two_graphs()
    base = BaseMPNN(5, 6, 3, edge_dim=3, activation="silu", num_marks=2).double().eval()
    with torch.no_grad():
        for p in base.parameters():  # larger weights: second derivatives well above round-off
            p.mul_(2.0)
    expected = {}
    with torch.no_grad():
        for order in (1, 2):
            jets = base.jets(g, x, e, order=order, mode="dense")
            expected[order] = [jets.dense(i) for i in range(2)]
    return graphs, g, x, e, base, expected


VARIANTS = [
    dict(buckets=1, agg="index_add"),
    dict(buckets=1, agg="gather"),
    dict(buckets=1, agg="dense"),
    dict(buckets=1, agg="index_add", chunk=1),
    dict(buckets=1, agg="index_add", chunk=3),
    dict(buckets=2, agg="index_add"),
    dict(buckets="size", agg="gather"),
    dict(buckets="graph", agg="index_add"),
]


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_torch_func_formulations_match_dgl_hod_jets(setting, order, variant):
    _, g, x, e, base, expected = setting
    kw = dict(variant)
    plan = B.plan_slots(g, e, kw.pop("buckets"), order)
    with torch.no_grad():
        got = B.func_jets(base, plan, x, e, order, **kw)
    assert len(got) == 2
    for blocks, ref in zip(got, expected[order]):
        assert len(blocks) == order
        for a, b in zip(blocks, ref):
            assert a.shape == b.shape
            assert b.abs().max() > 1e-3  # not a comparison of zeros
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("act", ["sigmoid", "primitive"])
def test_marked_slots_match_the_independent_reference(setting, act):
    """Against reference_jets (jacrev then jacfwd, per graph): no code shared with dgl-hod's jet algebra."""
    graphs, g, x, e, base, _ = setting
    plan = B.plan_slots(g, e, 1, 2)
    with torch.no_grad():
        got = B.func_jets(base, plan, x, e, 2, act=act)
    n0, e0 = 0, 0
    for i, gi in enumerate(graphs):
        xi, ei = x[n0 : n0 + gi.num_nodes()], e[e0 : e0 + gi.num_edges()]
        n0, e0 = n0 + gi.num_nodes(), e0 + gi.num_edges()
        ref = reference_jets(base, gi, xi, ei, order=2)
        for a, b in zip(got[i], ref):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_first_order_activation_refuses_order_two():
    with pytest.raises(ValueError, match="first derivatives only"):
        B.activation_fn("silu", "jvp1", 2)


def test_dense_aggregation_needs_one_hot_edges(setting):
    _, g, x, e, base, _ = setting
    plan = B.plan_slots(g, e * 0.5, 1, 1)
    with pytest.raises(ValueError, match="one-hot"):
        B.func_jets(base, plan, x, e * 0.5, 1, agg="dense")


@pytest.mark.parametrize("order", [1, 2])
def test_size_buckets_are_optimal_partitions(order):
    sizes = [9, 23, 11, 37, 23, 30, 12, 9, 25]
    for k in (1, 2, 3, 4):
        groups = B.size_buckets(sizes, k, order)
        assert sorted(i for grp in groups for i in grp) == list(range(len(sizes)))

        def cost(gs):
            return sum(sum(sizes[i] for i in grp) * max(sizes[i] for i in grp) ** order for grp in gs)

        # brute force over contiguous splits of the size-sorted order into at most k groups
        idx = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
        best = min(
            cost([idx[a:b] for a, b in zip((0, *cuts), (*cuts, len(idx)))])
            for m in range(k)
            for cuts in itertools.combinations(range(1, len(idx)), m)
        )
        assert cost(groups) == best
    assert B.size_buckets(sizes, "size", order) == [[0, 7], [2], [6], [1, 4], [8], [5], [3]]
    assert B.size_buckets(sizes, "graph", order) == [[i] for i in range(len(sizes))]
