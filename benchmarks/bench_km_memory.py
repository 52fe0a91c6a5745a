r"""Memory of pure derivative jets (k = 1) as the order m grows: sparse ``BaseMPNN.jets(k=1, m=...)``.

The paper's 1-HOD-GNN needs the pure derivatives :math:`\partial^\alpha h_v / \partial\epsilon_u^\alpha`,
``alpha = 1..m``: ``n * |ball| * m`` numbers, against ``n * |ball|^m`` for every mixed derivative up to total order m
(``order=m``).  This script measures it: one batch of ``--num-graphs`` ZINC-12k training graphs (seeded choice, atom
types embedded by a fixed random table, bond types one-hot), a GINE base MPNN (SiLU, one marking direction,
float32, 1 thread), sparse jets, for each ``m``:

* ``inference``: ``BaseMPNN.jets`` under ``torch.no_grad()``;
* ``train``: ``BaseMPNN.jets`` with autograd, then ``backward()`` of the sum of squares of every component (what a
  training step keeps alive for the backward pass).

Every setting runs in a fresh ``spawn`` subprocess (``benchmarks/_isolated.py``).  After loading the batch and
building the model, the process resets its peak-RSS counter (``/proc/self/clear_refs``), so ``peak`` is the peak RSS
of the measured call alone, above the RSS it started from (loading the dataset has a larger transient peak than
the jets of small batches, which ``ru_maxrss`` would hide).  The ``baseline`` row is the same call without jets
(one plain forward / forward + backward).  ``--mixed M`` adds ``order=2..M`` (every mixed derivative of total order
<= m) for comparison.

    python benchmarks/bench_km_memory.py                    # writes benchmarks/results/km_memory.{md,json}
    python benchmarks/bench_km_memory.py --num-graphs 16 --ms 1 2 --no-write   # quick look
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("DGLBACKEND", "pytorch")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _isolated import exit_with_parent, rss_bytes, run_in_subprocess  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _hwm_bytes() -> int:
    """Peak RSS since the last reset (``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _worker(task: dict, queue) -> None:
    """Measure one setting in this (fresh) process and put the result on ``queue``."""
    exit_with_parent()
    import numpy as np
    import torch

    from dgl_hod import BaseMPNN
    from dgl_hod.datasets import load_dataset

    torch.set_num_threads(task["threads"])
    ds = load_dataset("zinc12k", "train")
    idx = np.random.default_rng(task["seed"]).choice(len(ds), task["num_graphs"], replace=False)
    g, _ = ds.batch(idx)
    gen = torch.Generator().manual_seed(task["seed"])
    table = torch.randn(int(g.ndata["feat"].max()) + 1, task["in_dim"], generator=gen)
    x = table[g.ndata["feat"]]
    e = torch.nn.functional.one_hot(g.edata["feat"], 4).float()
    torch.manual_seed(0)
    base = BaseMPNN(task["in_dim"], task["width"], task["depth"], edge_dim=4, activation="silu")
    grad = task["phase"] == "train"
    del ds
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak RSS (VmHWM) to the current RSS
        f.write("5")
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    with torch.set_grad_enabled(grad):
        if task["m"] == 0:  # baseline: the same process without jets
            h = base(g, x, e)
            loss = h.square().sum()
            entries = 0
        else:
            sel = dict(order=task["m"]) if task["kind"] == "mixed" else dict(k=1, m=task["m"])
            jets = base.jets(g, x, e, mode="sparse", max_memory_gb=1e6, **sel)
            loss = sum(c.square().sum() for c in jets.derivatives)
            entries = sum(len(c) for c in jets.derivatives)
        if grad:
            loss.backward()
    seconds = time.perf_counter() - t0
    queue.put(
        dict(
            task,
            seconds=seconds,
            peak_bytes=_hwm_bytes() - rss0,
            entries=entries,
            nodes=g.num_nodes(),
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-graphs", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--in-dim", type=int, default=32)
    parser.add_argument("--ms", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--phases", nargs="+", default=["inference", "train"], choices=["inference", "train"])
    parser.add_argument("--mixed", type=int, default=0, help="also measure order=1..MIXED (all mixed derivatives)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    common = dict(
        num_graphs=args.num_graphs,
        depth=args.depth,
        width=args.width,
        in_dim=args.in_dim,
        threads=args.threads,
        seed=args.seed,
    )
    results = []
    for phase in args.phases:
        settings = [("baseline", 0)] + [("pure", m) for m in args.ms] + [("mixed", m) for m in range(2, args.mixed + 1)]
        for kind, m in settings:
            r = run_in_subprocess(_worker, dict(common, phase=phase, kind=kind, m=m))
            results.append(r)
            print(
                f"{phase:9s} {kind:8s} m={m}  entries={r['entries']:>10,}  {r['seconds']:7.2f} s  "
                f"peak {r['peak_bytes'] / 2**20:7.0f} MiB",
                flush=True,
            )

    command = "python benchmarks/bench_km_memory.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Pure derivative jets (k = 1): memory against m",
        "",
        f"Command: `{command.strip()}` ({platform.machine()}, {os.cpu_count()} cores, threads {args.threads}).",
        f"One batch of {args.num_graphs} ZINC-12k training graphs (seed {args.seed}), GINE base MPNN depth "
        f"{args.depth}, width {args.width}, SiLU, float32, sparse jets, one marking direction. `peak`: peak RSS of "
        "the measured call above the RSS it started from (each setting in a fresh process); `baseline`: the same "
        "call without jets; ratios are against k=1, m=1 of the same phase. `train` = jets with autograd + "
        "backward of the sum of squares of every component.",
        "",
        "| phase | jets | stored entries | time (s) | peak (MiB) | peak / m=1 | time / m=1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ref = next(
            (q for q in results if q["phase"] == r["phase"] and q["kind"] == "pure" and q["m"] == 1),
            None,
        )
        what = {"baseline": "none (plain forward)", "pure": f"k=1, m={r['m']}", "mixed": f"order={r['m']}"}
        ratios = (
            f"{r['peak_bytes'] / ref['peak_bytes']:.2f}x | {r['seconds'] / ref['seconds']:.2f}x"
            if ref and r["kind"] != "baseline"
            else " | "
        )
        lines.append(
            f"| {r['phase']} | {what[r['kind']]} | {r['entries']:,} | {r['seconds']:.2f} | "
            f"{r['peak_bytes'] / 2**20:.0f} | {ratios} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        from dgl_hod.utils import atomic_write_bytes

        RESULTS.mkdir(exist_ok=True)
        atomic_write_bytes(RESULTS / "km_memory.md", text.encode())
        atomic_write_bytes(RESULTS / "km_memory.json", json.dumps(results, indent=1).encode())


if __name__ == "__main__":
    main()
