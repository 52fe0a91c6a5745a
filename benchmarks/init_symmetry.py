r"""Why a fresh k1 HOD-GNN tied BREC pairs 4, 24 (basic) and 64, 89 (regular) at even base depth, and the fix.

**Mechanism.**  GIN with :math:`\epsilon = 0` aggregates with :math:`B = A + I` (closed neighbourhoods).  For each of
the four pairs there are permutation matrices :math:`P \ne R` with :math:`B_2 = P B_1 R^\top` (the looped graphs are
*two-fold isomorphic*: their canonical double covers are isomorphic by a side-preserving map), and
:math:`\Sigma = R^\top P` is an involutive automorphism of :math:`G_1`.  Since :math:`B` is symmetric,
:math:`B_2 = R B_1 P^\top` as well, so a stack of layers :math:`h \mapsto f_t(B h)` (any node-wise :math:`f_t`) gives

.. math:: F^{(T)}_{G_2}(R X) = R\, F^{(T)}_{G_1}(X) \ (T \text{ even}), \qquad
          F^{(T)}_{G_2}(R X) = P\, F^{(T)}_{G_1}(X) \ (T \text{ odd})

for EVERY input :math:`X`: at even depth the base computes the same function on both graphs (up to the relabelling
:math:`R`), so every jet :math:`D(\alpha)` of any order is conjugate, :math:`D_{G_2} = R D_{G_1} R^\top`, and no
equivariant encoder can separate them; at odd depth :math:`D_{G_2} = P D_{G_1} R^\top` moves the diagonal
(:math:`D[v, v]` becomes :math:`D[\sigma(v), v]`).  With :math:`1 + \epsilon \notin \{0, 1\}` the diagonal weight
differs from the edge weight, so such a pair :math:`(P, R)` must have :math:`P = R`: an isomorphism.

Sections (each writes a table to ``benchmarks/results/init_symmetry.md``; ``--sections`` picks some):

* ``scan``: which BREC basic/regular pairs are two-fold isomorphic with loops (:math:`A_2 + I = P(A_1 + I)R^\top`),
  or without (:math:`A_2 = P A_1 R^\top`, the relation that matters for :math:`\epsilon = -1`);
* ``function``: :math:`\max |F_{G_2}(RX) - R F_{G_1}(X)|` and :math:`\max |F_{G_2}(RX) - P F_{G_1}(X)|` for a random
  base (random input ``X``), depths 1-4, :math:`\epsilon = 0` and the new default 0.5;
* ``gaps``: the relative embedding difference of fresh k1 models on the four pairs: seeds, depths 2-5,
  :math:`\epsilon \in \{0, 0.5\}`, activations silu / tanh / relu, and m = 2;
* ``marking``: the same :math:`\epsilon = 0` base with FINITE node marks (a DS-GNN-style bag read-out, sum per
  marked copy) ties at every depth: the tie is a property of the base network, not of derivatives versus marking;
  residual layers (``h + layer(h)``, as in DS-GNN) break it;
* ``counts``: BREC basic and regular pairs distinguished by fresh k1 models (the suite's reliability protocol),
  depth 3 and 4, old init (:math:`\epsilon = 0`) versus the new default;
* ``rwse``: ``base_init="rwse"``: max error of ``D1[v, v, 0, 0]`` against the random-walk return probability, per
  activation, GIN and GINE, and the size of ``D(2)`` (nonzero: the base is nonlinear).

    python benchmarks/init_symmetry.py                      # everything (~1 min on a busy 2-core machine)
    python benchmarks/init_symmetry.py --sections function gaps
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DGLBACKEND", "pytorch")

import dgl  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dgl_hod import create_model  # noqa: E402
from dgl_hod.datasets import expressivity_pairs  # noqa: E402
from dgl_hod.expressivity import pair_distinguished  # noqa: E402
from dgl_hod.nn.base_mpnn import BaseMPNN  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PAIRS = (4, 24, 64, 89)
SMALL = dict(
    node_vocab=(1,), edge_vocab=None, hidden_dim=32, base_hidden_dim=16, downstream_layers=2, downstream_norm="none"
)
SECTIONS = ("scan", "function", "gaps", "marking", "counts", "rwse")


def adjacency(g: dgl.DGLGraph) -> np.ndarray:
    """Dense ``(n, n)`` adjacency (float64) of a DGL graph, ``A[u, v] = 1`` for an edge ``u -> v``."""
    n = g.num_nodes()
    a = np.zeros((n, n))
    src, dst = g.edges()
    a[src.numpy(), dst.numpy()] = 1.0
    return a


def _double_cover(b: np.ndarray) -> nx.Graph:
    n = len(b)
    h = nx.Graph()
    h.add_nodes_from(((v, 0) for v in range(n)), side=0)
    h.add_nodes_from(((u, 1) for u in range(n)), side=1)
    h.add_edges_from(((int(v), 0), (int(u), 1)) for v, u in zip(*np.nonzero(b)))
    return h


def two_fold(b1: np.ndarray, b2: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Permutation matrices ``(P, R)`` with ``b2 = P b1 R^T``, or ``None`` (none exists).

    A cheap necessary condition first (equal singular values), then a side-preserving isomorphism of the bipartite
    double covers (networkx VF2).
    """
    s1, s2 = np.linalg.svd(b1, compute_uv=False), np.linalg.svd(b2, compute_uv=False)
    if not np.allclose(np.sort(s1), np.sort(s2), atol=1e-8):
        return None
    matcher = nx.algorithms.isomorphism.GraphMatcher(
        _double_cover(b1), _double_cover(b2), node_match=lambda x, y: x["side"] == y["side"]
    )
    for mapping in matcher.isomorphisms_iter():
        n = len(b1)
        p, r = np.zeros((n, n)), np.zeros((n, n))
        for (v, side), (w, _) in mapping.items():
            (p if side == 0 else r)[w, v] = 1.0
        assert np.allclose(b2, p @ b1 @ r.T)
        return p, r
    return None


