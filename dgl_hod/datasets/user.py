r"""The user's own graphs as a :class:`~dgl_hod.datasets.GraphDataset`: checks, splits and process-local registration.

:func:`from_graphs` takes DGL graphs the user already built; :func:`dgl_hod.datasets.from_smiles` (molecules) builds
on the same machinery.  Both return a :class:`UserGraphDataset`, a ``GraphDataset`` with

* ``ds[i] -> (g, y)``, ``ds.batch(idx)``, ``ds.subset(idx)`` exactly as the built-in sets;
* ``ds.info``: a :class:`~dgl_hod.datasets.DatasetInfo` (task type, metric, number of tasks, feature vocabularies,
  split sizes) like ``get_info(name)``;
* ``ds.indices``: the input position (row of the table, index in the graph list) of every graph;
* ``ds.split("train" | "valid" | "test")``: the split views, whose ``.indices`` are input positions too
  (``ds.split`` also still reads as the split label, ``"all"``, like the built-in sets' ``ds.split``).

:func:`register_dataset` gives such a dataset a name for the rest of the process, after which everything that takes
a dataset name (``load_dataset``, ``get_info``, ``Evaluator``, the trainer) accepts it.

Example:
    >>> import dgl, torch
    >>> from dgl_hod.datasets import from_graphs
    >>> def ring(n):
    ...     src = torch.arange(n)
    ...     g = dgl.graph((torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])))
    ...     g.ndata["feat"] = torch.zeros(n, dtype=torch.long)
    ...     return g
    >>> ds = from_graphs([ring(n) for n in range(3, 13)], [float(n) for n in range(3, 13)], task="regression")
    >>> len(ds), ds.info.node_feat_dims, len(ds.split("train"))
    (10, (1,), 8)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from ..utils import did_you_mean
from .graphs import GraphDataset, PackedGraphs
from .loaders import LOADERS
from .registry import REGISTRY, DatasetInfo

__all__ = [
    "TASKS",
    "UserGraphDataset",
    "UserDataError",
    "from_graphs",
    "register_dataset",
    "unregister_dataset",
    "registered_datasets",
    "check_labels",
    "check_graphs",
    "random_split",
]

TASKS = MappingProxyType(
    {"binary": "binary_classification", "regression": "regression", "multiclass": "multiclass_classification"}
)
DEFAULT_METRIC = MappingProxyType(
    {"binary_classification": "rocauc", "regression": "rmse", "multiclass_classification": "accuracy"}
)
_METRICS_FOR = MappingProxyType(
    {
        "binary_classification": ("rocauc", "ap"),
        "regression": ("rmse", "mae"),
        "multiclass_classification": ("accuracy",),
    }
)
SPLITS = ("train", "valid", "test")
_SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}

_USER_DATA: dict[str, tuple[PackedGraphs, np.ndarray, dict[str, np.ndarray]]] = {}


class UserDataError(ValueError):
    """The user's data cannot be used as given (the message says what is wrong, where, and how to fix it)."""


# --- task and labels -----------------------------------------------------------------------------------------
def task_type(task: str) -> str:
    """``"binary" | "regression" | "multiclass"`` (or the long names of ``DatasetInfo.task_type``) -> the long name."""
    if task in TASKS:
        return TASKS[task]
    if task in TASKS.values():
        return task
    raise UserDataError(
        f"task must be one of {', '.join(TASKS)} (or {', '.join(TASKS.values())}), got {task!r}."
        f"{did_you_mean(str(task), list(TASKS))}"
    )


