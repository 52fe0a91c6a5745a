r"""ZINC-12k at equal wall-clock budget: HOD-GNN k = 1 with m = 1, 2, 3, 4 (issue 13 §3), a first data point.

Every run is the trainer (``python -m dgl_hod.train``) with the same config except ``m``: the zoo's k1 config
(hidden 64, base width 32, base depth 4, sparse jets, SiLU, 4 downstream layers, batch norm, sum read-out), the
default initialisation (``base_eps`` 0.5, no explicit key) and the joint Taylor encoder (``deriv_encoder="joint"``:
one encoder whose cost hardly grows with m, where ``"per-order"`` adds a full 2-IGN encoder per order, so at equal
wall-clock the joint encoder spends the budget on the jets rather than on m encoders), seed 0, 1 thread,
``--time-budget`` seconds each (the trainer plans its epochs from the first one). At most ``--parallel`` runs at once
(one per core on the 2-core development machine).

The results table (val/test MAE at the best val epoch, epochs run, s/epoch, the commands) is written to
``benchmarks/results/m_ablation.{md,json}``; the run folders go to ``runs/m_ablation/`` (not committed)::

    python benchmarks/m_ablation.py --budget 360                 # train m = 1..4 (two at a time), then the table
    python benchmarks/m_ablation.py --budget 360 --ms 3 4        # only some m
    python benchmarks/m_ablation.py --budget 360 --collect-only  # the table from finished run folders

A short budget favours the cheap variants (m = 1 gets several times the epochs of m = 4): read the table as a first
data point, not a verdict on m.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dgl_hod.utils import atomic_write_bytes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "m_ablation"

#: the zoo's ``hod-gnn-k1-zinc`` config with ``k``/``m`` instead of ``order``, the default init, the joint encoder
BASE_CONFIG: dict[str, Any] = {
    "hidden_dim": 64,
    "base_hidden_dim": 32,
    "base_layers": 4,
    "k": 1,
    "m": 1,
    "num_marks": 1,
    "base_activation": "silu",
    "base_aggregation": "sum",
    "base_init": "default",
    "jet_mode": "sparse",
    "jet_norm": "rms",
    "deriv_encoder": "joint",
    "global_pool": True,
    "downstream_layers": 4,
    "downstream_norm": "batch",
    "readout": "sum",
    "dropout": 0.0,
}


def train_command(
    arch: str,
    dataset: str,
    config: dict[str, Any],
    out: Path,
    budget: float | None = None,
    epochs: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The trainer's command line for one run (``python -m dgl_hod.train ...``, 1 thread, seed 0, no progress bar)."""
    cmd = [sys.executable, "-m", "dgl_hod.train", arch, "--dataset", dataset, "--config", json.dumps(config)]
    cmd += ["--seed", "0", "--threads", "1", "--no-progress", "--out", str(out), "--overwrite"]
    if budget is not None:
        cmd += ["--time-budget", f"{budget:g}"]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    return cmd + list(extra)


def shown(cmd: Sequence[str]) -> str:
    """A command as it would be typed from the repository root (``python`` for the interpreter, relative paths)."""
    parts = ["python" if i == 0 else str(a).replace(str(ROOT) + "/", "") for i, a in enumerate(cmd)]
    return shlex.join(parts)


def run_parallel(jobs: Sequence[tuple[str, list[str], Path]], parallel: int = 2) -> None:
    """Run ``(label, command, log file)`` jobs, at most ``parallel`` at once, from the repository root.

    Each job's stdout and stderr go to its log file; a failed job is reported on stderr and does not stop the others.
    """
    pending = list(jobs)
    running: list[tuple[str, subprocess.Popen[bytes], Any]] = []
    while pending or running:
        while pending and len(running) < parallel:
            label, cmd, log = pending.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            fh = open(log, "w")  # noqa: SIM115  (closed when the job ends)
            print(f"[{time.strftime('%H:%M:%S')}] start {label}", flush=True)
            running.append((label, subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT), fh))
        time.sleep(2)
        for item in list(running):
            label, proc, fh = item
            if proc.poll() is not None:
                fh.close()
                running.remove(item)
                status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {fh.name})"
                print(f"[{time.strftime('%H:%M:%S')}] {status} {label}", flush=True)


