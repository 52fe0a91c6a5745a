r"""Storage layouts for derivative jets of a batched graph, and their DGL aggregation.

A jet component of order :math:`k` holds, for every node :math:`v` and every :math:`k`-tuple of marked nodes
:math:`(u_1..u_k)` of :math:`v`'s own graph, a ``(r, C)`` block (``r`` marking directions, ``C`` channels).  Nodes of
different graphs never interact, so those entries are never stored.  Two layouts implement
:class:`dgl_hod.jets.JetLayout`:

* :class:`DenseLayout` (``mode="dense"``): component :math:`k` is a tensor ``(N, P, .., P, r, C)`` with ``P`` the
  number of nodes of the largest graph of the batch; slot ``p`` of node ``v`` is the ``p``-th node of ``v``'s graph and
  slots past that graph's size stay exactly zero.  Aggregation is one DGL ``update_all`` on the batched graph itself,
  with the whole ``P^k r`` block as the node feature (``copy_u``/``u_mul_e`` + ``sum``, fused sparse-dense products).
  Simple and regular, but it pays for padding (``P^k`` slots per node even in small graphs of the batch): on
  ZINC-12k training steps the sparse layout measured faster at every order and depth (README, "Training-step cost").
* :class:`SparseLayout` (``mode="sparse"``): only tuples whose marked nodes all lie in the ``T``-hop in-ball of
  :math:`v` are stored (after ``T`` layers every other derivative is zero), as rows ``(M_k, r, C)``.  Aggregation runs
  on a *tuple graph* built with DGL: an edge :math:`(w, U) \to (v, U)` for every graph edge :math:`w \to v`.  Memory
  grows with :math:`n \cdot |B_T|^k` instead of :math:`n \cdot P^k`: for big graphs.
"""

from __future__ import annotations

from collections.abc import Sequence

import dgl
import dgl.function as fn
import torch
from torch import Tensor

__all__ = ["DenseLayout", "SparseLayout", "expand_ranges", "grouped_product", "receptive_field_pairs"]


def _aggregate(graph: dgl.DGLGraph, feat: Tensor, edge_weight: Tensor | None) -> Tensor:
    """``out[v] = sum_{w->v} (edge_weight[e] *) feat[w]`` with DGL's fused builtins.

    ``feat`` is ``(num_nodes, *F, C)``; ``edge_weight`` is ``(num_edges, C)`` and broadcasts over ``F``.
    """
    with graph.local_scope():
        shape = feat.shape
        graph.srcdata["j"] = feat.reshape(shape[0], -1, shape[-1])
        if edge_weight is None:
            graph.update_all(fn.copy_u("j", "m"), fn.sum("m", "a"))
        else:
            graph.edata["w"] = edge_weight.unsqueeze(1)
            graph.update_all(fn.u_mul_e("j", "w", "m"), fn.sum("m", "a"))
        return graph.dstdata["a"].reshape(graph.num_dst_nodes(), *shape[1:])


def _aggregate_edge_values(graph: dgl.DGLGraph, edge_values: Tensor) -> Tensor:
    with graph.local_scope():
        graph.edata["z"] = edge_values
        graph.update_all(fn.copy_e("z", "m"), fn.sum("m", "a"))
        return graph.dstdata["a"]


def _accumulate_product(terms: list[Tensor], out: Tensor | None) -> Tensor:
    """``out + prod(terms)`` (broadcasting), the last multiplication fused into ``addcmul`` when ``out`` is given."""
    prefix = terms[0]
    for t in terms[1:-1]:
        prefix = prefix * t
    return prefix * terms[-1] if out is None else torch.addcmul(out, prefix, terms[-1])


