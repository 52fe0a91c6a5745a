"""Substructure-counting dataset, generated here (it is NOT the original ``randomgraph.mat`` file).

The GNN-AK / I²-GNN counting benchmark (5,000 random graphs with substructure counts, Chen et al. 2020) is not
available offline, so a look-alike is generated deterministically from a seed with NumPy only:

* 5,000 simple undirected graphs; graph ``k`` has ``n ~ U{10..30}`` nodes and is, with probability 1/2, an
  Erdős–Rényi graph G(n, p) with ``p ~ U[0.1, 0.25]`` and otherwise a uniformly paired random ``d``-regular graph
  with ``d ∈ {3, 4}`` (``d`` raised by one when ``n·d`` is odd).  Average about 20 nodes and 36 edges.
* split: a seeded permutation, 1,500 train / 1,000 val / 2,500 test (the sizes of the original split).
* targets: for each pattern H below, the number of subgraphs of G isomorphic to H (not necessarily induced), i.e.
  the number of injective homomorphisms H -> G divided by |Aut(H)|:

  ==================  ========================================================================  =======
  name                pattern H                                                                  |Aut(H)|
  ==================  ========================================================================  =======
  ``triangle``        cycle on 3 vertices                                                        6
  ``tailed_triangle`` triangle plus one pendant edge at one triangle vertex (4 vertices)         2
  ``cycle4``          cycle on 4 vertices                                                        8
  ``cycle5``          cycle on 5 vertices                                                        10
  ``cycle6``          cycle on 6 vertices                                                        12
  ``chordal_cycle``   4-cycle with one chord (diamond, K4 minus an edge)                         4
  ``clique4``         K4                                                                         24
  ``star3``           K_{1,3}: a centre joined to 3 leaves                                       6
  ``path4``           simple path with 4 edges (5 distinct vertices)                             2
  ==================  ========================================================================  =======

* ``y`` = counts divided by the per-target standard deviation over all 5,000 graphs (as the original benchmark
  normalises); the raw integer counts are in ``ds.extras["counts"]`` and the divisors in ``ds.extras["std"]``
  (repeated per graph).  Node and edge features are constant zeros (vocabulary size 1).

The result is cached as ``<cache dir>/counting-v1-seed<seed>.npz`` (written atomically) and checksummed like the
shipped data: on its first load in a process the cache's content digest (:func:`content_sha256`) is compared with the
digest recorded here for the default seed 0 (:data:`KNOWN_SHA256`), and for other seeds with the digest stored in the
file when it was written.  A cache that differs (edited, truncated, bit rot) is regenerated with a warning; a freshly
generated seed-0 set that differs from the recorded digest is refused (the generator would not give the benchmark
the results were measured on).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from functools import cache

import numpy as np

from ._store import DatasetFileError, atomic_save_npz, cache_dir
from .graphs import PackedGraphs
from .registry import COUNTING_TARGETS

__all__ = [
    "COUNTING_TARGETS",
    "KNOWN_SHA256",
    "content_sha256",
    "count_substructures",
    "counting_packed",
    "generate_graphs",
]

_VERSION = 1
NUM_GRAPHS = 5000
SPLIT_SIZES = (1500, 1000, 2500)
#: content digest (:func:`content_sha256`) of the generated data per seed, as generated for the results in this repo
KNOWN_SHA256 = {0: "f83ee618471d957d1536f552c333abe6df8492024c91671579ff32c55741ace0"}
_DIGEST_KEY = "sha256"  # the digest stored in the cache file itself (checked for seeds without a known digest)


def content_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the arrays in key order: each key, dtype, shape and raw bytes (independent of the npz's zip)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _random_regular(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Edges (m, 2) of a random simple d-regular graph by random pairing with restarts."""
    while True:
        stubs = list(np.repeat(np.arange(n), d))
        adj = np.zeros((n, n), bool)
        edges = []
        ok = True
        while stubs:
            # try a bounded number of random stub pairs; restart on a dead end
            for _ in range(100):
                a, b = rng.choice(len(stubs), size=2, replace=False)
                u, v = stubs[a], stubs[b]
                if u != v and not adj[u, v]:
                    break
            else:
                ok = False
                break
            adj[u, v] = adj[v, u] = True
            edges.append((min(u, v), max(u, v)))
            for i in sorted((a, b), reverse=True):
                stubs.pop(i)
        if ok:
            return np.array(edges, dtype=np.int64).reshape(-1, 2)


