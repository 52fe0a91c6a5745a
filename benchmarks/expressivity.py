"""Expressivity suite: EXP /600, CSL classes /10, SR25 /105, BREC per category /400, for several models.

BREC's 400 pairs by category: basic 60, regular 50, str 50, extension 100, cfi 100, 4vtx 20, dr 20.

Each model is built at random initialisation (``torch.manual_seed(seed)``), in float64 and eval mode, and judged by
the reliability protocol of :mod:`dgl_hod.expressivity` (``--num-perms`` random relabelings per graph, threshold
``--tau`` times the relabeling spread, relative floor ``--rho``).  ``--time-limit`` caps each (model, set) run; the
table then says how many pairs were evaluated.

    python benchmarks/expressivity.py                                   # HOD-GNN k1/k2 at depths 4 and 8
    python benchmarks/expressivity.py --model k1-T4=hod-gnn:'{"order":1,"base_layers":4}' --sets csl sr25
    dgl-hod expressivity --model gine=gine:'{}'                         # any registered architecture

Writes ``benchmarks/results/expressivity.{md,json}`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DGLBACKEND", "pytorch")


RESULTS = Path(__file__).resolve().parent / "results"
COMMON = {"hidden_dim": 32, "base_hidden_dim": 16, "downstream_layers": 2, "jet_mode": "sparse"}
DEFAULT_MODELS = {
    "hod-gnn k1 T=4": ("hod-gnn", {**COMMON, "order": 1, "base_layers": 4}),
    "hod-gnn k1 T=8": ("hod-gnn", {**COMMON, "order": 1, "base_layers": 8}),
    "hod-gnn k2 T=4": ("hod-gnn", {**COMMON, "order": 2, "base_layers": 4}),
    "hod-gnn k2 T=8": ("hod-gnn", {**COMMON, "order": 2, "base_layers": 8}),
}


def parse_model(spec: str) -> tuple[str, tuple[str, dict]]:
    """``LABEL=ARCH:JSON`` (or ``ARCH:JSON``, or ``ARCH``); the label may itself contain ``=`` (``k1 T=4=...``)."""
    head, _, cfg = spec.partition(":")
    label, _, arch = head.rpartition("=")
    config = json.loads(cfg) if cfg else {}
    return label or f"{arch} {cfg}".strip(), (arch, config)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="LABEL=ARCH:JSON",
        help="model to evaluate (repeatable); default: HOD-GNN k1/k2 at depths 4 and 8",
    )
    p.add_argument("--sets", nargs="+", default=["exp", "csl", "sr25", "brec"])
    p.add_argument("--num-perms", type=int, default=4)
    p.add_argument("--tau", type=float, default=10.0)
    p.add_argument("--rho", type=float, default=1e-12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-pairs", type=int, default=None)
    p.add_argument("--time-limit", type=float, default=150.0, help="seconds per (model, set); 0 = none")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="expressivity", help="output file stem")
    a = p.parse_args(argv)
    from dgl_hod.expressivity import expressivity_counts, format_table, model_factory
    from dgl_hod.train import machine_string, set_threads
    from dgl_hod.utils import atomic_write_bytes

    set_threads(a.threads)

    models = dict(parse_model(s) for s in a.model) if a.model else DEFAULT_MODELS
    results = {}
    for label, (arch, config) in models.items():
        t0 = time.time()
        results[label] = expressivity_counts(
            model_factory(arch, **config),
            sets=a.sets,
            num_perms=a.num_perms,
            tau=a.tau,
            rho=a.rho,
            seed=a.seed,
            max_pairs=a.max_pairs,
            time_limit_s=a.time_limit or None,
        )
        results[label]["model"] = {"arch": arch, "config": config}
        summary = {k: v["distinguished"] for k, v in results[label].items() if isinstance(v, dict) and "total" in v}
        print(f"{label}: {summary} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    machine = machine_string()
    header = (
        f"Random initialisation (seed {a.seed}), float64, eval mode; a pair counts when the distance of the "
        f"mean embeddings exceeds {a.tau:g} x the largest spread over {a.num_perms} random relabelings of each "
        f"graph and {a.rho:g} x the embedding norm; time limit {a.time_limit:g} s per (model, set). "
        f"{machine}."
    )
    table = format_table({k: {s: v for s, v in r.items() if s != "model"} for k, r in results.items()})
    text = header + "\n\n" + table
    print(text)
    atomic_write_bytes(a.out / f"{a.name}.md", (text + "\n").encode())
    atomic_write_bytes(
        a.out / f"{a.name}.json", json.dumps({"machine": machine, "results": results}, indent=2).encode()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