def check_labels(
    labels: Any, task: str, num_graphs: int, columns: Sequence[str] | None = None, rows: np.ndarray | None = None
) -> np.ndarray:
    r"""Labels as the loaders store them, after checking that they fit ``task``.

    Args:
        labels: ``(G,)`` or ``(G, T)`` numbers (array, tensor, list); NaN = missing label (not for multiclass).
        task: ``"binary"`` (every label 0, 1 or NaN), ``"regression"`` (finite or NaN), ``"multiclass"`` (one
            column of class ids 0..C-1, no NaN).
        num_graphs: G, the number of graphs the labels belong to.
        columns: names of the T label columns, for messages (default ``task 0``, ``task 1``, ...).
        rows: input position of every graph, for messages (default 0..G-1).

    Returns:
        float32 ``(G, T)`` for binary/regression, int64 ``(G,)`` for multiclass.

    Raises:
        UserDataError: wrong shape, non-numeric values, or values that do not fit the task (names the first rows).
    """
    tt = task_type(task)
    try:
        import torch

        if isinstance(labels, torch.Tensor):
            labels = labels.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    try:
        y = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise UserDataError(f"labels must be numbers (NaN = missing): {err}") from None
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[0] != num_graphs:
        raise UserDataError(
            f"labels must have shape ({num_graphs},) or ({num_graphs}, num_tasks), one row per graph; got "
            f"{np.shape(labels)}"
        )
    cols = list(columns) if columns is not None else [f"task {t}" for t in range(y.shape[1])]
    pos = np.arange(num_graphs) if rows is None else np.asarray(rows)

    def where(bad: np.ndarray) -> str:
        r, c = np.nonzero(bad)
        shown = ", ".join(f"row {pos[i]} column {cols[j]!r} = {y[i, j]!r}" for i, j in zip(r[:5], c[:5]))
        more = f" and {len(r) - 5} more" if len(r) > 5 else ""
        return f"{shown}{more}"

    if tt == "binary_classification":
        bad = ~(np.isnan(y) | (y == 0) | (y == 1))
        if bad.any():
            raise UserDataError(
                f"task 'binary' needs labels 0, 1 or empty (missing); {where(bad)}. Use task='regression' for "
                f"continuous targets or task='multiclass' for class ids"
            )
        return y.astype(np.float32)
    if tt == "regression":
        bad = np.isinf(y)
        if bad.any():
            raise UserDataError(f"regression labels must be finite numbers or empty (missing); {where(bad)}")
        return y.astype(np.float32)
    if y.shape[1] != 1:
        raise UserDataError(
            f"task 'multiclass' takes one label column of class ids, got {y.shape[1]} ({', '.join(cols)}); "
            f"use task='binary' for several 0/1 tasks"
        )
    bad = np.isnan(y) | (y < 0) | (y != np.round(y))
    if bad.any():
        raise UserDataError(
            f"task 'multiclass' needs class ids 0, 1, 2, ... in every row (no missing labels); {where(bad)}"
        )
    return y[:, 0].astype(np.int64)


# --- graph checks --------------------------------------------------------------------------------------------
def _vocab_of(feat: np.ndarray) -> tuple[int, ...]:
    if feat.shape[0] == 0:
        return (1,) if feat.ndim == 1 else (1,) * feat.shape[1]
    m = feat.max(axis=0)
    return (int(m) + 1,) if feat.ndim == 1 else tuple(int(v) + 1 for v in m)


