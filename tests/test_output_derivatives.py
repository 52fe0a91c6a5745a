"""Output derivatives (the paper's D_out / U_out) and per-layer self-derivatives of HOD-GNN, against autograd."""

from __future__ import annotations

import copy
import functools
import math

import dgl
import numpy as np
import pytest
import torch

from dgl_hod import BaseMPNN, create_model
from dgl_hod.expressivity import permute_graph
from dgl_hod.nn.derivative_encoders import LayerDerivativeEncoder, OutputDerivativeEncoder, output_derivatives
from dgl_hod.reference import reference_forward

SMALL = dict(hidden_dim=16, base_hidden_dim=8, base_layers=3, downstream_layers=2, encoder_hidden_dim=8)


pytestmark = pytest.mark.usefixtures("float64")


def path_graph(n: int) -> dgl.DGLGraph:
    s = torch.arange(n - 1)
    return dgl.graph((torch.cat([s, s + 1]), torch.cat([s + 1, s])), num_nodes=n)


def small_batch() -> list[dgl.DGLGraph]:
    """A self-loop, a multi-edge and an isolated node in one graph; a path longer than the depth in the other."""
    return [dgl.graph(([0, 1, 1, 2, 2], [1, 2, 2, 0, 2]), num_nodes=4), path_graph(7)]


def inputs(gs, in_dim, edge_dim, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(g.num_nodes(), in_dim, generator=gen) for g in gs]
    es = [torch.randn(g.num_edges(), edge_dim, generator=gen) if edge_dim else None for g in gs]
    return xs, es


def nested_jvp(fun, n: int, r: int, order: int) -> torch.Tensor:
    """``d^order fun(marks) / d marks_{u,j}^order`` at ``marks = 0`` for every ``(u, j)``: ``(n, r, *out)``."""

    def along(direction):
        return nested_apply(lambda z: fun(z * direction), order)

    out = torch.func.vmap(along)(torch.eye(n * r).reshape(n * r, n, r))
    return out.reshape(n, r, *out.shape[1:])


def nested_apply(f, order: int) -> torch.Tensor:
    """The ``order``-th derivative of the scalar-argument function ``f`` at 0, by nested forward-mode jvp."""
    for _ in range(order):
        f = (lambda g: lambda z: torch.func.jvp(g, (z,), (torch.ones_like(z),))[1])(f)
    return f(torch.zeros(()))


def reference_output(base, g, x, e, readout: str):
    src, dst = g.edges()

    def h_out(marks):
        h = reference_forward(base, src, dst, x, e, marks)
        return h.sum(0) if readout == "sum" else h.mean(0)

    return h_out


# ---------------------------------------------------------------------------------------------------------------------
# D_out against autograd
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize(
    "edge_dim,activation,readout,aggregation",
    [
        (None, "silu", "sum", "sum"),
        (2, "tanh", "mean", "sum"),
        (2, "gelu", "sum", "mean"),
        (None, "relu", "sum", "sum"),
    ],
)
def test_output_derivatives_match_nested_jvp_of_the_read_out(mode, edge_dim, activation, readout, aggregation):
    """``D_out(alpha)[u] = d^alpha (sum_v h_v) / d eps_u^alpha`` (mean: / n), alpha = 1..4, every mark direction."""
    torch.manual_seed(0)
    gs = small_batch()
    base = BaseMPNN(2, 3, 3, edge_dim=edge_dim, activation=activation, num_marks=2, aggregation=aggregation)
    xs, es = inputs(gs, 2, edge_dim)
    g = dgl.batch(gs)
    jets = base.jets(g, torch.cat(xs), torch.cat(es) if edge_dim else None, k=1, m=4, mode=mode)
    d_out = output_derivatives(jets, readout)
    assert d_out.shape == (g.num_nodes(), 4, 2, 3)
    start = 0
    for gi, x, e in zip(gs, xs, es):
        n = gi.num_nodes()
        fun = reference_output(base, gi, x, e, readout)
        for alpha in range(1, 5):
            want = nested_jvp(fun, n, 2, alpha)  # (n, r, C)
            got = d_out[start : start + n, alpha - 1]
            assert torch.allclose(got, want, atol=1e-10, rtol=1e-8), (mode, alpha, (got - want).abs().max())
        start += n
    if activation == "relu" and edge_dim is None:  # piecewise linear: only the first order survives
        assert torch.count_nonzero(d_out[:, 1:]) == 0 and torch.count_nonzero(d_out[:, 0]) > 0


