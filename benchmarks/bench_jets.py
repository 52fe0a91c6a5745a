r"""Engine benchmark: dgl-hod's derivative jets against the strongest ``torch.func`` formulations we could write.

Work compared: the derivatives :math:`\partial h^{(T)}_v / \partial \epsilon_u` (order 1) and
:math:`\partial^2 h^{(T)}_v / \partial \epsilon_u \partial \epsilon_w` (order 2) of the base MPNN (GINE, depth 4,
SiLU, one marking direction) for every node ``v`` and all marked nodes ``u, w`` of ``v``'s own graph, on one batch
of ``--num-graphs`` ZINC-12k training graphs (9-37 nodes; seeded choice; atom types embedded by a fixed random
table, bond types one-hot), float32, inference (no autograd graph), 1 thread.

dgl-hod: ``BaseMPNN.jets(order=K, mode="dense" | "sparse")``, one pass of Taylor jets through DGL for the batch
(layout construction included in the time).  torch.func (a pure-torch GINE differentiated by ``torch.func``;
graph structures are precomputed outside the timed call, which favours torch.func):

* ``per-graph``: ``jacfwd`` over each graph's ``n`` marks (order 2: ``jacfwd(jacfwd)``), graph by graph;
* ``marked slots``: mark slot ``s`` of *every* graph at once (node ``s`` of each graph in the batch's own node
  order) and take ``jacfwd`` over the ``P`` slots of the whole batch (``P`` = largest graph): one vmapped forward
  pass per order, the result in dgl-hod's dense layout ``(N, P, .., P, C)``;
* ``marked slots, k size buckets``: the same per group of graphs of similar size (graphs sorted by size, split
  into ``k`` groups minimising the padded work :math:`\sum_g n_g P_{group}^K`), ``k = "size"`` one group per
  distinct size (no padding at all).

The pure-torch GINE aggregates messages with ``index_add`` over edges sorted by destination (fastest measured),
a padded neighbour gather + sum (``gather``), or per-bond-type block-diagonal adjacency matmuls (``dense``, exact
for one-hot bond types).  SiLU is written so that torch.func's derivative rules do the least work: at order 1 an
``autograd.Function`` whose ``jvp`` multiplies the tangent by :math:`\mathrm{silu}'(y)` computed once (``jvp1``;
exact for first derivatives only), at order 2 :math:`y\,\sigma(y)` (``sigmoid``; ``F.silu`` has no forward-over-forward
rule, and :math:`y / (1 + e^{-y})` (``primitive``) measured slower).  ``tests/test_bench_reference.py`` checks that
every formulation returns the same per-graph tensors as ``BaseMPNN.jets`` and :func:`dgl_hod.reference.reference_jets`.

Every measurement runs in a fresh subprocess (peak memory = ``ru_maxrss`` minus the RSS before the timed calls) and
reports the **minimum** over repeats (the machine is shared: the minimum is the least disturbed run); a setting stops
repeating once its runs exceed ``--budget`` seconds, so slow settings may have a single run (the table says how
many).  All ratios come from one invocation.  Part B (``--scaling``): sparse mode, order 1, depth 3, on random
3-regular graphs of 10^3..10^5 nodes (peak memory per node should stay flat).

    python benchmarks/bench_jets.py --threads 1 --scaling   # full run, writes benchmarks/results/jets.{md,json}
    python benchmarks/bench_jets.py --quick                 # small version (the demo)
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("DGLBACKEND", "pytorch")

import dgl  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.func import jacfwd, jvp, vmap  # noqa: E402

from dgl_hod.utils import atomic_write_bytes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _isolated import exit_with_parent, peak_bytes, rss_bytes, run_in_subprocess  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
AGGREGATIONS = ("index_add", "gather", "dense")
ACTIVATION_IMPLS = ("auto", "jvp1", "sigmoid", "primitive", "torch")


# ---------------------------------------------------------------------------------------------------------------------
# Pure-torch GINE and its torch.func derivatives
# ---------------------------------------------------------------------------------------------------------------------
def _dsilu(y: Tensor) -> Tensor:
    s = torch.sigmoid(y)
    return s * (1 + y * (1 - s))


class _SiLUFirstOrder(torch.autograd.Function):
    """SiLU whose forward-mode rule is ``silu'(y) * tangent`` with ``silu'(y)`` computed once, outside any vmap.

    torch's own rule (``silu_backward(tangent, y)``) recomputes the sigmoid for every vmapped tangent.  The rule
    below does not propagate into an outer forward level, so it is exact for first derivatives only.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(y: Tensor) -> Tensor:
        return torch.nn.functional.silu(y)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def jvp(ctx, tangent: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return _dsilu(y) * tangent


def activation_fn(name: str, impl: str, order: int) -> Callable[[Tensor], Tensor]:
    """The activation ``name`` written for torch.func derivatives of order ``order`` (see module docstring)."""
    from dgl_hod.jets import TORCH_ACTIVATIONS
    from dgl_hod.reference import REFERENCE_ACTIVATIONS

    if impl == "auto":
        impl = "jvp1" if order == 1 else "sigmoid"
    if name == "identity":
        return lambda y: y
    if impl == "jvp1":
        if order != 1:
            raise ValueError("activation impl 'jvp1' is exact for first derivatives only; use 'sigmoid' at order 2")
        if name == "silu":
            return _SiLUFirstOrder.apply
        return TORCH_ACTIVATIONS[name]
    if impl == "sigmoid" and name == "silu":
        return lambda y: y * torch.sigmoid(y)
    if impl == "torch":
        return TORCH_ACTIVATIONS[name]
    return REFERENCE_ACTIVATIONS[name]


@dataclass
class PureBatch:
    """Index structures of a batch of graphs (nodes of graph ``i`` contiguous) for the pure-torch GINE.

    Attributes:
        sizes: ``(B,)`` nodes per graph. node_ids / edge_ids: rows of the parent batch's ``x`` / ``e``.
        src, dst: ``(E,)`` edges sorted by destination (local to this batch). graph_of_node, local_index: ``(N,)``.
        width: ``P``, the largest graph. nbr, nbr_eid, nbr_mask: ``(N, D)`` padded in-neighbour lists.
        adj: ``(B, P, T * P)`` per-bond-type adjacency (one-hot edge features only, else ``None``).
    """

    sizes: Tensor
    node_ids: Tensor
    edge_ids: Tensor
    src: Tensor
    dst: Tensor
    graph_of_node: Tensor
    local_index: Tensor
    width: int
    nbr: Tensor
    nbr_eid: Tensor
    nbr_mask: Tensor
    adj: Tensor | None

    @property
    def num_nodes(self) -> int:
        return len(self.node_ids)

    @classmethod
    def build(
        cls, src: Tensor, dst: Tensor, sizes: Tensor, e: Tensor | None, graphs: Sequence[int] | None = None
    ) -> PureBatch:
        """The graphs ``graphs`` (default all) of a batch given by its edge list and graph sizes."""
        offsets = torch.cumsum(sizes, 0) - sizes
        gon_all = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
        keep = torch.ones(len(sizes), dtype=torch.bool) if graphs is None else torch.zeros(len(sizes), dtype=torch.bool)
        if graphs is not None:
            keep[torch.as_tensor(list(graphs), dtype=torch.long)] = True
        node_ids = keep[gon_all].nonzero().squeeze(1)
        new_id = torch.full((int(sizes.sum()),), -1, dtype=torch.long)
        new_id[node_ids] = torch.arange(len(node_ids))
        edge_ids = keep[gon_all[src]].nonzero().squeeze(1)
        s, d = new_id[src[edge_ids]], new_id[dst[edge_ids]]
        by_dst = torch.argsort(d, stable=True)
        edge_ids, s, d = edge_ids[by_dst], s[by_dst], d[by_dst]
        sub_sizes = sizes[keep]
        gon = torch.repeat_interleave(torch.arange(len(sub_sizes)), sub_sizes)
        local = node_ids - offsets[gon_all[node_ids]]
        n = len(node_ids)
        width = int(sub_sizes.max()) if len(sub_sizes) else 0
        deg = torch.bincount(d, minlength=n)
        slot = torch.arange(len(d)) - (torch.cumsum(deg, 0) - deg)[d]
        dmax = max(int(deg.max()) if n else 1, 1)
        nbr = torch.zeros(n, dmax, dtype=torch.long)
        nbr_eid = torch.zeros(n, dmax, dtype=torch.long)
        nbr_mask = torch.zeros(n, dmax)
        nbr[d, slot], nbr_eid[d, slot], nbr_mask[d, slot] = s, torch.arange(len(d)), 1.0
        adj = None
        if e is not None and bool(((e == 0) | (e == 1)).all()) and bool((e.sum(1) == 1).all()):
            etype = e[edge_ids].argmax(1)
            adj = torch.zeros(len(sub_sizes), width, e.shape[1] * width)
            adj.index_put_((gon[d], local[d], etype * width + local[s]), torch.ones(len(d)), accumulate=True)
        return cls(sub_sizes, node_ids, edge_ids, s, d, gon, local, width, nbr, nbr_eid, nbr_mask, adj)


def pure_forward(
    base,
    pb: PureBatch,
    x: Tensor,
    e: Tensor | None,
    marks: Tensor,
    direction: Tensor,
    agg: str = "index_add",
    acts: Sequence[Callable[[Tensor], Tensor]] | None = None,
) -> Tensor:
    r"""``base(g, x, e)`` with the input marked along ``direction``, in plain torch (functorch-compatible).

    Args:
        base: a :class:`dgl_hod.BaseMPNN` (only its parameters are used).
        pb: the batch's index structures; ``x`` ``(N, d_in)`` and ``e`` ``(E, edge_dim)`` are already restricted to
            ``pb`` (rows ``pb.node_ids`` / ``pb.edge_ids`` of the parent batch).
        marks: ``(N,)`` mark of each node: the input is :math:`x_u + \text{marks}_u\, c`.
        agg: ``"index_add"``, ``"gather"`` or ``"dense"`` (see module docstring).
        acts: one activation function per layer (default: torch's).

    Returns:
        ``(N, C)`` node embeddings.
    """
    if agg not in AGGREGATIONS:
        raise ValueError(f"agg must be one of {AGGREGATIONS}, got {agg!r}")
    acts = list(acts) if acts is not None else [activation_fn(lay.activation, "torch", 0) for lay in base.layers]
    h = x + marks[:, None] * direction
    if agg == "dense":
        if pb.adj is None:
            raise ValueError("agg='dense' needs one-hot edge features (one bond type per edge)")
        adj = pb.adj.to(h.dtype)
        width = pb.width
        h = h.new_zeros(len(pb.sizes), width, h.shape[1]).index_put((pb.graph_of_node, pb.local_index), h)
    for layer, act in zip(base.layers, acts):
        if agg == "index_add":
            msg = h[pb.src] if layer.edge_lin is None else act(h[pb.src] + layer.edge_lin(e))
            a = torch.zeros(h.shape[0], msg.shape[1], dtype=msg.dtype).index_add(0, pb.dst, msg)
        elif agg == "gather":
            hn = h[pb.nbr]
            msg = hn if layer.edge_lin is None else act(hn + layer.edge_lin(e)[pb.nbr_eid])
            a = (msg * pb.nbr_mask.to(msg.dtype)[:, :, None]).sum(1)
        else:
            # one-hot bond type t: W e + b = W[:, t] + b, so the messages are T node-level tensors
            bias = layer.edge_lin.weight.T + layer.edge_lin.bias  # (T, C)
            m = act(h[:, None] + bias[None, :, None])  # (B, T, P, C)
            a = torch.matmul(adj, m.reshape(m.shape[0], -1, m.shape[-1]))
        if layer.aggregation == "mean":
            raise NotImplementedError("the benchmark formulation covers sum aggregation only")
        h = act(layer.lin2(act(layer.lin1((1 + layer.eps) * h + a))))
    if agg == "dense":
        h = h[pb.graph_of_node, pb.local_index]
    return h


def size_buckets(sizes: Sequence[int], buckets: int | str, order: int) -> list[list[int]]:
    r"""Groups of graph indices: ``1`` (the whole batch), an int ``k`` (``k`` groups of graphs sorted by size,
    chosen by dynamic programming to minimise :math:`\sum_g n_g P_{group}^{order}`), ``"size"`` (one group per
    distinct size) or ``"graph"`` (one group per graph).

    >>> size_buckets([5, 3, 5, 9], 2, 1)
    [[1, 0, 2], [3]]
    """
    idx = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    if buckets == "graph":
        return [[i] for i in range(len(sizes))]
    if buckets == "size":
        out: dict[int, list[int]] = {}
        for i in idx:
            out.setdefault(sizes[i], []).append(i)
        return list(out.values())
    if not isinstance(buckets, int) or buckets < 1:
        raise ValueError(f"buckets must be a positive int, 'size' or 'graph', got {buckets!r}")
    s = [sizes[i] for i in idx]
    m = len(s)
    k = min(buckets, m)
    prefix = [0]
    for v in s:
        prefix.append(prefix[-1] + v)
    inf = float("inf")
    # cost[j][b]: best cost of the first j graphs in b groups; a group (i, j] costs sum(n) * s[j-1]^order
    cost = [[inf] * (k + 1) for _ in range(m + 1)]
    back = [[0] * (k + 1) for _ in range(m + 1)]
    cost[0][0] = 0.0
    for j in range(1, m + 1):
        for b in range(1, k + 1):
            for i in range(b - 1, j):
                c = cost[i][b - 1] + (prefix[j] - prefix[i]) * s[j - 1] ** order
                if c < cost[j][b]:
                    cost[j][b], back[j][b] = c, i
    best_b = min(range(1, k + 1), key=lambda b: cost[m][b])
    groups, j = [], m
    for b in range(best_b, 0, -1):
        i = back[j][b]
        groups.append(idx[i:j])
        j = i
    return groups[::-1]


@dataclass
class SlotPlan:
    """Precomputed structures of :func:`func_jets` (built outside the timed call)."""

    batches: list[PureBatch]
    groups: list[list[int]]
    num_graphs: int


def plan_slots(g: dgl.DGLGraph, e: Tensor | None, buckets: int | str = 1, order: int = 1) -> SlotPlan:
    """Split the batch ``g`` into groups (see :func:`size_buckets`) and build each group's index structures."""
    src, dst = g.edges()
    sizes = g.batch_num_nodes()
    groups = [sorted(grp) for grp in size_buckets(sizes.tolist(), buckets, order)]  # PureBatch keeps id order
    return SlotPlan([PureBatch.build(src, dst, sizes, e, grp) for grp in groups], groups, len(sizes))


def _slot_jacobians(f: Callable[[Tensor], Tensor], width: int, order: int, chunk: int | None, dtype) -> list[Tensor]:
    """``[J1 (N, C, P)]`` or ``[J1, J2 (N, C, P, P)]`` of ``f: (P,) -> (N, C)`` at 0 by forward mode."""
    eps0 = torch.zeros(width, dtype=dtype)
    fun = jacfwd(f) if order == 2 else f
    basis = torch.eye(width, dtype=dtype)
    if chunk is None or chunk >= width:
        if order == 1:
            return [jacfwd(f)(eps0)]

        def with_aux(a: Tensor) -> tuple[Tensor, Tensor]:
            d = fun(a)
            return d, d

        d2, d1 = jacfwd(with_aux, has_aux=True)(eps0)
        return [d1, d2]
    # the outermost jacobian in chunks of slots (chunk=1: a Python loop of jvps, no vmap over the outer slots)
    prim, parts = None, []
    for s in range(0, width, chunk):
        if chunk == 1:
            p, t = jvp(fun, (eps0,), (basis[s],))
            p, t = p[None], t[None]
        else:
            p, t = vmap(lambda v: jvp(fun, (eps0,), (v,)))(basis[s : s + chunk])
        prim = p[0] if prim is None else prim
        parts.append(t)
    outer = torch.cat(parts).movedim(0, -1)
    assert prim is not None
    return [outer] if order == 1 else [prim, outer]


def func_jets(
    base,
    plan: SlotPlan,
    x: Tensor,
    e: Tensor | None,
    order: int,
    agg: str = "index_add",
    act: str = "auto",
    chunk: int | None = None,
) -> list[list[Tensor]]:
    """Per-graph jets ``[[D1 (n, n, r, C), D2 (n, n, n, r, C)], ..]`` by torch.func, marking slot ``s`` of every
    graph of a group at once (a group of one graph is ``jacfwd`` per graph).

    ``Dk[v, u_1, .., u_k, j, c]`` as in :meth:`dgl_hod.GraphJets.dense`; the blocks are views.

    Example:
        >>> import dgl, torch
        >>> from dgl_hod import BaseMPNN
        >>> g = dgl.batch([dgl.graph(([0, 1], [1, 0])), dgl.graph(([0, 1, 2], [1, 2, 0]))])
        >>> base = BaseMPNN(4, 8, 2).eval()
        >>> D1, D2 = func_jets(base, plan_slots(g, None), torch.randn(5, 4), None, order=2)[1]
        >>> D1.shape, D2.shape
        (torch.Size([3, 3, 1, 8]), torch.Size([3, 3, 3, 1, 8]))
    """
    acts = [activation_fn(layer.activation, act, order) for layer in base.layers]
    out: list[list[Tensor]] = [[] for _ in range(plan.num_graphs)]
    for pb, grp in zip(plan.batches, plan.groups):
        xb = x[pb.node_ids]
        eb = e[pb.edge_ids] if e is not None else None
        per_dir = []
        for j in range(base.num_marks):
            c = base.mark_directions[j].to(x.dtype)

            def f(eps: Tensor, pb=pb, xb=xb, eb=eb, c=c) -> Tensor:
                return pure_forward(base, pb, xb, eb, eps[pb.local_index], c, agg, acts)

            per_dir.append(_slot_jacobians(f, pb.width, order, chunk, x.dtype))
        # (N, C, P, ..) -> (N, P, .., r, C)
        comps = [
            (per_dir[0][k].unsqueeze(-1) if len(per_dir) == 1 else torch.stack([d[k] for d in per_dir], -1)).movedim(
                1, -1
            )
            for k in range(order)
        ]
        start = 0
        for gi, n in zip(grp, pb.sizes.tolist()):
            out[gi] = [
                comp[start : start + n][(slice(None),) + (slice(0, n),) * (k + 1)] for k, comp in enumerate(comps)
            ]
            start += n
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Data and measurement
# ---------------------------------------------------------------------------------------------------------------------
def zinc_batch(num_graphs: int, seed: int = 0, in_dim: int = 16) -> tuple[dgl.DGLGraph, Tensor, Tensor]:
    """``num_graphs`` ZINC-12k training graphs (seeded choice), atom types embedded by a fixed random table
    ``(N, in_dim)``, bond types one-hot ``(E, 4)``.
    """
    import numpy as np

    from dgl_hod.datasets import load_dataset

    ds = load_dataset("zinc12k", "train")
    idx = np.random.default_rng(seed).choice(len(ds), num_graphs, replace=False)
    g, _ = ds.batch(idx)
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(int(g.ndata["feat"].max()) + 1, in_dim, generator=gen)
    x = table[g.ndata["feat"]]
    e = torch.nn.functional.one_hot(g.edata["feat"], 4).float()
    return g, x, e


def random_regular(n: int, seed: int) -> dgl.DGLGraph:
    """A cycle plus a random perfect matching (3-regular up to rare repeated edges), bidirected."""
    gen = torch.Generator().manual_seed(seed)
    ring = torch.arange(n)
    perm = torch.randperm(n, generator=gen)
    a, b = perm[0::2], perm[1::2]
    src = torch.cat([ring, a])
    dst = torch.cat([(ring + 1) % n, b])
    return dgl.graph((torch.cat([src, dst]), torch.cat([dst, src])), num_nodes=n)


def _measure(fn: Callable[[], object], repeats: int, budget: float) -> tuple[list[float], list[float], object]:
    """Run ``fn`` up to ``repeats`` times, stopping once the runs took more than ``budget`` seconds in all.

    Returns the CPU time of this process per run (threads included: on a shared machine it does not count the
    time other jobs hold the cores, unlike wall-clock time), the wall-clock time per run, and the last result.
    """
    cpu: list[float] = []
    wall: list[float] = []
    out = None
    while len(wall) < repeats and (not wall or sum(wall) < budget):
        out = None  # free the previous result before the next run
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return cpu, wall, out


def _blocks_of(out, method: str, graphs: Sequence[int]) -> list[list[Tensor]]:
    if method.startswith("dgl-hod"):
        return [[d.clone() for d in out.dense(i)] for i in graphs]
    return [[d.clone() for d in out[i]] for i in graphs]


def _worker(task: dict, queue) -> None:
    exit_with_parent()
    import dgl.utils

    torch.set_num_threads(task["threads"])
    dgl.utils.set_num_threads(task["threads"])  # DGL's kernels otherwise use every core
    from dgl_hod import BaseMPNN

    torch.manual_seed(0)
    result = dict(task)
    if task["part"] == "A":
        g, x, e = zinc_batch(task["num_graphs"])
        base = BaseMPNN(16, task["hidden"], task["depth"], edge_dim=4, activation="silu").eval()
        method, order = task["method"], task["order"]
        if method.startswith("dgl-hod"):
            mode = method.split()[-1]

            def run():
                return base.jets(g, x, e, order=order, mode=mode)

        else:
            plan = plan_slots(g, e, task["buckets"], order)
            result["groups"] = len(plan.groups)

            def run():
                return func_jets(base, plan, x, e, order, agg=task["agg"], act=task["act"], chunk=task["chunk"])

        with torch.no_grad():
            rss0 = rss_bytes()
            times, wall, out = _measure(run, task["repeats"], task["budget"])
            result["peak_bytes"] = peak_bytes() - rss0
            if task.get("compare_path"):
                torch.save(_blocks_of(out, method, task["compare_graphs"]), task["compare_path"])
    else:
        g = random_regular(task["num_nodes"], seed=0)
        x = torch.randn(g.num_nodes(), 16)
        base = BaseMPNN(16, task["hidden"], task["depth"], activation="silu").eval()
        with torch.no_grad():
            rss0 = rss_bytes()
            times, wall, out = _measure(
                lambda: base.jets(g, x, order=1, mode="sparse"), task["repeats"], task["budget"]
            )
            result["peak_bytes"] = peak_bytes() - rss0
        result["entries"] = int(out.derivatives[0].shape[0])  # type: ignore[attr-defined]
    result["times"], result["wall_times"] = times, wall
    result["seconds"], result["wall_seconds"] = min(times), min(wall)
    queue.put(result)


def _run_watching_load(task: dict) -> dict:
    """``run_in_subprocess(_worker, task)``, with the highest 1-minute load average seen meanwhile as ``max_load``."""
    import threading

    loads = [os.getloadavg()[0]]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(2.0):
            loads.append(os.getloadavg()[0])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run_in_subprocess(_worker, task)
    finally:
        done.set()
        watcher.join()
    result["max_load"] = max(loads)
    return result


def engine_settings(widths: Sequence[int], orders: Sequence[int], full: bool) -> list[dict]:
    """The compared methods per (width, order): dgl-hod's two layouts and the torch.func formulations."""
    rows = []
    for width in widths:
        for order in orders:
            here: list[dict[str, object]] = [dict(method="dgl-hod sparse"), dict(method="dgl-hod dense")]
            here.append(dict(method="torch.func per-graph", buckets="graph", agg="index_add"))
            if order == 1 or width <= 16 or full:
                # the whole batch at once pays P^K padded slots: minutes and GBs at order 2, width 64
                here.append(dict(method="torch.func marked slots", buckets=1, agg="index_add"))
            if order == 1:
                here.append(dict(method="torch.func marked slots", buckets=1, agg="gather"))
                here.append(dict(method="torch.func marked slots", buckets=1, agg="dense"))
                here.append(dict(method="torch.func marked slots, jvp loop", buckets=1, agg="index_add", chunk=1))
            if order == 1:  # the best number of groups at order 1; at order 2 one group per size wins
                here.append(dict(method="torch.func marked slots", buckets=4, agg="index_add"))
            here.append(dict(method="torch.func marked slots", buckets="size", agg="index_add"))
            for r in here:
                rows.append(dict(dict(buckets=None, agg=None, chunk=None), width=width, order=order, **r))
    return rows


def _label(r: dict) -> str:
    if r["method"].startswith("dgl-hod"):
        return r["method"]
    parts = [r["method"]]
    if r["buckets"] not in (None, 1, "graph"):
        parts.append(f"{r['buckets']} size buckets" if r["buckets"] != "size" else "one bucket per size")
    parts.append(r["agg"])
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 graphs, width 16, no order-2 whole-batch run")
    parser.add_argument("--repeats", type=int, default=7, help="runs per setting at most (the minimum is reported)")
    parser.add_argument("--budget", type=float, default=20.0, help="stop repeating a setting after this many seconds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--num-graphs", type=int, default=128)
    parser.add_argument("--full", action="store_true", help="also the whole-batch marked-slot run at order 2 width>16")
    parser.add_argument("--scaling", action="store_true", help="also part B: sparse mode on 10^3..10^5-node graphs")
    parser.add_argument("--out", type=Path, default=None, help="where to write jets.md/json (default results/)")
    args = parser.parse_args(argv)

    if args.quick:
        args.num_graphs, args.widths, args.repeats, args.budget = 16, [16], 3, 5.0
    out_dir = args.out or (RESULTS / ("quick" if args.quick else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    cmp_graphs = [0, 1, 2]
    cmp_dir = Path(tempfile.mkdtemp(prefix="bench_jets_"))  # per-setting blocks for the cross-check
    atexit.register(shutil.rmtree, cmp_dir, True)
    common = dict(threads=args.threads, num_graphs=args.num_graphs, depth=args.depth, repeats=args.repeats)
    common["budget"] = args.budget

    rows_a = []
    settings = engine_settings(args.widths, args.orders, args.full)
    for i, s in enumerate(settings):
        path = cmp_dir / f"{i}.pt"
        task = dict(part="A", hidden=s.pop("width"), act="auto", compare_path=str(path), **common, **s)
        task["compare_graphs"] = cmp_graphs
        r = _run_watching_load(task)
        rows_a.append(r)
        print(
            f"[A] width {r['hidden']:3d} order {r['order']} {_label(r):62s} CPU {r['seconds']:9.4f} s "
            f"wall {r['wall_seconds']:9.4f} s (min of {len(r['times'])}) peak {r['peak_bytes'] / 2**20:8.1f} MiB",
            flush=True,
        )
    # cross-check every method against dgl-hod sparse of the same setting, entry by entry (first graphs)
    for i, r in enumerate(rows_a):
        ref_i = next(
            j
            for j, q in enumerate(rows_a)
            if q["method"] == "dgl-hod sparse" and (q["hidden"], q["order"]) == (r["hidden"], r["order"])
        )
        ref = torch.load(cmp_dir / f"{ref_i}.pt")
        got = torch.load(cmp_dir / f"{i}.pt")
        r["max_rel_diff"] = max(
            float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))
            for ga, gb in zip(got, ref)
            for a, b in zip(ga, gb)
        )

    rows_b = []
    if args.scaling:
        for n in (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000):
            task = dict(part="B", num_nodes=n, depth=3, hidden=64, threads=args.threads, repeats=3, budget=args.budget)
            r = run_in_subprocess(_worker, task)
            print(f"[B] n={n:>7,} {r['seconds']:8.3f} s peak {r['peak_bytes'] / 2**20:8.1f} MiB", flush=True)
            rows_b.append(
                dict(
                    num_nodes=n,
                    seconds=r["seconds"],
                    wall_seconds=r["wall_seconds"],
                    runs=len(r["times"]),
                    peak_mib=r["peak_bytes"] / 2**20,
                    pairs=r["entries"],
                    kib_per_node=r["peak_bytes"] / 1024 / n,
                    us_per_node=r["seconds"] / n * 1e6,
                )
            )

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, dgl {dgl.__version__}, "
        f"{args.threads} thread(s), load average at start {os.getloadavg()[0]:.1f}"
    )
    cmd = " ".join(["python benchmarks/bench_jets.py", *(argv if argv is not None else sys.argv[1:])])
    text = render(rows_a, rows_b, cmd, machine, args)
    atomic_write_bytes(out_dir / "jets.md", text.encode())
    payload = {"command": cmd, "machine": machine, "engine": rows_a, "sparse_scaling": rows_b}
    atomic_write_bytes(out_dir / "jets.json", (json.dumps(payload, indent=2, default=str) + "\n").encode())
    print()
    print(text)
    return 0