def check_graphs(
    packed: PackedGraphs,
    node_vocab: Sequence[int] | None,
    edge_vocab: Sequence[int] | None,
    *,
    allow_self_loops: bool = False,
    rows: np.ndarray | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The checks the built-in loaders' data satisfy; returns the (node, edge) vocabularies.

    Every edge exists in both directions (same multiplicity), no self-loops unless ``allow_self_loops``, local node
    ids within each graph, features are non-negative integer ids below the vocabulary sizes (one size per feature
    column; ``None`` = inferred as max + 1).

    Raises:
        UserDataError: naming the first offending graph (its input position) and the fix.
    """
    pos = np.arange(packed.num_graphs) if rows is None else np.asarray(rows)
    ne = np.diff(packed.edge_ptr)
    gid = np.repeat(np.arange(packed.num_graphs), ne)
    nn_per_edge = np.diff(packed.node_ptr)[gid]
    src, dst = packed.src, packed.dst
    bad = (src < 0) | (dst < 0) | (src >= nn_per_edge) | (dst >= nn_per_edge)
    if bad.any():
        k = int(gid[np.argmax(bad)])
        n_k = int(packed.node_ptr[k + 1] - packed.node_ptr[k])
        raise UserDataError(f"graph {pos[k]}: an edge refers to a node id outside 0..{n_k - 1} (it has {n_k} nodes)")
    loops = src == dst
    if loops.any() and not allow_self_loops:
        k = int(gid[np.argmax(loops)])
        raise UserDataError(
            f"graph {pos[k]} has a self-loop (node {int(src[np.argmax(loops)])}); the zoo's data has none. "
            f"Remove it (dgl.remove_self_loop(g)) or pass allow_self_loops=True"
        )
    # both directions: the multiset of (graph, u, v) equals the multiset of (graph, v, u)
    if len(src):
        big = int(max(1, np.diff(packed.node_ptr).max()))
        fwd = np.sort((gid * big + src) * big + dst)
        bwd = np.sort((gid * big + dst) * big + src)
        if not np.array_equal(fwd, bwd):
            missing = np.setdiff1d(fwd, bwd)
            code = int(missing[0]) if len(missing) else int(fwd[np.argmax(fwd != bwd)])
            k, rest = divmod(code, big * big)
            u, v = divmod(rest, big)
            raise UserDataError(
                f"graph {pos[k]} has the edge {u}->{v} but not {v}->{u}: the models expect undirected graphs "
                f"stored in both directions. Fix: dgl.to_bidirected(g, copy_ndata=True) (or add the reverse edges "
                f"with the same features)"
            )
    out = []
    for what, feat, vocab in (("node", packed.node_feat, node_vocab), ("edge", packed.edge_feat, edge_vocab)):
        if not np.issubdtype(feat.dtype, np.integer):
            raise UserDataError(
                f"{what} features must be integer category ids (dtype {feat.dtype} given): every zoo architecture "
                f"embeds categorical ids; map continuous {what} features to bins or categories first"
            )
        if feat.ndim not in (1, 2):
            raise UserDataError(f"{what} features must have shape ({what}s,) or ({what}s, columns), got {feat.shape}")
        if feat.size and feat.min() < 0:
            raise UserDataError(f"{what} feature ids must be >= 0, found {int(feat.min())}")
        seen = _vocab_of(feat)
        if vocab is None:
            out.append(seen)
            continue
        vocab = tuple(int(v) for v in vocab)
        if len(vocab) != len(seen):
            raise UserDataError(
                f"{what}_vocab has {len(vocab)} column(s) {vocab} but the {what} features have {len(seen)}"
            )
        over = [c for c, (s, v) in enumerate(zip(seen, vocab)) if s > v]
        if over:
            c = over[0]
            col = feat if feat.ndim == 1 else feat[:, c]
            row = int(np.argmax(col >= vocab[c]))
            owner = np.searchsorted(packed.node_ptr if what == "node" else packed.edge_ptr, row, side="right") - 1
            raise UserDataError(
                f"graph {pos[owner]}: {what} feature column {c} has id {int(col[row])}, outside the vocabulary "
                f"{vocab} (ids 0..{vocab[c] - 1} in that column); a model would read another category or crash. "
                f"Use the featurisation the model was trained with, or a larger {what}_vocab"
            )
        out.append(vocab)
    return out[0], out[1]


# --- splits --------------------------------------------------------------------------------------------------
def random_split(num: int, frac: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """A seeded random 80/10/10 (``frac``) split of ``range(num)``: sorted position arrays per split."""
    _check_frac(frac)
    perm = np.random.default_rng(seed).permutation(num)
    n_train = int(np.floor(frac[0] * num))
    n_valid = int(np.floor((frac[0] + frac[1]) * num)) - n_train
    parts = perm[:n_train], perm[n_train : n_train + n_valid], perm[n_train + n_valid :]
    return {k: np.sort(p).astype(np.int64) for k, p in zip(SPLITS, parts)}


def _check_frac(frac: Sequence[float]) -> None:
    if len(frac) != 3 or any(f < 0 for f in frac) or abs(sum(frac) - 1.0) > 1e-9:
        raise UserDataError(f"frac must be three non-negative fractions (train, valid, test) summing to 1, got {frac}")


def splits_from_names(names: Sequence[Any], rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Split positions from one split name per graph (``train``, ``valid``/``val``, ``test``)."""
    canon = []
    for i, s in enumerate(names):
        key = _SPLIT_NAMES.get(str(s).strip().lower())
        if key is None:
            where = i if rows is None else int(rows[i])
            raise UserDataError(
                f"row {where}: split value {s!r} is not one of train, valid (val), test; fix the split column"
            )
        canon.append(key)
    arr = np.asarray(canon)
    return {k: np.nonzero(arr == k)[0].astype(np.int64) for k in SPLITS}


# --- the dataset ---------------------------------------------------------------------------------------------
class SplitLabel(str):
    """The split label of a :class:`UserGraphDataset` (``"all"``, ``"train"``, ...), also callable:
    ``ds.split("train")`` returns that split's view.
    """

    _owner: UserGraphDataset | None

    def __new__(cls, label: str, owner: UserGraphDataset | None = None) -> SplitLabel:
        obj = super().__new__(cls, label)
        obj._owner = owner
        return obj

    def __call__(self, name: str) -> UserGraphDataset:
        if self._owner is None:  # pragma: no cover - only reachable through manual construction
            raise TypeError("this split label is not attached to a dataset")
        return self._owner.get_split(name)


def _info_to_dict(info: DatasetInfo) -> dict:
    d = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
    d["splits"], d["options"] = dict(info.splits), dict(info.options)
    return d


def _info_from_dict(d: dict) -> DatasetInfo:
    d = dict(d)
    d["splits"], d["options"] = MappingProxyType(dict(d["splits"])), MappingProxyType(dict(d["options"]))
    return DatasetInfo(**d)


class UserGraphDataset(GraphDataset):
    """A :class:`GraphDataset` of the user's graphs (built by :func:`from_graphs` or ``from_smiles``).

    Attributes:
        info: the :class:`DatasetInfo` (``loader == "user"``; ``options`` records how it was built).
        indices: input position (table row, list index) of every graph, ``(len(ds),)`` int64.
        split_positions: ``{"train" | "valid" | "test": positions in this dataset}`` (empty without a split).
        skipped: rows left out (``from_smiles(..., invalid="skip")``): dicts ``row``, ``smiles``, ``reason``.
    """

    def __init__(
        self,
        info: DatasetInfo,
        split: str,
        packed: PackedGraphs,
        indices: np.ndarray | None = None,
        split_positions: Mapping[str, np.ndarray] | None = None,
        skipped: Sequence[Mapping[str, Any]] = (),
    ):
        super().__init__(info, split, packed, indices)
        self.split_positions = {k: np.asarray(v, np.int64) for k, v in (split_positions or {}).items()}
        self.skipped = [dict(s) for s in skipped]

    @property
    def split(self) -> SplitLabel:  # the base class sets self.split = label; keep it a str that is also callable
        return SplitLabel(self._split_label, self)

    @split.setter
    def split(self, label: str) -> None:
        self._split_label = str(label)

    def get_split(self, name: str) -> UserGraphDataset:
        """The view of split ``name`` (``"train"``, ``"valid"``/``"val"``, ``"test"``; ``"all"`` = everything)."""
        if name in (None, "all"):
            return self
        key = _SPLIT_NAMES.get(str(name).lower())
        if key is None:
            raise UserDataError(f"split must be one of train, valid (val), test or all; got {name!r}")
        if not self.split_positions:
            raise UserDataError(
                f"{self.name}[{self._split_label}] has no train/valid/test split: build it with split='scaffold', "
                f"'random' or a split column (views of a split cannot be split again)"
            )
        return self.subset(self.split_positions[key], split=key)

    def subset(self, idx, split: str | None = None) -> UserGraphDataset:
        idx = np.asarray(idx, dtype=np.int64)
        return UserGraphDataset(
            self.info, split or f"{self._split_label}[subset]", self.packed.subset(idx), self.indices[idx]
        )

    def __getstate__(self):  # an unregistered dataset has no name to pickle its info by: pickle the fields
        state = dict(self.__dict__)
        state["info"] = _info_to_dict(self.info)
        return state

    def __setstate__(self, state):
        state = dict(state)
        state["info"] = _info_from_dict(state["info"])
        self.__dict__.update(state)

    def write_skipped(self, path) -> None:
        """Write the skipped rows as CSV (``row,smiles,reason``), atomically."""
        import csv
        import io

        from ..utils import atomic_write_bytes

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["row", "smiles", "reason"])
        for s in self.skipped:
            w.writerow([s["row"], s["smiles"], s["reason"]])
        atomic_write_bytes(path, buf.getvalue().encode())