class DenseLayout:
    """Per-graph dense jets, padded to the largest graph of the batch (see module docstring).

    Shapes: component ``k`` is ``(N, P, .., P, r, C)`` with ``k`` slot dims.
    """

    mode = "dense"

    def __init__(self, g: dgl.DGLGraph):
        self.graph = g
        self.num_nodes = g.num_nodes()
        counts = g.batch_num_nodes()
        self.graph_sizes = counts
        self.offsets = torch.cumsum(counts, 0) - counts
        self.width = int(counts.max()) if len(counts) else 0
        graph_of_node = torch.repeat_interleave(torch.arange(len(counts)), counts)
        self.local_index = torch.arange(self.num_nodes) - self.offsets[graph_of_node]

    # -- storage ------------------------------------------------------------------------------------------------------
    def num_entries(self, order: int) -> int:
        """Stored (node, tuple) entries of an order-``order`` component."""
        return self.num_nodes * self.width**order

    def init_marks(self, directions: Tensor, order: int) -> list[Tensor]:
        """Derivative components of the marked input ``x_u + sum_j marks[u, j] c_j``: ``D1[v, v, j] = c_j``."""
        r, d = directions.shape
        d1 = directions.new_zeros(self.num_nodes, self.width, r, d)
        d1 = d1.index_put((torch.arange(self.num_nodes), self.local_index), directions.expand(self.num_nodes, r, d))
        return [d1] + [directions.new_zeros(self.num_nodes, *(self.width,) * k, r, d) for k in range(2, order + 1)]

    def expand(self, node_values: Tensor, order: int) -> Tensor:
        n, c = node_values.shape
        return node_values.reshape(n, *(1,) * order, 1, c)

    def product(
        self, factors: Sequence[tuple[Tensor, tuple[int, ...]]], order: int, out: Tensor | None = None
    ) -> Tensor:
        terms = []
        for comp, slots in factors:
            # comp has its slot dims in increasing slot order (components are symmetric), so a view inserts 1s
            shape = [comp.shape[0]] + [self.width if s in slots else 1 for s in range(order)] + list(comp.shape[-2:])
            terms.append(comp.reshape(shape))
        return _accumulate_product(terms, out)

    def aggregate(self, comp: Tensor, order: int, edge_weight: Tensor | None = None) -> Tensor:
        return _aggregate(self.graph, comp, edge_weight)

    def aggregate_edges(self, edge_values: Tensor) -> Tensor:
        return _aggregate_edge_values(self.graph, edge_values)

    # -- read-out -----------------------------------------------------------------------------------------------------
    def graph_block(self, comp: Tensor, order: int, i: int) -> Tensor:
        """Graph ``i``'s block ``(n, n, .., n, r, C)`` of a component."""
        start, n = int(self.offsets[i]), int(self.graph_sizes[i])
        block = comp[start : start + n]
        return block[(slice(None),) + (slice(0, n),) * order]


