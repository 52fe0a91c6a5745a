r"""Counting substructures (issue 13 §3): HOD-GNN k = 1, m = 1..4 against MPNN baselines, per-target test MAE.

The paper's table reports the MAE on 3-, 4-, 5- and 6-cycle counts (HOD with SiLU 0.0008 / 0.0042 / 0.0068 /
0.0222; ReLU worse). Our ``counting`` set is generated here (:mod:`dgl_hod.datasets.counting`: 5,000 random graphs,
1,500 / 1,000 / 2,500, counts divided by their standard deviation), so the numbers are not comparable with the paper's;
the ranking is the point.

Models, each trained by ``python -m dgl_hod.train`` on all nine targets at once (L1 loss), seed 0, 1 thread, the same
wall-clock ``--budget`` each, at most ``--parallel`` at once:

* ``hod-gnn`` k = 1, m = 1, 2, 3, 4, SiLU base: the zoo's k1 config (hidden 64, base width 32, base depth 4, sparse
  jets, joint Taylor encoder, default init), as in ``benchmarks/m_ablation.py``;
* ``hod-gnn`` k = 1, m = 1, ReLU base (ReLU with m >= 2 is refused by the model: every derivative of order >= 2 of a
  ReLU network is identically zero, so m = 2..4 would be the m = 1 model with zero features);
* ``gin``, ``gine`` (the MPNN; the counting set has one constant edge type, so GINE's edge term is a constant) and
  ``gine-rwse`` (MPNN + RWSE), each with the zoo's ZINC config (hidden 96, 6 layers, SiLU).

Validation during training uses the first ``--max-eval-graphs`` graphs of val and test (the per-epoch evaluation
would otherwise cost more than the training); the best-validation weights are then evaluated here on the **whole**
test split (2,500 graphs), per target::

    python benchmarks/counting.py --budget 100                  # train (two at a time), then the table
    python benchmarks/counting.py --budget 100 --collect-only   # the table from finished run folders
    python benchmarks/counting.py --epochs 6 --name counting_epochs  # equal epochs instead of equal seconds

With ``--epochs N`` every model trains exactly N epochs (no time budget; run folders in ``runs/counting-eN/``): equal
optimisation steps, which does not reward the cheap models for their speed as an equal wall-clock budget does.

``--suite`` picks the models (default ``models``, the list above):

* ``m-sweep``: the paper's m-ablation, k = 1 with m = 0 (no derivatives: the base MPNN's embeddings only, the
  1-WL-bounded model), 1, 2, 3, 4 (SiLU, joint encoder), m = 1 with ReLU, and GINE and GINE+RWSE as references;
* ``components``: k = 1, m = 2 (the reference: joint encoder, default init, no output or per-layer derivatives) and
  one change at a time: the per-order encoder, ``output_derivatives=True``, ``per_layer_derivatives=True``,
  ``base_init="rwse"``.

``--seeds 0 1`` trains every selected model with each seed (seed 0 in the usual folder, seed s in ``<folder>-s<s>``);
the main table is seed 0, and models with several finished seeds get a seed-spread table. ``--skip-finished`` does
not retrain a run whose folder already holds a finished record with the same config, seed and epochs (the two
suites share the k1 m2 run)::

    python benchmarks/counting.py --suite m-sweep --epochs 20 --name counting_m_sweep --parallel 1
    python benchmarks/counting.py --suite components --epochs 20 --name counting_components --parallel 1 \
        --skip-finished
    python benchmarks/counting.py --suite m-sweep --epochs 20 --name counting_m_sweep --parallel 1 --skip-finished \
        --seeds 0 1 --only "HOD k1 m1 SiLU" "HOD k1 m2 SiLU"

Results: ``benchmarks/results/counting.{md,json}`` (or ``--name``); run folders in ``runs/counting/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from m_ablation import BASE_CONFIG, run_parallel, run_row, shown, train_command  # noqa: E402

from dgl_hod.datasets.registry import COUNTING_TARGETS  # noqa: E402
from dgl_hod.utils import atomic_write_bytes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "counting"
#: the paper's table columns: (column in the dataset, header)
CYCLES = (("triangle", "3-cycle"), ("cycle4", "4-cycle"), ("cycle5", "5-cycle"), ("cycle6", "6-cycle"))
_MPNN = {"hidden_dim": 96, "num_layers": 6, "activation": "silu", "norm": "batch", "readout": "sum", "dropout": 0.0}


SUITES = ("models", "m-sweep", "components")
#: the components suite's reference label (k = 1, m = 2, the m-sweep's config)
REFERENCE = "HOD k1 m2 SiLU"


def models(suite: str = "models") -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, arch, config)`` of every compared model of a suite (module docstring)."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    gine_rwse = ("GINE+RWSE", "gine-rwse", {**_MPNN, "rwse_steps": 16})
    relu = ("HOD k1 m1 ReLU", "hod-gnn", {**BASE_CONFIG, "m": 1, "base_activation": "relu"})
    if suite == "components":
        ref = {**BASE_CONFIG, "m": 2}
        return [
            (REFERENCE, "hod-gnn", ref),
            ("HOD k1 m2 per-order encoder", "hod-gnn", {**ref, "deriv_encoder": "per-order"}),
            ("HOD k1 m2 + output derivatives", "hod-gnn", {**ref, "output_derivatives": True}),
            ("HOD k1 m2 + per-layer derivatives", "hod-gnn", {**ref, "per_layer_derivatives": True}),
            ("HOD k1 m2 RWSE init", "hod-gnn", {**ref, "base_init": "rwse"}),
        ]
    if suite == "m-sweep":
        # m = 0 has no derivatives to encode; the joint encoder refuses it, "per-order" builds no encoder at all
        out = [("HOD k1 m0 SiLU", "hod-gnn", {**BASE_CONFIG, "m": 0, "deriv_encoder": "per-order"})]
        out += [(f"HOD k1 m{m} SiLU", "hod-gnn", {**BASE_CONFIG, "m": m}) for m in (1, 2, 3, 4)]
        return [*out, relu, ("GINE", "gine", dict(_MPNN)), gine_rwse]
    out = [(f"HOD k1 m{m} SiLU", "hod-gnn", {**BASE_CONFIG, "m": m}) for m in (1, 2, 3, 4)]
    out.append(relu)
    out += [("GIN", "gin", dict(_MPNN)), ("GINE", "gine", dict(_MPNN))]
    return [*out, gine_rwse]


def folder(label: str, runs: Path = RUNS, seed: int = 0) -> Path:
    """The run folder of a model label (seed 0: no suffix, as before seeds existed; seed s: ``-s<s>``)."""
    name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return runs / (name if seed == 0 else f"{name}-s{seed}")


def with_seed(cmd: list[str], seed: int) -> list[str]:
    """``cmd`` (from ``train_command``, which writes ``--seed 0``) with another seed."""
    i = cmd.index("--seed")
    return [*cmd[: i + 1], str(seed), *cmd[i + 2 :]]


def finished_same(run: Path, config: dict[str, Any], seed: int, epochs: int | None) -> bool:
    """Whether ``run`` holds a finished record of this config (every given key equal), seed and epoch count."""
    try:
        rec = json.loads((run / "record.json").read_text())
    except (OSError, ValueError):
        return False
    stored, recipe = rec.get("config", {}), rec.get("recipe", {})
    return (
        bool(rec.get("finished"))
        and all(stored.get(k) == v for k, v in config.items())
        and recipe.get("seed") == seed
        and (epochs is None or recipe.get("epochs_run") == epochs)
    )


def config_change(config: dict[str, Any], reference: dict[str, Any]) -> str:
    """The keys where ``config`` differs from ``reference``, as ``key=value`` (``reference`` when none)."""
    diff = [f"{k}={json.dumps(v)}" for k, v in config.items() if reference.get(k) != v]
    return ", ".join(diff) if diff else "reference"


def per_target_test_mae(run: Path) -> dict[str, float]:
    """Test MAE per target of a finished run's best-validation weights, on the whole ``counting`` test split.

    Cached in ``RUN/test_mae_per_target.json`` with the sha256 of the weights file it scored (a collect after new
    training rescores only the runs whose weights changed).
    """
    import hashlib

    from safetensors.torch import load_file

    from dgl_hod.archs import create_model
    from dgl_hod.datasets import load_dataset
    from dgl_hod.evaluation import predict

    weights, cache = run / "best.safetensors", run / "test_mae_per_target.json"
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("weights_sha256") == sha:
            return {t: float(cached["mae"][t]) for t in COUNTING_TARGETS}
    rec = json.loads((run / "record.json").read_text())
    net = create_model(rec["arch"], **rec["config"])
    net.load_state_dict(load_file(str(weights)), strict=True)
    y, out = predict(net, load_dataset("counting", "test"), batch_size=128)
    mae = dict(zip(COUNTING_TARGETS, (out - y).abs().mean(0).tolist(), strict=True))
    atomic_write_bytes(cache, (json.dumps({"weights_sha256": sha, "mae": mae}, indent=1) + "\n").encode())
    return mae


def main(argv: Sequence[str] | None = None) -> int:
    """Train every model (unless ``--collect-only``) and write the per-target table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=100.0, help="seconds of training per model (default 100)")
    p.add_argument("--epochs", type=int, help="train exactly this many epochs instead of --budget seconds")
    p.add_argument("--name", default="counting", help="results file stem in benchmarks/results (default counting)")
    p.add_argument("--max-eval-graphs", type=int, default=500, help="val/test graphs scored per epoch (default 500)")
    p.add_argument("--parallel", type=int, default=2, help="runs at once (default 2, one per core)")
    p.add_argument("--only", nargs="+", help="train only these labels (e.g. 'GIN')")
    p.add_argument("--collect-only", action="store_true", help="only write the table from finished run folders")
    p.add_argument("--suite", choices=SUITES, default="models", help="which models (module docstring)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to train and collect (default 0)")
    p.add_argument("--skip-finished", action="store_true", help="do not retrain runs already finished as asked")
    args = p.parse_args(argv)
    extra = ["--max-eval-graphs", str(args.max_eval_graphs)]
    runs = RUNS if args.epochs is None else RUNS.with_name(f"counting-e{args.epochs}")
    budget = args.budget if args.epochs is None else None
    seeds = [0, *sorted(set(args.seeds) - {0})]
    suite = models(args.suite)
    configs = {label: cfg for label, _, cfg in suite}
    unknown = sorted(set(args.only or ()) - set(configs))
    if unknown:
        p.error(f"--only: no model {', '.join(map(repr, unknown))} in suite {args.suite!r}; one of {list(configs)}")

    def where(label: str, seed: int = 0) -> Path:
        return folder(label, runs, seed)

    cmds = {
        (label, seed): with_seed(
            train_command(arch, "counting", cfg, where(label, seed), budget=budget, epochs=args.epochs, extra=extra),
            seed,
        )
        for label, arch, cfg in suite
        for seed in seeds
    }
    if not args.collect_only:
        todo = [
            key
            for key in cmds
            if key[1] in args.seeds
            and (not args.only or key[0] in args.only)
            and not (args.skip_finished and finished_same(where(*key), configs[key[0]], key[1], args.epochs))
        ]
        jobs = [(f"{lab} seed {s}", cmds[lab, s], where(lab, s).with_suffix(".log")) for lab, s in todo]
        run_parallel(jobs, args.parallel)
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    extra_seeds: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for (label, seed), cmd in cmds.items():
        run = where(label, seed)
        if not (run / "record.json").is_file():
            if seed == 0:
                log = run.with_suffix(".log")
                tail = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
                failed[label] = tail[0] if tail else f"no finished run in {run}"
                print(f"{label}: skipped ({failed[label]})", file=sys.stderr)
            continue
        row = {"model": label, "seed": seed, "command": shown(cmd), **run_row(run)}
        row["config_change"] = config_change(configs[label], configs.get(REFERENCE, {}))
        row["test_mae_per_target"] = per_target_test_mae(run)
        (rows if seed == 0 else extra_seeds).append(row)
    if not rows:
        print(f"no finished runs in {runs}; train them first (without --collect-only)", file=sys.stderr)
        return 1
    run_info = {"suite": args.suite, "parallel": args.parallel, "seeds": seeds}
    write_results(rows, budget, args.epochs, args.max_eval_graphs, args.name, failed, extra_seeds, run_info)
    return 0