def _erdos_renyi(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    iu, ju = np.triu_indices(n, k=1)
    keep = rng.random(len(iu)) < p
    return np.stack([iu[keep], ju[keep]], axis=1).astype(np.int64)


def generate_graphs(seed: int = 0, num_graphs: int = NUM_GRAPHS) -> tuple[list[int], list[np.ndarray]]:
    """Node counts and undirected edge lists (m, 2), u < v, of the generated graphs."""
    rng = np.random.default_rng(seed)
    nums, edges = [], []
    for _ in range(num_graphs):
        n = int(rng.integers(10, 31))
        if rng.random() < 0.5:
            e = _erdos_renyi(n, float(rng.uniform(0.1, 0.25)), rng)
        else:
            d = int(rng.integers(3, 5))
            d += (n * d) % 2
            e = _random_regular(n, d, rng)
        nums.append(n)
        edges.append(e[np.lexsort((e[:, 1], e[:, 0]))])
    return nums, edges


def _count_cycles(n: int, adj: np.ndarray, k: int) -> int:
    """Simple k-cycles: vectorised enumeration of paths from each cycle's smallest vertex, halved for direction."""
    nbrs = [np.flatnonzero(adj[v]) for v in range(n)]
    indptr = np.concatenate([[0], np.cumsum([len(x) for x in nbrs])])
    indices = np.concatenate(nbrs) if indptr[-1] else np.zeros(0, np.int64)
    paths = np.arange(n, dtype=np.int64)[:, None]
    for _ in range(k - 1):
        last = paths[:, -1]
        deg = indptr[last + 1] - indptr[last]
        rep = np.repeat(np.arange(len(paths)), deg)
        nxt = indices[np.repeat(indptr[last] - np.cumsum(deg) + deg, deg) + np.arange(int(deg.sum()))]
        ext = np.concatenate([paths[rep], nxt[:, None]], axis=1)
        keep = (nxt > ext[:, 0]) & np.all(ext[:, 1:-1] != nxt[:, None], axis=1)
        paths = ext[keep]
        if not len(paths):
            return 0
    return int(adj[paths[:, -1], paths[:, 0]].sum()) // 2


def count_substructures(n: int, edges: np.ndarray) -> np.ndarray:
    """The 9 counts (order of ``COUNTING_TARGETS``) for one simple undirected graph; ``edges`` is (m, 2)."""
    adj = np.zeros((n, n), dtype=np.int64)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1
    deg = adj.sum(1)
    a2 = adj @ adj
    a3 = a2 @ adj
    off = ~np.eye(n, dtype=bool)
    tri_v = np.diag(a3) // 2  # triangles through each vertex
    triangle = int(np.trace(a3)) // 6
    tailed = int((tri_v * (deg - 2)).sum())
    pairs = a2 * (a2 - 1) // 2  # pairs of common neighbours
    cycle4 = int(pairs[off].sum()) // 4
    u, v = edges[:, 0], edges[:, 1]
    chordal = int(pairs[u, v].sum())
    common = adj[u] * adj[v]  # (m, n) common-neighbour indicator of each edge
    clique4 = int(((common @ adj) * common).sum()) // 2 // 6
    star3 = int((deg * (deg - 1) * (deg - 2) // 6).sum())
    d1 = deg[:, None] - 1 - adj
    d2 = deg[None, :] - 1 - adj
    path4 = int((a2 * (d1 * d2 - a2 + 1))[off].sum()) // 2
    return np.array(
        [triangle, tailed, cycle4, _count_cycles(n, adj, 5), _count_cycles(n, adj, 6), chordal, clique4, star3, path4],
        dtype=np.int64,
    )


def _build(seed: int) -> dict[str, np.ndarray]:
    nums, edges = generate_graphs(seed, NUM_GRAPHS)
    counts = np.stack([count_substructures(n, e) for n, e in zip(nums, edges)])
    perm = np.random.default_rng(seed + 1).permutation(len(nums))
    a, b, _ = SPLIT_SIZES
    directed = [np.concatenate([e.T, e.T[::-1]], axis=1) for e in edges]
    num_edges = np.array([d.shape[1] for d in directed], dtype=np.int64)
    return {
        "num_nodes": np.asarray(nums, np.int64),
        "num_edges": num_edges,
        "edge_index": np.concatenate(directed, axis=1),
        "counts": counts,
        "train": np.sort(perm[:a]),
        "val": np.sort(perm[a : a + b]),
        "test": np.sort(perm[a + b :]),
        "version": np.array(_VERSION),
    }


def _read_cache(path, seed: int) -> dict[str, np.ndarray] | None:
    """The cached arrays if the file is intact (its content digest is the expected one), else ``None``."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            z = {k: f[k] for k in f.files}
    except Exception:  # unreadable/truncated cache (BadZipFile, OSError, ...)
        z = None
    if z is not None:
        stored = str(z.pop(_DIGEST_KEY, ""))
        digest = content_sha256(z)
        expected = KNOWN_SHA256.get(seed, stored)
        if int(z.get("version", -1)) == _VERSION and digest == expected:
            return z
    warnings.warn(
        f"counting cache {path} is damaged or was edited (content checksum mismatch); regenerating it", stacklevel=3
    )
    return None


@cache
def counting_packed(seed: int = 0) -> tuple[PackedGraphs, dict[str, np.ndarray]]:
    """The full generated dataset and its split lists, from the verified cache or freshly generated (then cached).

    Raises:
        DatasetFileError: a freshly generated set differs from the digest recorded for its seed.
    """
    path = cache_dir() / f"counting-v{_VERSION}-seed{seed}.npz"
    z = _read_cache(path, seed)
    if z is None:
        z = _build(seed)
        digest = content_sha256(z)
        if seed in KNOWN_SHA256 and digest != KNOWN_SHA256[seed]:
            raise DatasetFileError(
                f"the counting data generated for seed {seed} has content sha256 {digest}, expected "
                f"{KNOWN_SHA256[seed]}: this NumPy's random streams differ from the pinned numpy<2 ones; "
                f"install the pinned stack (pip install -e .)"
            )
        try:
            atomic_save_npz(path, **z, **{_DIGEST_KEY: np.array(digest)})
        except OSError:
            pass  # read-only cache: just keep the in-memory copy
    counts = z["counts"]
    std = counts.std(axis=0).astype(np.float64)
    y = (counts / np.where(std > 0, std, 1.0)).astype(np.float32)
    node_ptr = np.concatenate([[0], np.cumsum(z["num_nodes"])])
    edge_ptr = np.concatenate([[0], np.cumsum(z["num_edges"])])
    full = PackedGraphs.from_arrays(
        node_ptr,
        edge_ptr,
        z["edge_index"],
        None,
        None,
        y,
        {"counts": counts, "std": np.broadcast_to(std, counts.shape).copy()},
    )
    return full, {"train": z["train"], "val": z["val"], "test": z["test"]}
