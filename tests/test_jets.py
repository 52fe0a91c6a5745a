"""Exactness and behaviour of the derivative-jet engine (BaseMPNN.jets) against independent references."""

from __future__ import annotations

import itertools
import math

import dgl
import networkx as nx
import pytest
import torch

from dgl_hod import BaseMPNN, JetMemoryError
from dgl_hod import jets as J
from dgl_hod.nn.layouts import SparseLayout, expand_ranges, grouped_product, receptive_field_pairs
from dgl_hod.reference import reference_forward, reference_jets

ACTS = sorted(J.ACTIVATIONS)


pytestmark = pytest.mark.usefixtures("float64")


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
    derivs = J.activation_derivatives(name, y, J.MAX_ORDER)
    assert torch.allclose(derivs[0], J.TORCH_ACTIVATIONS[name](y))
    for m in range(J.MAX_ORDER):
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


def test_pattern_partitions_count_set_partitions_and_match_univariate_faa_di_bruno():
    """Counts sum to the Bell number; for one node they are K! / prod(m_i! (i!)^m_i) (the univariate formula)."""
    bell = {1: 1, 2: 2, 3: 5, 4: 15, 5: 52, 6: 203}
    for alpha in [(1,), (2,), (4,), (6,), (1, 1), (2, 1), (1, 2, 1), (2, 2), (3, 3)]:
        parts = J.pattern_partitions(alpha)
        assert sum(count for count, _ in parts) == bell[sum(alpha)]
        for _, blocks in parts:  # the blocks add up to alpha, node by node
            total = [0] * len(alpha)
            for beta, slots in blocks:
                for b, s in zip(beta, slots):
                    total[s] += b
            assert tuple(total) == alpha
    for K in range(1, 7):
        for count, blocks in J.pattern_partitions((K,)):
            sizes = [beta[0] for beta, _ in blocks]
            want = math.factorial(K)
            for i in set(sizes):
                want //= math.factorial(sizes.count(i)) * math.factorial(i) ** sizes.count(i)
            assert count == want, (K, sizes)


@pytest.mark.parametrize("k,m,cap", [(1, 1, None), (1, 4, None), (2, 2, None), (3, 2, 4), (2, 3, 5), (4, 1, None)])
def test_selection_is_exactly_the_admissible_multisets_and_closed_under_the_chain_rule(k, m, cap):
    sel = J.Selection(k, m, cap)
    total = min(k * m, cap or k * m)
    brute = {a for q in range(1, k + 1) for a in itertools.product(range(1, m + 1), repeat=q) if sum(a) <= total}
    assert set(sel.patterns) == brute and len(sel.patterns) == len(brute)
    assert all(sel.admits(a) for a in sel.patterns) and not sel.admits((m + 1,)) and not sel.admits((1,) * (k + 1))
    for alpha in sel.patterns:
        for _, blocks in J.pattern_partitions(alpha):
            assert all(beta in sel.patterns for beta, _ in blocks), (alpha, blocks)
    assert sel.levels == min(k, total)
    assert J.Selection.from_order(3) == J.Selection(3, 3, 3)
    assert J.Selection.from_order(2).patterns == ((1,), (2,), (1, 1))


def test_selection_errors():
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        J.Selection(0, 1)
    with pytest.raises(ValueError, match="m must be an int >= 1, got 1.5"):
        J.Selection(1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"total order 9 > 8, the engine's limit; cap it with max_order"):
        J.Selection(3, 3)
    assert J.Selection(3, 3, max_order=4).total == 4


def test_bell_terms_of_pure_and_mixed_patterns():
    """B_{alpha,b} against hand-written sums: B_{3,2} = 3 y1 y2, B_{4,2} = 4 y1 y3 + 3 y2^2, and for (1, 1) at (u, w):
    B_2 = y1[u] y1[w]."""
    from dgl_hod.nn.layouts import DenseLayout

    g = path_graph(3)
    layout = DenseLayout(g)
    gen = torch.Generator().manual_seed(0)
    y: dict[tuple[int, ...], torch.Tensor] = {(a,): torch.randn(3, 3, 1, 2, generator=gen) for a in range(1, 5)}
    y[(1, 1)] = torch.randn(3, 3, 3, 1, 2, generator=gen)
    jet = J.Jet(torch.randn(3, 2, generator=gen), y, layout)
    y1, y2, y3 = y[(1,)], y[(2,)], y[(3,)]
    b3 = J.bell_terms(jet, (3,))
    assert len(b3) == 3 and torch.allclose(b3[0], y3) and torch.allclose(b3[1], 3 * y1 * y2)
    assert torch.allclose(b3[2], y1**3)
    b4 = J.bell_terms(jet, (4,))
    assert torch.allclose(b4[1], 4 * y1 * y3 + 3 * y2 * y2) and torch.allclose(b4[2], 6 * y1 * y1 * y2)
    b11 = J.bell_terms(jet, (1, 1))
    assert torch.allclose(b11[1], y1[:, :, None] * y1[:, None, :])


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