def separation(model: torch.nn.Module, g1: dgl.DGLGraph, g2: dgl.DGLGraph) -> float:
    """Max embedding difference of a pair relative to the embedding scale (float64 ties are ~1e-16)."""
    g = dgl.batch([g1, g2])
    with torch.no_grad():
        e = model.embed(g, None)
    return float((e[0] - e[1]).abs().max() / (1 + e.abs().max()))


def fresh_k1(seed: int, depth: int, **config) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("hod-gnn", **{**SMALL, "base_layers": depth, "k": 1, "m": 1, **config}).double().eval()


# ------------------------------------------------------------------------------------------------------------ sections
def section_scan(pairs) -> str:
    lines = [
        "| category | pairs | two-fold iso. with loops (A+I) | two-fold iso. without loops (A) |",
        "|---|---|---|---|",
    ]
    for cat in ("basic", "regular"):
        idx = [k for k in range(len(pairs)) if pairs[k][2]["category"] == cat]
        looped, plain = [], []
        for k in idx:
            g1, g2, _ = pairs[k]
            a1, a2 = adjacency(g1), adjacency(g2)
            eye = np.eye(len(a1))
            if two_fold(a1 + eye, a2 + eye) is not None:
                looped.append(k)
            if two_fold(a1, a2) is not None:
                plain.append(k)
        lines.append(f"| {cat} | {len(idx)} | {looped or 'none'} | {plain or 'none'} |")
    return "\n".join(lines)


