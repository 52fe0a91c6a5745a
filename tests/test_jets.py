"""Exactness and behaviour of the derivative-jet engine (BaseMPNN.jets) against independent references."""

from __future__ import annotations

import math

import dgl
import networkx as nx
import pytest
import torch

from dgl_hod import BaseMPNN, JetMemoryError
from dgl_hod import jets as J
from dgl_hod.nn.layouts import expand_ranges, grouped_product, receptive_field_pairs
from dgl_hod.reference import reference_forward, reference_jets

ACTS = sorted(J.ACTIVATIONS)


@pytest.fixture(autouse=True)
def float64():
    """Exactness is checked in float64 (restored afterwards so other test modules are unaffected)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_graph(n: int, m: int, gen: torch.Generator, self_loops: bool = True) -> dgl.DGLGraph:
    """Random directed multigraph with ``m`` random edges (self-loops and repeated edges allowed)."""
    src = torch.randint(0, n, (m,), generator=gen)
    dst = torch.randint(0, n, (m,), generator=gen)
    if not self_loops:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    return dgl.graph((src, dst), num_nodes=n)


def path_graph(n: int) -> dgl.DGLGraph:
    s = torch.arange(n - 1)
    return dgl.graph((torch.cat([s, s + 1]), torch.cat([s + 1, s])), num_nodes=n)


def tricky_batch(seed: int = 0) -> list[dgl.DGLGraph]:
    """Isolated nodes, a self-loop, a multi-edge, a single-node graph and a path longer than the depth."""
    gen = torch.Generator().manual_seed(seed)
    g0 = dgl.graph(([0, 1, 1, 2, 2], [1, 2, 2, 0, 2]), num_nodes=5)  # multi-edge 1->2, self-loop 2->2, 3,4 isolated
    return [g0, dgl.graph(([], []), num_nodes=1), random_graph(6, 9, gen), path_graph(7)]


def features(gs, in_dim, edge_dim, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = [torch.randn(g.num_nodes(), in_dim, generator=gen) for g in gs]
    e = [torch.randn(g.num_edges(), edge_dim, generator=gen) for g in gs] if edge_dim else [None] * len(gs)
    return x, e


def batch_inputs(gs, x, e):
    return dgl.batch(gs), torch.cat(x), (torch.cat(e) if e[0] is not None else None)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


# ---------------------------------------------------------------------------------------------------------------------
# the jet algebra on its own
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ACTS)
def test_activation_derivatives_match_autograd(name):
    y = torch.linspace(-3, 3, 41).requires_grad_()
    derivs = J.activation_derivatives(name, y, 3)
    assert torch.allclose(derivs[0], J.TORCH_ACTIVATIONS[name](y))
    for m in range(3):
        if derivs[m].requires_grad:
            (auto,) = torch.autograd.grad(derivs[m].sum(), y, create_graph=True)
        else:  # a constant derivative (identity, ReLU'): the next one is 0
            auto = torch.zeros_like(y)
        assert torch.allclose(derivs[m + 1], auto, atol=1e-10), f"{name}: derivative {m + 1}"


def test_set_partitions_are_bell_numbers_and_valid():
    for k, bell in zip(range(5), (1, 1, 2, 5, 15)):
        parts = J.set_partitions(k)
        assert len(parts) == bell == len(set(parts))
        for p in parts:
            assert sorted(s for block in p for s in block) == list(range(k))


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        BaseMPNN(2, 3, 1, activation="swish")


def test_grouped_product_and_expand_ranges_brute_force():
    gen = torch.Generator().manual_seed(3)
    ca, cb = torch.randint(0, 4, (6,), generator=gen), torch.randint(0, 4, (6,), generator=gen)
    pa = torch.cat([torch.zeros(1, dtype=torch.long), ca.cumsum(0)])
    pb = torch.cat([torch.zeros(1, dtype=torch.long), cb.cumsum(0)])
    i, j = grouped_product(pa, pb)
    expected = [(a, b) for g in range(6) for a in range(pa[g], pa[g + 1]) for b in range(pb[g], pb[g + 1])]
    assert list(zip(i.tolist(), j.tolist())) == expected
    lo, hi = torch.tensor([3, 0, 5]), torch.tensor([5, 0, 6])
    assert list(zip(*[t.tolist() for t in expand_ranges(lo, hi)])) == [(0, 3), (0, 4), (2, 5)]


def test_receptive_field_pairs_match_bfs():
    gen = torch.Generator().manual_seed(1)
    g = random_graph(30, 40, gen)
    nxg = nx.DiGraph()
    nxg.add_nodes_from(range(30))
    nxg.add_edges_from(zip(*[t.tolist() for t in g.edges()]))
    for depth in (1, 2, 3):
        owner, member = receptive_field_pairs(g, depth)
        got = set(zip(owner.tolist(), member.tolist()))
        want = {(v, u) for u in range(30) for v in nx.single_source_shortest_path_length(nxg, u, cutoff=depth)}
        assert got == want
        keys = owner * 30 + member
        assert torch.equal(keys, torch.sort(keys).values)


# ---------------------------------------------------------------------------------------------------------------------
# exactness of BaseMPNN.jets against torch.func on an index_add formulation
# ---------------------------------------------------------------------------------------------------------------------
CASES = [  # (edge_dim, activation, num_marks, order, aggregation)
    (None, "silu", 2, 3, "sum"),
    (3, "silu", 2, 3, "sum"),
    (None, "tanh", 1, 3, "mean"),
    (2, "gelu", 1, 3, "mean"),
    (2, "softplus", 3, 2, "sum"),
    (None, "sigmoid", 2, 2, "sum"),
    (2, "relu", 2, 3, "sum"),
    (None, "identity", 1, 2, "sum"),
]


@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize("edge_dim,activation,num_marks,order,aggregation", CASES)
def test_jets_match_torch_func(mode, edge_dim, activation, num_marks, order, aggregation):
    torch.manual_seed(0)
    gs = tricky_batch()
    base = BaseMPNN(3, 4, 2, edge_dim=edge_dim, activation=activation, num_marks=num_marks, aggregation=aggregation)
    with torch.no_grad():  # non-trivial eps so the self term is exercised
        for layer in base.layers:
            layer.eps.fill_(0.3)
    xs, es = features(gs, 3, edge_dim)
    g, x, e = batch_inputs(gs, xs, es)
    out = base.jets(g, x, e, order=order, mode=mode)
    assert out.order == order and out.mode == mode
    assert torch.allclose(out.h, base(g, x, e), atol=1e-12)
    for i, gi in enumerate(gs):
        ours = out.dense(i)
        ref = reference_jets(base, gi, xs[i], es[i], order=order)
        n = gi.num_nodes()
        for k, (a, b) in enumerate(zip(ours, ref), start=1):
            assert a.shape == (n,) * (k + 1) + (num_marks, 4)
            assert rel_err(a, b) < 1e-5, f"graph {i}, order {k}: rel err {rel_err(a, b):.2e}"


def test_reference_forward_matches_dgl_forward():
    torch.manual_seed(1)
    gs = tricky_batch(1)
    for edge_dim, agg in ((None, "sum"), (2, "mean")):
        base = BaseMPNN(3, 5, 3, edge_dim=edge_dim, num_marks=2, aggregation=agg)
        xs, es = features(gs, 3, edge_dim, seed=1)
        g, x, e = batch_inputs(gs, xs, es)
        marks = torch.randn(g.num_nodes(), 2)
        src, dst = g.edges()
        assert torch.allclose(base(g, x, e, marks), reference_forward(base, src, dst, x, e, marks), atol=1e-12)


def test_hand_computed_one_layer_gin():
    """One GIN layer with identity activation: D1[v, u] = W2 W1 c ((1 + eps) [v = u] + A[u -> v]), D2 = 0."""
    g = dgl.graph(([0, 1, 1], [1, 0, 2]), num_nodes=3)
    base = BaseMPNN(2, 3, 1, activation="identity")
    layer = base.layers[0]
    with torch.no_grad():
        layer.eps.fill_(0.5)
    out = base.jets(g, torch.randn(3, 2), order=2)
    d1, d2 = out.dense(0)
    wc = (layer.lin2.weight @ layer.lin1.weight @ base.mark_directions[0]).detach()
    adj = torch.zeros(3, 3)
    adj[1, 0] = adj[0, 1] = adj[2, 1] = 1.0  # adj[v, u] = number of edges u -> v
    want = (1.5 * torch.eye(3) + adj)[:, :, None, None] * wc
    assert torch.allclose(d1, want, atol=1e-12)
    assert torch.count_nonzero(d2) == 0


def test_all_relu_gin_has_zero_second_order_jets():
    """ReLU'' = 0 and GIN messages are linear, so every order-2 derivative of an all-ReLU GIN vanishes."""
    torch.manual_seed(2)
    gs = tricky_batch(2)
    base = BaseMPNN(3, 4, 3, activation="relu")
    xs, _ = features(gs, 3, None, seed=2)
    g, x, _ = batch_inputs(gs, xs, [None])
    out = base.jets(g, x, order=2)
    assert out.derivatives[0].abs().sum() > 0
    assert torch.count_nonzero(out.derivatives[1]) == 0


def test_lower_orders_do_not_depend_on_requested_order():
    torch.manual_seed(3)
    gs = tricky_batch(3)
    base = BaseMPNN(3, 4, 2, edge_dim=2, num_marks=2)
    xs, es = features(gs, 3, 2, seed=3)
    g, x, e = batch_inputs(gs, xs, es)
    j1, j3 = base.jets(g, x, e, order=1), base.jets(g, x, e, order=3)
    assert torch.allclose(j1.derivatives[0], j3.derivatives[0], atol=1e-12)


def test_sparse_mode_stores_only_receptive_fields():
    g = path_graph(12)
    base = BaseMPNN(2, 3, 2)
    x = torch.randn(12, 2)
    sparse, dense = base.jets(g, x, order=2, mode="sparse"), base.jets(g, x, order=2, mode="dense")
    balls = [len(range(max(0, v - 2), min(12, v + 3))) for v in range(12)]
    assert sparse.derivatives[0].shape[0] == sum(balls)
    assert sparse.derivatives[1].shape[0] == sum(b * (b + 1) // 2 for b in balls)  # sorted pairs u <= w only
    third = base.jets(g, x, order=3, mode="sparse")
    assert third.derivatives[2].shape[0] == sum(b * (b + 1) * (b + 2) // 6 for b in balls)  # u <= w <= y
    for a, b in zip(third.dense(0), base.jets(g, x, order=3, mode="dense").dense(0)):
        assert torch.allclose(a, b, atol=1e-12)
    assert dense.derivatives[1].shape[:3] == (12, 12, 12)
    for a, b in zip(sparse.dense(0), dense.dense(0)):
        assert torch.allclose(a, b, atol=1e-12)
    # outside the 2-hop ball the dense jet is exactly zero
    d1 = dense.dense(0)[0]
    far = torch.tensor([[abs(v - u) > 2 for u in range(12)] for v in range(12)])
    assert torch.count_nonzero(d1[far]) == 0


# ---------------------------------------------------------------------------------------------------------------------
# gradients, symmetries, batching
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_gradcheck_wrt_weights(mode):
    torch.manual_seed(4)
    g = dgl.batch([dgl.graph(([0, 1, 2, 1], [1, 2, 0, 0])), path_graph(4)])
    base = BaseMPNN(2, 3, 2, edge_dim=2, num_marks=1, activation="tanh")
    x, e = torch.randn(g.num_nodes(), 2), torch.randn(g.num_edges(), 2)
    names = [
        "mark_directions",
        "layers.0.lin1.weight",
        "layers.0.edge_lin.weight",
        "layers.1.eps",
        "layers.1.lin2.bias",
    ]
    params = dict(base.named_parameters())

    class JetsOf(torch.nn.Module):  # functional_call swaps parameters on submodules, then calls forward
        def __init__(self):
            super().__init__()
            self.base = base

        def forward(self):
            out = self.base.jets(g, x, e, order=2, mode=mode)
            return tuple([out.h] + out.derivatives)

    wrapper = JetsOf()

    def call(*tensors):
        return torch.func.functional_call(wrapper, {f"base.{n}": t for n, t in zip(names, tensors)}, ())

    inputs = tuple(params[n].detach().clone().requires_grad_() for n in names)
    assert torch.autograd.gradcheck(call, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_permutation_equivariance(mode):
    torch.manual_seed(5)
    gen = torch.Generator().manual_seed(5)
    g = random_graph(7, 14, gen)
    base = BaseMPNN(3, 4, 2, edge_dim=2, num_marks=2)
    x, e = torch.randn(7, 3), torch.randn(g.num_edges(), 2)
    perm = torch.randperm(7, generator=gen)  # new node i is old node perm[i]
    inv = torch.argsort(perm)
    src, dst = g.edges()
    gp = dgl.graph((inv[src], inv[dst]), num_nodes=7)
    a = base.jets(g, x, e, order=3, mode=mode).dense(0)
    b = base.jets(gp, x[perm], e, order=3, mode=mode).dense(0)
    for k, (da, db) in enumerate(zip(a, b), start=1):
        idx = torch.meshgrid(*([perm] * (k + 1)), indexing="ij")
        assert torch.allclose(db, da[idx], atol=1e-10)


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_batch_independence(mode):
    torch.manual_seed(6)
    gs = tricky_batch(6)
    base = BaseMPNN(3, 4, 3, edge_dim=2, num_marks=2)
    xs, es = features(gs, 3, 2, seed=6)
    g, x, e = batch_inputs(gs, xs, es)
    batched = base.jets(g, x, e, order=2, mode=mode)
    for i, gi in enumerate(gs):
        alone = base.jets(gi, xs[i], es[i], order=2, mode=mode).dense(0)
        for a, b in zip(batched.dense(i), alone):
            assert torch.allclose(a, b, atol=1e-12)
    if mode == "dense":  # padding slots past a graph's size stay exactly zero
        d2 = batched.derivatives[1]
        n0 = gs[0].num_nodes()
        assert torch.count_nonzero(d2[:n0, n0:]) == 0 and torch.count_nonzero(d2[:n0, :, n0:]) == 0


def test_jets_are_trainable_end_to_end():
    torch.manual_seed(7)
    gs = tricky_batch(7)
    base = BaseMPNN(3, 4, 2, edge_dim=2).float()
    xs, es = features(gs, 3, 2, seed=7)
    g, x, e = batch_inputs(gs, [t.float() for t in xs], [t.float() for t in es])
    loss = sum(d.square().sum() for d in base.jets(g, x, e, order=2).derivatives)
    loss.backward()
    for name, p in base.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert base.mark_directions.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------------------
# RWSE initialisation
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_rwse_init_reproduces_random_walk_pe(depth):
    gen = torch.Generator().manual_seed(8)
    g = dgl.to_bidirected(random_graph(9, 14, gen, self_loops=False))
    base = BaseMPNN(1, 3, depth, init="rwse")
    assert base.activation == "identity"
    d1 = base.jets(g, torch.ones(g.num_nodes(), 1), order=1).dense(0)[0]
    rwse = dgl.random_walk_pe(g, depth).to(torch.float64)[:, depth - 1]
    deg = g.in_degrees()
    diag = d1[torch.arange(9), torch.arange(9), 0, 0]
    assert torch.allclose(diag[deg > 0], rwse[deg > 0], atol=1e-6)
    # a hand check: on a single edge the walk returns after every even number of steps
    edge = dgl.graph(([0, 1], [1, 0]))
    d1e = BaseMPNN(1, 2, depth, init="rwse").jets(edge, torch.ones(2, 1), order=1).dense(0)[0]
    assert torch.allclose(d1e[[0, 1], [0, 1], 0, 0], torch.full((2,), float(depth % 2 == 0)))


# ---------------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    g = dgl.graph(([0, 1], [1, 2]))
    gine = BaseMPNN(3, 4, 2, edge_dim=2)
    gin = BaseMPNN(3, 4, 2)
    x, e = torch.randn(3, 3), torch.randn(2, 2)
    with pytest.raises(ValueError, match=r"shape \(num_nodes, in_dim\) = \(3, 3\)"):
        gin.jets(g, torch.randn(3, 5))
    with pytest.raises(ValueError, match="4 rows but the graph has 3 nodes"):
        gin(g, torch.randn(4, 3))
    with pytest.raises(TypeError, match="floating point"):
        gin(g, torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="needs edge features"):
        gine.jets(g, x)
    with pytest.raises(ValueError, match=r"edge features must have shape \(num_edges, edge_dim\) = \(2, 2\)"):
        gine(g, x, torch.randn(2, 5))
    for order in (0, 4, 1.5):
        with pytest.raises(ValueError, match="order must be an int in 1..3"):
            gin.jets(g, x, order=order)
    with pytest.raises(ValueError, match="mode must be one of"):
        gin.jets(g, x, mode="blocked")
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="node features contain NaN"):
        gin.jets(g, bad)
    bad_e = e.clone()
    bad_e[0, 0] = float("nan")
    with pytest.raises(ValueError, match="edge features contain NaN"):
        gine.jets(g, x, bad_e)
    with pytest.raises(ValueError, match="marks must have shape"):
        gin(g, x, marks=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="dgl.DGLGraph"):
        gin(None, x)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        BaseMPNN(3, 4, 0)
    with pytest.raises(IndexError, match="out of range for a batch of 1"):
        gin.jets(g, x).dense(1)


def test_memory_guard_refuses_what_will_not_fit():
    g = dgl.graph(([], []), num_nodes=400)  # one graph of 400 nodes: order 3 dense = 400^4 entries
    base = BaseMPNN(4, 64, 4)
    with pytest.raises(JetMemoryError, match=r"dense order-3 jets for this batch need about [\d.]+ GiB") as info:
        base.jets(g, torch.randn(400, 4), order=3)
    assert "mode='sparse'" in str(info.value)
    with pytest.raises(JetMemoryError, match="limit is 0.00 GiB"):
        base.jets(dgl.graph(([0], [1])), torch.randn(2, 4), order=1, max_memory_gb=1e-9)
    # sparse mode on the same (edgeless) graph is tiny and runs
    out = base.jets(g, torch.randn(400, 4), order=3, mode="sparse")
    assert out.derivatives[2].shape[0] == 400


def test_docstring_example_runs():
    import doctest

    from dgl_hod.nn import base_mpnn, layouts

    for mod in (base_mpnn, layouts, J):
        failures, _ = doctest.testmod(mod, verbose=False)
        assert failures == 0, mod.__name__


def test_binomial_growth_of_dense_entries():
    """Dense order-k storage is N * P^k: a sanity check of the memory estimate's entry count."""
    g = dgl.batch([path_graph(3), path_graph(5)])
    base = BaseMPNN(2, 2, 1)
    out = base.jets(g, torch.randn(8, 2), order=3)
    for k, d in enumerate(out.derivatives, start=1):
        assert d.shape[: k + 1] == (8,) + (5,) * k
        assert out.layout.num_entries(k) == 8 * 5**k == math.prod(d.shape[: k + 1])