def test_output_derivatives_dense_equal_sparse_and_equal_the_column_sums_of_pure():
    torch.manual_seed(1)
    gs = small_batch() + [dgl.graph(([], []), num_nodes=0), path_graph(3)]
    base = BaseMPNN(2, 4, 2, num_marks=1)
    g = dgl.batch(gs)
    x = torch.randn(g.num_nodes(), 2)
    dense = base.jets(g, x, k=1, m=3, mode="dense")
    sparse = base.jets(g, x, k=1, m=3, mode="sparse")
    a, b = output_derivatives(dense, "mean"), output_derivatives(sparse, "mean")
    assert torch.allclose(a, b, atol=1e-12)
    start = 0
    for i, gi in enumerate(gs):
        n = gi.num_nodes()
        for alpha, d in enumerate(sparse.pure(i)):  # (v, u, r, C) summed over v
            want = d.sum(0) / max(n, 1)
            assert torch.allclose(b[start : start + n, alpha], want, atol=1e-12)
        start += n


def test_output_derivatives_refuse_mixed_selections_and_nonlinear_readouts():
    base = BaseMPNN(2, 3, 2)
    g = path_graph(4)
    jets = base.jets(g, torch.randn(4, 2), k=2, m=1, mode="sparse")
    with pytest.raises(ValueError, match=r"implemented for k = 1 .* needs a k-IGN encoder; compute the jets with k=1"):
        output_derivatives(jets)
    with pytest.raises(ValueError, match=r"need a linear read-out, one of \('sum', 'mean'\); got 'max'"):
        output_derivatives(base.jets(g, torch.randn(4, 2)), "max")


def test_output_encoder_formula_and_invariance_to_the_mark_scale():
    """``U_out`` equals its formula on the Taylor coefficients; scaling the marks by t changes nothing (rms)."""
    torch.manual_seed(2)
    gs = small_batch()
    g = dgl.batch(gs)
    base = BaseMPNN(2, 3, 3, num_marks=1)
    x = torch.randn(g.num_nodes(), 2)
    enc = OutputDerivativeEncoder(3, 3, 5, 4)
    sizes = g.batch_num_nodes()
    d_out = output_derivatives(base.jets(g, x, k=1, m=3, mode="sparse"))
    feats = enc.features(d_out, sizes)
    n0 = gs[0].num_nodes()
    block = d_out[:n0, :, 0]  # graph 0: (n, m, C)
    rms = [(block[:, a] / math.factorial(a + 1)).pow(2).mean(0) for a in range(3)]
    s = torch.stack([(r + 1e-20 ** (a + 1)) ** (0.5 / (a + 1)) for a, r in enumerate(rms)]).amax(0)
    want = torch.cat([torch.asinh(block[:, a] / (math.factorial(a + 1) * s ** (a + 1))) for a in range(3)], 1)
    assert torch.allclose(feats[:n0], want, atol=1e-12)
    with torch.no_grad():
        base.mark_directions.mul_(7.0)
    d_out7 = output_derivatives(base.jets(g, x, k=1, m=3, mode="sparse"))
    assert not torch.allclose(d_out7, d_out)
    assert torch.allclose(enc(d_out7, sizes), enc(d_out, sizes), atol=1e-10)
    assert enc(d_out, sizes).shape == (g.num_nodes(), 4)


# ---------------------------------------------------------------------------------------------------------------------
# per-layer self-derivatives against autograd
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["dense", "sparse"])
@pytest.mark.parametrize("edge_dim,activation", [(None, "silu"), (2, "tanh")])
def test_layer_diagonals_match_autograd_of_each_truncated_base(mode, edge_dim, activation):
    """``layer_diagonals[t-1].diagonal[v, j] = d h_v^(t) / d eps_{v,j}`` (jvp of the first ``t`` layers), and
    ``sum_squares`` is the per-graph sum of the squared full first-order jet of layer ``t``."""
    torch.manual_seed(3)
    gs = small_batch()
    T = 3
    base = BaseMPNN(2, 3, T, edge_dim=edge_dim, activation=activation, num_marks=2)
    xs, es = inputs(gs, 2, edge_dim, seed=3)
    g = dgl.batch(gs)
    jets = base.jets(g, torch.cat(xs), torch.cat(es) if edge_dim else None, k=1, m=2, mode=mode, layer_diagonals=True)
    assert len(jets.layer_diagonals) == T
    assert torch.allclose(jets.layer_diagonals[-1].sum_squares[0], jets.pure(0)[0].pow(2).sum((0, 1)), atol=1e-12)
    start = 0
    for i, (gi, x, e) in enumerate(zip(gs, xs, es)):
        n = gi.num_nodes()
        src, dst = gi.edges()
        for t in range(1, T + 1):
            head = copy.deepcopy(base)
            head.layers = head.layers[:t]
            fwd = functools.partial(reference_forward, head, src, dst, x, e)
            full = torch.func.jacfwd(fwd)(torch.zeros(n, 2))
            d1 = full.permute(0, 2, 3, 1)  # (v, u, j, c)
            diag = d1[torch.arange(n), torch.arange(n)]  # (v, j, c)
            layer = jets.layer_diagonals[t - 1]
            assert torch.allclose(layer.diagonal[start : start + n], diag, atol=1e-10, rtol=1e-8), (t, i)
            assert torch.allclose(layer.sum_squares[i], d1.pow(2).sum((0, 1)), atol=1e-10, rtol=1e-8), (t, i)
        start += n
    assert base.jets(g, torch.cat(xs), torch.cat(es) if edge_dim else None).layer_diagonals == []


