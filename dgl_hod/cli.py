"""``dgl-hod`` command line: list / info / eval / train / finetune / bench / expressivity / demo.

dgl-hod list [PATTERN] [--json]
dgl-hod info NAME [--json]
dgl-hod eval NAME [--split test] [--json]        # recompute the metric, compare with zoo.yaml
dgl-hod train ARCH --dataset D [--config JSON] [--time-budget S] --out DIR [--resume]
dgl-hod finetune NAME --dataset D --out DIR [--freeze base] [--body-lr-scale 0.1] [--time-budget S]
dgl-hod bench [--quick]                            # derivative-jet benchmark (benchmarks/bench_jets.py)
dgl-hod expressivity [...]                         # expressivity suite (benchmarks/expressivity.py)
dgl-hod demo                                       # the README's main job
dgl-hod package runs/NAME [runs/NAME-s1 ...] --name NAME   # finished run(s), one per seed -> zoo.yaml + models/
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

from . import zoo as Z

ROOT = Path(__file__).resolve().parent.parent


def _print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def _value(entry: Z.ZooEntry, split: str) -> str:
    """``mean`` or ``mean ± std`` (several seeds) of a split's metric ("" when not recorded)."""
    m = entry.metrics.get(split, {})
    if not m:
        return ""
    value, std = m.get("mean"), m.get("std")
    text = f"{value:.4f}" if isinstance(value, (int, float)) else str(value)
    if isinstance(std, (int, float)) and m.get("num_seeds", 1) > 1:
        text += f" ± {std:.4f}"
    return text


def _metric_summary(entry: Z.ZooEntry, split: str = "test") -> str:
    """The metric's name and :func:`_value`, e.g. ``mae 0.2000 ± 0.0085``."""
    return f"{entry.metrics.get(split, {}).get('metric', '')} {_value(entry, split)}".strip()