def taylor_reference(base, g, x, e, directions: torch.Tensor, tangents: list[int]) -> torch.Tensor:
    """Derivatives of ``h`` by nested ``torch.func.jvp``, one per row of ``directions`` ``(B, q, n, r)``.

    ``h`` is taken as a function of ``z`` in ``R^q`` through ``marks = sum_i z_i directions[b, i]``; the result
    ``(B, n, C)`` is the derivative along ``z_{tangents[0]}``, then ``z_{tangents[1]}``, ... at ``z = 0``.
    """
    src, dst = g.edges()
    q = directions.shape[1]

    def one(direction):
        def fun(z):
            return reference_forward(base, src, dst, x, e, torch.einsum("i,inr->nr", z, direction))

        for i in tangents:
            fun = (lambda f, t: lambda z: torch.func.jvp(f, (z,), (t,))[1])(fun, torch.eye(q)[i])
        return fun(torch.zeros(q))

    return torch.func.vmap(one)(directions)


def pure_reference(base, g, x, e, m: int) -> list[torch.Tensor]:
    """``[D(1), .., D(m)]`` ``(n, n, r, C)`` with ``D(a)[v, u, j] = d^a h_v / d marks_{u,j}^a`` (nested jvp)."""
    n, r = g.num_nodes(), base.num_marks
    dirs = torch.eye(n * r).reshape(n * r, 1, n, r)  # mark (u, j) alone
    out = []
    for a in range(1, m + 1):
        d = taylor_reference(base, g, x, e, dirs, [0] * a)  # (n*r, n_v, C)
        out.append(d.reshape(n, r, n, -1).permute(2, 0, 1, 3))
    return out


def small_batch(seed: int = 0) -> list[dgl.DGLGraph]:
    """A self-loop, a multi-edge and an isolated node in one graph, a path longer than the depth in the other."""
    return [dgl.graph(([0, 1, 1, 2, 2], [1, 2, 2, 0, 2]), num_nodes=4), path_graph(5)]


@pytest.mark.parametrize("edge_dim", [None, 2], ids=["gin", "gine"])
@pytest.mark.parametrize("activation", ACTS)
def test_pure_derivatives_up_to_order_4_match_nested_jvp(activation, edge_dim):
    """k = 1, m = 4: ``jets.pure(i)`` equals nested forward-mode autograd for every activation, dense and sparse."""
    torch.manual_seed(0)
    gs = small_batch()
    base = BaseMPNN(2, 3, 2, edge_dim=edge_dim, activation=activation, num_marks=2, aggregation="sum")
    with torch.no_grad():
        for layer in base.layers:
            layer.eps.fill_(0.3)
    xs, es = features(gs, 2, edge_dim)
    g, x, e = batch_inputs(gs, xs, es)
    outs = {mode: base.jets(g, x, e, k=1, m=4, mode=mode) for mode in ("dense", "sparse")}
    for i, gi in enumerate(gs):
        ref = pure_reference(base, gi, xs[i], es[i], 4)
        for mode, out in outs.items():
            ours = out.pure(i)
            assert len(ours) == 4
            for a, (d, want) in enumerate(zip(ours, ref), start=1):
                assert d.shape == (gi.num_nodes(), gi.num_nodes(), 2, 3)
                assert torch.allclose(d, want, atol=1e-10, rtol=1e-8), f"{mode}, graph {i}, order {a}"
    if activation in ("relu", "identity") and edge_dim is None:  # piecewise linear: higher orders vanish exactly
        assert all(torch.count_nonzero(d) == 0 for d in outs["sparse"].pure(0)[1:])


