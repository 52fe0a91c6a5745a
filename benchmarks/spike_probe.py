"""Validation spikes: keep the checkpoints of spiking epochs while a run trains, then ask whether BatchNorm did it.

A smooth training loss with a validation metric that jumps for one epoch (docs/training.md, "Validation spikes")
points at what differs between training and evaluation: BatchNorm's running statistics, an exponential average
(momentum 0.1) over the last batches, which lags behind weights that move fast at a high learning rate. This tool
tests that hypothesis on the spiking epochs themselves, without touching the trainer:

* ``watch RUN_DIR``: polls the run's ``checkpoint.safetensors`` (the trainer rewrites it atomically after every
  epoch) and copies the checkpoint of every spiking epoch, plus the first normal epoch after it as a control, to
  ``runs/spikes/<run>/epoch-NNNN.safetensors``. An epoch spikes when its validation error is more than ``--ratio``
  times the best error before it (error = the metric, or 1 - metric when higher is better). It stops when the run
  writes ``record.json``; a run folder that does not exist yet (a queued run) is waited for.
* ``probe CKPT [CKPT ...]``: rebuilds each checkpoint's model and evaluates the validation split (``--test``: and
  the test split, to document, never to choose) three ways:
  with the checkpoint's running statistics (what the trainer saw), with **precise** statistics (recomputed as a
  plain average over ``--train-graphs`` training graphs in training batches, the weights unchanged), and with each
  evaluation batch's own statistics. If the precise statistics bring a spiking epoch back near the run's best so
  far, the running statistics caused the spike, not the weights.

    nohup python benchmarks/spike_probe.py watch runs/hod-gnn-k2-zinc > runs/logs/spikes-k2.log 2>&1 &
    python benchmarks/spike_probe.py probe runs/spikes/hod-gnn-k2-zinc/*.safetensors
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dgl_hod.checkpoint import CHECKPOINT, load_checkpoint  # noqa: E402
from dgl_hod.datasets.evaluate import HIGHER_IS_BETTER  # noqa: E402
from dgl_hod.evaluation import batchnorm_layers, recalibrate_batchnorm  # noqa: E402
from dgl_hod.utils import atomic_write_bytes  # noqa: E402


def checkpoint_history(path: Path) -> tuple[str, list[dict]]:
    """``(dataset, per-epoch history)`` from a checkpoint's metadata alone (no tensor is read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})["json"])
    return meta["run_args"]["dataset"], meta["state"]["history"]


def error(value: float, higher_is_better: bool) -> float:
    return 1.0 - value if higher_is_better else value


def spike_ratio(history: list[dict], higher_is_better: bool) -> float | None:
    """The last epoch's validation error over the best error before it (``None`` for the first epoch)."""
    if len(history) < 2:
        return None
    best = min(error(h["val"], higher_is_better) for h in history[:-1])
    last = error(history[-1]["val"], higher_is_better)
    return last / best if best > 0 else float("inf")


def keep_if_spiking(ckpt: Path, dest: Path, ratio: float, seen: int, after_spike: bool) -> tuple[int, bool]:
    """One look at a run's checkpoint: copy it to ``dest/epoch-NNNN.safetensors`` when its last epoch spikes, or is
    the first normal epoch after a spike (a control). Takes and returns ``(last epoch seen, last epoch spiked)``."""
    tmp = dest / ".copy.tmp"
    shutil.copyfile(ckpt, tmp)  # a copy first: the trainer may replace the file while it is read
    try:
        dataset, history = checkpoint_history(tmp)
        epoch = history[-1]["epoch"] if history else 0
        if epoch == seen:
            return seen, after_spike
        r = spike_ratio(history, HIGHER_IS_BETTER[_metric(dataset)])
        spiking = r is not None and r > ratio
        if spiking or after_spike:
            tmp.replace(dest / f"epoch-{epoch:04d}.safetensors")
            kind = "spike" if spiking else "control (the first normal epoch after a spike)"
            print(f"epoch {epoch}: val {history[-1]['val']:.4f}, {r:.2f}x the best before: kept, {kind}", flush=True)
        return epoch, spiking
    finally:
        tmp.unlink(missing_ok=True)


def watch(run_dir: Path, dest: Path, ratio: float, interval: float) -> int:
    """Copy spiking epochs' checkpoints (and the first normal epoch after each) until the run finishes."""
    ckpt, seen, after_spike, mtime = run_dir / CHECKPOINT, -1, False, None
    dest.mkdir(parents=True, exist_ok=True)
    print(f"watching {ckpt} (spike: val error > {ratio} x the best before it); copies go to {dest}", flush=True)
    if not run_dir.exists():  # a queued run: watch it from its first epoch on
        print(f"{run_dir} does not exist yet; waiting for the run to start", flush=True)
    while not (run_dir / "record.json").exists():
        if ckpt.exists() and ckpt.stat().st_mtime_ns != mtime:
            mtime = ckpt.stat().st_mtime_ns
            seen, after_spike = keep_if_spiking(ckpt, dest, ratio, seen, after_spike)
        time.sleep(interval)
    print(f"{run_dir} finished; stopped watching", flush=True)
    return 0


def _metric(dataset: str) -> str:
    from dgl_hod.datasets import get_info

    return get_info(dataset).metric


