"""HOD-GNN model: invariance for every variant, dense == sparse, expressivity beyond 1-WL, RWSE init, config errors."""

import math

import dgl
import pytest
import torch

from dgl_hod import create_model
from dgl_hod.archs.hod_gnn import HODGNN, HODGNNConfig
from dgl_hod.expressivity import permute_graph

SMALL = dict(hidden_dim=16, base_hidden_dim=8, base_layers=3, downstream_layers=2, encoder_hidden_dim=8)


def undirected(n, edges):
    src = [a for a, b in edges] + [b for a, b in edges]
    dst = [b for a, b in edges] + [a for a, b in edges]
    return dgl.graph((torch.tensor(src), torch.tensor(dst)), num_nodes=n)


def cycle(n, offset=0):
    return [(offset + i, offset + (i + 1) % n) for i in range(n)]


def molecule_batch(seed=0):
    """Two small featured graphs (a ring with a tail, a bicyclic graph) with ZINC-like categorical ids."""
    gen = torch.Generator().manual_seed(seed)
    graphs = [undirected(7, cycle(5) + [(4, 5), (5, 6)]), undirected(8, cycle(6) + [(0, 6), (6, 7), (7, 3)])]
    for g in graphs:
        g.ndata["feat"] = torch.randint(0, 28, (g.num_nodes(),), generator=gen)
        half = torch.randint(1, 4, (g.num_edges() // 2,), generator=gen)
        g.edata["feat"] = torch.cat([half, half])
    return graphs


def permuted_batch(graphs, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return dgl.batch([permute_graph(g, torch.randperm(g.num_nodes(), generator=gen)) for g in graphs])


VARIANTS = [
    dict(order=0),
    dict(order=1),
    dict(order=1, jet_mode="sparse"),
    dict(order=2),
    dict(order=2, jet_mode="sparse", num_marks=2),
    dict(order=3, base_layers=2),
    dict(order=3, base_layers=2, jet_mode="sparse"),
    dict(order=1, base_init="rwse"),
    dict(order=2, jet_norm="rms", readout="mean", global_pool=False),
    dict(order=2, jet_norm="none", downstream_norm="layer", base_aggregation="mean", base_activation="tanh"),
    dict(k=1, m=3, jet_mode="dense"),
    dict(k=1, m=4, jet_mode="sparse", num_marks=2),
    dict(k=2, m=1, jet_mode="sparse"),
    dict(k=2, m=2, max_order=3, jet_mode="sparse", base_layers=2),
    dict(m=0),
    dict(k=1, m=3, deriv_encoder="joint", jet_mode="dense"),
    dict(k=1, m=2, deriv_encoder="joint", jet_mode="sparse", num_marks=2),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_permutation_invariance(variant):
    torch.manual_seed(0)
    model = create_model("hod-gnn", **{**SMALL, **variant}).eval()
    graphs = molecule_batch()
    g, gp = dgl.batch(graphs), permuted_batch(graphs)
    with torch.no_grad():
        out = model(g, g.ndata["feat"], g.edata["feat"])
        outp = model(gp, gp.ndata["feat"], gp.edata["feat"])
    assert out.shape == (2, 1)
    assert torch.allclose(out, outp, atol=1e-5, rtol=0), (out - outp).abs().max()


@pytest.mark.parametrize(
    "selection",
    [
        dict(order=1),
        dict(order=2),
        dict(order=3),
        dict(k=1, m=4),
        dict(k=2, m=1),
        dict(k=1, m=3, deriv_encoder="joint"),
    ],
    ids=str,
)
def test_dense_and_sparse_give_the_same_model(selection):
    torch.manual_seed(0)
    cfg = {**SMALL, **selection, "base_layers": 2 if selection.get("order") == 3 else 3}
    dense = create_model("hod-gnn", **cfg).double().eval()
    sparse = create_model("hod-gnn", **{**cfg, "jet_mode": "sparse"}).double().eval()
    sparse.load_state_dict(dense.state_dict())
    g = dgl.batch(molecule_batch())
    with torch.no_grad():
        a = dense.embed(g, g.ndata["feat"], g.edata["feat"])
        b = sparse.embed(g, g.ndata["feat"], g.edata["feat"])
    assert torch.allclose(a, b, atol=1e-10)


def test_gradients_reach_the_base_mpnn_through_the_jets():
    torch.manual_seed(0)
    model = create_model("hod-gnn", **SMALL, order=2)
    g = dgl.batch(molecule_batch())
    # only the derivative path: detach the base's plain output from the combine step by zeroing its weights
    with torch.no_grad():
        model.combine[0].weight[:, 16 : 16 + 8] = 0.0
    model(g, g.ndata["feat"], g.edata["feat"]).sum().backward()
    assert model.base.mark_directions.grad.abs().sum() > 0  # only the jets depend on the marking directions
    assert model.base.layers[0].lin1.weight.grad.abs().sum() > 0


def decalin():
    return undirected(10, cycle(6) + [(5, 6), (6, 7), (7, 8), (8, 9), (9, 0)])


def bicyclopentyl():
    return undirected(10, cycle(5) + cycle(5, 5) + [(0, 5)])


@pytest.mark.parametrize("pair", ["c6-2c3", "decalin-bicyclopentyl"])
def test_k1_separates_1wl_equivalent_pairs_and_order0_does_not(pair):
    if pair == "c6-2c3":
        g1, g2 = undirected(6, cycle(6)), undirected(6, cycle(3) + cycle(3, 3))
    else:
        g1, g2 = decalin(), bicyclopentyl()
    cfg = dict(SMALL, node_vocab=(1,), edge_vocab=None)
    diffs = {}
    for order in (0, 1):
        torch.manual_seed(0)
        model = create_model("hod-gnn", **cfg, order=order).double().eval()
        with torch.no_grad():
            e1, e2 = model.embed(g1, None), model.embed(g2, None)
        diffs[order] = ((e1 - e2).norm() / e1.norm()).item()
    assert diffs[0] < 1e-12  # 1-WL-bounded: identical embeddings
    assert diffs[1] > 1e-6, diffs


@pytest.mark.parametrize("steps", [1, 2, 3, 5])
def test_rwse_init_reproduces_random_walk_pe(steps):
    g = dgl.batch([decalin(), undirected(6, cycle(3) + cycle(3, 3)), undirected(4, [(0, 1), (1, 2), (1, 3)])])
    torch.manual_seed(0)
    model = create_model(
        "hod-gnn", **{**SMALL, "base_layers": steps}, node_vocab=(1,), edge_vocab=None, order=1, base_init="rwse"
    ).double()
    jets = model.jets(g, None)
    diag = torch.cat([torch.diagonal(jets.dense(i)[0][:, :, 0, 0]) for i in range(g.batch_size)])
    expected = dgl.random_walk_pe(g, steps)[:, steps - 1].double()
    assert torch.allclose(diag, expected, atol=1e-12)
    # and the order-1 encoder receives exactly these values on its diagonal (before asinh)
    from dgl_hod.nn.derivative_encoders import jet_rows

    rows = jet_rows(jets, 1)
    on_diag = rows.index[:, 0] == rows.index[:, 1]
    got = torch.zeros(g.num_nodes(), dtype=torch.float64).index_copy(0, rows.index[on_diag, 0], rows.values[on_diag, 0])
    assert torch.allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(order=9), "order must be an int in 0..8"),
        (dict(order=4), "reaches total order 4, but the derivative encoders for k >= 2 read total orders <= 3"),
        (dict(k=2, m=2), "set max_order <= 3, or use k=1"),
        (dict(k=0), "k must be an int >= 1, got 0"),
        (dict(m=-1), "m must be an int >= 0, got -1"),
        (dict(k=1, m=9), "total order 9 > 8"),
        (dict(max_order=0), "max_order must be an int >= 1"),
        (dict(order=2, k=1), "give either order=2 or k/m/max_order, not both"),
        (dict(jet_mode="blocked"), "jet_mode must be one of"),
        (dict(base_activation="relu", order=2), "zero second derivative"),
        (dict(base_activation="relu", k=1, m=3), "zero second derivative"),
        (dict(base_activation="swish"), "base_activation must be one of"),
        (dict(base_activation="relu", activation="tanh"), "disagree; give only base_activation"),
        (dict(k=2, m=1, deriv_encoder="joint"), "deriv_encoder='joint' reads the pure derivatives D\\(1..m\\) of k=1"),
        (dict(m=0, deriv_encoder="joint"), "deriv_encoder='joint' reads the pure derivatives"),
        (dict(deriv_encoder="ign"), "deriv_encoder must be one of"),
        (dict(hidden_dim=0), "hidden_dim must be an int >= 1"),
        (dict(node_vocab=()), "node_vocab must be a non-empty tuple"),
        (dict(readout="max"), "readout must be one of"),
        (dict(dropout=1.5), "dropout must be in"),
        (dict(jet_norm="l2"), "jet_norm must be one of"),
    ],
)
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        create_model("hod-gnn", **bad)


def test_unknown_key_and_missing_edge_features():
    with pytest.raises(TypeError, match="base_layers"):
        create_model("hod-gnn", base_layer=3)
    model = create_model("hod-gnn", **SMALL)
    g = dgl.batch(molecule_batch())
    with pytest.raises(ValueError, match="needs edge_feat"):
        model(g, g.ndata["feat"])


def test_api_shapes_repr_and_reset():
    torch.manual_seed(0)
    model = create_model("hod-gnn", **SMALL, order=2, num_tasks=3)
    assert isinstance(model, HODGNN) and isinstance(model.config, HODGNNConfig)
    g = dgl.batch(molecule_batch())
    assert model(g, g.ndata["feat"], g.edata["feat"]).shape == (2, 3)
    assert model.embed(g, g.ndata["feat"], g.edata["feat"]).shape == (2, 16)
    assert all(k.startswith("head.") for k in dict(model.head.named_parameters(prefix="head")))
    text = repr(model)
    assert "k=2, m=2, max_order=2" in text and "DerivativeEncoder" in text and "GINE x 2" in text
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_parameters()
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("base.") for k in changed) and any(k.startswith("deriv_encoder.") for k in changed)
    rw = create_model("hod-gnn", **SMALL, base_init="rwse-linear")
    rw.reset_parameters()  # keeps the RWSE initialisation
    assert torch.equal(rw.base.layers[0].lin1.weight, torch.eye(8, 16))


