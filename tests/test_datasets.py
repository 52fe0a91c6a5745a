"""Tests for dgl_hod.datasets: facts from PROVENANCE.md, graph invariants, evaluator, counting, file integrity."""

from __future__ import annotations

import itertools
import math
import shutil

import dgl
import networkx as nx
import numpy as np
import pytest
import torch

from dgl_hod.datasets import (
    COUNTING_TARGETS,
    DatasetFileError,
    Evaluator,
    _store,
    expressivity_pairs,
    get_info,
    list_datasets,
    load_dataset,
)
from dgl_hod.datasets.counting import count_substructures, generate_graphs

STATIC = [n for n in list_datasets() if n != "counting"]


# --- registry ------------------------------------------------------------------------------------------------
def test_registry_lists_and_metadata():
    names = list_datasets()
    assert names[0] == "zinc12k"
    for n in [
        "ogbg-molhiv",
        "ogbg-molbace",
        "ogbg-moltox21",
        "ogbg-molesol",
        "ogbg-molfreesolv",
        "ogbg-mollipo",
        "ogbg-molbbbp",
        "peptides-func",
        "exp",
        "csl",
        "sr25",
        "brec",
        "graph8c",
        "counting",
        "mutag",
        "proteins",
    ]:
        assert n in names
    info = get_info("zinc12k")
    assert (info.task_type, info.metric, info.num_tasks) == ("regression", "mae", 1)
    assert info.node_feat_dims == (28,) and info.edge_feat_dims == (4,)
    assert dict(info.splits) == {"train": 10000, "val": 1000, "test": 1000}
    assert get_info("ogbg-molhiv").node_feat_dims == (119, 5, 12, 12, 10, 6, 6, 2, 2)
    assert get_info("ogbg-molhiv").edge_feat_dims == (5, 6, 2)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="ogbg-molhiv"):
        get_info("ogbg-molhvi")
    with pytest.raises(KeyError, match="zinc12k"):
        load_dataset("zinc-12k")
    with pytest.raises(ValueError, match="splits"):
        load_dataset("zinc12k", split="training")
    with pytest.raises(ValueError, match="fold"):
        load_dataset("csl", split="train")


# --- ZINC-12k ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "split,graphs,nodes,edges,nrange,erange,mean,std",
    [
        ("train", 10000, 231664, 498558, (9, 37), (16, 82), 0.0153, 2.0108),
        ("val", 1000, 23083, 49692, (10, 36), (20, 80), 0.0315, 1.9846),
        ("test", 1000, 23117, 49720, (11, 37), (20, 84), 0.0124, 2.0170),
    ],
)
def test_zinc_split_statistics(split, graphs, nodes, edges, nrange, erange, mean, std):
    ds = load_dataset("zinc12k", split=split)
    assert len(ds) == graphs
    assert ds.num_nodes.sum() == nodes and ds.num_edges.sum() == edges
    assert (ds.num_nodes.min(), ds.num_nodes.max()) == nrange
    assert (ds.num_edges.min(), ds.num_edges.max()) == erange
    y = ds.labels.numpy().astype(np.float64).ravel()
    assert round(y.mean(), 4) == mean and round(y.std(), 4) == std
    assert 0 <= ds.packed.node_feat.min() and ds.packed.node_feat.max() <= 20  # ids 21..27 unused in 12k
    assert set(np.unique(ds.packed.edge_feat)) <= {1, 2, 3}


def test_zinc_train0_hand_values():
    g, y = load_dataset("zinc12k", "train")[0]
    assert g.num_nodes() == 29 and g.num_edges() == 64
    assert y.shape == (1,) and y.dtype == torch.float32
    assert abs(float(y) - 0.8350356) < 1e-6
    assert g.ndata["feat"].dtype == torch.int64 and g.ndata["feat"].shape == (29,)
    assert g.edata["feat"].dtype == torch.int64 and g.edata["feat"].shape == (64,)
    src, dst = g.edges()
    # bond b gives columns 2b (i->j) and 2b+1 (j->i), with the same label
    assert torch.equal(src[0::2], dst[1::2]) and torch.equal(dst[0::2], src[1::2])
    assert torch.equal(g.edata["feat"][0::2], g.edata["feat"][1::2])
    assert int(load_dataset("zinc12k", "train").extras["source_line"][0]) == 167621


