"""One small function per source format; :data:`LOADERS` maps ``DatasetInfo.loader`` to it.

Each loader returns ``(packed, indices)`` for the requested split: the :class:`PackedGraphs` and the position of
every graph in the full dataset.  All files are read through :func:`verified_path` (checksum-checked).
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from ._store import verified_path
from .graphs import PackedGraphs
from .registry import DatasetInfo

__all__ = ["LOADERS", "read_graph6_file", "undirected_to_both"]


def _stat_key(rel: str) -> tuple[str, int, int]:
    """Verify ``rel`` and return a cache key that changes whenever the file (or the data root) changes."""
    path = verified_path(rel)
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=16)
def _read_npz(key: tuple[str, int, int]) -> dict[str, np.ndarray]:
    with np.load(key[0], allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _npz(rel: str) -> dict[str, np.ndarray]:
    return _read_npz(_stat_key(rel))


def _json(rel: str):
    return json.loads(verified_path(rel).read_text())


def _select(
    info: DatasetInfo,
    full: PackedGraphs,
    split: str,
    fold: int | None,
    folds_rel: str | None = None,
    split_lists: dict | None = None,
):
    """Pick a split from a full packed dataset: fixed lists (``split_lists``) or fold files (``folds_rel``)."""
    if split == "all":
        if fold is not None:
            raise ValueError(f"fold= applies to train/val/test splits of {info.name}, not to split='all'")
        return full, np.arange(full.num_graphs)
    if info.num_folds:
        if not isinstance(fold, (int, np.integer)) or isinstance(fold, bool) or not 0 <= fold < info.num_folds:
            raise ValueError(
                f"{info.name} has {info.num_folds} fold splits; pass an int fold=0..{info.num_folds - 1} "
                f"with split={split!r} (got fold={fold!r})"
            )
        assert folds_rel is not None, f"{info.name}: fold-based loader without a folds file"
        idx = np.asarray(_json(folds_rel)["folds"][int(fold)][split], dtype=np.int64)
    else:
        if fold is not None:
            raise ValueError(f"{info.name} has fixed splits; fold= is not accepted")
        assert split_lists is not None, f"{info.name}: fixed-split loader without split lists"
        idx = np.asarray(split_lists[split], dtype=np.int64)
    return full.subset(idx), idx


# --- ZINC-12k ------------------------------------------------------------------------------------------------
def _zinc_split(rel: str) -> PackedGraphs:
    z = _npz(rel)
    return PackedGraphs.from_arrays(
        z["node_ptr"],
        z["edge_ptr"],
        z["edge_index"],
        z["x"],
        z["edge_attr"],
        z["y"].astype(np.float32).reshape(-1, 1),
        {"source_line": z["source_line"]},
    )


def load_zinc(info: DatasetInfo, split: str, fold=None):
    if fold is not None:
        raise ValueError("zinc12k has fixed splits; fold= is not accepted")
    names = ["train", "val", "test"] if split == "all" else [split]
    parts = [_zinc_split(f"zinc12k/{s}.npz") for s in names]
    packed = parts[0] if len(parts) == 1 else PackedGraphs.concat(parts)
    return packed, np.arange(packed.num_graphs)  # positions within the split (or train+val+test for 'all')


# --- OGB molecules -------------------------------------------------------------------------------------------
def _ogb(rel: str):
    z = _npz(rel)
    full = PackedGraphs.from_arrays(
        z["node_ptr"], z["edge_ptr"], z["edge_index"], z["node_feat"], z["edge_feat"], z["labels"].astype(np.float32)
    )
    return full, {"train": z["train"], "valid": z["valid"], "test": z["test"]}


def load_ogb(info: DatasetInfo, split: str, fold=None):
    full, lists = _ogb(info.files[0])
    return _select(info, full, split, fold, split_lists=lists)


def load_peptides(info: DatasetInfo, split: str, fold=None):
    z = _npz(info.files[0])
    full = PackedGraphs.from_arrays(
        z["node_ptr"],
        z["edge_ptr"],
        z["edge_index"].astype(np.int64),
        z["node_feat"].astype(np.int64),
        z["edge_feat"].astype(np.int64),
        z["labels"].astype(np.float32),
    )
    return _select(info, full, split, fold, split_lists={k: z[k] for k in ("train", "val", "test")})


# --- EXP / CSL -----------------------------------------------------------------------------------------------
def load_exp(info: DatasetInfo, split: str, fold=None):
    z = _npz(info.files[0])
    full = PackedGraphs.from_arrays(
        z["node_ptr"], z["edge_ptr"], z["edge_index"], z["x"], None, z["y"], {"pair": z["pair_index"]}
    )
    return _select(info, full, split, fold)


def load_csl(info: DatasetInfo, split: str, fold=None):
    z = _npz(info.files[0])
    full = PackedGraphs.from_arrays(
        z["node_ptr"], z["edge_ptr"], z["edge_index"], None, None, z["y"], {"skip": z["skip"]}
    )
    return _select(info, full, split, fold, folds_rel=info.files[1])


# --- graph6 (SR25, graph8c, BREC) ----------------------------------------------------------------------------
def undirected_to_both(edges: np.ndarray) -> np.ndarray:
    """(2, m) undirected edges -> (2, 2m) directed, both directions, sorted by (src, dst)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(2, -1)
    both = np.concatenate([edges, edges[::-1]], axis=1)
    order = np.lexsort((both[1], both[0]))
    return both[:, order]