def test_k_m_keys_the_order_alias_and_the_activation_alias():
    """order=K is k=K, m=K, max_order=K (same model, same outputs); order=0 is m=0; 'activation' is a deprecated
    alias of base_activation; a model's normalised config rebuilds the same model."""
    g = dgl.batch(molecule_batch())
    outs = {}
    for name, cfg in {"order": dict(order=2), "km": dict(k=2, m=2, max_order=2)}.items():
        torch.manual_seed(0)
        model = create_model("hod-gnn", **SMALL, **cfg).eval()
        c = model.config
        assert isinstance(c, HODGNNConfig) and (c.k, c.m, c.max_order, c.order) == (2, 2, 2, None)
        with torch.no_grad():
            outs[name] = model(g, g.ndata["feat"], g.edata["feat"])
        again = create_model("hod-gnn", **model.config_dict())
        assert again.config == model.config
    assert torch.equal(outs["order"], outs["km"])
    assert create_model("hod-gnn", **SMALL, order=0).deriv_encoder is None
    assert create_model("hod-gnn", **SMALL, order=0).config_dict()["m"] == 0
    pure = create_model("hod-gnn", **SMALL, k=1, m=3)
    assert len(pure.deriv_encoder.encoders) == 3 and pure.deriv_encoder.pure
    with pytest.warns(DeprecationWarning, match="'activation' is deprecated, use 'base_activation'"):
        old = create_model("hod-gnn", **SMALL, activation="tanh")
    assert old.config_dict()["base_activation"] == "tanh" and old.config_dict()["activation"] is None
    assert old.base.layers[0].activation == "tanh"


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_graph_with_no_nodes_in_a_batch(mode, empty_graph):
    """Like the baselines: a 0-node graph gets the head's output on an empty read-out, alone or in a batch, and
    does not change the other graphs' outputs."""
    torch.manual_seed(0)
    model = create_model("hod-gnn", **SMALL, k=1, m=2, jet_mode=mode, downstream_norm="layer").double().eval()
    graphs = molecule_batch()
    g = dgl.batch([graphs[0], empty_graph, graphs[1]])
    with torch.no_grad():
        out = model(g, g.ndata["feat"], g.edata["feat"])
        alone = [model(h, h.ndata["feat"], h.edata["feat"]) for h in (graphs[0], empty_graph, graphs[1])]
    assert out.shape == (3, 1) and torch.isfinite(out).all()
    assert torch.allclose(out, torch.cat(alone), atol=1e-10)


