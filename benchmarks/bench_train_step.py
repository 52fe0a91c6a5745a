"""Benchmark: time and peak memory of one HOD-GNN training step on a ZINC-12k batch.

One step = forward, L1 loss, backward, AdamW update, on a fixed batch of 32 ZINC-12k training graphs (seeded
choice).  Variants: order k in {1, 2} x base depth T in {4, 8} x jet mode {sparse, dense}; the rest is the
configuration of the ZINC training runs (hidden 64, base hidden 32, one mark, 4 downstream GINE layers).

Every variant runs in a fresh ``spawn`` subprocess so that its peak resident memory is its own: peak = ru_maxrss
after the steps minus the RSS before the first step (model and data already built).  Time: median of ``--repeats``
steps after one warm-up step.

    python benchmarks/bench_train_step.py                 # writes benchmarks/results/train_step.{md,json}
    python benchmarks/bench_train_step.py --modes sparse --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DGLBACKEND", "pytorch")

import torch  # noqa: E402
from _isolated import exit_with_parent, peak_bytes, rss_bytes, run_in_subprocess  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = dict(hidden_dim=64, base_hidden_dim=32, num_marks=1, downstream_layers=4)


def _worker(task: dict, queue) -> None:
    exit_with_parent()
    try:
        import numpy as np

        from dgl_hod.train import set_threads

        set_threads(task["threads"])

        from dgl_hod import create_model
        from dgl_hod.datasets import load_dataset

        ds = load_dataset("zinc12k", "train")
        idx = np.random.default_rng(0).choice(len(ds), task["batch_size"], replace=False)
        g, y = ds.batch(idx)
        torch.manual_seed(0)
        model = create_model("hod-gnn", **MODEL, order=task["order"], base_layers=task["depth"], jet_mode=task["mode"])
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step():
            loss = (model(g, g.ndata["feat"], g.edata["feat"]) - y).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        rss0 = rss_bytes()
        step()
        times = []
        for _ in range(task["repeats"]):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        peak = peak_bytes() - rss0
        queue.put(
            {
                **task,
                "seconds": statistics.median(times),
                "times": times,
                "peak_bytes": peak,
                "num_nodes": g.num_nodes(),
                "num_params": sum(p.numel() for p in model.parameters()),
            }
        )
    except Exception as exc:  # report, don't hang
        queue.put({**task, "error": f"{type(exc).__name__}: {exc}"})


def run_task(task: dict) -> dict:
    return run_in_subprocess(_worker, task)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    p.add_argument("--depths", type=int, nargs="+", default=[4, 8])
    p.add_argument("--modes", nargs="+", default=["sparse", "dense"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    from dgl_hod.train import machine_string

    rows = []
    for order in a.orders:
        for depth in a.depths:
            for mode in a.modes:
                task = {
                    "order": order,
                    "depth": depth,
                    "mode": mode,
                    "batch_size": a.batch_size,
                    "repeats": a.repeats,
                    "threads": a.threads,
                }
                r = run_task(task)
                rows.append(r)
                msg = r.get("error") or f"{r['seconds'] * 1000:.0f} ms/step, peak {r['peak_bytes'] / 2**20:.0f} MiB"
                print(f"k{order} T={depth} {mode}: {msg}", file=sys.stderr, flush=True)
    machine = machine_string()
    lines = [
        f"Training step (forward + backward + AdamW) of HOD-GNN on a batch of {a.batch_size} ZINC-12k graphs, "
        f"{a.threads} thread(s), median of {a.repeats} steps after a warm-up; peak = extra resident memory. "
        f"{machine}.",
        "",
        "| order k | depth T | jet mode | params | ms / step | peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['order']} | {r['depth']} | {r['mode']} | – | {r['error']} | – |")
        else:
            lines.append(
                f"| {r['order']} | {r['depth']} | {r['mode']} | {r['num_params']:,} | "
                f"{r['seconds'] * 1000:.0f} | {r['peak_bytes'] / 2**20:.0f} |"
            )
    text = "\n".join(lines)
    print(text)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "train_step.md").write_text(text + "\n")
    (a.out / "train_step.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