def test_zinc_all_is_train_val_test_and_batching():
    ds = load_dataset("zinc12k")
    assert len(ds) == 12000
    val = load_dataset("zinc12k", "valid")  # alias
    assert torch.equal(ds.labels[10000:11000], val.labels)
    tr = load_dataset("zinc12k", "train")
    idx = [5, 0, 9999, 17]
    ref = dgl.batch([tr[i][0] for i in idx])
    bg, y = tr.batch(idx)
    assert torch.equal(torch.stack(bg.edges()), torch.stack(ref.edges()))
    assert torch.equal(bg.batch_num_nodes(), ref.batch_num_nodes())
    assert torch.equal(bg.ndata["feat"], ref.ndata["feat"]) and torch.equal(bg.edata["feat"], ref.edata["feat"])
    assert torch.equal(y, torch.stack([tr[i][1] for i in idx]))
    loader = dgl.dataloading.GraphDataLoader(tr, batch_size=64, shuffle=False)
    g, y = next(iter(loader))
    assert g.batch_size == 64 and y.shape == (64, 1)
    assert g.num_nodes() == int(tr.num_nodes[:64].sum())
    assert tr[-1][0].num_nodes() == tr.num_nodes[-1]


def test_pickle_and_dataloader_workers():
    import pickle

    ds = load_dataset("zinc12k", "val")
    back = pickle.loads(pickle.dumps(ds))
    assert back.info is get_info("zinc12k") and torch.equal(back.labels, ds.labels)
    loader = dgl.dataloading.GraphDataLoader(ds, batch_size=100, num_workers=2)
    assert sum(g.batch_size for g, _ in loader) == 1000


# --- OGB -----------------------------------------------------------------------------------------------------
OGB_FACTS = {  # name: (graphs, nodes, directed edges, (train, valid, test), missing, positives, no-edge graphs)
    "ogbg-molhiv": (41127, 1049163, 2259376, (32901, 4113, 4113), 0, 1443, 0),
    "ogbg-molbace": (1513, 51577, 111536, (1210, 151, 152), 0, 691, 0),
    "ogbg-molbbbp": (2039, 49068, 105842, (1631, 204, 204), 0, 1560, 0),
    "ogbg-moltox21": (7831, 145459, 302190, (6264, 783, 784), 16026, 5862, 19),
    "ogbg-molesol": (1128, 14991, 30856, (902, 113, 113), 0, None, 1),
    "ogbg-molfreesolv": (642, 5600, 10770, (513, 64, 65), 0, None, 3),
    "ogbg-mollipo": (4200, 113568, 247798, (3360, 420, 420), 0, None, 0),
}


@pytest.mark.parametrize("name", list(OGB_FACTS))
def test_ogb_statistics(name):
    graphs, nodes, edges, sizes, missing, pos, empty = OGB_FACTS[name]
    ds = load_dataset(name)
    info = get_info(name)
    assert len(ds) == graphs == info.num_graphs
    assert ds.num_nodes.sum() == nodes and ds.num_edges.sum() == edges
    y = ds.labels.numpy()
    assert y.shape == (graphs, info.num_tasks) and y.dtype == np.float32
    assert np.isnan(y).sum() == missing
    if pos is not None:
        assert np.nansum(y) == pos
    assert (ds.num_edges == 0).sum() == empty
    nf, ef = ds.packed.node_feat, ds.packed.edge_feat
    assert nf.shape == (nodes, 9) and ef.shape == (edges, 3)
    assert np.all(nf >= 0) and np.all(nf < np.array(info.node_feat_dims))
    assert np.all(ef >= 0) and np.all(ef < np.array(info.edge_feat_dims))
    parts = [load_dataset(name, s) for s in ("train", "valid", "test")]
    assert tuple(len(p) for p in parts) == sizes
    idx = np.concatenate([p.indices for p in parts])
    assert np.array_equal(np.sort(idx), np.arange(graphs))
    g, yy = parts[2][3]
    assert torch.equal(yy.nan_to_num(-7), ds.labels[parts[2].indices[3]].nan_to_num(-7))
    assert g.ndata["feat"].shape[1] == 9 and g.edata["feat"].shape[1] == 3