def make_info(
    name: str,
    task: str,
    metric: str | None,
    num_tasks: int,
    node_dims: tuple[int, ...],
    edge_dims: tuple[int, ...],
    num_graphs: int,
    split_positions: Mapping[str, np.ndarray],
    num_classes: int = 0,
    options: Mapping[str, Any] | None = None,
    source: str = "user data",
) -> DatasetInfo:
    """The :class:`DatasetInfo` of a user dataset (``loader="user"``)."""
    tt = task_type(task)
    metric = metric or DEFAULT_METRIC[tt]
    if metric not in _METRICS_FOR[tt]:
        raise UserDataError(f"metric for task {task!r} must be one of {', '.join(_METRICS_FOR[tt])}, got {metric!r}")
    splits = {"all": num_graphs, **{k: len(v) for k, v in split_positions.items()}}
    label_shape = "int64 () class id" if tt == "multiclass_classification" else f"float32 ({num_tasks},), NaN = missing"
    return DatasetInfo(
        name=name,
        task_type=tt,
        metric=metric,
        num_tasks=1 if tt == "multiclass_classification" else num_tasks,
        node_feat_dims=tuple(node_dims),
        edge_feat_dims=tuple(edge_dims),
        num_graphs=num_graphs,
        splits=MappingProxyType(splits),
        loader="user",
        files=(),
        source=source,
        license="the user's",
        num_classes=num_classes,
        label_shape=label_shape,
        options=MappingProxyType(dict(options or {})),
    )


