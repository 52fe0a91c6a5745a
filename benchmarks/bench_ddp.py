"""Processes against threads: seconds per training epoch on a 2-core machine (issue 12 §3).

Runs the real trainer (``python -m dgl_hod.train``, one epoch on ``--max-train-graphs`` ZINC-12k training graphs,
batch 32) in fresh subprocesses for each setting, interleaved (every round runs each model in each setting once, so
that the machine's load hits all settings alike), and reads each run's ``record.json``:

- ``1x1``: one process, one thread (the zoo's recipe);
- ``1x2``: one process, two threads (torch and DGL's OpenMP kernels);
- ``2x1``: two data-parallel processes (``--nproc 2``), one thread each, the same global batch of 32.

Reported per model and setting: the minimum and median over rounds of the training time of the epoch
(``train_time_s``) and of the whole epoch (``time_s``: training + sharded val/test evaluation), and the speed-up
against ``1x1``. The load average is printed with each run (the numbers mean little on a busy machine).

    python benchmarks/bench_ddp.py --rounds 3 --max-train-graphs 2000 --max-eval-graphs 500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODELS = {
    "hod-gnn-k1": ("hod-gnn", {"order": 1}),  # the k1 default: depth 4, sparse jets
    "gine": ("gine", {}),
}
SETTINGS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}  # name: (processes, threads per process)


def run_once(arch: str, config: dict, nproc: int, threads: int, args: argparse.Namespace, out: Path) -> dict:
    """One epoch of the trainer in a subprocess; returns its history entry and the load average before it."""
    cmd = [sys.executable, "-m", "dgl_hod.train", arch, "--dataset", "zinc12k", "--config", json.dumps(config)]
    cmd += ["--epochs", "1", "--batch-size", str(args.batch_size), "--threads", str(threads), "--nproc", str(nproc)]
    cmd += ["--max-train-graphs", str(args.max_train_graphs), "--max-eval-graphs", str(args.max_eval_graphs)]
    cmd += ["--out", str(out), "--no-progress", "--json"]
    load = os.getloadavg()[0]
    t0 = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    record = json.loads((out / "record.json").read_text())
    entry = record["history"][0]
    return {
        "train_time_s": entry["train_time_s"],
        "train_cpu_s": entry["train_cpu_s"],
        "time_s": entry["time_s"],
        "process_wall_s": time.time() - t0,
        "load_before": load,
        "world_size": record["recipe"]["world_size"],
        "threads_per_process": record["recipe"]["threads_per_process"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-train-graphs", type=int, default=2000)
    p.add_argument("--max-eval-graphs", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {list(MODELS)}")
    p.add_argument("--json", default=None, help="also write the raw runs to this file")
    args = p.parse_args()
    models = args.models.split(",")
    runs: dict[str, dict[str, list[dict]]] = {m: {s: [] for s in SETTINGS} for m in models}
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        for r in range(args.rounds):
            for m in models:
                arch, config = MODELS[m]
                for s, (nproc, threads) in SETTINGS.items():
                    res = run_once(arch, config, nproc, threads, args, Path(tmp) / f"{m}-{s}-{r}")
                    runs[m][s].append(res)
                    print(
                        f"round {r + 1} {m} {s}: train {res['train_time_s']:.2f} s ({res['train_cpu_s']:.2f} CPU s), "
                        f"epoch {res['time_s']:.2f} s "
                        f"(load {res['load_before']:.1f})",
                        file=sys.stderr,
                        flush=True,
                    )
    print(
        f"\n{args.max_train_graphs} training graphs, batch {args.batch_size}, {args.max_eval_graphs} val + test graphs"
    )
    print(
        "| model | setting | train s/epoch min | median | epoch s min | median | speed-up vs 1x1 (median epoch) "
        "| train CPU s (all processes) median | CPU work vs 1x1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for m in models:
        base = statistics.median(x["time_s"] for x in runs[m]["1x1"])
        base_cpu = statistics.median(x["train_cpu_s"] for x in runs[m]["1x1"])
        for s in SETTINGS:
            tr, ep = [x["train_time_s"] for x in runs[m][s]], [x["time_s"] for x in runs[m][s]]
            cpu = [x["train_cpu_s"] for x in runs[m][s]]
            print(
                f"| {m} | {s} | {min(tr):.2f} | {statistics.median(tr):.2f} | {min(ep):.2f} | "
                f"{statistics.median(ep):.2f} | {base / statistics.median(ep):.2f}x | {statistics.median(cpu):.2f} | "
                f"{statistics.median(cpu) / base_cpu:.2f}x |"
            )
    loads = [x["load_before"] for m in models for s in SETTINGS for x in runs[m][s]]
    print(
        f"\nload average (1 min) before the runs: min {min(loads):.1f}, median {statistics.median(loads):.1f}, "
        f"max {max(loads):.1f}; {os.cpu_count()} logical CPUs"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