# ---------------------------------------------------------------------------------------------------------------------
# Sparse receptive-field layout
# ---------------------------------------------------------------------------------------------------------------------
def expand_ranges(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """For every item ``i`` and every ``j`` in ``lo[i]:hi[i]``: the pair ``(i, j)``, ordered by ``i`` then ``j``.

    >>> expand_ranges(torch.tensor([0, 5]), torch.tensor([2, 6]))
    (tensor([0, 0, 1]), tensor([0, 1, 5]))
    """
    counts = hi - lo
    i = torch.repeat_interleave(torch.arange(len(lo)), counts)
    first = torch.cumsum(counts, 0) - counts
    j = torch.arange(len(i)) + torch.repeat_interleave(lo - first, counts)
    return i, j


def grouped_product(ptr_a: Tensor, ptr_b: Tensor) -> tuple[Tensor, Tensor]:
    """All pairs ``(i, j)`` of items in the same group, ordered by group, then ``i``, then ``j``.

    Group ``g`` owns items ``ptr_a[g]:ptr_a[g+1]`` of the first list and ``ptr_b[g]:ptr_b[g+1]`` of the second.

    >>> grouped_product(torch.tensor([0, 2, 3]), torch.tensor([0, 1, 3]))
    (tensor([0, 1, 2, 2]), tensor([0, 0, 1, 2]))
    """
    group_of_a = torch.repeat_interleave(torch.arange(len(ptr_a) - 1), ptr_a.diff())
    return expand_ranges(ptr_b[group_of_a], ptr_b[group_of_a + 1])


def _ptr(sorted_groups: Tensor, num_groups: int) -> Tensor:
    counts = torch.bincount(sorted_groups, minlength=num_groups)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def receptive_field_pairs(g: dgl.DGLGraph, depth: int) -> tuple[Tensor, Tensor]:
    """Pairs ``(v, u)`` such that a directed walk of length ``<= depth`` leads from ``u`` to ``v``, sorted.

    After ``depth`` message-passing layers, ``h_v`` depends on the input of ``u`` only for these pairs.
    """
    n = g.num_nodes()
    src, dst = g.edges()
    keys = torch.arange(n) * n + torch.arange(n)  # (v, v), sorted
    for _ in range(depth):
        owner = keys // n
        ptr = _ptr(owner, n)
        # every pair (x, u) of an edge's source x becomes (v, u) at the edge's destination v
        e_idx, p_idx = expand_ranges(ptr[src], ptr[src + 1])
        new_keys = dst[e_idx] * n + keys[p_idx] % n
        keys = torch.unique(torch.cat([keys, new_keys]))
    return keys // n, keys % n


class SparseLayout:
    """Jets stored only over ``T``-hop receptive fields, aggregated on DGL tuple graphs (see module docstring).

    Derivatives are symmetric in the marked nodes, so only *sorted* tuples are stored: order ``k`` keeps the
    multisets ``u_1 <= .. <= u_k`` of the ball (about ``c^k / k!`` rows per owner with ball size ``c``, instead
    of ``c^k``); the chain rule holds tuple by tuple, so nothing else changes.  :meth:`full_rows` expands them back
    to every ordered tuple for read-out.

    Shapes: component ``k`` is ``(M_k, r, C)``; row ``t`` is the tuple ``(owner_k[t], ball(owner)[positions_k[t]])``
    with non-decreasing positions (ball members are sorted by node id, so positions and node ids sort alike).  Rows
    are sorted by ``key_k = (owner, positions)`` in mixed radix, which is how sub-tuples find their rows.
    """

    mode = "sparse"

    def __init__(self, g: dgl.DGLGraph, depth: int, order: int):
        self.graph = g
        self._sub_row_cache: dict[tuple[int, tuple[int, ...]], Tensor] = {}
        self._full_row_cache: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        n = self.num_nodes = g.num_nodes()
        owner, member = receptive_field_pairs(g, depth)
        self.pair_owner, self.pair_member = owner, member
        self.ball_ptr = _ptr(owner, n)
        self.ball_size = self.ball_ptr.diff()
        self.radix = max(int(self.ball_size.max()) if n else 1, 1)
        self.pos1 = torch.arange(len(owner)) - self.ball_ptr[owner]

        # level-1 tuple-graph edges: (x, u) -> (v, u) for each edge x -> v with u in ball(v)
        src, dst = g.edges()
        e_idx, p_idx = expand_ranges(self.ball_ptr[src], self.ball_ptr[src + 1])
        v, u = dst[e_idx], member[p_idx]
        target = torch.searchsorted(owner * n + member, v * n + u)
        target = target.clamp(max=len(owner) - 1)
        keep = (owner[target] == v) & (member[target] == u)
        e_idx, src_row, dst_row = e_idx[keep], p_idx[keep], target[keep]

        self.owner: list[Tensor] = [torch.arange(n), owner]  # owner of each row, per level (level 0 = nodes)
        self.positions: list[Tensor] = [torch.zeros(n, 0, dtype=torch.long), self.pos1[:, None]]
        self.keys: list[Tensor] = [torch.arange(n), self._key(owner, self.pos1[:, None])]
        self.tuple_graphs: list[dgl.DGLGraph] = [g]
        self.edge_ids: list[Tensor] = [torch.arange(g.num_edges())]
        self._add_tuple_graph(src_row, dst_row, e_idx)

        edge_ptr = _ptr(e_idx, g.num_edges())  # level-1 tuple edges grouped by graph edge (e_idx is sorted)
        lvl1 = (src_row, dst_row, e_idx)
        for k in range(2, order + 1):
            self._add_level(k)
            self._add_edge_level(k, lvl1, edge_ptr)

    # -- construction -------------------------------------------------------------------------------------------------
    def _key(self, owner: Tensor, positions: Tensor) -> Tensor:
        key = owner.clone()
        for i in range(positions.shape[1]):
            key = key * self.radix + positions[:, i]
        return key

    def members(self, owner: Tensor, positions: Tensor) -> Tensor:
        """Node ids ``(M, k)`` of the tuples ``(owner, ball positions)``."""
        return self.pair_member[self.ball_ptr[owner][:, None] + positions]

    def _row_of(self, owner: Tensor, positions: Tensor) -> Tensor:
        """Row of each sorted tuple ``(owner, positions)`` in its level (the tuple must be stored)."""
        k = positions.shape[1]
        if k == 0:
            return owner
        if k == 1:
            return self.ball_ptr[owner] + positions[:, 0]
        return torch.searchsorted(self.keys[k], self._key(owner, positions))

    def _add_tuple_graph(self, src_row: Tensor, dst_row: Tensor, edge_id: Tensor) -> None:
        k = len(self.tuple_graphs)
        m = len(self.owner[k])
        self.tuple_graphs.append(dgl.graph((src_row, dst_row), num_nodes=m))
        self.edge_ids.append(edge_id)

    def _add_level(self, k: int) -> None:
        """Sorted k-tuples: each sorted (k-1)-tuple extended by every ball position >= its last one."""
        prev_owner, prev_pos = self.owner[k - 1], self.positions[k - 1]
        i, j = expand_ranges(self.ball_ptr[prev_owner] + prev_pos[:, -1], self.ball_ptr[prev_owner + 1])
        self.owner.append(prev_owner[i])
        self.positions.append(torch.cat([prev_pos[i], self.pos1[j, None]], 1))
        self.keys.append(self._key(self.owner[k], self.positions[k]))

    def _add_edge_level(self, k: int, lvl1: tuple[Tensor, Tensor, Tensor], edge_ptr: Tensor) -> None:
        """Tuple-graph edges (x, U) -> (v, U) of level k: a level-(k-1) edge and a level-1 edge of the same graph
        edge x -> v, kept when the appended node is >= the tuple's last one (both stay sorted).
        """
        src1, dst1, _ = lvl1
        prev = self.tuple_graphs[k - 1]
        psrc, pdst = prev.edges()
        peid = self.edge_ids[k - 1]
        prev_ptr = _ptr(peid, self.graph.num_edges())
        a, b = grouped_product(prev_ptr, edge_ptr)
        last = self.members(self.owner[k - 1][pdst[a]], self.positions[k - 1][pdst[a], -1:])[:, 0]
        keep = self.pair_member[dst1[b]] >= last
        a, b = a[keep], b[keep]
        x, v = self.graph.edges()
        x, v = x[peid[a]], v[peid[a]]
        srow = self._row_of(x, torch.cat([self.positions[k - 1][psrc[a]], self.pos1[src1[b], None]], 1))
        drow = self._row_of(v, torch.cat([self.positions[k - 1][pdst[a]], self.pos1[dst1[b], None]], 1))
        self._add_tuple_graph(srow, drow, peid[a])

    # -- storage ------------------------------------------------------------------------------------------------------
    def num_entries(self, order: int) -> int:
        return len(self.owner[order])

    def init_marks(self, directions: Tensor, order: int) -> list[Tensor]:
        r, d = directions.shape
        d1 = directions.new_zeros(len(self.pair_owner), r, d)
        diag = (self.pair_owner == self.pair_member).nonzero().squeeze(1)
        d1 = d1.index_put((diag,), directions.expand(len(diag), r, d))
        return [d1] + [directions.new_zeros(len(self.owner[k]), r, d) for k in range(2, order + 1)]

    def expand(self, node_values: Tensor, order: int) -> Tensor:
        return node_values[self.owner[order]].unsqueeze(-2)

    def _sub_rows(self, order: int, slots: tuple[int, ...]) -> Tensor:
        """Row of the sub-tuple ``(owner, u_slots)`` for every order-``order`` row (cached per layout)."""
        if (order, slots) not in self._sub_row_cache:
            self._sub_row_cache[order, slots] = self._compute_sub_rows(order, slots)
        return self._sub_row_cache[order, slots]

    def _compute_sub_rows(self, order: int, slots: tuple[int, ...]) -> Tensor:
        # a sub-tuple of a sorted tuple is sorted, so it is a stored row of its level
        return self._row_of(self.owner[order], self.positions[order][:, list(slots)])

    def product(
        self, factors: Sequence[tuple[Tensor, tuple[int, ...]]], order: int, out: Tensor | None = None
    ) -> Tensor:
        return _accumulate_product([comp[self._sub_rows(order, tuple(slots))] for comp, slots in factors], out)

    def aggregate(self, comp: Tensor, order: int, edge_weight: Tensor | None = None) -> Tensor:
        if edge_weight is not None and order > 0:
            edge_weight = edge_weight[self.edge_ids[order]]
        return _aggregate(self.tuple_graphs[order], comp, edge_weight)

    def aggregate_edges(self, edge_values: Tensor) -> Tensor:
        return _aggregate_edge_values(self.graph, edge_values)

    # -- read-out -----------------------------------------------------------------------------------------------------
    def full_rows(self, order: int) -> tuple[Tensor, Tensor, Tensor]:
        """Every ordered tuple of the receptive fields: ``(owner, members (M, order), row)``, lexicographic in
        ``(owner, ball positions)``; ``row`` is the stored (sorted) row holding its value.
        """
        if order not in self._full_row_cache:
            owner, pos = torch.arange(self.num_nodes), torch.zeros(self.num_nodes, 0, dtype=torch.long)
            for _ in range(order):
                i, j = expand_ranges(self.ball_ptr[owner], self.ball_ptr[owner + 1])
                owner, pos = owner[i], torch.cat([pos[i], self.pos1[j, None]], 1)
            row = self._row_of(owner, pos.sort(dim=1).values)
            self._full_row_cache[order] = (owner, self.members(owner, pos), row)
        return self._full_row_cache[order]

    def graph_block(self, comp: Tensor, order: int, i: int) -> Tensor:
        """Graph ``i``'s dense block ``(n, n, .., n, r, C)`` of a component (zeros outside receptive fields)."""
        counts = self.graph.batch_num_nodes()
        start = int(counts[:i].sum())
        n = int(counts[i])
        owner, members, row = self.full_rows(order)
        sel = ((owner >= start) & (owner < start + n)).nonzero().squeeze(1)
        out = comp.new_zeros(n, *(n,) * order, *comp.shape[1:])
        index = (owner[sel] - start,) + tuple(members[sel, slot] - start for slot in range(order))
        return out.index_put(index, comp[row[sel]])