def resolve_split(
    split: Any, num: int, frac: Sequence[float], seed: int, rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """``"random"``, ``None`` (no split), a mapping ``{"train": positions, ...}`` or one split name per graph."""
    if split is None:
        return {}
    if isinstance(split, str):
        if split == "random":
            return random_split(num, frac, seed)
        raise UserDataError(
            f"split must be 'random', None, a dict of positions or one split name per graph; got {split!r}"
        )
    if isinstance(split, Mapping):
        out = {}
        for k, v in split.items():
            key = _SPLIT_NAMES.get(str(k).lower())
            if key is None:
                raise UserDataError(f"split keys must be train, valid (val), test; got {k!r}")
            out[key] = np.asarray(v, dtype=np.int64).reshape(-1)
        allpos = np.concatenate(list(out.values())) if out else np.zeros(0, np.int64)
        if len(allpos) and (allpos.min() < 0 or allpos.max() >= num):
            raise UserDataError(f"split positions must be in 0..{num - 1}")
        if len(np.unique(allpos)) != len(allpos):
            raise UserDataError("split position lists overlap: every graph belongs to at most one split")
        return {k: out.get(k, np.zeros(0, np.int64)) for k in SPLITS}
    names = list(split)
    if len(names) != num:
        raise UserDataError(f"a split list needs one name per graph ({num}), got {len(names)}")
    return splits_from_names(names, rows)


def build_dataset(
    packed: PackedGraphs,
    rows: np.ndarray,
    *,
    name: str,
    task: str,
    metric: str | None,
    columns: Sequence[str],
    split_positions: Mapping[str, np.ndarray],
    node_vocab: Sequence[int] | None,
    edge_vocab: Sequence[int] | None,
    allow_self_loops: bool = False,
    num_classes: int | None = None,
    options: Mapping[str, Any] | None = None,
    source: str = "user data",
    skipped: Sequence[Mapping[str, Any]] = (),
) -> UserGraphDataset:
    """Check ``packed`` (graphs, labels already checked) and wrap it as a :class:`UserGraphDataset`."""
    node_dims, edge_dims = check_graphs(packed, node_vocab, edge_vocab, allow_self_loops=allow_self_loops, rows=rows)
    tt = task_type(task)
    nc = 0
    if tt == "multiclass_classification":
        seen = int(packed.y.max()) + 1 if len(packed.y) else 1
        nc = seen if num_classes is None else int(num_classes)
        if seen > nc:
            raise UserDataError(f"class id {seen - 1} found but num_classes={nc}; ids must be 0..{nc - 1}")
    info = make_info(
        name,
        task,
        metric,
        len(columns),
        node_dims,
        edge_dims,
        packed.num_graphs,
        split_positions,
        num_classes=nc,
        options={"label_columns": tuple(columns), **dict(options or {})},
        source=source,
    )
    if tt == "binary_classification" and len(packed.y):
        _warn_single_class(packed.y, split_positions, list(columns), info.metric)
    return UserGraphDataset(info, "all", packed, rows, split_positions, skipped)


def _warn_single_class(y: np.ndarray, positions: Mapping[str, np.ndarray], columns: list[str], metric: str) -> None:
    """Warn when no task of a split has both classes: ROC-AUC / AP on it is undefined (the trainer would stop)."""
    import warnings

    for split, pos in positions.items():
        if not len(pos):
            continue
        sub = y[pos]
        if not any(np.any(sub[:, t] == 0) and np.any(sub[:, t] == 1) for t in range(sub.shape[1])):
            warnings.warn(
                f"the {split} split ({len(pos)} graphs) has no task with both 0 and 1 labels ({', '.join(columns)}): "
                f"{metric} is undefined on it. Use more data, another split (seed=, a split column) or other fractions",
                stacklevel=3,
            )


def from_graphs(
    graphs: Sequence[Any],
    labels: Any,
    task: str = "regression",
    *,
    split: Any = "random",
    frac: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    node_vocab: Sequence[int] | None = None,
    edge_vocab: Sequence[int] | None = None,
    allow_self_loops: bool = False,
    metric: str | None = None,
    num_classes: int | None = None,
    label_names: Sequence[str] | None = None,
    name: str = "user-graphs",
) -> UserGraphDataset:
    r"""A :class:`UserGraphDataset` from a list of ``DGLGraph``\ s and their labels.

    Args:
        graphs: ``DGLGraph``\ s, each with integer category ids ``ndata["feat"]`` (N,) or (N, F) and, if it has edge
            features, ``edata["feat"]`` (E,) or (E, F); missing features = one constant category (id 0).  Every
            edge must be present in both directions; no self-loops unless ``allow_self_loops``.
        labels: ``(G,)`` or ``(G, T)``; NaN = missing (see :func:`check_labels` for what fits each task).
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        split: ``"random"`` (seeded ``frac`` split), ``None`` (no split), ``{"train": positions, "valid": ...,
            "test": ...}``, or one split name per graph.
        frac: train / valid / test fractions of the random split.
        seed: seed of the random split.
        node_vocab: vocabulary size per node feature column (e.g. a zoo model's ``config.node_vocab``); ids at or
            above it are an error.  ``None``: max id + 1.
        edge_vocab: the same for edge features.
        allow_self_loops: accept ``u -> u`` edges.
        metric: ``rocauc``/``ap`` (binary), ``rmse``/``mae`` (regression), ``accuracy``; default the first.
        num_classes: for multiclass (default max id + 1).
        label_names: names of the label columns (for messages and metadata).
        name: the dataset's name (``register_dataset`` registers it under this name).

    Returns:
        The dataset, graphs in input order (``ds.indices`` = list positions).

    Raises:
        UserDataError: a graph or label that breaks a rule, naming the graph and the fix.
    """
    import torch

    graphs = list(graphs)
    if not graphs:
        raise UserDataError("from_graphs needs at least one graph")
    nums: list[int] = []
    edge_lists: list[np.ndarray] = []
    nfs: list[np.ndarray] = []
    efs: list[np.ndarray] = []
    for k, g in enumerate(graphs):
        if not hasattr(g, "edges") or not hasattr(g, "ndata"):
            raise UserDataError(f"graph {k} is a {type(g).__name__}, not a dgl.DGLGraph")
        if getattr(g, "batch_size", 1) != 1:
            raise UserDataError(f"graph {k} is a batch of {g.batch_size} graphs; pass dgl.unbatch(bg)")
        src, dst = g.edges()
        nums.append(g.num_nodes())
        edge_lists.append(np.stack([src.numpy(), dst.numpy()]).astype(np.int64))
        for what, data, count, store in (
            ("ndata", g.ndata, g.num_nodes(), nfs),
            ("edata", g.edata, g.num_edges(), efs),
        ):
            feat = data["feat"] if "feat" in data else torch.zeros(count, dtype=torch.long)
            if torch.is_floating_point(feat):
                raise UserDataError(
                    f"graph {k}: {what}['feat'] is {feat.dtype}; the zoo's architectures embed integer category "
                    f"ids (torch.long), not float features. Map them to categories first"
                )
            store.append(feat.numpy().astype(np.int64))
    for what, feats in (("ndata", nfs), ("edata", efs)):
        shapes = {f.shape[1:] for f in feats}
        if len(shapes) > 1:
            raise UserDataError(f"{what}['feat'] must have the same number of columns in every graph, got {shapes}")
    rows = np.arange(len(graphs), dtype=np.int64)
    y = check_labels(labels, task, len(graphs), label_names)
    num_cols = y.shape[1] if y.ndim == 2 else 1
    columns = list(label_names) if label_names is not None else [f"task {t}" for t in range(num_cols)]
    packed = PackedGraphs.from_edge_lists(nums, edge_lists, y=y)
    packed = dataclasses.replace(packed, node_feat=np.concatenate(nfs), edge_feat=np.concatenate(efs))
    return build_dataset(
        packed,
        rows,
        name=name,
        task=task,
        metric=metric,
        columns=columns,
        split_positions=resolve_split(split, len(graphs), frac, seed),
        node_vocab=node_vocab,
        edge_vocab=edge_vocab,
        allow_self_loops=allow_self_loops,
        num_classes=num_classes,
        options={"built_by": "from_graphs"},
    )


# --- process-local registration ------------------------------------------------------------------------------
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._:+-]*$")