def run_row(out: Path) -> dict[str, Any]:
    """One finished run folder as a table row: best val epoch, val/test there, epochs, s/epoch, params, wall time."""
    rec = json.loads((out / "record.json").read_text())
    met, recipe, timing = rec["metrics"], rec["recipe"], rec["timing"]
    return {
        "metric": met["metric"],
        "best_epoch": met["best_epoch"],
        "val": met["best_val"],
        "test": met["test_at_best_val"],
        "epochs_run": recipe["epochs_run"],
        "planned_epochs": recipe["planned_epochs"],
        "s_per_epoch": timing["time_per_epoch_s_mean"],
        "train_s_per_epoch": timing["train_time_per_epoch_s_mean"],
        "wall_time_s": timing["wall_time_s"],
        "num_params": rec["num_params"],
        "val_history": [h["val"] for h in rec["history"]],
        "machine": timing["machine"],
        "finished": rec["finished"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Train the m = 1..4 runs (unless ``--collect-only``) and write the results table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=360.0, help="seconds of training per run (default 360)")
    p.add_argument("--ms", type=int, nargs="+", default=[1, 2, 3, 4], help="orders m to train (default 1 2 3 4)")
    p.add_argument("--parallel", type=int, default=2, help="runs at once (default 2, one per core)")
    p.add_argument("--collect-only", action="store_true", help="only write the table from finished run folders")
    p.add_argument("--name", default="m_ablation", help="results file stem in benchmarks/results")
    args = p.parse_args(argv)

    def command(m: int) -> list[str]:
        return train_command("hod-gnn", "zinc12k", {**BASE_CONFIG, "m": m}, RUNS / f"k1-m{m}", budget=args.budget)

    if not args.collect_only:
        run_parallel([(f"k1 m{m}", command(m), RUNS / f"k1-m{m}.log") for m in args.ms], args.parallel)
    rows = []
    for m in (1, 2, 3, 4):
        if (RUNS / f"k1-m{m}" / "record.json").is_file():
            rows.append({"m": m, "command": shown(command(m)), **run_row(RUNS / f"k1-m{m}")})
    if not rows:
        print("no finished runs in runs/m_ablation; train them first (without --collect-only)", file=sys.stderr)
        return 1
    write_results(rows, args.budget, args.name)
    return 0


def write_results(rows: list[dict[str, Any]], budget: float, name: str) -> None:
    """``benchmarks/results/NAME.json`` (every number) and ``NAME.md`` (the table and the commands), atomically."""
    info = {
        "dataset": "zinc12k",
        "budget_s": budget,
        "config": BASE_CONFIG,
        "machine": rows[0]["machine"],
        "python": platform.python_version(),
        "rows": rows,
    }
    atomic_write_bytes(RESULTS / f"{name}.json", (json.dumps(info, indent=1) + "\n").encode())
    lines = [
        "# HOD-GNN k = 1, m = 1..4 on ZINC-12k at equal wall-clock budget",
        "",
        f"Written by `python benchmarks/m_ablation.py --budget {budget:g}` (one run per m, seed 0, 1 thread, two "
        "runs at a time on the 2-core development machine, which other sessions were also using). Config: the zoo's "
        "`hod-gnn-k1-zinc` config with `k`/`m` instead of `order`, the default initialisation (`base_eps` 0.5) and "
        "the joint Taylor encoder; only `m` changes. MAE of the best-validation epoch; s/epoch = training + "
        "evaluation.",
        "",
        "| m | params | val MAE | test MAE | best epoch | epochs run | s/epoch | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['m']} | {r['num_params']:,} | {r['val']:.4f} | {r['test']:.4f} | {r['best_epoch']} | "
            f"{r['epochs_run']} | {r['s_per_epoch']:.1f} | {r['wall_time_s']:.0f} |"
        )
    lines += [
        "",
        f"Machine: {rows[0]['machine']}.",
        "",
        "**A short budget favours cheap variants**: every run gets the same seconds, so m = 1 runs several times the "
        "epochs of m = 4, and none of these runs is near convergence. This is a first data point for choosing the "
        "paper-config model (issue 14), not a ranking of m. The trainer plans floor(0.97 x budget / t1) epochs "
        "from the wall time t1 of epoch 1 and the cosine ends with them, so a run with long epochs uses less of its "
        "budget (wall < budget) and a one-epoch run is its warm-up epoch only.",
        "",
        "Validation MAE per epoch:",
        "",
    ]
    lines += [f"* m = {r['m']}: " + ", ".join(f"{v:.3f}" for v in r["val_history"]) for r in rows]
    lines += ["", "Commands (from the repository root):", "", "```bash"]
    lines += [r["command"] for r in rows]
    lines += ["```", ""]
    atomic_write_bytes(RESULTS / f"{name}.md", "\n".join(lines).encode())
    print(f"wrote {RESULTS / name}.md/.json")


if __name__ == "__main__":
    raise SystemExit(main())