def section_function(pairs) -> str:
    lines = [
        "| pair | moved by Sigma = R^T P (node pairs of G1) | Sigma automorphism of G1 | eps | T | "
        "max abs(F2(RX) - R F1(X)) | max abs(F2(RX) - P F1(X)) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in PAIRS:
        g1, g2, _ = pairs[k]
        a1, a2 = adjacency(g1), adjacency(g2)
        eye = np.eye(len(a1))
        found = two_fold(a1 + eye, a2 + eye)
        assert found is not None, k
        p, r = found
        sigma = r.T @ p
        perm = sigma.argmax(0)
        moved = sorted({tuple(sorted((int(i), int(perm[i])))) for i in range(len(perm)) if perm[i] != i})
        auto = bool(np.allclose(sigma @ a1 @ sigma.T, a1))
        pt, rt = torch.tensor(p), torch.tensor(r)
        x = torch.randn(len(a1), 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        for eps in (0.0, 0.5):
            for depth in (1, 2, 3, 4):
                torch.manual_seed(1)
                base = BaseMPNN(5, 8, depth, eps=eps).double()
                with torch.no_grad():
                    h1, h2 = base(g1, x), base(g2, rt @ x)
                er = float((h2 - rt @ h1).abs().max())
                ep = float((h2 - pt @ h1).abs().max())
                lines.append(f"| {k} | {moved} | {auto} | {eps} | {depth} | {er:.1e} | {ep:.1e} |")
    return "\n".join(lines)


def section_gaps(pairs) -> str:
    runs = [
        ("silu", 0.0, 1),
        ("silu", 0.5, 1),
        ("tanh", 0.0, 1),
        ("tanh", 0.5, 1),
        ("relu", 0.0, 1),
        ("relu", 0.5, 1),
        ("silu", 0.0, 2),
        ("silu", 0.5, 2),
    ]
    lines = ["| activation | base_eps | m | T | seed | " + " | ".join(f"pair {k}" for k in PAIRS) + " |"]
    lines.append("|---|---|---|---|---|" + "---|" * len(PAIRS))
    for act, eps, m in runs:
        for depth in (2, 3, 4, 5):
            for seed in (0, 1, 2):
                model = fresh_k1(seed, depth, base_activation=act, base_eps=eps, m=m)
                gaps = [separation(model, *pairs[k][:2]) for k in PAIRS]
                lines.append(
                    f"| {act} | {eps} | {m} | {depth} | {seed} | " + " | ".join(f"{x:.1e}" for x in gaps) + " |"
                )
    return "\n".join(lines)


def _marked_bag_embedding(base: BaseMPNN, g: dgl.DGLGraph, x: torch.Tensor, residual: bool) -> torch.Tensor:
    """Sorted per-subgraph read-outs of the node-marked bag: subgraph u = the graph with node u's input moved by the
    mark direction (a finite mark); the layers run plain (``h <- layer(h)``) or residual (``h <- h + layer(h)``)."""
    outs = []
    for u in range(g.num_nodes()):
        h = x.clone()
        h[u] = h[u] + base.mark_directions[0]
        for layer in base.layers:
            h = h + layer(g, h) if residual else layer(g, h)
        outs.append(torch.tanh(h).sum(0))
    bag = torch.stack(outs)
    return bag[torch.argsort(bag[:, 0])]


def section_marking(pairs) -> str:
    lines = ["| base_eps | layers | T | " + " | ".join(f"pair {k}" for k in PAIRS) + " |"]
    lines.append("|---|---|---|" + "---|" * len(PAIRS))
    x = torch.randn(1, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for eps in (0.0, 0.5):
        for residual in (False, True):
            for depth in (2, 3, 4):
                torch.manual_seed(0)
                base = BaseMPNN(16, 16, depth, eps=eps).double()
                row = []
                for k in PAIRS:
                    g1, g2, _ = pairs[k]
                    with torch.no_grad():
                        b1 = _marked_bag_embedding(base, g1, x.expand(g1.num_nodes(), 16), residual)
                        b2 = _marked_bag_embedding(base, g2, x.expand(g2.num_nodes(), 16), residual)
                    row.append(float((b1 - b2).abs().max() / (1 + b1.abs().max())))
                kind = "residual" if residual else "plain"
                lines.append(f"| {eps} | {kind} | {depth} | " + " | ".join(f"{v:.1e}" for v in row) + " |")
    return "\n".join(lines)


def section_counts(pairs, seed: int = 0, num_perms: int = 4) -> tuple[str, dict]:
    idx = {cat: [k for k in range(len(pairs)) if pairs[k][2]["category"] == cat] for cat in ("basic", "regular")}
    lines = [
        "| model | base_eps | T | BREC basic | BREC regular | missed pairs | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    raw: dict = {}
    runs = [(m, init, eps) for m in (1, 2) for init, eps in (("default", 0.0), ("default", 0.5))]
    runs += [(1, "rwse", -1.0), (1, "rwse-linear", -1.0)]
    for m, init, eps in runs:
        for depth in (3, 4):
            t0 = time.time()
            model = fresh_k1(seed, depth, base_eps=eps, m=m, base_init=init, jet_mode="sparse")
            gen = torch.Generator().manual_seed(seed)
            hits, missed = {}, []
            for cat, ks in idx.items():
                hits[cat] = 0
                for k in ks:
                    ok = pair_distinguished(model, pairs[k][0], pairs[k][1], "brec", num_perms, gen)["distinguished"]
                    hits[cat] += int(ok)
                    if not ok:
                        missed.append(k)
            dt = time.time() - t0
            label = f"hod-gnn k1 m{m}" + ("" if init == "default" else f" base_init={init}")
            raw[f"{label} eps={eps} T={depth}"] = {**hits, "missed": missed, "seconds": dt}
            lines.append(
                f"| {label} | {eps} | {depth} | {hits['basic']}/{len(idx['basic'])} | "
                f"{hits['regular']}/{len(idx['regular'])} | {missed or 'none'} | {dt:.0f} |"
            )
    return "\n".join(lines), raw


def section_rwse() -> str:
    from dgl_hod import jets as jetlib

    gen = torch.Generator().manual_seed(8)
    dgl.seed(0)
    g = dgl.to_bidirected(dgl.rand_graph(12, 20))
    g = dgl.add_nodes(g, 1)  # an isolated node
    a = adjacency(g)
    deg = a.sum(1, keepdims=True)
    p = np.divide(a, deg, out=np.zeros_like(a), where=deg > 0)
    lines = [
        "| activation | messages | T | max abs(D1[v,v,0,0] - (P^T)_vv) | max abs(D(2)) |",
        "|---|---|---|---|---|",
    ]
    for act in jetlib.ACTIVATIONS:
        for edge_dim in (None, 3):
            for depth in (2, 4):
                torch.manual_seed(0)
                base = BaseMPNN(4, 8, depth, edge_dim=edge_dim, activation=act, init="rwse").double()
                x = torch.randn(g.num_nodes(), 4, generator=gen, dtype=torch.float64)
                x[:, 0] = 0.0
                e = torch.randn(g.num_edges(), 3, generator=gen, dtype=torch.float64) if edge_dim else None
                with torch.no_grad():
                    d1, d2 = base.jets(g, x, e, k=1, m=2).pure(0)
                want = torch.tensor(np.diag(np.linalg.matrix_power(p, depth)))
                err = float((torch.diagonal(d1[:, :, 0, 0]) - want).abs().max())
                kind = "GIN" if edge_dim is None else "GINE"
                lines.append(f"| {act} | {kind} | {depth} | {err:.1e} | {float(d2.abs().max()):.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", default=str(RESULTS / "init_symmetry.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pairs = expressivity_pairs("brec")
    parts = [
        f"# Base initialisation symmetry (`python benchmarks/init_symmetry.py --sections {' '.join(args.sections)}`)"
    ]
    raw: dict = {}
    for name in args.sections:
        t0 = time.time()
        if name == "counts":
            text, raw["counts"] = section_counts(pairs)
        elif name == "rwse":
            text = section_rwse()
        else:
            text = globals()[f"section_{name}"](pairs)
        parts.append(f"## {name} ({time.time() - t0:.0f} s)\n\n{text}")
        print(parts[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from dgl_hod.utils import atomic_write_bytes

    atomic_write_bytes(out, ("\n\n".join(parts) + "\n").encode())
    if raw:
        atomic_write_bytes(out.with_suffix(".json"), (json.dumps(raw, indent=1) + "\n").encode())


if __name__ == "__main__":
    main()