def register_dataset(ds: UserGraphDataset, name: str | None = None, *, replace: bool = True) -> str:
    """Make ``ds`` loadable by name for the rest of this process; returns the (lower-case) name.

    After ``register_dataset(ds, "my-assay")``, ``load_dataset("my-assay", "train")``, ``get_info("my-assay")``,
    ``Evaluator("my-assay")`` and ``dgl_hod.train.train(..., dataset="my-assay")`` use it like a built-in set.
    Built-in names cannot be taken.
    """
    if not isinstance(ds, UserGraphDataset):
        raise TypeError(f"register_dataset takes a dataset from from_smiles/from_graphs, not {type(ds).__name__}")
    key = (name or ds.info.name).lower().strip()
    if not _NAME_RE.match(key):
        raise UserDataError(f"dataset name {key!r}: use lower-case letters, digits and . _ : + - only")
    if key in REGISTRY:
        raise UserDataError(f"{key!r} is a built-in dataset; register the user data under another name")
    if key in _USER_DATA and not replace:
        raise UserDataError(f"a dataset named {key!r} is already registered in this process")
    info = dataclasses.replace(ds.info, name=key)
    _USER_DATA[key] = (ds.packed, ds.indices, dict(ds.split_positions))
    _user_infos()[key] = info
    return key


def unregister_dataset(name: str) -> None:
    """Forget a registered user dataset (no error if it is not registered)."""
    key = name.lower().strip()
    _USER_DATA.pop(key, None)
    _user_infos().pop(key, None)


def registered_datasets() -> list[str]:
    """Names registered with :func:`register_dataset` in this process."""
    return list(_USER_DATA)


def _user_infos() -> dict[str, DatasetInfo]:
    from . import registry

    return registry.USER_INFOS


def _load_user(info: DatasetInfo, split: str, fold: int | None = None) -> tuple[PackedGraphs, np.ndarray]:
    if fold is not None:
        raise ValueError(f"{info.name} has fixed splits; fold= is not accepted")
    if info.name not in _USER_DATA:
        raise KeyError(f"user dataset {info.name!r} is not registered in this process (register_dataset)")
    packed, rows, positions = _USER_DATA[info.name]
    if split == "all":
        return packed, rows
    pos = positions[split]
    return packed.subset(pos), rows[pos]


LOADERS["user"] = _load_user