def ranks(values: Sequence[float]) -> list[int]:
    """1-based rank of each value, smallest first (ties share the lower rank)."""
    return [1 + sum(w < v for w in values) for v in values]


TITLES = {
    "models": "Counting substructures: per-target test MAE (generated `counting` set)",
    "m-sweep": "Counting substructures: the m-ablation (HOD-GNN k = 1, m = 0..4) at equal epochs",
    "components": "Counting substructures: HOD-GNN component ablation (k = 1, m = 2) at equal epochs",
}


def write_results(
    rows: list[dict[str, Any]],
    budget: float | None,
    epochs: int | None,
    max_eval: int,
    name: str = "counting",
    failed: dict[str, str] | None = None,
    extra_seeds: list[dict[str, Any]] | None = None,
    run_info: dict[str, Any] | None = None,
) -> None:
    """``benchmarks/results/NAME.{json,md}`` atomically: the cycle table with ranks, every target, commands.

    ``rows`` are the seed-0 runs (ranked); ``extra_seeds`` the runs of other seeds (a seed-spread table); ``run_info``
    the invocation (``suite``, ``parallel``, ``seeds``).
    """
    run_info = {"suite": "models", "parallel": 2, "seeds": [0], **(run_info or {})}
    suite, parallel, extra_seeds = run_info["suite"], int(run_info["parallel"]), extra_seeds or []
    cyc = [[r["test_mae_per_target"][c] for c, _ in CYCLES] for r in rows]
    mean_cyc = [float(np.mean(v)) for v in cyc]
    col_ranks = [ranks([v[j] for v in cyc]) for j in range(len(CYCLES))]
    overall = ranks([float(np.mean([col_ranks[j][i] for j in range(len(CYCLES))])) for i in range(len(rows))])
    for i, r in enumerate(rows):
        r["cycle_mae_mean"] = mean_cyc[i]
        r["cycle_ranks"] = [col_ranks[j][i] for j in range(len(CYCLES))]
        r["rank_by_mean_cycle_rank"] = overall[i]
    for r in extra_seeds:
        r["cycle_mae_mean"] = float(np.mean([r["test_mae_per_target"][c] for c, _ in CYCLES]))
    ref_mean = next((mean_cyc[i] for i, r in enumerate(rows) if r["model"] == REFERENCE), None)
    info: dict[str, Any] = {
        "dataset": "counting",
        "suite": suite,
        "budget_s": budget,
        "epochs": epochs,
        "max_eval_graphs_per_epoch": max_eval,
        "parallel": parallel,
        "seeds": run_info["seeds"],
    }
    info["rows"], info["extra_seed_rows"], info["failed"] = rows, extra_seeds, failed or {}
    atomic_write_bytes(RESULTS / f"{name}.json", (json.dumps(info, indent=1) + "\n").encode())
    how = f"--budget {budget:g}" if epochs is None else f"--epochs {epochs} --name {name}"
    if suite != "models":
        how = f"--suite {suite} {how}"
    how += f" --max-eval-graphs {max_eval}"
    if parallel != 2:
        how += f" --parallel {parallel}"
    each = f"{budget:g} s of wall-clock each" if epochs is None else f"exactly {epochs} epochs each (no time budget)"
    at_once = "one run at a time" if parallel == 1 else f"{parallel} runs at a time"
    head = " | ".join(h for _, h in CYCLES)
    components = suite == "components" and ref_mean is not None
    lines = [
        f"# {TITLES[suite]}",
        "",
        f"Written by `python benchmarks/counting.py {how}`: every model trained on all nine targets at once (L1 "
        f"loss), {each}, seed 0, 1 thread, {at_once} on the 2-core development machine (shared with other "
        "sessions' training processes, so s/epoch is a loaded-machine number: compare ratios, not seconds). The "
        f"best-validation epoch is chosen on the first {max_eval} validation graphs; its weights are then scored on "
        "the whole test split (2,500 graphs). Targets are counts divided by their standard deviation (as in the "
        "GNN-AK benchmark). Our set is generated here (`dgl_hod/datasets/counting.py`), so the numbers are **not "
        "comparable with the paper's** (HOD SiLU 0.0008 / 0.0042 / 0.0068 / 0.0222); the ranking is the point.",
        "",
    ]
    if components:
        lines += [
            f"Reference: `{REFERENCE}` (the m-sweep's k = 1, m = 2 config: joint encoder, default init, no output or "
            "per-layer derivatives); every other row changes one key (`change`). `vs ref` is the mean cycle MAE "
            "relative to the reference's.",
            "",
        ]
    cols = f"| model | params | {head} | mean |"
    cols += " change | vs ref |" if components else ""
    cols += " ranks (3/4/5/6) | rank | best epoch | epochs | s/epoch |"
    lines += [cols, "|---|---|" + "---|" * len(CYCLES) + "---|" + ("---|---|" if components else "") + "---|" * 5]
    order = range(len(rows)) if suite != "models" else sorted(range(len(rows)), key=lambda i: (overall[i], mean_cyc[i]))
    for i in order:
        r = rows[i]
        vals = " | ".join(f"{v:.4f}" for v in cyc[i])
        rk = "/".join(str(x) for x in r["cycle_ranks"])
        line = f"| {r['model']} | {r['num_params']:,} | {vals} | {mean_cyc[i]:.4f} |"
        if components:
            assert ref_mean is not None
            rel = f"{100 * (mean_cyc[i] / ref_mean - 1):+.0f} %" if r["model"] != REFERENCE else "–"
            line += f" `{r['config_change']}` | {rel} |"
        line += f" {rk} | {overall[i]} | {r['best_epoch']} | {r['epochs_run']} | {r['s_per_epoch']:.1f} |"
        lines.append(line)
    for label in failed or {}:
        n_dash = len(CYCLES) + 7 + (2 if components else 0)
        lines.append(f"| {label} | " + " | ".join("–" for _ in range(n_dash)) + " |")
    if failed:
        lines += ["", "Runs that did not finish (last line of their log):", ""]
        lines += [f"* {label}: `{why}`" for label, why in failed.items()]
    lines += [
        "",
        "`rank` orders the models by their mean rank over the four cycle columns (ties by the mean MAE); `best epoch` "
        "is the epoch whose weights are scored (1-based).",
    ]
    spread = [r for r in rows if any(e["model"] == r["model"] for e in extra_seeds)]
    if spread:
        lines += [
            "",
            "## Seed spread",
            "",
            "The same command with another `--seed` (initialisation and batch order; same data and split):",
            "",
            f"| model | seed | {head} | mean | best epoch |",
            "|---|---|" + "---|" * len(CYCLES) + "---|---|",
        ]
        for r in spread:
            for e in [r, *sorted((e for e in extra_seeds if e["model"] == r["model"]), key=lambda e: e["seed"])]:
                vals = " | ".join(f"{e['test_mae_per_target'][c]:.4f}" for c, _ in CYCLES)
                lines.append(f"| {e['model']} | {e['seed']} | {vals} | {e['cycle_mae_mean']:.4f} | {e['best_epoch']} |")
        lines += [""]
        for r in spread:
            means = [r["cycle_mae_mean"]] + [e["cycle_mae_mean"] for e in extra_seeds if e["model"] == r["model"]]
            lines.append(
                f"* {r['model']}: mean cycle MAE {min(means):.4f}–{max(means):.4f} over {len(means)} seeds "
                f"(spread {100 * (max(means) - min(means)) / min(means):.0f} % of the smaller)."
            )
    others = [t for t in COUNTING_TARGETS if t not in dict(CYCLES)]
    lines += [
        "",
        "The other targets (test MAE, whole test split, seed 0):",
        "",
        "| model | " + " | ".join(others) + " |",
        "|---|" + "---|" * len(others),
    ]
    for r in rows:
        lines.append(f"| {r['model']} | " + " | ".join(f"{r['test_mae_per_target'][t]:.4f}" for t in others) + " |")
    lines += ["", f"Machine: {rows[0]['machine']}.", "", "Commands (from the repository root):", "", "```bash"]
    lines += [r["command"] for r in [*rows, *extra_seeds]]
    lines += ["```", ""]
    atomic_write_bytes(RESULTS / f"{name}.md", "\n".join(lines).encode())
    print(f"wrote {RESULTS}/{name}.md/.json")


if __name__ == "__main__":
    raise SystemExit(main())