def cmd_list(args) -> int:
    zoo = Z.default_zoo()
    names = zoo.list_models(args.pattern)
    rows = []
    for n in names:
        e = zoo.model_info(n)
        rows.append(
            {
                "name": n,
                "arch": e.arch,
                "dataset": e.dataset,
                "params": e.num_params,
                "test": _metric_summary(e, "test"),
                "val": _metric_summary(e, "val"),
                "weights": "yes" if zoo.weights_path(e).exists() else "missing",
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.markdown:
        print("| model | arch | params | val | test | seeds | epochs | s/epoch | budget (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            e = zoo.model_info(r["name"])
            rec = e.recipe
            print(
                f"| `{r['name']}` | {r['arch']} | {r['params']:,} | {r['val']} | {r['test']} | "
                f"{e.metrics.get('test', {}).get('num_seeds', 1)} | "
                f"{rec.get('epochs_run', '')} | {rec.get('seconds_per_epoch', '')} | {rec.get('time_budget_s', '')} |"
            )
    else:
        _print_table(rows, ["name", "arch", "dataset", "params", "val", "test", "weights"])
    return 0


def cmd_info(args) -> int:
    entry = Z.model_info(args.name)
    d = {"name": entry.name, **entry.to_dict()}
    d.get("reference", {}).pop("output", None)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
    else:
        import yaml

        print(yaml.safe_dump(d, sort_keys=False, width=110))
    return 0


def evaluate_entry(name: str, split: str = "test", batch_size: int = 128, progress: bool = True) -> dict:
    """Load zoo model ``name``, recompute its metric on ``split`` and compare with the recorded value."""
    from .evaluation import evaluate

    entry = Z.model_info(name)
    model = Z.load_model(name)
    result = evaluate(model, entry.dataset, split, batch_size=batch_size, progress=progress)
    recorded = entry.metrics.get(split if split != "valid" else "val", {})
    out = {"name": name, "dataset": entry.dataset, "split": split, **result}
    if recorded:
        # the shipped file's own value (with several seeds, "mean" is over all of them)
        out["recorded"] = recorded.get("weights_value", recorded.get("mean"))
        metric = result["metric"]
        out["abs_diff"] = abs(result[metric] - out["recorded"]) if recorded.get("metric") == metric else None
    return out


def cmd_eval(args) -> int:
    res = evaluate_entry(args.name, args.split, args.batch_size, progress=not args.json)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    metric = res["metric"]
    line = f"{res['name']} on {res['dataset']}/{res['split']}: {metric} = {res[metric]:.6f}"
    if "recorded" in res:
        line += f"   (zoo.yaml: {res['recorded']:.6f}, |diff| = {res['abs_diff']:.2e})"
    print(line)
    return 0


def _run_script(path: Path, argv: list[str]) -> int:
    if not path.exists():
        print(f"{path} not found: run this from a source checkout of dgl-hod", file=sys.stderr)
        return 2
    old = sys.argv
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = old
    return 0


def cmd_train(args, extra: list[str]) -> int:
    from . import train

    return train.main([args.arch, *extra]) or 0


def cmd_bench(args, extra: list[str]) -> int:
    return _run_script(ROOT / "benchmarks" / "bench_jets.py", extra)


def cmd_expressivity(args, extra: list[str]) -> int:
    return _run_script(ROOT / "benchmarks" / "expressivity.py", extra)


def cmd_demo(args) -> int:
    """The README's main job: evaluate hod-gnn-k2-zinc on the ZINC-12k test split + the ZINC zoo table."""
    zoo = Z.default_zoo()
    headline = "hod-gnn-k2-zinc"
    names = zoo.list_models("*-zinc", pretrained=True)
    if not names:
        print("no pretrained ZINC models in zoo.yaml", file=sys.stderr)
        return 1
    if headline not in names:
        headline = names[0]
    res = evaluate_entry(headline, "test")
    metric = res["metric"]
    print(
        f"\n{headline}: ZINC-12k test {metric.upper()} = {res[metric]:.4f} "
        f"(recorded in zoo.yaml: {res.get('recorded', float('nan')):.4f})\n"
    )
    rows = []
    for n in names:
        e = zoo.model_info(n)
        r = e.recipe
        rows.append(
            {
                "model": n,
                "params": f"{e.num_params:,}",
                "val MAE": _value(e, "val"),
                "test MAE": _value(e, "test"),
                "seeds": e.metrics["test"].get("num_seeds", 1),
                "s/epoch": f"{r.get('seconds_per_epoch', float('nan')):.0f}",
                "epochs": r.get("epochs_run", ""),
                "budget": r.get("time_budget_s", ""),
            }
        )
    _print_table(rows, list(rows[0]))
    return 0


def cmd_package(args) -> int:
    entry = Z.package_run(args.run_dirs, args.name, notes=args.notes)
    print(
        f"packaged {' '.join(args.run_dirs)} as {entry.name}: {entry.weights} sha256 {entry.sha256[:12]}..., "
        f"val {entry.metrics['val']['mean']}, test {entry.metrics['test']['mean']}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dgl-hod", description="HOD-GNN model zoo on DGL")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="list zoo models")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--json", action="store_true")
    s.add_argument("--markdown", action="store_true", help="a README table")
    s = sub.add_parser("info", help="show a zoo entry")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("eval", help="recompute a zoo model's metric and compare with zoo.yaml")
    s.add_argument("name")
    s.add_argument("--split", default="test")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("train", help="train an architecture (see python -m dgl_hod.train --help)", add_help=False)
    s.add_argument("arch")
    s = sub.add_parser("finetune", help="fine-tune a zoo model (see python -m dgl_hod.train --help)", add_help=False)
    s.add_argument("name")
    sub.add_parser("bench", help="derivative-jet benchmark", add_help=False)
    sub.add_parser("expressivity", help="expressivity suite", add_help=False)
    sub.add_parser("demo", help="the README's main job")
    s = sub.add_parser("package", help="add a finished training run (runs/NAME) to zoo.yaml and models/")
    s.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="a finished run, or several seeds of one recipe (the first one's weights are shipped)",
    )
    s.add_argument("--name", required=True)
    s.add_argument("--notes", default="")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    simple = {"list": cmd_list, "info": cmd_info, "eval": cmd_eval, "demo": cmd_demo, "package": cmd_package}
    if args.command in simple:
        if extra:
            parser.error(f"unrecognised arguments: {' '.join(extra)}")
        try:
            return simple[args.command](args)
        except (KeyError, Z.WeightsError, FileNotFoundError, ValueError) as exc:
            print(f"dgl-hod {args.command}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 2
    if args.command == "finetune":
        from . import train

        return train.main(["--finetune", args.name, *extra]) or 0
    return {"train": cmd_train, "bench": cmd_bench, "expressivity": cmd_expressivity}[args.command](args, extra)


if __name__ == "__main__":
    sys.exit(main())