@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize("edge_dim,activation,aggregation", [(2, "silu", "sum"), (None, "tanh", "mean")])
def test_mixed_selection_k2_m2_matches_nested_jvp(mode, edge_dim, activation, aggregation):
    """k = 2, m = 2 (total order up to 4): every pattern (a, b) at every pair u < w, against nested jvp."""
    torch.manual_seed(1)
    g = dgl.graph(([0, 1, 2, 3, 1], [1, 2, 3, 0, 1]), num_nodes=5)  # a 4-cycle with a self-loop; node 4 isolated
    base = BaseMPNN(2, 3, 2, edge_dim=edge_dim, activation=activation, aggregation=aggregation)
    (x,), (e,) = features([g], 2, edge_dim, seed=1)
    out = base.jets(g, x, e, k=2, m=2, mode=mode)
    assert set(out.components) == {(1,), (2,), (1, 1), (1, 2), (2, 1), (2, 2)}
    n = 5
    pairs = [(u, w) for u in range(n) for w in range(u + 1, n)]
    dirs = torch.zeros(len(pairs), 2, n, 1)
    for p, (u, w) in enumerate(pairs):
        dirs[p, 0, u, 0] = dirs[p, 1, w, 0] = 1.0
    us, ws = torch.tensor(pairs).T
    for alpha in [(1, 1), (1, 2), (2, 1), (2, 2)]:
        want = taylor_reference(base, g, x, e, dirs, [0] * alpha[0] + [1] * alpha[1])  # (pairs, n_v, C)
        block = out.layout.graph_block(out.components[alpha], 2, 0)  # (v, u, w, 1, C)
        got = block[:, us, ws, 0].permute(1, 0, 2)
        assert torch.allclose(got, want, atol=1e-10, rtol=1e-8), alpha
        lower = torch.tril(torch.ones(n, n, dtype=torch.bool))  # only u < w is stored
        assert torch.count_nonzero(block[:, lower]) == 0
    for a, d in enumerate(out.pure(0), start=1):
        assert torch.allclose(d, pure_reference(base, g, x, e, a)[-1], atol=1e-10)


