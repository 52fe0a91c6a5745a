"""Benchmark: one training step on ZINC-12k batches, baselines side by side with HOD-GNN.

Models (all ``hidden_dim`` D, 4 message-passing layers, ZINC encoders, sum readout, the shared head, BatchNorm):
``gine``, ``gine-rwse`` (16 steps), ``ds-gnn`` and ``dss-gnn`` with the node-marked policy (the full bag: one
copy of every graph per node) and with ego+ of radius 2, and ``hod-gnn`` of order 1 and 2 (base MPNN width D/2,
4 base layers, 4 downstream layers) -- the defaults of ``hod-gnn`` at D=64 -- with dense and with sparse jets.

A training step is: build the input (for subgraph GNNs the bag is built inside the forward pass), forward, L1 loss,
backward, AdamW step.  Each model runs in its own fresh subprocess (``spawn``) on the same batches -- the first
``--batches`` training batches of ZINC-12k in file order -- so that its peak resident memory is its own:
``peak`` = ``ru_maxrss`` after the steps minus the RSS just before the first step (data and model already loaded),
i.e. the extra memory the training step needs at its peak, activations and autograd graph included.  Times are the
median over the measured steps, after one warm-up step.

    python benchmarks/bench_baselines.py --batch-size 32 --steps 5   # results/baselines.md (docs/benchmarks.md)
    python benchmarks/bench_baselines.py --batch-size 128 --steps 3 --only gine --only "hod-gnn k1"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DGLBACKEND", "pytorch")

import dgl  # noqa: E402
import torch  # noqa: E402
from _isolated import exit_with_parent, peak_bytes, rss_bytes, run_in_subprocess  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def configs(d: int) -> list[tuple[str, str, dict]]:
    """(label, arch, config) of every benchmarked model at width ``d``."""
    mp_ = {"hidden_dim": d, "num_layers": 4}
    hod = {"hidden_dim": d, "base_hidden_dim": d // 2, "base_layers": 4, "downstream_layers": 4, "jet_mode": "dense"}
    return [
        ("gine", "gine", mp_),
        ("gine-rwse", "gine-rwse", {**mp_, "rwse_steps": 16}),
        ("ds-gnn (node-marked)", "ds-gnn", {**mp_, "policy": "node_marked"}),
        ("dss-gnn (node-marked)", "dss-gnn", {**mp_, "policy": "node_marked"}),
        ("ds-gnn (ego+, r=2)", "ds-gnn", {**mp_, "policy": "ego_plus", "ego_radius": 2}),
        ("dss-gnn (ego+, r=2)", "dss-gnn", {**mp_, "policy": "ego_plus", "ego_radius": 2}),
        ("hod-gnn k1", "hod-gnn", {**hod, "order": 1}),
        ("hod-gnn k2", "hod-gnn", {**hod, "order": 2}),
        ("hod-gnn k1 (sparse jets)", "hod-gnn", {**hod, "order": 1, "jet_mode": "sparse"}),
        ("hod-gnn k2 (sparse jets)", "hod-gnn", {**hod, "order": 2, "jet_mode": "sparse"}),
    ]


def _worker(task: dict, queue) -> None:
    exit_with_parent()
    torch.set_num_threads(task["threads"])
    torch.manual_seed(0)
    from dgl_hod import create_model
    from dgl_hod.datasets import get_info, load_dataset

    info = get_info("zinc12k")
    ds = load_dataset("zinc12k", "train")
    bs = task["batch_size"]
    batches = [ds.batch(range(i * bs, (i + 1) * bs)) for i in range(task["steps"] + 1)]
    model = create_model(
        task["arch"], node_vocab=info.node_feat_dims, edge_vocab=info.edge_feat_dims, num_tasks=1, **task["config"]
    ).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    extra = {}
    if task["arch"] in ("ds-gnn", "dss-gnn"):
        bg = batches[0][0]
        bag = model.bag(bg)
        t0 = time.perf_counter()
        for _ in range(3):
            model.bag(bg)
        extra = {
            "bag_nodes": bag.num_nodes(),
            "bag_edges": bag.num_edges(),
            "bag_build_s": (time.perf_counter() - t0) / 3,
            "nodes": bg.num_nodes(),
        }
        del bag

    def step(bg, y):
        t0 = time.perf_counter()
        loss = (model(bg, bg.ndata["feat"], bg.edata["feat"]) - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    rss0 = rss_bytes()
    step(*batches[0])  # warm-up; the peak below includes it (same work)
    times = [step(*b) for b in batches[1:]]
    queue.put(
        {
            **task,
            **extra,
            "seconds": statistics.median(times),
            "peak_bytes": peak_bytes() - rss0,
            "params": model.num_parameters(),
        }
    )


def run_task(task: dict) -> dict:
    return run_in_subprocess(_worker, task)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="measured steps (after one warm-up step)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="LABEL",
        help="run only this model label (repeatable; default: all)",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write baselines.{md,json} (default results/)")
    args = parser.parse_args(argv)

    rows = []
    only = set(args.only) if args.only else None
    for label, arch, config in configs(args.hidden):
        if only and label not in only:
            continue
        task = dict(
            label=label, arch=arch, config=config, batch_size=args.batch_size, steps=args.steps, threads=args.threads
        )
        r = run_task(task)
        rows.append(r)
        print(
            f"{label:24s} params {r['params']:>8,}  step {r['seconds'] * 1e3:8.1f} ms  "
            f"peak {r['peak_bytes'] / 2**20:8.1f} MiB"
            + (
                f"  bag {r['bag_nodes']:,} nodes / {r['bag_edges']:,} edges, built in {r['bag_build_s'] * 1e3:.1f} ms"
                if "bag_nodes" in r
                else ""
            ),
            flush=True,
        )

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, dgl {dgl.__version__}, "
        f"{args.threads} thread(s)"
    )
    cmd = f"python benchmarks/bench_baselines.py --batch-size {args.batch_size} --steps {args.steps}" + (
        f" --hidden {args.hidden}" if args.hidden != 64 else ""
    )
    ref = next((r for r in rows if r["label"] == "hod-gnn k1"), None)
    md = [
        f"Command: `{cmd}` ({machine}). ZINC-12k training batches of {args.batch_size} graphs, float32, "
        f"D={args.hidden}, 4 layers; median of {args.steps} steps after a warm-up step; peak = extra resident "
        "memory of the training step.",
        "",
        "| model | params | step (ms) | peak (MiB) | peak / hod-gnn k1 | bag nodes / edges |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        bag = f"{r['bag_nodes']:,} / {r['bag_edges']:,}" if "bag_nodes" in r else "-"
        rel = f"{r['peak_bytes'] / ref['peak_bytes']:.1f}x" if ref else "-"
        md.append(
            f"| {r['label']} | {r['params']:,} | {r['seconds'] * 1e3:.0f} | {r['peak_bytes'] / 2**20:.0f} | "
            f"{rel} | {bag} |"
        )
    text = "\n".join(md) + "\n"
    out_dir = args.out or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "baselines.md").write_text(text)
    (out_dir / "baselines.json").write_text(json.dumps({"command": cmd, "machine": machine, "rows": rows}, indent=2))
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