def test_featureless_graphs_use_constant_features():
    model = create_model("hod-gnn", **SMALL, node_vocab=(1,), edge_vocab=None).eval()
    g = undirected(6, cycle(6))
    with torch.no_grad():
        a = model(g, None)
        b = model(g, torch.zeros(6, dtype=torch.long))
    assert torch.equal(a, b)


def test_k2_separates_a_strongly_regular_pair_that_k1_does_not():
    """SR25 graphs 0 and 1 (both srg(25, 12, 5, 6)): order 1 gives identical embeddings, order 2 does not."""
    from dgl_hod.datasets import expressivity_pairs

    g1, g2, _ = expressivity_pairs("sr25")[0]
    diffs = {}
    for order in (1, 2):
        torch.manual_seed(0)
        model = (
            create_model(
                "hod-gnn",
                node_vocab=(1,),
                edge_vocab=None,
                order=order,
                hidden_dim=16,
                base_hidden_dim=8,
                base_layers=2,
                downstream_layers=1,
                jet_mode="sparse",
            )
            .double()
            .eval()
        )
        with torch.no_grad():
            a, b = model.embed(g1, None), model.embed(g2, None)
            c = model.embed(permute_graph(g1, torch.randperm(25, generator=torch.Generator().manual_seed(0))), None)
        diffs[order] = ((a - b).norm() / a.norm()).item(), ((a - c).norm() / a.norm()).item()
    assert diffs[1][0] < 1e-12 and diffs[2][1] < 1e-12  # k1 blind; k2 invariant under relabeling
    assert diffs[2][0] > 1e-7, diffs  # ... and separates the pair (measured 2e-5)