def test_layer_encoder_is_invariant_to_the_mark_scale_and_refuses_missing_layers():
    torch.manual_seed(4)
    g = dgl.batch(small_batch())
    base = BaseMPNN(2, 3, 3)
    x = torch.randn(g.num_nodes(), 2)
    enc = LayerDerivativeEncoder(3, 3, 5, 4)
    a = enc(base.jets(g, x, layer_diagonals=True))
    assert a.shape == (g.num_nodes(), 4)
    feats = enc.features(base.jets(g, x, layer_diagonals=True))
    with torch.no_grad():
        base.mark_directions.mul_(5.0)
    assert torch.allclose(enc(base.jets(g, x, layer_diagonals=True)), a, atol=1e-10)
    with torch.no_grad():
        base.mark_directions.mul_(-1.0)  # flips every first derivative: the features flip sign
    assert torch.allclose(enc.features(base.jets(g, x, layer_diagonals=True)), -feats, atol=1e-10)
    assert feats.abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"reads the self-derivatives of 3 base layers, the jets hold 0"):
        enc(base.jets(g, x))


# ---------------------------------------------------------------------------------------------------------------------
# the model switches
# ---------------------------------------------------------------------------------------------------------------------
def molecule_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n, edges in (
        (7, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (4, 5), (5, 6)]),
        (6, [(i, (i + 1) % 6) for i in range(6)]),
    ):
        src = [a for a, b in edges] + [b for a, b in edges]
        dst = [b for a, b in edges] + [a for a, b in edges]
        gi = dgl.graph((torch.tensor(src), torch.tensor(dst)), num_nodes=n)
        gi.ndata["feat"] = torch.randint(0, 28, (n,), generator=gen)
        half = torch.randint(1, 4, (len(edges),), generator=gen)
        gi.edata["feat"] = torch.cat([half, half])
        out.append(gi)
    return out


SWITCHES = [
    dict(output_derivatives=True),
    dict(per_layer_derivatives=True),
    dict(output_derivatives=True, per_layer_derivatives=True, readout="mean", global_pool=False),
    dict(output_derivatives=True, per_layer_derivatives=True, deriv_encoder="joint", jet_norm="asinh"),
    dict(per_layer_derivatives=True, k=2, m=1, jet_norm="none"),
]


@pytest.mark.parametrize(
    "switches,m",
    [(sw, m) for sw in SWITCHES for m in (1, 3) if not (sw.get("k") == 2 and m == 3)],  # k=2: total order <= 3
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else f"m={v}",
)
def test_model_with_switches_is_permutation_invariant_and_dense_equals_sparse(switches, m):
    torch.manual_seed(0)
    cfg = {**SMALL, "m": m, **switches}
    sparse = create_model("hod-gnn", **cfg, jet_mode="sparse").eval()
    dense = create_model("hod-gnn", **cfg, jet_mode="dense").eval()
    dense.load_state_dict(sparse.state_dict())
    graphs = molecule_batch()
    g = dgl.batch(graphs)
    gen = torch.Generator().manual_seed(1)
    gp = dgl.batch([permute_graph(gi, torch.randperm(gi.num_nodes(), generator=gen)) for gi in graphs])
    with torch.no_grad():
        out = sparse(g, g.ndata["feat"], g.edata["feat"])
        outp = sparse(gp, gp.ndata["feat"], gp.edata["feat"])
        outd = dense(g, g.ndata["feat"], g.edata["feat"])
    assert torch.allclose(out, outp, atol=1e-10), (out - outp).abs().max()
    assert torch.allclose(out, outd, atol=1e-10), (out - outd).abs().max()


