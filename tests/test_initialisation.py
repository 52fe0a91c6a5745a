"""The base MPNN's initialisation: the eps = 0 symmetry, the non-degenerate default, legacy zoo configs, RWSE init.

References are independent of the code under test: the symmetry is checked against permutation matrices found by a
networkx isomorphism of bipartite double covers, RWSE against a numpy matrix power of D^-1 A (and
``dgl.random_walk_pe``).  See docs/paper-model.md ("Initialisation", "RWSE initialisation") and
benchmarks/init_symmetry.py.
"""

from __future__ import annotations

import dgl
import networkx as nx
import numpy as np
import pytest
import torch

from dgl_hod import create_model, jets
from dgl_hod.archs.hod_gnn import HODGNNConfig
from dgl_hod.datasets import expressivity_pairs
from dgl_hod.nn.base_mpnn import DEFAULT_EPS, BaseMPNN, rwse_operating_point

TWO_FOLD_PAIRS = (4, 24, 64, 89)  # BREC basic 4, 24 and regular 64, 89
SMALL = dict(
    node_vocab=(1,), edge_vocab=None, hidden_dim=32, base_hidden_dim=16, downstream_layers=2, downstream_norm="none"
)


@pytest.fixture(scope="module")
def brec():
    return expressivity_pairs("brec")


def adjacency(g: dgl.DGLGraph) -> np.ndarray:
    a = np.zeros((g.num_nodes(), g.num_nodes()))
    src, dst = g.edges()
    a[src.numpy(), dst.numpy()] = 1.0
    return a


