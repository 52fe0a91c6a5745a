r"""Expressivity suite: how many hard pairs of non-isomorphic graphs a model tells apart, measured reliably.

For any :class:`~dgl_hod.archs.base.GraphModel` (randomly initialised with a fixed seed, eval mode, float64):

* ``exp``: EXP pairs distinguished, out of 600;
* ``csl``: CSL classes separated, out of 10 (a class counts when its representative is distinguished from the
  representatives of all 9 other classes; the 45 pairs are reported too);
* ``sr25``: SR25 pairs distinguished, out of 105;
* ``brec``: BREC pairs distinguished, per category (basic 60, regular 50, str 50, extension 100, cfi 100, 4vtx 20,
  dr 20; 400 in all).

**Reliability protocol** (in the spirit of BREC's reliability check).  Each graph of a pair is relabelled by
``num_perms`` random node permutations (fixed seed) and all ``2 * num_perms`` copies are embedded in one batch
(:meth:`embed`, shape ``(2K, D)``).  With :math:`\bar e_1, \bar e_2` the mean embeddings of the two graphs' copies
and the *spread* :math:`s = \max_{i, k} \lVert e_{i,k} - \bar e_i \rVert` (how much the embedding of the SAME graph
moves under relabelling, numerically), the pair counts as distinguished iff

.. math:: \lVert \bar e_1 - \bar e_2 \rVert > \tau \cdot s \quad\text{and}\quad
          \lVert \bar e_1 - \bar e_2 \rVert > \rho \cdot \max(\lVert \bar e_1 \rVert, \lVert \bar e_2 \rVert)

(defaults ``tau = 10``, ``rho = 1e-12``: float64 round-off is ~1e-16 relative, and at random initialisation
genuine differences can be small, e.g. ~1e-11 relative on EXP for k1, while the relabeling spread is ~1e-16).
A pair whose jets would not fit in memory is counted as *skipped* (reported separately, never as distinguished).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import dgl
import numpy as np
import torch
from torch import nn

__all__ = ["expressivity_counts", "model_factory", "permute_graph", "pair_distinguished", "SETS", "format_table"]

SETS = ("exp", "csl", "sr25", "brec")


def permute_graph(g: dgl.DGLGraph, perm: torch.Tensor) -> dgl.DGLGraph:
    """Relabel the nodes of ``g``: new node ``i`` is old node ``perm[i]`` (features follow the nodes)."""
    inv = torch.argsort(perm)
    src, dst = g.edges()
    h = dgl.graph((inv[src], inv[dst]), num_nodes=g.num_nodes())
    for k, v in g.ndata.items():
        h.ndata[k] = v[perm]
    for k, v in g.edata.items():
        h.edata[k] = v
    return h


def model_factory(arch: str, **config) -> Callable[[str], nn.Module]:
    """A factory ``name -> model`` for :func:`expressivity_counts`: ``create_model(arch, **config)`` with the
    dataset's vocabularies filled in (see :func:`dgl_hod.archs.build.build_model`).
    """
    from .archs.build import build_model

    def make(dataset: str) -> nn.Module:
        return build_model(arch, dataset, dict(config))[0]

    make.arch, make.config = arch, dict(config)  # type: ignore[attr-defined]
    return make


def _inputs(g: dgl.DGLGraph, dataset: str):
    from .datasets import get_info

    info = get_info(dataset)
    nf = g.ndata["feat"] if tuple(info.node_feat_dims) != (1,) else None
    ef = g.edata["feat"] if tuple(info.edge_feat_dims) != (1,) else None
    return nf, ef


@torch.no_grad()
def pair_distinguished(
    model: nn.Module,
    g1: dgl.DGLGraph,
    g2: dgl.DGLGraph,
    dataset: str,
    num_perms: int,
    gen: torch.Generator,
    tau: float = 10.0,
    rho: float = 1e-12,
) -> dict:
    """Embed ``num_perms`` random relabelings of each graph; see the module docstring for the test."""
    copies = [
        permute_graph(g, torch.randperm(g.num_nodes(), generator=gen)) for g in (g1, g2) for _ in range(num_perms)
    ]
    bg = dgl.batch(copies)
    nf, ef = _inputs(bg, dataset)
    emb = model.embed(bg, nf, ef).double()
    e1, e2 = emb[:num_perms], emb[num_perms:]
    m1, m2 = e1.mean(0), e2.mean(0)
    spread = max((e1 - m1).norm(dim=1).max().item(), (e2 - m2).norm(dim=1).max().item())
    dist = (m1 - m2).norm().item()
    scale = max(m1.norm().item(), m2.norm().item())
    return {
        "distance": dist,
        "spread": spread,
        "scale": scale,
        "distinguished": bool(dist > tau * spread and dist > rho * scale),
    }


def expressivity_counts(
    model_or_factory: nn.Module | Callable[[str], nn.Module],
    sets: Iterable[str] = SETS,
    num_perms: int = 4,
    tau: float = 10.0,
    rho: float = 1e-12,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    max_pairs: int | None = None,
    time_limit_s: float | None = None,
    progress: bool = False,
) -> dict:
    """Count the pairs of each expressivity set that a model distinguishes (module docstring).

    Args:
        model_or_factory: a model (used as is for every set, so its vocabularies must fit every set) or a
            factory ``dataset_name -> model`` (e.g. :func:`model_factory`), called after ``torch.manual_seed(seed)``.
        sets: any of ``"exp"``, ``"csl"``, ``"sr25"``, ``"brec"``.
        num_perms: random relabelings per graph (``K``).
        tau: spread multiple of the test (a pair counts when its distance exceeds ``tau`` spreads).
        rho: relative floor of the test (and exceeds ``rho`` times the embeddings' scale).
        seed: seed of the model factory and of the relabelings.
        dtype: evaluation dtype (float64 by default, so round-off stays far below real differences).
        max_pairs: evaluate only the first pairs of each set (quick runs; the totals then say so).
        time_limit_s: per set, stop starting new pairs after this many seconds (``evaluated`` says how many were
            done; pairs are taken in the set's order, so a cut-off BREC run covers its first categories only).
        progress: show a progress bar per set.

    Returns: ``{set: {"distinguished", "total", "evaluated", "skipped", "seconds", ...}, "protocol": {...}}``;
    ``csl`` adds ``classes_separated`` (out of 10), ``brec`` adds ``per_category``.
    """
    from .datasets import expressivity_pairs
    from .nn.base_mpnn import JetMemoryError

    results: dict = {
        "protocol": {
            "num_perms": num_perms,
            "tau": tau,
            "rho": rho,
            "seed": seed,
            "dtype": str(dtype),
            "rule": "dist(mean emb) > tau * max relabeling spread and > rho * |mean emb|",
        }
    }
    for name in sets:
        if name not in SETS:
            raise ValueError(f"unknown expressivity set {name!r}; choose from {SETS}")
        torch.manual_seed(seed)
        model = model_or_factory if isinstance(model_or_factory, nn.Module) else model_or_factory(name)
        model = model.to(dtype).eval()
        pairs = expressivity_pairs(name)
        n = len(pairs) if max_pairs is None else min(max_pairs, len(pairs))
        gen = torch.Generator().manual_seed(seed)
        t0 = time.time()
        hits, skipped = [], 0
        cat_total: defaultdict[str, int] = defaultdict(int)
        cat_hit: defaultdict[str, int] = defaultdict(int)
        cat_skip: defaultdict[str, int] = defaultdict(int)
        iterator = range(n)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc=name, leave=False)
        for k in iterator:
            if time_limit_s is not None and time.time() - t0 > time_limit_s:
                break
            g1, g2, meta = pairs[k]
            cat = meta.get("category")
            try:
                r = pair_distinguished(model, g1, g2, name, num_perms, gen, tau, rho)
                hit = r["distinguished"]
            except JetMemoryError:
                hit = None
                skipped += 1
            hits.append((meta, hit))
            if cat is not None:
                cat_total[cat] += 1
                cat_hit[cat] += int(bool(hit))
                cat_skip[cat] += int(hit is None)
        out: dict[str, Any] = {
            "distinguished": sum(bool(h) for _, h in hits),
            "total": len(pairs),
            "evaluated": len(hits),
            "skipped": skipped,
            "seconds": time.time() - t0,
        }
        if name == "csl":  # a class counts once all its 9 pairs were evaluated and distinguished
            sep = np.ones(10, dtype=bool)
            seen = np.zeros(10, dtype=int)
            for meta, hit in hits:
                a, b = meta["classes"]
                seen[a] += 1
                seen[b] += 1
                if not hit:
                    sep[a] = sep[b] = False
            sep &= seen == 9
            out["classes_separated"] = int(sep.sum())
            out["classes_total"] = 10
        if name == "brec":
            cats = pairs.dataset.info.options["categories"]
            full = np.bincount(pairs.dataset.extras["category"][::2], minlength=len(cats))
            out["per_category"] = {
                c: {
                    "distinguished": cat_hit[c],
                    "evaluated": cat_total[c],
                    "total": int(full[i]),
                    "skipped": cat_skip[c],
                }
                for i, c in enumerate(cats)
            }
        results[name] = out
    return results


def format_table(rows: dict[str, dict]) -> str:
    """Markdown table of ``{model_label: expressivity_counts(...)}``."""
    cats = ("basic", "regular", "str", "extension", "cfi", "4vtx", "dr")
    head = (
        ["model", "EXP /600", "CSL classes /10", "SR25 /105"] + [f"BREC {c}" for c in cats] + ["BREC /400", "time (s)"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, res in rows.items():

        def cell(name, key="distinguished", res=res):
            r = res.get(name)
            if r is None:
                return "–"
            s = f"{r[key]}"
            if r.get("skipped"):
                s += f" ({r['skipped']} skipped)"
            if r["evaluated"] < r["total"]:
                s += f" of {r['evaluated']}"
            return s

        brec = res.get("brec")
        cat_cells = []
        for c in cats:
            if brec is None or c not in brec["per_category"] or not brec["per_category"][c]["evaluated"]:
                cat_cells.append("–")
            else:
                pc = brec["per_category"][c]
                s = f"{pc['distinguished']}/{pc['total']}"
                if pc["evaluated"] < pc["total"]:
                    s += f" (of {pc['evaluated']} run)"
                cat_cells.append(s + (f" ({pc['skipped']} skipped)" if pc["skipped"] else ""))
        seconds = sum(r["seconds"] for k, r in res.items() if k != "protocol")
        lines.append(
            "| "
            + " | ".join(
                [label, cell("exp"), cell("csl", "classes_separated"), cell("sr25")]
                + cat_cells
                + [cell("brec"), f"{seconds:.0f}"]
            )
            + " |"
        )
    return "\n".join(lines)