def test_pure_storage_is_linear_in_m():
    """k = 1 keeps only level 1 (node pairs): every order has n * |ball| rows, and lower orders do not change."""
    g = path_graph(12)
    base = BaseMPNN(2, 3, 2)
    x = torch.randn(12, 2)
    balls = sum(len(range(max(0, v - 2), min(12, v + 3))) for v in range(12))
    one = base.jets(g, x, k=1, m=1, mode="sparse")
    four = base.jets(g, x, k=1, m=4, mode="sparse")
    assert list(four.components) == [(1,), (2,), (3,), (4,)]
    assert all(c.shape == (balls, 1, 3) for c in four.derivatives)
    assert isinstance(four.layout, SparseLayout) and len(four.layout.tuple_graphs) == 2  # nodes and pairs only
    assert torch.allclose(one.components[(1,)], four.components[(1,)], atol=1e-12)
    mixed = base.jets(g, x, order=2, mode="sparse")
    assert torch.allclose(mixed.components[(2,)], four.components[(2,)], atol=1e-12)
    with pytest.raises(ValueError, match=r"dense\(0\) needs every derivative of total order 2"):
        four.dense(0)


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
    assert out.components[(1,)].abs().sum() > 0
    assert torch.count_nonzero(out.components[(2,)]) == 0 and torch.count_nonzero(out.components[(1, 1)]) == 0


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
    assert sparse.components[(1,)].shape[0] == sparse.components[(2,)].shape[0] == sum(balls)
    assert sparse.components[(1, 1)].shape[0] == sum(b * (b - 1) // 2 for b in balls)  # pairs u < w only
    third = base.jets(g, x, order=3, mode="sparse")
    assert third.components[(1, 1, 1)].shape[0] == sum(b * (b - 1) * (b - 2) // 6 for b in balls)  # u < w < y
    # the multisets of total order 3 (u <= w <= y) are all there, each once
    index, _, mult = third.rows(3)
    assert len(index) == sum(b * (b + 1) * (b + 2) // 6 for b in balls)
    assert len({tuple(r) for r in index.tolist()}) == len(index) and (index[:, 1:].diff(dim=1) >= 0).all()
    assert float(mult.sum()) == sum(b**3 for b in balls)  # every ordered triple counted once
    for a, b in zip(third.dense(0), base.jets(g, x, order=3, mode="dense").dense(0)):
        assert torch.allclose(a, b, atol=1e-12)
    assert dense.components[(1, 1)].shape[:3] == (12, 12, 12)
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
    loss = torch.stack([d.square().sum() for d in base.jets(g, x, e, order=2).derivatives]).sum()
    loss.backward()
    for name, p in base.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert base.mark_directions.grad is not None and base.mark_directions.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------------------
# RWSE initialisation
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_rwse_init_reproduces_random_walk_pe(depth):
    gen = torch.Generator().manual_seed(8)
    g = dgl.to_bidirected(random_graph(9, 14, gen, self_loops=False))
    base = BaseMPNN(1, 3, depth, init="rwse-linear")
    assert base.activation == "identity"
    d1 = base.jets(g, torch.ones(g.num_nodes(), 1), order=1).dense(0)[0]
    rwse = dgl.random_walk_pe(g, depth).to(torch.float64)[:, depth - 1]
    deg = g.in_degrees()
    diag = d1[torch.arange(9), torch.arange(9), 0, 0]
    assert torch.allclose(diag[deg > 0], rwse[deg > 0], atol=1e-6)
    # a hand check: on a single edge the walk returns after every even number of steps
    edge = dgl.graph(([0, 1], [1, 0]))
    d1e = BaseMPNN(1, 2, depth, init="rwse-linear").jets(edge, torch.ones(2, 1), order=1).dense(0)[0]
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
    for order in (0, 9, 1.5):
        with pytest.raises(ValueError, match="order must be an int in 1..8"):
            gin.jets(g, x, order=order)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give either order=2 .* or k/m/max_order, not both"):
        gin.jets(g, x, order=2, k=1)
    with pytest.raises(ValueError, match="m must be an int >= 1, got 0"):
        gin.jets(g, x, k=1, m=0)
    with pytest.raises(ValueError, match="total order 10 > 8"):
        gin.jets(g, x, k=2, m=5)
    with pytest.raises(ValueError, match="mode must be one of"):
        gin.jets(g, x, mode="blocked")
    for value in (float("nan"), float("inf"), -float("inf")):
        bad = x.clone()
        bad[1, 2] = value
        with pytest.raises(ValueError, match="node features contain NaN or inf"):
            gin.jets(g, bad)
        with pytest.raises(ValueError, match="node features contain NaN or inf"):
            gin(g, bad)
        bad_e = e.clone()
        bad_e[0, 0] = value
        with pytest.raises(ValueError, match="edge features contain NaN or inf"):
            gine.jets(g, x, bad_e)
    with pytest.raises(ValueError, match="marks must have shape"):
        gin(g, x, marks=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="dgl.DGLGraph"):
        gin(None, x)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        BaseMPNN(3, 4, 0)
    with pytest.raises(IndexError, match="out of range for a batch of 1"):
        gin.jets(g, x).dense(1)
    with pytest.raises(IndexError, match="out of range for a batch of 1"):
        gin.jets(g, x, k=1, m=2).pure(-1)


def test_memory_guard_refuses_what_will_not_fit():
    g = dgl.graph(([], []), num_nodes=400)  # one graph of 400 nodes: order 3 dense = 400^4 entries
    base = BaseMPNN(4, 64, 4)
    with pytest.raises(JetMemoryError, match=r"dense jets \(k=3, m=3, max_order=3\) for this batch need about") as info:
        base.jets(g, torch.randn(400, 4), order=3)
    assert "mode='sparse'" in str(info.value)
    with pytest.raises(JetMemoryError, match="limit is 0.00 GiB"):
        base.jets(dgl.graph(([0], [1])), torch.randn(2, 4), order=1, max_memory_gb=1e-9)
    # sparse mode on the same (edgeless) graph is tiny and runs
    out = base.jets(g, torch.randn(400, 4), order=3, mode="sparse")
    assert out.components[(3,)].shape[0] == 400 and out.components[(1, 1, 1)].shape[0] == 0


def test_docstring_example_runs():
    import doctest

    from dgl_hod.nn import base_mpnn, layouts

    for mod in (base_mpnn, layouts, J):
        failures, _ = doctest.testmod(mod, verbose=False)
        assert failures == 0, mod.__name__


def test_binomial_growth_of_dense_entries():
    """Dense level-q storage is N * P^q: a sanity check of the memory estimate's entry count."""
    g = dgl.batch([path_graph(3), path_graph(5)])
    base = BaseMPNN(2, 2, 1)
    out = base.jets(g, torch.randn(8, 2), order=3)
    for alpha, d in out.components.items():
        q = len(alpha)
        assert d.shape[: q + 1] == (8,) + (5,) * q
        assert out.layout.num_entries(q) == 8 * 5**q == math.prod(d.shape[: q + 1])


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_graphs_with_no_nodes(mode):
    """A 0-node graph alone or inside a batch gives empty jets (and its neighbours' jets are unchanged)."""
    base = BaseMPNN(3, 4, 2, edge_dim=2)
    empty = dgl.graph(([], []), num_nodes=0)
    out = base.jets(empty, torch.zeros(0, 3), torch.zeros(0, 2), k=1, m=3, mode=mode)
    assert out.h.shape == (0, 4) and all(d.shape == (0, 0, 1, 4) for d in out.pure(0))
    gs = [path_graph(3), empty, path_graph(2)]
    xs, es = features(gs, 3, 2)
    g, x, e = batch_inputs(gs, xs, es)
    batched = base.jets(g, x, e, order=2, mode=mode)
    assert [d.shape for d in batched.dense(1)] == [(0, 0, 1, 4), (0, 0, 0, 1, 4)]
    for i in (0, 2):
        for a, b in zip(batched.dense(i), base.jets(gs[i], xs[i], es[i], order=2, mode=mode).dense(0)):
            assert torch.allclose(a, b, atol=1e-12)