def precise_statistics(model, train_ds, graphs: int, batch_size: int, seed: int = 0):
    """A copy of ``model`` whose BatchNorm statistics are the plain average over ``graphs`` random training graphs,
    in batches of ``batch_size`` (as the trainer batches them); the weights are unchanged."""
    model = copy.deepcopy(model)
    recalibrate_batchnorm(model, train_ds, graphs, batch_size, seed)
    return model


def batch_statistics(model):
    """A copy of ``model`` whose BatchNorm layers normalise every batch with that batch's own statistics."""
    model = copy.deepcopy(model)
    for bn in batchnorm_layers(model):
        bn.track_running_stats, bn.running_mean, bn.running_var, bn.num_batches_tracked = False, None, None, None
    return model.eval()


def probe(path: Path, graphs: int, splits: tuple[str, ...] = ("val",)) -> dict:
    """One checkpoint's (or a finished run folder's best weights') metric on each split with running, precise and
    per-batch BatchNorm statistics.

    Returns ``{"epoch", "metric", "best_before" (the best validation value before this epoch), split: {"recorded",
    "running", "precise", "batch"} for each split}``.
    """
    from dgl_hod.archs.registry import create_model
    from dgl_hod.datasets import load_dataset
    from dgl_hod.evaluation import evaluate

    if path.is_dir():  # a finished run: its best-validation weights, as `dgl-hod package` would ship them
        from safetensors.torch import load_file

        record = json.loads((path / "record.json").read_text())
        args = {**record, "batch_size": record["recipe"]["batch_size"]}
        weights = load_file(str(path / "best.safetensors"))
        m = record["metrics"]
        epoch, recorded, earlier = m["best_epoch"], {"val": m["best_val"], "test": m["test_at_best_val"]}, []
    else:
        ckpt = load_checkpoint(path)
        args, history, weights = ckpt["run_args"], ckpt["state"].history, ckpt["model"]
        epoch, recorded, earlier = history[-1]["epoch"], history[-1], history[:-1]
    arch, config, dataset, batch_size = args["arch"], args["config"], args["dataset"], args["batch_size"]
    model = create_model(arch, **config)
    model.load_state_dict(weights, strict=True)
    model.eval()
    metric = _metric(dataset)
    higher = HIGHER_IS_BETTER[metric]
    best_before = (max if higher else min)((h["val"] for h in earlier), default=None)
    models = {
        "running": model,
        "precise": precise_statistics(model, load_dataset(dataset, "train"), graphs, batch_size),
        "batch": batch_statistics(model),
    }
    out: dict = {
        "checkpoint": str(path),
        "epoch": epoch,
        "metric": metric,
        "best_before": best_before,
        "batchnorm_layers": len(batchnorm_layers(model)),
    }
    for split in splits:
        data = load_dataset(dataset, split)
        out[split] = {"recorded": recorded[split], **{k: evaluate(m, data)[metric] for k, m in models.items()}}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch", help="keep the checkpoints of spiking epochs while RUN_DIR trains")
    w.add_argument("run_dir", type=Path)
    w.add_argument("--ratio", type=float, default=2.0, help="spike: val error above RATIO x the best before it")
    w.add_argument("--interval", type=float, default=20.0, help="seconds between looks at the checkpoint")
    w.add_argument("--dest", type=Path, default=None, help="default runs/spikes/<run name>")
    q = sub.add_parser("probe", help="evaluate checkpoints with running, precise and per-batch BatchNorm statistics")
    q.add_argument(
        "checkpoints", type=Path, nargs="+", help="trainer checkpoints, or finished run folders (their best weights)"
    )
    q.add_argument("--train-graphs", type=int, default=2048, help="training graphs for the precise statistics")
    q.add_argument("--out", type=Path, default=None, help="also write the table (and the command) to this .md file")
    q.add_argument("--test", action="store_true", help="also evaluate the test split (to document, never to choose)")
    args = p.parse_args(argv)
    if args.cmd == "watch":
        if args.run_dir.exists() and not args.run_dir.is_dir():
            p.error(f"{args.run_dir} is a file, not a run folder (the trainer's --out)")
        return watch(args.run_dir, args.dest or ROOT / "runs" / "spikes" / args.run_dir.name, args.ratio, args.interval)
    splits = ("val", "test") if args.test else ("val",)
    lines = [
        f"The metric of each checkpoint with three BatchNorm statistics, the weights unchanged (precise: "
        f"{args.train_graphs} training graphs).",
        "",
        "| checkpoint | epoch | split | recorded | best val before | running stats | precise stats | batch stats |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for path in args.checkpoints:
        r = probe(path, args.train_graphs, splits)
        best = "—" if r["best_before"] is None else f"{r['best_before']:.4f}"
        for split in splits:
            v = r[split]
            lines.append(
                f"| `{_shown(path)}` | {r['epoch']} | {split} | {v['recorded']:.4f} | {best if split == 'val' else ''} "
                f"| {v['running']:.4f} | {v['precise']:.4f} | {v['batch']:.4f} |"
            )
            print(lines[-1], flush=True)
    if args.out:
        command = "python benchmarks/spike_probe.py " + " ".join(argv if argv is not None else sys.argv[1:])
        atomic_write_bytes(args.out, "\n".join([*lines, "", f"Command: `{command}`", ""]).encode())
    return 0


def _shown(path: Path) -> str:
    """A checkpoint's path relative to the checkout where it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