def summary(rows_a: list[dict]) -> list[str]:
    """Per width and order: dgl-hod's best layout against the fastest torch.func formulation and per-graph jacfwd."""
    md = [
        "| width | order | dgl-hod sparse (s) | dgl-hod dense (s) | fastest torch.func (s) | which | speed-up of "
        "dgl-hod's best over it | over per-graph `jacfwd` | same, wall-clock |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in dict.fromkeys((r["hidden"], r["order"]) for r in rows_a):
        same = [r for r in rows_a if (r["hidden"], r["order"]) == key]
        t = {r["method"]: r["seconds"] for r in same if r["method"].startswith("dgl-hod")}
        funcs = [r for r in same if r["method"].startswith("torch.func")]
        best = min(funcs, key=lambda r: r["seconds"])
        per_graph = next(r["seconds"] for r in funcs if r["buckets"] == "graph")
        ours = min(t.values())
        wall_best = min(r["wall_seconds"] for r in funcs)
        wall_ours = min(r["wall_seconds"] for r in same if r["method"].startswith("dgl-hod"))
        md.append(
            f"| {key[0]} | {key[1]} | {t['dgl-hod sparse']:.3f} | {t['dgl-hod dense']:.3f} | {best['seconds']:.3f} | "
            f"{_label(best)} | **{best['seconds'] / ours:.1f}x** | {per_graph / ours:.1f}x | "
            f"{wall_best / wall_ours:.1f}x |"
        )
    return md


def render(rows_a: list[dict], rows_b: list[dict], cmd: str, machine: str, args) -> str:
    md = [
        f"Command: `{cmd}` ({machine}).",
        "",
        f"**A. Engine: {args.num_graphs} ZINC-12k graphs, GINE depth {args.depth}, SiLU, float32, no grad.** Times "
        "are the minimum over the runs of the process's **CPU time** (1 thread in torch and in DGL, so CPU time is "
        "the compute; the machine is shared with other jobs on both cores, which wall-clock time would count: its "
        "minimum is listed too, and *max load* is the 1-minute load average seen during the setting); *speed-up* "
        "and *vs best torch.func* divide the fastest torch.func CPU time of the same width and order by the row's; "
        "*max rel. diff* compares the first 3 graphs' dense blocks with dgl-hod sparse.",
        "",
        "| width | order | method | CPU time (s) | wall (s) | runs | max load | peak (MiB) | vs best torch.func "
        "| max rel. diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    md[-2:-2] = summary(rows_a) + [""]
    for r in rows_a:
        same = [q for q in rows_a if (q["hidden"], q["order"]) == (r["hidden"], r["order"])]
        best = min(q["seconds"] for q in same if q["method"].startswith("torch.func"))
        md.append(
            f"| {r['hidden']} | {r['order']} | {_label(r)} | {r['seconds']:.3f} | {r['wall_seconds']:.3f} | "
            f"{len(r['times'])} | {r['max_load']:.1f} | {r['peak_bytes'] / 2**20:.0f} | {best / r['seconds']:.2f}x | "
            f"{r['max_rel_diff']:.1e} |"
        )
    if rows_b:
        md += [
            "",
            "**B. sparse mode, order 1, depth 3, width 64, random 3-regular graphs**",
            "",
            "| nodes | stored (v, u) pairs | CPU time (s) | wall (s) | runs | peak (MiB) | peak per node (KiB) "
            "| CPU time per node (us) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        md += [
            f"| {r['num_nodes']:,} | {r['pairs']:,} | {r['seconds']:.3f} | {r['wall_seconds']:.3f} | {r['runs']} | "
            f"{r['peak_mib']:.0f} | "
            f"{r['kib_per_node']:.1f} | {r['us_per_node']:.1f} |"
            for r in rows_b
        ]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    sys.exit(main())