def two_fold(b1: np.ndarray, b2: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Permutation matrices (P, R) with b2 = P b1 R^T (a side-preserving isomorphism of the double covers)."""

    def cover(b):
        h = nx.Graph()
        h.add_nodes_from(((v, 0) for v in range(len(b))), side=0)
        h.add_nodes_from(((v, 1) for v in range(len(b))), side=1)
        h.add_edges_from(((int(v), 0), (int(u), 1)) for v, u in zip(*np.nonzero(b)))
        return h

    gm = nx.algorithms.isomorphism.GraphMatcher(cover(b1), cover(b2), node_match=lambda x, y: x["side"] == y["side"])
    for mapping in gm.isomorphisms_iter():
        p, r = np.zeros_like(b1), np.zeros_like(b1)
        for (v, side), (w, _) in mapping.items():
            (p if side == 0 else r)[w, v] = 1.0
        return torch.tensor(p), torch.tensor(r)
    return None


def base_eps(model) -> float | None:
    """The model's normalised ``base_eps`` config value."""
    cfg = model.config
    assert isinstance(cfg, HODGNNConfig)
    return cfg.base_eps


def separation(model, g1, g2) -> float:
    g = dgl.batch([g1, g2])
    with torch.no_grad():
        e = model.embed(g, None)
    return float((e[0] - e[1]).abs().max() / (1 + e.abs().max()))


def fresh(depth: int, seed: int = 0, **config):
    torch.manual_seed(seed)
    return create_model("hod-gnn", **{**SMALL, "base_layers": depth, **config}).double().eval()


# ------------------------------------------------------------------------------------------------ the eps = 0 symmetry
def test_the_four_pairs_are_two_fold_isomorphic_with_loops_but_not_isomorphic(brec):
    """A2 + I = P (A1 + I) R^T with P != R, and Sigma = R^T P is an automorphism of G1 (an involution)."""
    for k in TWO_FOLD_PAIRS:
        g1, g2, _ = brec[k]
        a1, a2 = adjacency(g1), adjacency(g2)
        eye = np.eye(len(a1))
        found = two_fold(a1 + eye, a2 + eye)
        assert found is not None, k
        p, r = (t.numpy() for t in found)
        assert np.array_equal(a2 + eye, p @ (a1 + eye) @ r.T)
        sigma = r.T @ p
        assert not np.array_equal(sigma, eye) and np.array_equal(sigma @ sigma, eye)
        assert np.array_equal(sigma @ a1 @ sigma.T, a1)
        assert not nx.is_isomorphic(nx.from_numpy_array(a1), nx.from_numpy_array(a2))


@pytest.mark.parametrize("k", [4, 64])
def test_eps0_base_computes_the_same_function_on_both_graphs_at_even_depth(brec, k):
    """F_G2(R X) = R F_G1(X) after 2 or 4 layers and P F_G1(X) after 1 or 3, for a RANDOM input X (so every jet of
    every order agrees up to relabelling); with eps = DEFAULT_EPS neither holds."""
    g1, g2, _ = brec[k]
    eye = np.eye(g1.num_nodes())
    found = two_fold(adjacency(g1) + eye, adjacency(g2) + eye)
    assert found is not None
    p, r = found
    x = torch.randn(g1.num_nodes(), 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for depth in (1, 2, 3, 4):
        torch.manual_seed(depth)
        base = BaseMPNN(5, 8, depth, eps=0.0).double()
        with torch.no_grad():
            h1, h2 = base(g1, x), base(g2, r @ x)
        same = r if depth % 2 == 0 else p
        other = p if depth % 2 == 0 else r
        assert torch.allclose(h2, same @ h1, atol=1e-13, rtol=0)
        assert (h2 - other @ h1).abs().max() > 1e-5
        torch.manual_seed(depth)
        fresh_base = BaseMPNN(5, 8, depth).double()
        with torch.no_grad():
            f1, f2 = fresh_base(g1, x), fresh_base(g2, r @ x)
        assert (f2 - r @ f1).abs().max() > 1e-5 and (f2 - p @ f1).abs().max() > 1e-5
    # the jets themselves: conjugate at even depth (diagonal kept), rows and columns moved apart at odd depth
    for depth in (2, 3):
        torch.manual_seed(0)
        base = BaseMPNN(5, 8, depth, eps=0.0).double()
        d1 = base.jets(g1, x, k=1, m=2).pure(0)
        d2 = base.jets(g2, r @ x, k=1, m=2).pure(0)
        left = r if depth % 2 == 0 else p
        for a, b in zip(d1, d2):
            want = torch.einsum("wv,vujc,xu->wxjc", left, a, r)
            assert torch.allclose(b, want, atol=1e-13, rtol=0)


def test_old_init_ties_the_pairs_at_even_depth_only(brec):
    """base_eps = 0 (the old default): a fresh k1 model ties the four pairs to round-off at depths 2 and 4 and
    separates them at depth 3, for two seeds."""
    for seed in (0, 1):
        for depth, tied in ((2, True), (3, False), (4, True)):
            model = fresh(depth, seed, k=1, m=1, base_eps=0.0)
            gaps = [separation(model, *brec[k][:2]) for k in TWO_FOLD_PAIRS]
            if tied:
                assert max(gaps) < 1e-13, (seed, depth, gaps)
            else:
                assert min(gaps) > 1e-6, (seed, depth, gaps)


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("m", [1, 2])
def test_fresh_default_k1_models_separate_the_pairs(brec, depth, m):
    """The default initialisation (base_eps = DEFAULT_EPS) is off the symmetry at every depth."""
    model = fresh(depth, k=1, m=m)
    assert base_eps(model) == DEFAULT_EPS != 0.0
    assert all(float(layer.eps) == DEFAULT_EPS for layer in model.base.layers)
    gaps = [separation(model, *brec[k][:2]) for k in TWO_FOLD_PAIRS]
    assert min(gaps) > 1e-6, gaps


def test_the_same_symmetry_at_eps_minus_one_ties_two_fold_pairs_without_loops(brec):
    """eps = -1 (no self term, the RWSE start) aggregates with A itself: BREC basic 26 and regular 71 satisfy
    A2 = P A1 R^T (P != R), so a fresh rwse-init model ties them at depth 4; the default init separates them."""
    for k in (26, 71):
        g1, g2, _ = brec[k]
        assert two_fold(adjacency(g1), adjacency(g2)) is not None
        for init in ("rwse", "rwse-linear"):
            assert separation(fresh(4, k=1, m=1, base_init=init), g1, g2) < 1e-13
        assert separation(fresh(4, k=1, m=1), g1, g2) > 1e-6


# -------------------------------------------------------------------------------------------------- config and zoo
def test_base_eps_config_and_errors():
    assert base_eps(create_model("hod-gnn", **SMALL)) == DEFAULT_EPS
    assert create_model("hod-gnn", **SMALL, base_eps=0.25).base.layers[1].eps.item() == 0.25
    assert base_eps(create_model("hod-gnn", **SMALL, base_init="rwse")) == -1.0
    with pytest.raises(ValueError, match="base_init='rwse' needs base_eps = -1"):
        create_model("hod-gnn", **SMALL, base_init="rwse", base_eps=0.5)
    with pytest.raises(ValueError, match="base_eps must be a finite float"):
        create_model("hod-gnn", **SMALL, base_eps=float("nan"))
    with pytest.raises(ValueError, match="init must be one of"):
        BaseMPNN(2, 4, 2, init="rw")
    with pytest.raises(ValueError, match="needs eps = -1"):
        BaseMPNN(2, 4, 2, init="rwse", eps=0.0)
    assert float(BaseMPNN(2, 4, 2).layers[0].eps) == DEFAULT_EPS


def test_zoo_entries_keep_their_init_and_their_trained_eps():
    """Every zoo hod-gnn model is rebuilt with the init it was trained from: eps = 0 for the entries trained before
    the default changed (their config states base_eps: 0.0 or predates the key: LEGACY_DEFAULTS), the config's
    base_eps otherwise; loaded, every layer's eps is the trained value stored in the weights file (the reference
    outputs are checked by load_model), and training moved it away from the init."""
    from safetensors.torch import load_file

    from dgl_hod.zoo import _legacy_defaults, default_zoo

    zoo = default_zoo()
    names = [n for n, e in zoo.entries.items() if e.arch == "hod-gnn"]
    assert names
    legacy = [n for n in names if "base_eps" not in zoo.model_info(n).config]
    for name in legacy + [n for n in names if zoo.model_info(n).config.get("base_eps") == 0.0][:1]:
        stripped = {k: v for k, v in zoo.model_info(name).config.items() if k != "base_eps"}
        assert base_eps(create_model("hod-gnn", **{**_legacy_defaults("hod-gnn"), **stripped})) == 0.0
    for name in names:
        want = 0.0 if name in legacy else zoo.model_info(name).config["base_eps"]
        fresh_model = zoo.load_model(name, pretrained=False)
        assert base_eps(fresh_model) == want
        assert all(float(layer.eps) == want for layer in fresh_model.base.layers)
        if name == names[0]:  # one trained model is enough to check the stored values
            loaded = zoo.load_model(name)
            stored = load_file(str(zoo.weights_path(zoo.model_info(name))))
            for t, layer in enumerate(loaded.base.layers):
                assert torch.equal(layer.eps.detach(), stored[f"base.layers.{t}.eps"])
            assert any(float(layer.eps) != want for layer in loaded.base.layers)  # trained away from the init


# ------------------------------------------------------------------------------------------------------------ RWSE
def random_walk_matrix(g: dgl.DGLGraph) -> np.ndarray:
    a = adjacency(g)
    deg = a.sum(1, keepdims=True)
    return np.divide(a, deg, out=np.zeros_like(a), where=deg > 0)


def rwse_graph() -> dgl.DGLGraph:
    gen = torch.Generator().manual_seed(8)
    src = torch.randint(0, 11, (18,), generator=gen)
    dst = torch.randint(0, 11, (18,), generator=gen)
    keep = src != dst
    g = dgl.to_simple(dgl.to_bidirected(dgl.graph((src[keep], dst[keep]), num_nodes=11)), return_counts=None)
    return dgl.add_nodes(g, 1)  # an isolated node: no walk, RWSE 0


@pytest.mark.parametrize("activation", sorted(jets.ACTIVATIONS))
@pytest.mark.parametrize("edge_dim", [None, 3])
def test_rwse_init_first_derivatives_are_random_walk_return_probabilities(activation, edge_dim):
    """D1[v, u, j, 0] = (P^T)[v, u] (P = D^-1 A) exactly at initialisation, for any input with x[:, 0] = 0, GIN and
    GINE, every activation (softplus: float32 rounding of log 2 in the biases), every mark direction j."""
    g = rwse_graph()
    p = random_walk_matrix(g)
    tol = 1e-6 if activation == "softplus" else 1e-13
    for depth in (1, 2, 3, 5):
        torch.manual_seed(depth)
        base = BaseMPNN(4, 6, depth, edge_dim=edge_dim, activation=activation, num_marks=2, init="rwse").double()
        assert base.activation == activation and all(layer.aggregation == "mean" for layer in base.layers)
        x = torch.randn(g.num_nodes(), 4, dtype=torch.float64)
        x[:, 0] = 0.0
        e = torch.randn(g.num_edges(), 3, dtype=torch.float64) if edge_dim else None
        (d1,) = base.jets(g, x, e, k=1, m=1).pure(0)
        want = torch.tensor(np.linalg.matrix_power(p, depth))
        for j in range(2):
            assert torch.allclose(d1[:, :, j, 0], want, atol=tol, rtol=0), (activation, depth)
        pe = dgl.random_walk_pe(g, depth)[:, depth - 1].double()  # float32 inside DGL
        assert torch.allclose(torch.diagonal(d1[:, :, 0, 0]), pe, atol=1e-6)


def test_rwse_init_is_a_nonlinear_trainable_mpnn():
    """The RWSE start is not linear: second derivatives are nonzero (silu), the output is not linear in the input,
    only row 0 of each layer's weights is fixed by the init, and one optimiser step changes every base weight."""
    g = rwse_graph()
    torch.manual_seed(0)
    base = BaseMPNN(4, 6, 3, init="rwse").double()
    z0, a0, s0 = rwse_operating_point("silu")
    assert (z0, a0, s0) == (0.0, 0.0, 0.5)
    x = torch.randn(g.num_nodes(), 4, dtype=torch.float64)
    x[:, 0] = 0.0
    d1, d2 = base.jets(g, x, k=1, m=2).pure(0)
    assert d2.abs().max() > 1e-2
    with torch.no_grad():
        assert (base(g, 2 * x) - 2 * base(g, x)).abs().max() > 1e-2
    w = base.layers[1].lin1.weight
    assert torch.equal(w[0], torch.tensor([2.0, 0, 0, 0, 0, 0], dtype=torch.float64))  # e_0 / s0
    assert w[1:].abs().sum() > 0 and not torch.allclose(w[1:, 1:], torch.eye(5, dtype=torch.float64))
    opt = torch.optim.SGD(base.parameters(), lr=0.1)
    d1.pow(2).sum().backward()
    opt.step()
    d1_after, _ = base.jets(g, x, k=1, m=2).pure(0)
    assert not torch.allclose(d1_after, d1)


def test_hod_gnn_rwse_init_reads_rwse_on_the_jet_diagonal():
    """create_model(base_init="rwse"): the node encoder's channel 0 starts at 0 (also after reset_parameters), so
    the jets' diagonal on channel 0 is the RWSE of the base depth, with the config's (nonlinear) activation."""
    g = dgl.batch([rwse_graph(), dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 0])))])
    for activation in ("silu", "tanh"):
        torch.manual_seed(0)
        model = create_model(
            "hod-gnn", **{**SMALL, "base_layers": 4}, k=1, m=1, base_init="rwse", base_activation=activation
        ).double()
        model.reset_parameters()
        assert model.base.activation == activation
        assert float(model.node_encoder.embeddings[0].weight[:, 0].abs().max()) == 0.0
        jets_ = model.jets(g, None)
        diag = torch.cat([torch.diagonal(jets_.pure(i)[0][:, :, 0, 0]) for i in range(g.batch_size)])
        want = torch.cat(
            [torch.tensor(np.diag(np.linalg.matrix_power(random_walk_matrix(gi), 4))) for gi in dgl.unbatch(g)]
        )
        assert torch.allclose(diag, want, atol=1e-13, rtol=0)