def read_graph6_file(rel: str) -> tuple[list[int], list[np.ndarray]]:
    """Node counts and directed edge arrays (both directions) of every graph6 line of a shipped file."""
    import networkx as nx

    nums, edges = [], []
    for line in verified_path(rel).read_bytes().split():
        g = nx.from_graph6_bytes(line)
        nums.append(g.number_of_nodes())
        edges.append(undirected_to_both(np.array(list(g.edges()), dtype=np.int64).reshape(-1, 2).T))
    return nums, edges


def load_g6(info: DatasetInfo, split: str, fold=None):
    nums, edges = read_graph6_file(info.files[0])
    full = PackedGraphs.from_edge_lists(nums, edges, y=np.arange(len(nums)))
    return _select(info, full, split, fold)


def load_brec(info: DatasetInfo, split: str, fold=None):
    nums, edges, cats = [], [], []
    for c, rel in enumerate(info.files):
        n, e = read_graph6_file(rel)
        nums += n
        edges += e
        cats += [c] * len(n)
    g = len(nums)
    full = PackedGraphs.from_edge_lists(
        nums, edges, y=np.arange(g) // 2, extras={"pair": np.arange(g) // 2, "category": np.asarray(cats)}
    )
    return _select(info, full, split, fold)


# --- TU text format ------------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def _read_ints(key: tuple[str, int, int]) -> np.ndarray:
    import pandas as pd

    return pd.read_csv(key[0], header=None, sep=",", skipinitialspace=True).to_numpy(np.int64)


def _ints(rel: str) -> np.ndarray:
    return _read_ints(_stat_key(rel))


def _tu(ds: str, edge_labels: bool) -> PackedGraphs:
    pre = f"tu/{ds}/{ds}_"
    a = _ints(pre + "A.txt") - 1  # (E, 2) global 0-based
    gi = _ints(pre + "graph_indicator.txt")[:, 0] - 1
    labels = _ints(pre + "graph_labels.txt")[:, 0]
    nlab = _ints(pre + "node_labels.txt")[:, 0]
    elab = _ints(pre + "edge_labels.txt")[:, 0] if edge_labels else np.zeros(len(a), np.int64)
    if np.any(np.diff(gi) < 0):
        raise ValueError(f"{ds}: graph_indicator is not sorted")
    g = len(labels)
    node_ptr = np.concatenate([[0], np.cumsum(np.bincount(gi, minlength=g))])
    eg = gi[a[:, 0]]
    order = np.argsort(eg, kind="stable")
    a, eg, elab = a[order], eg[order], elab[order]
    edge_ptr = np.concatenate([[0], np.cumsum(np.bincount(eg, minlength=g))])
    local = (a - node_ptr[eg][:, None]).T
    classes = np.unique(labels)  # MUTAG -1/1 -> 0/1, PROTEINS 1/2 -> 0/1
    return PackedGraphs.from_arrays(node_ptr, edge_ptr, local, nlab, elab, np.searchsorted(classes, labels))


def load_tu(info: DatasetInfo, split: str, fold=None):
    tu, edge_labels = str(info.options["tu"]), bool(info.options["edge_labels"])
    return _select(info, _tu(tu, edge_labels), split, fold, folds_rel=info.files[-1])


def load_counting(info: DatasetInfo, split: str, fold=None):
    from .counting import counting_packed

    full, splits = counting_packed(seed=info.options["seed"])
    return _select(info, full, split, fold, split_lists=splits)


LOADERS = {
    "zinc12k": load_zinc,
    "ogb": load_ogb,
    "peptides": load_peptides,
    "exp": load_exp,
    "csl": load_csl,
    "g6": load_g6,
    "brec": load_brec,
    "tu": load_tu,
    "counting": load_counting,
}