def test_switches_add_inputs_that_change_the_model_and_default_off_changes_nothing():
    torch.manual_seed(0)
    plain = create_model("hod-gnn", **SMALL, m=2)
    graphs = molecule_batch()
    g = dgl.batch(graphs)
    names = set(plain.state_dict())
    for key, prefix in (("output_derivatives", "output_encoder."), ("per_layer_derivatives", "layer_encoder.")):
        torch.manual_seed(0)
        on = create_model("hod-gnn", **SMALL, m=2, **{key: True}).eval()
        extra = set(on.state_dict()) - names
        assert extra and all(
            n.startswith(prefix) or n.startswith("combine.") for n in extra | (names - set(on.state_dict()))
        )
        assert not any(n.startswith(prefix) for n in names)
        # the encoder's output reaches the prediction: zeroing its last layer changes the output
        out = on(g, g.ndata["feat"], g.edata["feat"])
        enc = on.output_encoder if key == "output_derivatives" else on.layer_encoder
        with torch.no_grad():
            for p in enc.parameters():
                p.mul_(0.5)
        assert not torch.allclose(out, on(g, g.ndata["feat"], g.edata["feat"]))
    off = create_model("hod-gnn", **SMALL, m=2, output_derivatives=False, per_layer_derivatives=False)
    assert set(off.state_dict()) == names


def test_switch_config_errors():
    with pytest.raises(ValueError, match=r"output_derivatives=True is implemented for k=1 only .* k-IGN encoder"):
        create_model("hod-gnn", k=2, m=1, output_derivatives=True)
    with pytest.raises(ValueError, match=r"output_derivatives=True needs derivatives, but m=0"):
        create_model("hod-gnn", m=0, output_derivatives=True)
    with pytest.raises(ValueError, match=r"per_layer_derivatives=True needs derivatives, but m=0"):
        create_model("hod-gnn", m=0, per_layer_derivatives=True)
    with pytest.raises(ValueError, match=r"per_layer_derivatives must be true or false, got 'yes'"):
        create_model("hod-gnn", per_layer_derivatives="yes")


def test_switches_train_end_to_end():
    torch.manual_seed(0)
    model = create_model("hod-gnn", **SMALL, m=2, output_derivatives=True, per_layer_derivatives=True)
    g = dgl.batch(molecule_batch())
    model(g, g.ndata["feat"], g.edata["feat"]).sum().backward()
    for name in (
        "base.mark_directions",
        "base.layers.0.lin1.weight",
        "output_encoder.out.weight",
        "layer_encoder.mlp.0.weight",
    ):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_per_layer_diagonals_at_the_rwse_init_are_the_whole_rwse_vector(mode):
    """With ``init="rwse"`` (channel 0 a unit-gain random-walk channel), channel 0 of layer ``t``'s self-derivative
    is the ``t``-step return probability, so the per-layer derivatives hold RWSE steps 1..T (the final jet alone
    holds only step T): against ``dgl.random_walk_pe`` and a numpy power of ``D^-1 A``."""
    torch.manual_seed(5)
    gs = [dgl.to_bidirected(dgl.graph(([0, 1, 2, 3, 0, 4], [1, 2, 3, 0, 2, 5]), num_nodes=6)), path_graph(5)]
    g = dgl.batch(gs)
    T = 5
    base = BaseMPNN(4, 6, T, activation="silu", num_marks=2, init="rwse").double()
    x = torch.randn(g.num_nodes(), 4)
    x[:, 0] = 0.0
    jets = base.jets(g, x, mode=mode, layer_diagonals=True)
    got = torch.stack([layer.diagonal[:, :, 0] for layer in jets.layer_diagonals], -1)  # (N, r, T)
    pe = dgl.random_walk_pe(g, T).double()  # (N, T), float32 inside DGL
    for j in range(2):
        assert torch.allclose(got[:, j], pe, atol=1e-6)
    a = g.adj_external(scipy_fmt="coo").toarray().T  # a[v, w] = 1 for an edge w -> v
    p = a / a.sum(1, keepdims=True)
    want = torch.stack([torch.tensor(np.linalg.matrix_power(p, t).diagonal().copy()) for t in range(1, T + 1)], -1)
    assert torch.allclose(got[:, 0], want, atol=1e-13)
    assert (want[:, 0] == 0).all() and (want[:, 1] > 0).all()  # step 1 has no loops; the steps differ


def test_switches_keep_graphs_independent_and_handle_empty_graphs(empty_graph):
    """A graph's output does not depend on the rest of its batch (the scales are per graph), an empty graph
    included."""
    torch.manual_seed(0)
    model = create_model("hod-gnn", **SMALL, m=2, output_derivatives=True, per_layer_derivatives=True).eval()
    graphs = molecule_batch()
    g = dgl.batch([graphs[0], empty_graph, graphs[1]])
    with torch.no_grad():
        out = model(g, g.ndata["feat"], g.edata["feat"])
        alone = [model(gi, gi.ndata["feat"], gi.edata["feat"]) for gi in graphs]
    assert out.shape == (3, 1) and torch.isfinite(out).all()
    assert torch.allclose(out[0], alone[0][0], atol=1e-10) and torch.allclose(out[2], alone[1][0], atol=1e-10)