def test_peptides_func_statistics():
    ds = load_dataset("peptides-func")
    assert len(ds) == 15535 and ds.num_nodes.sum() == 2344859 and ds.num_edges.sum() == 4773974  # LRGB: 150.94 / 307.30
    y = ds.labels.numpy()
    assert y.shape == (15535, 10) and list(y.sum(0).astype(int)) == [
        1378,
        545,
        995,
        969,
        9745,
        3077,
        1662,
        2866,
        299,
        4044,
    ]
    parts = [load_dataset("peptides-func", s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [10873, 2331, 2331]
    assert np.array_equal(np.sort(np.concatenate([p.indices for p in parts])), np.arange(15535))
    g, yy = parts[1][0]
    assert g.ndata["feat"].shape == (g.num_nodes(), 9) and yy.shape == (10,)


# --- every graph of every dataset: symmetric edges, no self-loops, features inside their vocabularies ----------
def _check_symmetric(ds):
    p = ds.packed
    e = np.diff(p.edge_ptr)
    gid = np.repeat(np.arange(len(e)), e)
    n_max = int(np.diff(p.node_ptr).max()) + 1
    fwd = (gid * n_max + p.src) * n_max + p.dst
    bwd = (gid * n_max + p.dst) * n_max + p.src
    assert np.array_equal(np.sort(fwd), np.sort(bwd)), f"{ds.name}: asymmetric edges"
    assert len(np.unique(fwd)) == len(fwd), f"{ds.name}: duplicate edges"
    assert not np.any(p.src == p.dst), f"{ds.name}: self-loop"
    assert np.all(p.src < np.repeat(np.diff(p.node_ptr), e)) and np.all(p.dst >= 0)
    # edge features agree in both directions
    ef = p.edge_feat.reshape(len(fwd), -1)
    o1, o2 = np.argsort(fwd), np.argsort(bwd)
    assert np.array_equal(ef[o1], ef[o2]), f"{ds.name}: edge features differ by direction"
    info = ds.info
    nf = p.node_feat.reshape(len(p.node_feat), -1)
    assert nf.shape[1] == len(info.node_feat_dims) and ef.shape[1] == len(info.edge_feat_dims)
    assert np.all((nf >= 0) & (nf < np.array(info.node_feat_dims)))
    assert np.all((ef >= 0) & (ef < np.array(info.edge_feat_dims)))


@pytest.mark.parametrize("name", STATIC)
def test_edges_symmetric_everywhere(name):
    _check_symmetric(load_dataset(name))


# --- evaluator -----------------------------------------------------------------------------------------------
def test_evaluator_rocauc_hand_computation():
    ev = Evaluator("ogbg-molhiv")
    # positives score .9, .4; negatives .1, .6: 3 of 4 (pos, neg) pairs ordered correctly
    out = ev.eval({"y_true": np.array([[1], [0], [1], [0]]), "y_pred": np.array([[0.9], [0.1], [0.4], [0.6]])})
    assert out == {"rocauc": pytest.approx(0.75)}
    ev = Evaluator("ogbg-moltox21")
    yt = np.full((4, 12), np.nan)
    yp = np.zeros((4, 12))
    yt[:, 0], yp[:, 0] = [1, 0, 1, 0], [0.9, 0.1, 0.4, 0.6]  # 0.75
    yt[:3, 1], yp[:3, 1] = [0, 1, 0], [0.2, 0.8, 0.3]  # NaN row ignored: 1.0
    yt[:, 2] = 1  # only one class: skipped (as OGB)
    out = Evaluator("ogbg-moltox21").eval({"y_true": torch.tensor(yt), "y_pred": torch.tensor(yp)})
    assert out["rocauc"] == pytest.approx((0.75 + 1.0) / 2)


def test_evaluator_ap_hand_computation():
    # ranking .9 (pos), .6 (neg), .4 (pos), .1 (neg): AP = 0.5 * 1 + 0.5 * 2/3
    yt = np.zeros((4, 10))
    yp = np.zeros((4, 10))
    yt[:, 0], yp[:, 0] = [1, 0, 1, 0], [0.9, 0.1, 0.4, 0.6]
    yt[:, 1], yp[:, 1] = [1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3]  # AP 1
    out = Evaluator("peptides-func").eval({"y_true": yt, "y_pred": yp})  # tasks 2..9 all-negative: skipped
    assert out == {"ap": pytest.approx((0.5 + 0.5 * 2 / 3 + 1.0) / 2)}


def test_evaluator_rmse_mae_hand_computation():
    out = Evaluator("ogbg-molesol").eval(
        {"y_true": np.array([[1.0], [2.0], [3.0]]), "y_pred": np.array([[1.0], [4.0], [2.0]])}
    )
    assert out == {"rmse": pytest.approx(math.sqrt((0 + 4 + 1) / 3))}
    out = Evaluator("zinc12k").eval({"y_true": np.array([[1.0], [2.0]]), "y_pred": np.array([[0.5], [3.0]])})
    assert out == {"mae": pytest.approx(0.75)}


def test_evaluator_shape_errors():
    ev = Evaluator("ogbg-molhiv")
    with pytest.raises(ValueError, match="2-dimensional"):
        ev.eval({"y_true": np.zeros(4), "y_pred": np.zeros(4)})
    with pytest.raises(ValueError, match="same shape"):
        ev.eval({"y_true": np.zeros((4, 1)), "y_pred": np.zeros((3, 1))})
    with pytest.raises(ValueError, match="task"):
        ev.eval({"y_true": np.zeros((4, 2)), "y_pred": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="y_true"):
        ev.eval({"y_pred": np.zeros((4, 1))})
    with pytest.raises(RuntimeError, match="both positive and negative"):
        ev.eval({"y_true": np.ones((4, 1)), "y_pred": np.zeros((4, 1))})


# --- expressivity sets ---------------------------------------------------------------------------------------
def test_expressivity_dataset_facts():
    exp = load_dataset("exp")
    assert (len(exp), exp.num_nodes.sum(), exp.num_edges.sum()) == (1200, 53336, 132260)
    assert np.array_equal(exp.labels.numpy()[0::2], np.ones(600)) and not exp.labels.numpy()[1::2].any()
    csl = load_dataset("csl")
    assert len(csl) == 150 and set(csl.num_nodes) == {41} and set(csl.num_edges) == {164}
    assert np.array_equal(np.bincount(csl.labels.numpy()), np.full(10, 15))
    tests = [load_dataset("csl", "test", fold=k).indices for k in range(5)]
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(150))
    assert tuple(len(load_dataset("csl", s, fold=0)) for s in ("train", "val", "test")) == (90, 30, 30)
    sr = load_dataset("sr25")
    assert len(sr) == 15 and set(sr.num_nodes) == {25} and set(sr.num_edges) == {25 * 12}
    g8 = load_dataset("graph8c")
    assert len(g8) == 11117 and set(g8.num_nodes) == {8}
    brec = load_dataset("brec")
    assert len(brec) == 800
    assert np.array_equal(np.bincount(brec.extras["category"]), [120, 100, 100, 200, 200, 40, 40])
    for ds in (csl, sr, g8, brec):
        assert not ds.packed.node_feat.any() and not ds.packed.edge_feat.any()  # constant-zero features


def test_expressivity_pairs():
    assert len(expressivity_pairs("sr25")) == 105
    assert len(expressivity_pairs("exp")) == 600
    assert len(expressivity_pairs("csl")) == 45
    pairs = expressivity_pairs("brec")
    assert len(pairs) == 400
    cats = [pairs._index(p)[2]["category"] for p in range(400)]
    assert [cats.count(c) for c in ("basic", "regular", "str", "extension", "cfi", "4vtx", "dr")] == [
        60,
        50,
        50,
        100,
        100,
        20,
        20,
    ]
    g1, g2, meta = pairs[0]
    assert meta == {"i": 0, "j": 1, "pair": 0, "category": "basic"}
    assert g1.num_nodes() == g2.num_nodes() == 10 and g1.num_edges() == g2.num_edges()
    g8 = expressivity_pairs("graph8c")
    assert len(g8) == 11117 * 11116 // 2
    n = 7  # unranking equals lexicographic enumeration
    from dgl_hod.datasets.expressivity import _all_pairs

    cnt, index = _all_pairs(n)
    assert [index(k)[:2] for k in range(cnt)] == list(itertools.combinations(range(n), 2))
    assert g8[-1][2]["i"] == 11115 and g8[-1][2]["j"] == 11116
    sr = expressivity_pairs("sr25")
    assert [(m["i"], m["j"]) for _, _, m in sr] == list(itertools.combinations(range(15), 2))
    a, b, m = expressivity_pairs("csl")[0]
    assert m["skips"] == (2, 3) and a.num_nodes() == 41
    e1, e2, m = expressivity_pairs("exp")[599]
    assert m["pair"] == 599 and e1.num_nodes() == e2.num_nodes()
    with pytest.raises(ValueError):
        expressivity_pairs("zinc12k")


def test_graph6_parse_matches_networkx():
    g8 = load_dataset("graph8c")
    lines = (_store.data_root() / "synthetic/graph8c/graph8c.g6").read_bytes().split()
    for k in (0, 5000, 11116):
        ref = nx.from_graph6_bytes(lines[k])
        g = g8.graph(k)
        mine = nx.Graph(list(zip(*[t.tolist() for t in g.edges()])))
        assert sorted(map(sorted, mine.edges())) == sorted(map(sorted, ref.edges()))


# --- TU ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,graphs,counts,nodes,edges,test_size",
    [
        ("mutag", 188, [63, 125], 3371, 7442, 18),
        ("proteins", 1113, [663, 450], 43471, 162088, 111),
    ],
)
def test_tu_statistics_and_folds(name, graphs, counts, nodes, edges, test_size):
    ds = load_dataset(name)
    assert len(ds) == graphs and list(np.bincount(ds.labels.numpy())) == counts
    assert ds.num_nodes.sum() == nodes and ds.num_edges.sum() == edges
    tests = []
    for k in range(10):
        tr, te = load_dataset(name, "train", fold=k), load_dataset(name, "test", fold=k)
        assert len(te) == test_size and len(tr) + len(te) == graphs
        assert not set(tr.indices) & set(te.indices)
        tests.append(te.indices)
    assert len(np.unique(np.concatenate(tests))) == 10 * test_size


# --- counting ------------------------------------------------------------------------------------------------
PATTERNS = {
    "triangle": nx.cycle_graph(3),
    "tailed_triangle": nx.Graph([(0, 1), (1, 2), (2, 0), (0, 3)]),
    "cycle4": nx.cycle_graph(4),
    "cycle5": nx.cycle_graph(5),
    "cycle6": nx.cycle_graph(6),
    "chordal_cycle": nx.Graph([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]),
    "clique4": nx.complete_graph(4),
    "star3": nx.star_graph(3),
    "path4": nx.path_graph(5),
}


def _brute_force(G: nx.Graph) -> list[int]:
    """Non-induced subgraph counts: subgraph monomorphisms / automorphisms (networkx VF2)."""
    iso = nx.algorithms.isomorphism
    out = []
    for name in COUNTING_TARGETS:
        H = PATTERNS[name]
        mono = sum(1 for _ in iso.GraphMatcher(G, H).subgraph_monomorphisms_iter())
        aut = sum(1 for _ in iso.GraphMatcher(H, H).isomorphisms_iter())
        assert mono % aut == 0
        out.append(mono // aut)
    return out


def test_counts_equal_brute_force():
    nums, edges = generate_graphs(seed=0, num_graphs=200)
    sample = sorted(range(200), key=lambda k: nums[k])[:12] + [150, 199]
    graphs = [(nums[k], edges[k]) for k in sample]
    for G in (nx.complete_graph(6), nx.petersen_graph(), nx.wheel_graph(7)):
        graphs.append((G.number_of_nodes(), np.array(list(G.edges()))))
    for n, e in graphs:
        G = nx.Graph()
        G.add_nodes_from(range(n))
        G.add_edges_from(map(tuple, e))
        assert list(count_substructures(n, e)) == _brute_force(G), (n, len(e))


def test_counting_dataset():
    ds = load_dataset("counting")
    assert len(ds) == 5000
    assert tuple(len(load_dataset("counting", s)) for s in ("train", "val", "test")) == (1500, 1000, 2500)
    assert 10 <= ds.num_nodes.min() and ds.num_nodes.max() <= 30
    counts = ds.extras["counts"]
    std = counts.std(axis=0)
    assert np.allclose(ds.labels.numpy(), counts / std, rtol=1e-6)
    assert np.allclose(ds.labels.numpy().astype(np.float64).std(axis=0), 1.0, rtol=1e-4)
    nums, edges = generate_graphs(seed=0, num_graphs=3)  # deterministic from the seed
    for k in range(3):
        assert nums[k] == ds.num_nodes[k]
        assert np.array_equal(count_substructures(nums[k], edges[k]), counts[k])
    _check_symmetric(ds)


def test_counting_cache_regenerates_after_truncation(tmp_path, monkeypatch):
    from dgl_hod.datasets import counting

    monkeypatch.setenv("DGL_HOD_CACHE", str(tmp_path))
    monkeypatch.setattr(counting, "NUM_GRAPHS", 40)
    monkeypatch.setattr(counting, "SPLIT_SIZES", (10, 10, 20))
    counting.counting_packed.cache_clear()
    try:
        full, splits = counting.counting_packed(seed=3)
        path = tmp_path / "counting-v1-seed3.npz"
        assert path.is_file() and [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left
        path.write_bytes(path.read_bytes()[:100])  # simulate a damaged cache
        counting.counting_packed.cache_clear()
        with pytest.warns(UserWarning, match="regenerating"):
            again, _ = counting.counting_packed(seed=3)
        assert np.array_equal(again.extras["counts"], full.extras["counts"])
        assert path.stat().st_size > 100
    finally:
        counting.counting_packed.cache_clear()


# --- file integrity ------------------------------------------------------------------------------------------
@pytest.fixture
def zinc_copy(tmp_path, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(_store.data_root() / "zinc12k", root / "zinc12k")
    shutil.copy(_store.data_root() / "SHA256SUMS", root / "SHA256SUMS")
    monkeypatch.setenv("DGL_HOD_DATA", str(root))
    monkeypatch.setenv("DGL_HOD_CACHE", str(tmp_path / "cache"))
    return root


def test_copied_data_loads_and_no_verdict_is_stored(zinc_copy, tmp_path):
    assert len(load_dataset("zinc12k", "val")) == 1000
    assert not (tmp_path / "cache" / "verified.json").exists()  # verdicts live in the process, never on disk


def test_truncated_file_is_named_with_fix(zinc_copy):
    f = zinc_copy / "zinc12k" / "test.npz"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DatasetFileError, match=r"zinc12k/test\.npz.*corrupt or truncated.*Fix"):
        load_dataset("zinc12k", "test")


def test_corrupt_file_same_size_is_detected(zinc_copy):
    f = zinc_copy / "zinc12k" / "val.npz"
    data = bytearray(f.read_bytes())
    data[5000] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(DatasetFileError, match=r"val\.npz.*sha256"):
        load_dataset("zinc12k", "val")


def test_missing_file_and_missing_manifest(zinc_copy):
    (zinc_copy / "zinc12k" / "train.npz").unlink()
    with pytest.raises(DatasetFileError, match=r"zinc12k/train\.npz is missing.*git checkout"):
        load_dataset("zinc12k", "train")
    (zinc_copy / "SHA256SUMS").unlink()
    with pytest.raises(DatasetFileError, match="SHA256SUMS"):
        load_dataset("zinc12k", "val")


def test_shipped_manifest_covers_every_file():
    root = _store.data_root()
    listed = set(_store._manifest(root))
    shipped = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {"SHA256SUMS", "README.md"}
    assert listed == shipped
    for rel in listed:
        assert not rel.endswith((".pkl", ".pickle", ".pt", ".pth", ".bin"))