def _encoders_by_formula(enc, blocks, norm):
    """The DerivativeEncoder equations evaluated literally on one graph's dense jets (every ordered tuple)."""
    n = blocks[0].shape[0]
    feats = []
    for k, (e, d) in enumerate(zip(enc.encoders, blocks), start=1):
        d = d.reshape(*d.shape[: k + 1], -1)  # (n, n.., r*C)
        if norm == "rms":
            d = torch.asinh(d / torch.sqrt((d * d).reshape(-1, d.shape[-1]).sum(0) / n ** (k + 1) + 1e-20))
        ar = torch.arange(n)
        if k == 1:
            H = e.hidden_dim
            f = e.phi(d)
            parts = [d[ar, ar], f[..., :H].mean(1), f[..., H : 2 * H].mean(0)]
            if e.global_pool:
                parts.append(f[..., 2 * H :].sum((0, 1)).expand(n, -1) / n**2)
        elif k == 2:
            H = e.hidden_dim
            f = e.phi_all(d)
            parts = [
                d[ar, ar, ar],
                e.phi_uu(d[:, ar, ar]).mean(1),
                e.phi_vu(d[ar, ar, :]).mean(1),
                f[..., :H].sum((1, 2)) / n**2,
                f[..., H:].sum((0, 2)) / n**2,
            ]
        else:
            parts = [d[ar, ar, ar, ar], e.phi_uuu(d[:, ar, ar, ar]).mean(1), e.phi_all(d).sum((1, 2, 3)) / n**3]
        feats.append(e.out(torch.cat(parts, 1)))
    return torch.cat(feats, 1)


@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize("norm", ["rms", "none"])
def test_derivative_encoders_equal_their_formulas_on_every_ordered_tuple(mode, norm):
    """The encoders read each sorted tuple once, weighted by its multiplicity; reference: the docstring formulas
    evaluated literally over all ordered tuples of the dense per-graph jets."""
    from dgl_hod.nn.base_mpnn import BaseMPNN
    from dgl_hod.nn.derivative_encoders import DerivativeEncoder

    torch.manual_seed(0)
    graphs = molecule_batch()
    g = dgl.batch(graphs)
    base = BaseMPNN(3, 4, 2, num_marks=2).double()
    enc = DerivativeEncoder(3, in_dim=8, hidden_dim=5, out_dim=6, jet_norm=norm).double()
    jets = base.jets(g, torch.randn(g.num_nodes(), 3, dtype=torch.float64), order=3, mode=mode)
    got = enc(jets)
    start = 0
    for i, gi in enumerate(graphs):
        want = _encoders_by_formula(enc, jets.dense(i), norm)
        torch.testing.assert_close(got[start : start + gi.num_nodes()], want, atol=1e-10, rtol=1e-10)
        start += gi.num_nodes()


