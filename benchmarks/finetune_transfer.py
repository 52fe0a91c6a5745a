"""Transfer experiment: a pretrained zoo model fine-tuned on a new task vs the same architecture from scratch.

Every variant gets the same schedule on the target dataset, a fixed number of epochs (``--epochs``, the issue-14 way:
exact to resume and to compare) or the same wall-clock budget per run (``--budget``); pretraining time is not counted
(it is paid once, by the zoo). The same seeds for every variant; the metric is the target's test metric at the best
validation epoch, reported as mean ± std over seeds, and paired with ``scratch`` seed by seed
(:func:`paired_difference`: the differences' mean ± std, how many seeds beat their scratch run, and a verdict:
"helps", "hurts" or "no consistent effect").  Variants:

* ``scratch``: ``python -m dgl_hod.train ARCH --config <the zoo entry's config>`` (random init);
* ``finetune``: ``--finetune NAME`` (new head, whole body trained at ``lr * body_lr_scale``);
* ``finetune-frozen-base``: as ``finetune`` with the base MPNN (the derivative jets' network) frozen.

Each run is a separate ``python -m dgl_hod.train`` process writing ``OUT/<variant>-s<seed>/``; finished runs
(``record.json`` present) are skipped and interrupted ones resumed, so the script can be killed and restarted.

    python benchmarks/finetune_transfer.py --pretrained hod-gnn-k1-m2-molhiv --dataset ogbg-molbace \\
        --epochs 100 --tag transfer-molbace  # writes benchmarks/results/transfer-molbace.{md,json} (docs/benchmarks.md)
    python benchmarks/finetune_transfer.py --summary  # one table of every target's page: transfer-summary.md

``--summary`` trains nothing: it reads the pages (``transfer-*.json``) of ``--pretrained`` with a fixed number of
epochs and writes ``benchmarks/results/transfer-summary.md``, one row per target dataset and a one-line answer to
"does pretraining help?" (:func:`summarize`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = ("scratch", "finetune", "finetune-frozen-base")


def command(variant: str, entry, args, seed: int, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "dgl_hod.train"]
    if variant == "scratch":
        config = {k: v for k, v in entry.config.items() if k != "num_tasks"}  # num_tasks comes from the dataset
        cmd += [entry.arch, "--config", json.dumps(config)]
    else:
        cmd += ["--finetune", entry.name, "--body-lr-scale", str(args.body_lr_scale)]
        if variant == "finetune-frozen-base":
            cmd += ["--freeze", "base"]
    schedule = ["--epochs", str(args.epochs)] if args.epochs else ["--time-budget", str(args.budget)]
    return cmd + [
        "--dataset",
        args.dataset,
        *schedule,
        "--warmup-epochs",
        str(args.warmup_epochs),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(seed),
        "--lr",
        str(args.lr),
        "--threads",
        str(args.threads),
        "--out",
        str(out),
        "--resume",
        "--no-progress",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrained", default="hod-gnn-k1-m2-molhiv", help="zoo model to fine-tune")
    p.add_argument("--dataset", default="ogbg-molbace", help="target dataset (same featurisation)")
    schedule = p.add_mutually_exclusive_group()
    schedule.add_argument("--epochs", type=int, help="fixed epochs per run (warm-up then cosine over them)")
    schedule.add_argument("--budget", type=float, help="seconds per run (the trainer plans epochs after epoch 1)")
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--body-lr-scale", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "runs" / "transfer"))
    p.add_argument("--tag", default="transfer", help="results file stem under benchmarks/results/")
    p.add_argument("--summary", action="store_true", help="train nothing; write transfer-summary.md from the pages")
    args = p.parse_args(argv)
    if not (args.summary or args.epochs or args.budget):
        p.error("give the schedule: --epochs N (fixed epochs per run) or --budget SECONDS (or --summary)")

    sys.path.insert(0, str(ROOT))
    from dgl_hod.zoo import model_info

    if args.summary:
        from dgl_hod.utils import atomic_write_bytes

        pages = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("transfer-*.json"))]
        text = summarize(pages, args.pretrained, model_info(args.pretrained).dataset)
        atomic_write_bytes(RESULTS / "transfer-summary.md", text.encode())
        print(text)
        return 0

    entry = model_info(args.pretrained)
    out_root = Path(args.out) / f"{args.pretrained}-to-{args.dataset}"
    runs: dict[str, list[dict]] = {v: [] for v in args.variants}
    for seed in args.seeds:  # seed-major: an interrupted sweep still has every variant for early seeds
        for variant in args.variants:
            out = out_root / f"{variant}-s{seed}"
            if not (out / "record.json").exists():
                cmd = command(variant, entry, args, seed, out)
                print(f"[{time.strftime('%H:%M:%S')}] {variant} seed {seed}: {' '.join(cmd[1:])}", flush=True)
                subprocess.run(cmd, check=True, cwd=ROOT)
            rec = json.loads((out / "record.json").read_text())
            runs[variant].append(
                {
                    "seed": seed,
                    "val": rec["metrics"]["best_val"],
                    "test": rec["metrics"]["test_at_best_val"],
                    "epochs": rec["recipe"]["epochs_run"],
                    "s_per_epoch": rec["timing"]["time_per_epoch_s_mean"],
                    "wall_s": rec["timing"]["wall_time_s"],
                    "machine": rec["timing"]["machine"],
                }
            )

    metric = entry_metric(args.dataset)
    rows = []
    for variant, rs in runs.items():
        tests, vals = [r["test"] for r in rs], [r["val"] for r in rs]
        rows.append(
            {
                "variant": variant,
                "seeds": len(rs),
                "val_mean": statistics.mean(vals),
                "val_std": statistics.pstdev(vals),
                "test_mean": statistics.mean(tests),
                "test_std": statistics.pstdev(tests),
                "epochs_mean": statistics.mean(r["epochs"] for r in rs),
                "s_per_epoch_mean": statistics.mean(r["s_per_epoch"] for r in rs),
                "runs": rs,
            }
        )
    result = {
        "pretrained": args.pretrained,
        "pretrained_dataset": entry.dataset,
        "dataset": args.dataset,
        "metric": metric,
        "budget_s": args.budget,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "body_lr_scale": args.body_lr_scale,
        "lr": args.lr,
        "command": "python benchmarks/finetune_transfer.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": rows,
    }
    lines = [
        f"Transfer {args.pretrained} ({entry.dataset}) -> {args.dataset}: test {metric} at the best validation "
        f"epoch, mean ± std over seeds {args.seeds}, "
        + (f"{args.epochs} epochs" if args.epochs else f"{args.budget:.0f} s")
        + f" per run, batch {args.batch_size}, lr {args.lr}, body lr scale {args.body_lr_scale} (fine-tuned variants).",
        "",
        f"| variant | seeds | val {metric} | test {metric} | epochs | s/epoch |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['seeds']} | {r['val_mean']:.4f} ± {r['val_std']:.4f} | "
            f"{r['test_mean']:.4f} ± {r['test_std']:.4f} | {r['epochs_mean']:.1f} | "
            f"{r['s_per_epoch_mean']:.1f} |"
        )
    higher = higher_is_better(metric)
    if "scratch" in runs and len(runs) > 1:
        result["paired"] = paired = {
            v: paired_difference(runs["scratch"], rs, higher) for v, rs in runs.items() if v != "scratch"
        }
        lines += [
            "",
            f"Paired with `scratch` of the same seed (Δ = variant − scratch, {'higher' if higher else 'lower'} "
            'is better; "better" counts seeds that beat their scratch run):',
            "",
            f"| variant | Δ val {metric} | Δ test {metric} | seeds better (val / test) | verdict |",
            "|---|---|---|---|---|",
        ]
        for v, d in paired.items():
            n = d["seeds"]
            lines.append(
                f"| {v} | {d['val_mean']:+.4f} ± {d['val_std']:.4f} | {d['test_mean']:+.4f} ± {d['test_std']:.4f} | "
                f"{d['val_better']}/{n} / {d['test_better']}/{n} | {d['verdict']} |"
            )
        lines += ["", "Does pretraining help? " + " ".join(f"`{v}`: {d['verdict']}." for v, d in paired.items())]
    lines += ["", f"Command: `{result['command']}`", ""]
    from dgl_hod.utils import atomic_write_bytes

    RESULTS.mkdir(exist_ok=True)  # atomic: the two slots may finish a dataset's seeds at the same time
    atomic_write_bytes(RESULTS / f"{args.tag}.json", json.dumps(result, indent=2).encode())
    atomic_write_bytes(RESULTS / f"{args.tag}.md", "\n".join(lines).encode())
    print("\n".join(lines))
    return 0


def summarize(pages: list[dict], pretrained: str, pretrained_dataset: str) -> str:
    """One Markdown table over the target datasets: each variant's test metric (mean ± std over seeds), the paired
    difference against scratch and its verdict, for the pages of ``pretrained`` run with a fixed number of epochs
    (budget-based pages are another experiment and are left out); then the answer, dataset by dataset."""
    pages = [r for r in pages if r.get("pretrained") == pretrained and r.get("epochs") and r.get("paired")]
    lines = [
        f"# Does pretraining on {pretrained_dataset} help? Transfer of `{pretrained}`",
        "",
        "<!-- generated by `python benchmarks/finetune_transfer.py --summary` from the transfer-*.json pages; "
        "do not edit by hand -->",
        "",
    ]
    if not pages:
        return "\n".join(lines + [f"No finished fixed-epoch transfer page of `{pretrained}` yet.", ""])
    lines += [
        "Test metric at the best validation epoch, mean ± std over seeds; Δ: the variant minus `scratch` of the same "
        "seed, mean over seeds (positive is better for ROC-AUC and AP, negative for errors); verdict: "
        '"helps" only when every seed beats its scratch run on validation and test '
        "([docs/benchmarks.md](../../docs/benchmarks.md#finetune_transferpy-does-pretraining-transfer)). "
        "One page per target: `transfer-DATASET.md`.",
        "",
        "| target | metric | epochs | seeds | scratch | finetune | Δ test | verdict | frozen base | Δ test | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    answers = []
    for r in sorted(pages, key=lambda r: r["dataset"]):
        rows = {row["variant"]: row for row in r["rows"]}
        cells = [f"`{r['dataset']}`", r["metric"], str(r["epochs"]), str(rows["scratch"]["seeds"])]
        cells.append(f"{rows['scratch']['test_mean']:.4f} ± {rows['scratch']['test_std']:.4f}")
        for v in ("finetune", "finetune-frozen-base"):
            if v in rows and v in r["paired"]:
                d = r["paired"][v]
                cells += [
                    f"{rows[v]['test_mean']:.4f} ± {rows[v]['test_std']:.4f}",
                    f"{d['test_mean']:+.4f}",
                    f"{d['verdict']} ({d['test_better']}/{d['seeds']} seeds better on test)",
                ]
            else:
                cells += ["—", "—", "not run"]
        lines.append("| " + " | ".join(cells) + " |")
        answers.append(f"{r['dataset']}: " + ", ".join(f"{v} {d['verdict']}" for v, d in r["paired"].items()))
    lines += ["", "**Answer, per target:** " + "; ".join(answers) + ".", ""]
    return "\n".join(lines)


def paired_difference(scratch: list[dict], variant: list[dict], higher_is_better: bool) -> dict:
    """Seed-by-seed differences ``variant - scratch`` on val and test, and a plain verdict.

    The verdict is "helps" when every seed beats its scratch run on validation **and** test, "hurts" when every
    seed loses on both, and "no consistent effect" otherwise. With 3 seeds "helps" is the strongest statement the
    runs can make (a sign test's one-sided p = 1/8 per split), so the table also gives the differences' mean ± std.
    """
    by_seed = {r["seed"]: r for r in scratch}
    pairs = [(r, by_seed[r["seed"]]) for r in variant if r["seed"] in by_seed]
    if not pairs:
        raise ValueError("no seed was run both from scratch and with this variant; nothing to pair")
    sign = 1.0 if higher_is_better else -1.0
    out: dict = {"seeds": len(pairs), "seed_list": [r["seed"] for r, _ in pairs]}
    for split in ("val", "test"):
        diffs = [r[split] - s[split] for r, s in pairs]
        out[f"{split}_diffs"] = diffs
        out[f"{split}_mean"] = statistics.mean(diffs)
        out[f"{split}_std"] = statistics.pstdev(diffs)
        out[f"{split}_better"] = sum(sign * d > 0 for d in diffs)
        out[f"{split}_worse"] = sum(sign * d < 0 for d in diffs)
    n = len(pairs)
    if out["val_better"] == n and out["test_better"] == n:
        out["verdict"] = "helps"
    elif out["val_worse"] == n and out["test_worse"] == n:
        out["verdict"] = "hurts"
    else:
        out["verdict"] = "no consistent effect"
    return out


def higher_is_better(metric: str) -> bool:
    from dgl_hod.datasets.evaluate import HIGHER_IS_BETTER

    return HIGHER_IS_BETTER[metric]


def entry_metric(dataset: str) -> str:
    from dgl_hod.datasets import get_info

    return get_info(dataset).metric


if __name__ == "__main__":
    sys.exit(main())
