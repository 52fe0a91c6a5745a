"""Packed graph storage and the dataset object returned by :func:`dgl_hod.datasets.load_dataset`.

All graphs of a dataset live in a few flat arrays (the "packed" layout of ``datasets/README.md``): graph ``k`` owns
node rows ``node_ptr[k]:node_ptr[k+1]`` and edge columns ``edge_ptr[k]:edge_ptr[k+1]``; ``src``/``dst`` hold
*local* node ids.  ``ds[i]`` builds one small ``dgl.graph`` on demand; :meth:`GraphDataset.batch`
builds a batched graph for many indices in one vectorised step.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dgl
import numpy as np
import torch

__all__ = ["PackedGraphs", "GraphDataset", "ranges"]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(total, dtype=np.int64)


@dataclass(frozen=True)
class PackedGraphs:
    """Graphs in packed form. ``node_feat``/``edge_feat`` are int64, shape (N,) or (N, F) / (E,) or (E, F)."""

    node_ptr: np.ndarray
    edge_ptr: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    node_feat: np.ndarray
    edge_feat: np.ndarray
    y: np.ndarray
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)  # per-graph side information

    def __post_init__(self):
        g = len(self.node_ptr) - 1
        assert len(self.edge_ptr) == g + 1 and len(self.y) == g, "pointer/label lengths disagree"
        assert len(self.src) == len(self.dst) == self.edge_ptr[-1] == len(self.edge_feat)
        assert self.node_ptr[-1] == len(self.node_feat)

    @property
    def num_graphs(self) -> int:
        return len(self.node_ptr) - 1

    @classmethod
    def from_arrays(cls, node_ptr, edge_ptr, edge_index, node_feat=None, edge_feat=None, y=None, extras=None):
        node_ptr = np.asarray(node_ptr, dtype=np.int64)
        edge_ptr = np.asarray(edge_ptr, dtype=np.int64)
        n, e = int(node_ptr[-1]), int(edge_ptr[-1])
        edge_index = np.asarray(edge_index, dtype=np.int64).reshape(2, e)
        node_feat = np.zeros(n, np.int64) if node_feat is None else np.ascontiguousarray(node_feat, dtype=np.int64)
        edge_feat = np.zeros(e, np.int64) if edge_feat is None else np.ascontiguousarray(edge_feat, dtype=np.int64)
        y = np.zeros(len(node_ptr) - 1, np.int64) if y is None else np.asarray(y)
        return cls(
            node_ptr,
            edge_ptr,
            np.ascontiguousarray(edge_index[0]),
            np.ascontiguousarray(edge_index[1]),
            node_feat,
            edge_feat,
            y,
            dict(extras or {}),
        )

    @classmethod
    def from_edge_lists(cls, num_nodes: Sequence[int], edge_lists: Sequence[np.ndarray], **kw):
        """Build from per-graph (2, E_k) local edge arrays."""
        sizes = np.asarray(num_nodes, dtype=np.int64)
        counts = np.array([e.shape[1] for e in edge_lists], dtype=np.int64)
        ei = (
            np.concatenate([np.asarray(e, np.int64).reshape(2, -1) for e in edge_lists], axis=1)
            if len(edge_lists)
            else np.zeros((2, 0), np.int64)
        )
        node_ptr = np.concatenate([[0], np.cumsum(sizes)])
        edge_ptr = np.concatenate([[0], np.cumsum(counts)])
        return cls.from_arrays(node_ptr, edge_ptr, ei, **kw)

    def subset(self, idx) -> PackedGraphs:
        """The graphs ``idx`` (in that order), gathered with vectorised numpy."""
        idx = np.asarray(idx, dtype=np.int64)
        nn = np.diff(self.node_ptr)[idx]
        ne = np.diff(self.edge_ptr)[idx]
        nrows = ranges(self.node_ptr[idx], nn)
        ecols = ranges(self.edge_ptr[idx], ne)
        return PackedGraphs(
            np.concatenate([[0], np.cumsum(nn)]),
            np.concatenate([[0], np.cumsum(ne)]),
            self.src[ecols],
            self.dst[ecols],
            self.node_feat[nrows],
            self.edge_feat[ecols],
            self.y[idx],
            {k: v[idx] for k, v in self.extras.items()},
        )

    @staticmethod
    def concat(parts: Sequence[PackedGraphs]) -> PackedGraphs:
        def ptr(ps):
            out = [np.zeros(1, np.int64)]
            off = 0
            for p in ps:
                out.append(p[1:] + off)
                off += int(p[-1])
            return np.concatenate(out)

        keys = set(parts[0].extras)
        return PackedGraphs(
            ptr([p.node_ptr for p in parts]),
            ptr([p.edge_ptr for p in parts]),
            np.concatenate([p.src for p in parts]),
            np.concatenate([p.dst for p in parts]),
            np.concatenate([p.node_feat for p in parts]),
            np.concatenate([p.edge_feat for p in parts]),
            np.concatenate([p.y for p in parts]),
            {k: np.concatenate([p.extras[k] for p in parts]) for k in keys},
        )


def _tensor(a: np.ndarray) -> torch.Tensor:
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


class GraphDataset:
    """``ds[i] -> (g, y)`` with ``g.ndata["feat"]`` / ``g.edata["feat"]`` int64 categorical ids.

    Works with ``dgl.batch`` and ``dgl.dataloading.GraphDataLoader``.  ``ds.info`` is the dataset's
    :class:`~dgl_hod.datasets.registry.DatasetInfo`; ``ds.extras`` holds per-graph side information (e.g. BREC
    pair ids and categories, raw substructure counts).
    """

    def __init__(self, info, split: str, packed: PackedGraphs, indices: np.ndarray | None = None):
        self.info = info
        self.name = info.name
        self.split = split
        self.packed = packed
        # position in the full source dataset of every graph here (e.g. OGB graph ids)
        self.indices = np.arange(packed.num_graphs) if indices is None else np.asarray(indices, np.int64)
        self._src = _tensor(packed.src)
        self._dst = _tensor(packed.dst)
        self._nfeat = _tensor(packed.node_feat)
        self._efeat = _tensor(packed.edge_feat)
        self.labels = _tensor(packed.y)

    def __getstate__(self):  # DatasetInfo holds read-only mappings: pickle it by name (DataLoader workers)
        state = dict(self.__dict__)
        state["info"] = self.info.name
        return state

    def __setstate__(self, state):
        from .registry import get_info

        state["info"] = get_info(state["info"])
        self.__dict__.update(state)

    # --- sequence protocol -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.packed.num_graphs

    def __getitem__(self, i):
        try:
            i = operator.index(i)  # ints, numpy integers, 0-d integer tensors
        except TypeError:
            raise TypeError(
                f"index with an int, not {type(i).__name__}; use ds.subset(indices) or "
                f"ds.batch(indices) for many graphs"
            ) from None
        i = int(self.positions([i])[0])
        return self.graph(i), self.labels[i]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        p = self.packed
        return (
            f"GraphDataset({self.name!r}, split={self.split!r}, graphs={len(self)}, nodes={int(p.node_ptr[-1])}, "
            f"edges={int(p.edge_ptr[-1])})"
        )

    def positions(self, idx) -> np.ndarray:
        """``idx`` (ints, an int array or tensor, or a boolean mask of length ``len(self)``) as positions ``>= 0``.

        Negative indices count from the end, as in ``ds[-1]``.

        Raises:
            IndexError: an index outside ``[-len(self), len(self))`` (the message names it and the size).
            TypeError: non-integer indices, or a boolean mask of the wrong length.
        """
        arr = np.asarray(idx.detach().cpu() if isinstance(idx, torch.Tensor) else idx).reshape(-1)
        n = len(self)
        if arr.dtype == np.bool_:
            if len(arr) != n:
                raise TypeError(f"a boolean mask over {self.name}[{self.split}] needs {n} entries, got {len(arr)}")
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"graph indices must be integers, got dtype {arr.dtype} (e.g. {arr[0]!r})")
        arr = arr.astype(np.int64)
        bad = (arr < -n) | (arr >= n)
        if bad.any():
            raise IndexError(
                f"{self.name}[{self.split}] has {n} graphs; index {int(arr[bad][0])} is out of range "
                f"(valid: -{n} to {n - 1})"
            )
        return np.where(arr < 0, arr + n, arr)

    # --- graphs ------------------------------------------------------------------------------------------------
    @property
    def extras(self) -> Mapping[str, np.ndarray]:
        return self.packed.extras

    @property
    def num_nodes(self) -> np.ndarray:
        return np.diff(self.packed.node_ptr)

    @property
    def num_edges(self) -> np.ndarray:
        return np.diff(self.packed.edge_ptr)

    def graph(self, i: int) -> dgl.DGLGraph:
        p = self.packed
        n0, n1, e0, e1 = int(p.node_ptr[i]), int(p.node_ptr[i + 1]), int(p.edge_ptr[i]), int(p.edge_ptr[i + 1])
        g = dgl.graph((self._src[e0:e1], self._dst[e0:e1]), num_nodes=n1 - n0)
        g.ndata["feat"] = self._nfeat[n0:n1]
        g.edata["feat"] = self._efeat[e0:e1]
        return g

    def batch(self, idx) -> tuple[dgl.DGLGraph, torch.Tensor]:
        """One batched graph for the graphs ``idx`` (same result as ``dgl.batch``), built without per-graph loops.

        ``idx``: as :meth:`positions` (negative indices count from the end, like ``ds[-1]``).
        """
        idx = self.positions(idx)
        sub = self.packed.subset(idx)
        nn, ne = np.diff(sub.node_ptr), np.diff(sub.edge_ptr)
        off = np.repeat(sub.node_ptr[:-1], ne)
        g = dgl.graph(
            (torch.from_numpy(sub.src + off), torch.from_numpy(sub.dst + off)), num_nodes=int(sub.node_ptr[-1])
        )
        g.set_batch_num_nodes(torch.from_numpy(nn))
        g.set_batch_num_edges(torch.from_numpy(ne))
        g.ndata["feat"] = torch.from_numpy(sub.node_feat)
        g.edata["feat"] = torch.from_numpy(sub.edge_feat)
        return g, self.labels[torch.from_numpy(idx)]

    def subset(self, idx, split: str | None = None) -> GraphDataset:
        """The graphs ``idx`` (as :meth:`positions`) as a new dataset named ``split`` (default: ``<split>[subset]``)."""
        idx = self.positions(idx)
        return GraphDataset(self.info, split or f"{self.split}[subset]", self.packed.subset(idx), self.indices[idx])