def _joint_by_formula(enc, pure, norm):
    """The joint Taylor encoder's equations evaluated literally on one graph's dense pure tensors ``D(a)[v, u]``."""
    n = pure[0].shape[0]
    d = [t.reshape(n, n, -1) for t in pure]
    if norm == "rms":  # s = max over orders of RMS(D(a)/a!)^(1/a), one scale shared by every order
        rms = [((t / math.factorial(a)) ** 2).sum((0, 1)) / n**2 for a, t in enumerate(d, start=1)]
        s = torch.stack([(r + 1e-20**a) ** (0.5 / a) for a, r in enumerate(rms, start=1)]).amax(0)
    else:
        s = torch.ones(d[0].shape[-1], dtype=d[0].dtype)
    x = torch.cat([torch.asinh(t / math.factorial(a) / s**a) for a, t in enumerate(d, start=1)], -1)
    e = enc.encoders[0]
    H, ar = e.hidden_dim, torch.arange(n)
    f = e.phi(x)
    parts = [x[ar, ar], f[..., :H].mean(1), f[..., H : 2 * H].mean(0), f[..., 2 * H :].sum((0, 1)).expand(n, -1) / n**2]
    return e.out(torch.cat(parts, 1))


@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize("norm", ["rms", "asinh"])
def test_joint_taylor_encoder_equals_its_formula_and_ignores_the_mark_scale(mode, norm):
    """kind='joint': phi(D(1)[v,u] / s || D(2)[v,u] / (2 s^2) || ..) pooled 2-IGN-style, one scale s per graph and
    channel shared by every order; scaling the marking directions by t (D(a) -> t^a D(a)) leaves it unchanged."""
    from dgl_hod.jets import Selection
    from dgl_hod.nn.base_mpnn import BaseMPNN
    from dgl_hod.nn.derivative_encoders import DerivativeEncoder

    torch.manual_seed(0)
    graphs = molecule_batch()
    g = dgl.batch(graphs)
    base = BaseMPNN(3, 4, 2, num_marks=2).double()
    enc = DerivativeEncoder(Selection(1, 3), in_dim=8, hidden_dim=5, out_dim=6, jet_norm=norm, kind="joint").double()
    assert len(enc.encoders) == 1 and enc.out_dim == 6
    x = torch.randn(g.num_nodes(), 3, dtype=torch.float64)
    jets = base.jets(g, x, k=1, m=3, mode=mode)
    got = enc(jets)
    start = 0
    for i, gi in enumerate(graphs):
        want = _joint_by_formula(enc, jets.pure(i), norm)
        torch.testing.assert_close(got[start : start + gi.num_nodes()], want, atol=1e-10, rtol=1e-10)
        start += gi.num_nodes()
    with torch.no_grad():
        base.mark_directions.mul_(3.0)
    scaled = enc(base.jets(g, x, k=1, m=3, mode=mode))
    if norm == "rms":
        torch.testing.assert_close(scaled, got, atol=1e-10, rtol=1e-8)
    else:
        assert not torch.allclose(scaled, got)
    with pytest.raises(ValueError, match="joint Taylor encoder reads pure derivatives"):
        DerivativeEncoder(Selection(2, 1), in_dim=8, hidden_dim=5, out_dim=6, kind="joint")


def test_joint_taylor_features_stay_bounded_when_first_derivatives_are_small():
    """Featureless graphs at init have small first derivatives; scaling every order by RMS(D(1)) alone sent
    D(4)/s^4 to ~1e15 (asinh ~36) and k1 m4 training to NaN on `counting`. The shared scale max_a RMS(D(a)/a!)^(1/a)
    bounds every order's RMS by 1 (asinh of it by ~0.9) while keeping one scale for all orders."""
    from dgl_hod.datasets import load_dataset
    from dgl_hod.nn.derivative_encoders import taylor_rows

    torch.manual_seed(0)
    g, _ = load_dataset("counting", "train").batch(range(16))
    model = create_model("hod-gnn", k=1, m=4, deriv_encoder="joint", node_vocab=[1], edge_vocab=None, num_tasks=9)
    x, e = model.encode_inputs(g, g.ndata["feat"], g.edata["feat"])
    rows = taylor_rows(model.jets_of_inputs(g, x, e), 4, "rms")
    C = rows.values.shape[1] // 4
    for a in range(4):
        block = rows.values[:, a * C : (a + 1) * C]
        assert torch.isfinite(block).all()
        assert block.abs().max() < 8.0, f"order {a + 1}: max |asinh feature| {block.abs().max():.1f}"
