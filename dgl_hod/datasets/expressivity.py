"""Expressivity benchmarks as "pairs to distinguish".

``expressivity_pairs(name)`` returns a lazy, list-like sequence of ``(g1, g2, meta)`` where ``g1``/``g2`` are DGL
graphs (features as in ``load_dataset(name)``) that are non-isomorphic but hard to tell apart, and ``meta`` is a
dict with at least ``"i"`` and ``"j"`` (the graphs' positions in ``load_dataset(name)``):

* ``exp``: the 600 EXP pairs (graphs 2p, 2p+1); meta ``pair``.
* ``sr25``: all C(15, 2) = 105 pairs of the 15 strongly regular graphs.
* ``brec``: the 400 BREC pairs in BREC's order; meta ``pair`` and ``category`` (basic, regular, str, extension,
  cfi, 4vtx, dr).
* ``csl``: one representative per class (the first graph of each class in file order), all C(10, 2) = 45 pairs of
  representatives; meta ``classes`` and ``skips``.  (Graphs within a class are isomorphic.)
* ``graph8c``: all C(11117, 2) = 61,788,786 pairs, generated on demand (never materialised).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .registry import get_info

__all__ = ["expressivity_pairs", "PairList"]


class PairList(Sequence):
    """Lazy sequence of ``(g1, g2, meta)``; ``len`` is the number of pairs."""

    def __init__(self, dataset, n: int, index_fn):
        self.dataset, self._n, self._index = dataset, n, index_fn

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self._n))]
        k = int(k) + (self._n if int(k) < 0 else 0)
        if not 0 <= k < self._n:
            raise IndexError(f"pair {k} out of range ({self._n} pairs)")
        i, j, meta = self._index(k)
        return self.dataset.graph(i), self.dataset.graph(j), {"i": i, "j": j, **meta}


def _all_pairs(n: int):
    """Unrank k -> (i, j), i < j, in lexicographic order of all pairs of n items."""

    def index(k):
        # rows i have n-1-i pairs; first pair of row i has rank i*(2n-i-1)/2
        i = int(n - 2 - np.floor(np.sqrt(-8 * k + 4 * n * (n - 1) - 7) / 2.0 - 0.5))
        j = int(k + i + 1 - n * (n - 1) // 2 + (n - i) * (n - i - 1) // 2)
        return i, j, {}

    return n * (n - 1) // 2, index


def expressivity_pairs(name: str) -> PairList:
    from . import load_dataset

    info = get_info(name)
    ds = load_dataset(info.name)
    if info.name in ("sr25", "graph8c"):
        n, index = _all_pairs(len(ds))
        return PairList(ds, n, index)
    if info.name == "exp":
        return PairList(ds, len(ds) // 2, lambda p: (2 * p, 2 * p + 1, {"pair": p}))
    if info.name == "brec":
        cats: Sequence[str] = info.options["categories"]  # type: ignore[assignment]
        cat = ds.extras["category"]
        return PairList(ds, len(ds) // 2, lambda p: (2 * p, 2 * p + 1, {"pair": p, "category": cats[cat[2 * p]]}))
    if info.name == "csl":
        y = ds.labels.numpy()
        skip = ds.extras["skip"]
        reps = [int(np.flatnonzero(y == c)[0]) for c in range(info.num_classes)]
        n, index = _all_pairs(len(reps))

        def csl_index(k):
            a, b, _ = index(k)
            i, j = reps[a], reps[b]
            return i, j, {"classes": (a, b), "skips": (int(skip[i]), int(skip[j]))}

        return PairList(ds, n, csl_index)
    raise ValueError(f"{info.name} is not an expressivity benchmark; those are exp, csl, sr25, brec, graph8c")
