"""``dgl-hod`` command line: list / info / eval / train / finetune / bench / expressivity / demo / package / remove.

dgl-hod list [PATTERN] [--json]
dgl-hod info NAME [--json]
dgl-hod eval NAME [--split test] [--json] [--tolerance 1e-4]   # recompute the metric; exit 1 if != zoo.yaml
dgl-hod predict MODEL --data CSV [--smiles-column COL] [--out FILE]   # your molecules (docs/own-data.md)
dgl-hod train ARCH --dataset D [--config JSON] [--time-budget S] --out DIR [--resume]
dgl-hod finetune NAME --dataset D --out DIR [--freeze base] [--body-lr-scale 0.1] [--time-budget S]
dgl-hod bench [--quick]                            # derivative-jet benchmark (benchmarks/bench_jets.py)
dgl-hod expressivity [...]                         # expressivity suite (benchmarks/expressivity.py)
dgl-hod demo                                       # the README's main job; exit 1 if it disagrees with zoo.yaml
dgl-hod package runs/NAME [runs/NAME-s1 ...] --name NAME [--replace] [--supersedes OLD]   # run(s) -> zoo + models/
dgl-hod remove NAME [NAME ...]                     # drop entries from zoo.yaml and delete their models/ files
dgl-hod report [--out docs/results.md] [--png-dir docs/img]   # curves + accuracy/cost PNGs and a Markdown page

Every error is one line on stderr naming the input and the fix, with exit status 2 (1: a recomputed metric
disagrees with zoo.yaml); set ``DGL_HOD_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import own_data
from . import zoo as zoo_registry
from .resources import PACKAGE_DIR, in_checkout
from .zoo import ZooEntry

ROOT = PACKAGE_DIR.parent

#: default for ``eval --tolerance`` and ``demo``: the recorded values are rounded to 1e-6, and a recomputation on
#: another machine or thread count differs by float rounding only (~1e-6); an edited model differs by far more
EVAL_TOLERANCE = 1e-4

#: commands whose arguments belong to another parser (the trainer or a benchmark script)
PASSTHROUGH = ("train", "finetune", "bench", "expressivity")


class CLIError(Exception):
    """A user error with a one-line message (printed without a traceback)."""


def _print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def _value(entry: ZooEntry, split: str) -> str:
    """``mean`` or ``mean ± std`` (several seeds) of a split's metric ("" when not recorded)."""
    m = entry.metrics.get(split, {})
    if not m:
        return ""
    value, std = m.get("mean"), m.get("std")
    text = f"{value:.4f}" if isinstance(value, (int, float)) else str(value)
    if isinstance(std, (int, float)) and m.get("num_seeds", 1) > 1:
        text += f" ± {std:.4f}"
    return text


def _metric_summary(entry: ZooEntry, split: str = "test") -> str:
    """The metric's name and :func:`_value`, e.g. ``mae 0.2000 ± 0.0085``."""
    return f"{entry.metrics.get(split, {}).get('metric', '')} {_value(entry, split)}".strip()


def _budget(recipe: Mapping[str, Any]) -> str:
    """A recipe's time budget in seconds as the tables print it; "—" for a fixed-epoch run (no budget)."""
    budget = recipe.get("time_budget_s")
    return "—" if budget is None else str(budget)


def cmd_list(args: argparse.Namespace) -> int:
    zoo = zoo_registry.default_zoo()
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
            e = zoo.model_info(str(r["name"]))
            rec = e.recipe
            print(
                f"| `{r['name']}` | {r['arch']} | {r['params']:,} | {r['val']} | {r['test']} | "
                f"{e.metrics.get('test', {}).get('num_seeds', 1)} | "
                f"{rec.get('epochs_run', '')} | {rec.get('seconds_per_epoch', '')} | {_budget(rec)} |"
            )
    else:
        _print_table(rows, ["name", "arch", "dataset", "params", "val", "test", "weights"])
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    entry = zoo_registry.model_info(args.name)
    d = {"name": entry.name, "num_tasks": entry.num_tasks, **entry.to_dict()}
    d.get("reference", {}).pop("output", None)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
    else:
        import yaml

        print(yaml.safe_dump(d, sort_keys=False, width=110))
    return 0


def evaluate_entry(
    name: str,
    split: str = "test",
    batch_size: int = 128,
    progress: bool = True,
    tolerance: float = EVAL_TOLERANCE,
) -> dict:
    """Load zoo model ``name``, recompute its metric on ``split`` and compare with the recorded value.

    The result has ``recorded``, ``abs_diff`` and ``agrees`` (``abs_diff <= tolerance``) when zoo.yaml records the
    split's metric.
    """
    from .evaluation import evaluate

    if batch_size < 1:
        raise CLIError(f"--batch-size {batch_size}: give a positive number of graphs per batch, e.g. 128")
    entry = zoo_registry.model_info(name)
    own_data.register_entry_data(entry)  # fine-tuned on the user's molecules: re-read its table
    model = zoo_registry.load_model(name)
    fold = entry.recipe.get("fold") if split not in (None, "all") else None  # csl/mutag/proteins: the entry's fold
    result = evaluate(model, entry.dataset, split, fold=fold, batch_size=batch_size, progress=progress)
    recorded = entry.metrics.get(split if split != "valid" else "val", {})
    out = {"name": name, "dataset": entry.dataset, "split": split, **result}
    if recorded:
        # the shipped file's own value (with several seeds, "mean" is over all of them)
        out["recorded"] = recorded.get("weights_value", recorded.get("mean"))
        metric = result["metric"]
        if recorded.get("metric") == metric:
            out["abs_diff"] = abs(result[metric] - out["recorded"])
            out["tolerance"] = tolerance
            out["agrees"] = bool(out["abs_diff"] <= tolerance)  # NaN disagrees
    return out


def _disagreement(res: dict) -> str:
    metric = res["metric"]
    return (
        f"{res['name']}: recomputed {res['split']} {metric} {res[metric]:.6f} differs from zoo.yaml's "
        f"{res['recorded']:.6f} by {res['abs_diff']:.2e} > {res['tolerance']:g}: the model, its config or the data "
        f"changed; restore them (`git checkout -- zoo.yaml models/ datasets/`) or package the run again"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    if getattr(args, "data", None):  # the user's molecules (docs/own-data.md)
        return own_data.cmd_eval_data(args)
    if not (args.tolerance >= 0 and math.isfinite(args.tolerance)):
        raise CLIError(f"--tolerance {args.tolerance}: give a finite number >= 0, e.g. 1e-4")
    res = evaluate_entry(args.name, args.split, args.batch_size, progress=not args.json, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        metric = res["metric"]
        line = f"{res['name']} on {res['dataset']}/{res['split']}: {metric} = {res[metric]:.6f}"
        if "recorded" in res:
            line += f"   (zoo.yaml: {res['recorded']:.6f}, |diff| = {res.get('abs_diff', float('nan')):.2e})"
        print(line)
    if res.get("agrees") is False:
        print(f"dgl-hod eval: {_disagreement(res)}", file=sys.stderr)
        return 1
    return 0


def _benchmark_script(name: str) -> Path:
    path = ROOT / "benchmarks" / name
    if not in_checkout() or not path.is_file():
        raise CLIError(
            f"benchmarks/{name} is not installed with the package: run this command from a source checkout of "
            f"dgl-hod (git clone, then `make install`)"
        )
    return path


def _run_script(path: Path, argv: list[str]) -> int:
    """Run a benchmark script as ``__main__`` with its own folder importable (it imports its sibling helpers)."""
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
    return 0


def _passthrough(command: str, argv: list[str]) -> int:
    """``train`` / ``finetune`` / ``bench`` / ``expressivity``: their own parser reads every argument (and --help)."""
    if command == "bench":
        return _run_script(_benchmark_script("bench_jets.py"), argv)
    if command == "expressivity":
        return _run_script(_benchmark_script("expressivity.py"), argv)
    from . import train

    if command == "train":
        return train.main(argv) or 0
    if not argv or argv[0].startswith("-"):  # `dgl-hod finetune --help` (or a missing NAME)
        if not {"-h", "--help"} & set(argv):
            raise CLIError("finetune needs the zoo model first: dgl-hod finetune NAME --dataset D --out DIR")
        print("usage: dgl-hod finetune NAME --dataset D --out DIR [trainer options]; the trainer's options:\n")
        return train.main(["--help"]) or 0
    return train.main(["--finetune", argv[0], *argv[1:]]) or 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The README's main job: evaluate hod-gnn-k2-zinc on the ZINC-12k test split + the ZINC zoo table.

    Exits 1, loudly, when the recomputed value disagrees with zoo.yaml.
    """
    zoo = zoo_registry.default_zoo()
    headline = "hod-gnn-k2-zinc"
    names = zoo.list_models("*-zinc", pretrained=True)
    if not names:
        raise CLIError(f"no pretrained ZINC models in {zoo.path}: restore zoo.yaml and models/")
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
                "budget": _budget(r),
            }
        )
    _print_table(rows, list(rows[0]))
    if res.get("agrees") is not True:
        why = _disagreement(res) if "abs_diff" in res else f"{headline}: zoo.yaml records no test {metric}"
        print(f"\nDEMO FAILED -- {why}", file=sys.stderr)
        return 1
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    for run in args.run_dirs:
        if not (Path(run) / "record.json").is_file():
            what = "does not exist" if not Path(run).exists() else "has no record.json (the run has not finished)"
            raise CLIError(f"run folder {run} {what}; give the --out folder of a finished training run")
    zoo = zoo_registry.default_zoo()
    zoo.check_new_name(args.name, replace=args.replace)
    supersedes = list(dict.fromkeys(args.supersedes or []))
    if args.name in supersedes:
        raise CLIError(f"--supersedes {args.name}: an entry cannot supersede itself; use --replace to overwrite it")
    zoo.check_entries(supersedes)
    if args.replace and zoo.path.exists() and args.name in zoo.entries:
        print(f"replacing {zoo.describe(args.name)}", file=sys.stderr)
    for old in supersedes:
        print(f"superseding (removing) {zoo.describe(old)}", file=sys.stderr)
    described = {old: zoo.describe(old) for old in supersedes}
    old_files = {old: zoo.entry_files(zoo.model_info(old)) for old in supersedes}
    entry = zoo_registry.package_run(
        args.run_dirs,
        args.name,
        zoo=zoo,
        notes=args.notes,
        replace=args.replace,
        supersedes=supersedes,
        ship=args.ship,
    )
    test = entry.metrics["test"]
    shipped = f", seed {test['weights_seed']}'s weights shipped" if test["num_seeds"] > 1 else ""
    print(
        f"packaged {' '.join(args.run_dirs)} as {entry.name}: {entry.weights} sha256 {entry.sha256[:12]}..., "
        f"val {entry.metrics['val']['mean']}, test {test['mean']}{shipped}"
    )
    for old in supersedes:
        print(f"removed {described[old]}")
    _after_removal(zoo, supersedes, [p for old in supersedes for p in old_files[old]])
    tracked = tracked_files(args.run_dirs, ROOT) if in_checkout() else []
    if tracked:  # checkpoints committed to resume a run in a later session: packaged now, they leave the tree
        print(
            f"committed run files of packaged runs (kept only to resume training): git rm --cached "
            f"{' '.join(tracked)} && git commit -m '...' -- {' '.join(tracked)}",
            file=sys.stderr,
        )
    return 0


def tracked_files(paths: list[str], root: Path) -> list[str]:
    """The files under ``paths`` that git tracks in the checkout at ``root`` (``[]`` without git or a repository)."""
    import subprocess

    inside = []
    for path in paths:
        try:
            inside.append(os.path.relpath(Path(path).resolve(), root.resolve()))
        except ValueError:  # another drive (Windows)
            continue
    inside = [p for p in inside if not p.startswith("..")]
    if not inside:
        return []
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", *inside], cwd=root, capture_output=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(f for f in out.stdout.decode().split("\0") if f)


def cmd_remove(args: argparse.Namespace) -> int:
    """Remove zoo entries and their weights/history files (the registry first, atomically; then the files)."""
    zoo = zoo_registry.default_zoo()
    names = list(dict.fromkeys(args.names))
    zoo.check_entries(names)
    described = {n: zoo.describe(n) for n in names}
    files = [p for n in names for p in zoo.entry_files(zoo.model_info(n))]
    zoo.remove_entries(names)
    for n in names:
        print(f"removed {described[n]}")
    _after_removal(zoo, names, files)
    return 0


def _after_removal(zoo: zoo_registry.Zoo, names: list[str], files: list[Path]) -> None:
    """What is left to do after entries were removed: commit the deletions, and the files that still name them."""
    if not names:
        return
    gone = [p for p in files if not p.exists()]
    if gone:
        print("deleted " + ", ".join(str(p) for p in gone))
    if not in_checkout() or zoo.path.resolve() != (ROOT / "zoo.yaml").resolve():
        return
    rel = [os.path.relpath(p, ROOT) for p in [zoo.path, *gone]]
    print(f"commit the removal: git commit -m '...' -- {' '.join(rel)}")
    left = {n: mentions(n, ROOT) for n in names}
    for n, where in left.items():
        if where:
            print(
                f"{n} is still named in {', '.join(where)} (update them; docs/results.md: rerun `dgl-hod report`)",
                file=sys.stderr,
            )


#: where :func:`mentions` looks for a removed entry's name (historical results under benchmarks/results/ excluded:
#: they record what was measured then)
MENTION_GLOBS = ("README.md", "Makefile", "hubconf.py", "docs/*.md", "tests/*.py", "benchmarks/*.py", "benchmarks/*.sh")


def mentions(name: str, root: Path = ROOT) -> list[str]:
    """Files of a checkout (:data:`MENTION_GLOBS`) that name zoo entry ``name`` as a whole word, sorted."""
    import re

    word = re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(name)}(?![A-Za-z0-9_-])")
    found = set()
    for pattern in MENTION_GLOBS:
        for path in root.glob(pattern):
            try:
                if path.is_file() and word.search(path.read_text(encoding="utf-8")):
                    found.add(path.relative_to(root).as_posix())
            except (OSError, UnicodeDecodeError):
                continue
    return sorted(found)


def cmd_report(args: argparse.Namespace) -> int:
    """Draw the zoo's curves and cost chart and write the page; exit 1 if a history file was refused."""
    from .report import write_report

    result = write_report(out=args.out, png_dir=args.png_dir)
    print(f"wrote {result.page} and {len(result.images)} PNG(s): {', '.join(str(p) for p in result.images)}")
    for problem in result.problems:
        print(f"dgl-hod report: history refused (not drawn, named on the page): {problem}", file=sys.stderr)
    return 1 if result.problems else 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line (argparse prints the usage first): what is wrong and where the help is."""
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dgl-hod", description="HOD-GNN model zoo on DGL")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("list", help="list zoo models")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--json", action="store_true")
    s.add_argument("--markdown", action="store_true", help="a README table")
    s = sub.add_parser("info", help="show a zoo entry")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("eval", help="recompute a zoo model's metric; exit 1 if it differs from zoo.yaml")
    s.add_argument("name")
    s.add_argument("--split", default="test")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument(
        "--tolerance",
        type=float,
        default=EVAL_TOLERANCE,
        help=f"largest accepted |recomputed - zoo.yaml| (default {EVAL_TOLERANCE:g})",
    )
    s.add_argument("--json", action="store_true")
    own_data.add_data_arguments(s)  # eval MODEL --data CSV --label-columns ...: the metric on your molecules
    own_data.add_predict_parser(sub)
    sub.add_parser("train", help="train an architecture (dgl-hod train --help)", add_help=False)
    sub.add_parser("finetune", help="fine-tune a zoo model (dgl-hod finetune --help)", add_help=False)
    sub.add_parser("bench", help="derivative-jet benchmark (source checkout)", add_help=False)
    sub.add_parser("expressivity", help="expressivity suite (source checkout)", add_help=False)
    sub.add_parser("demo", help="the README's main job (exit 1 if it disagrees with zoo.yaml)")
    s = sub.add_parser("package", help="add a finished training run (runs/NAME) to zoo.yaml and models/")
    s.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="a finished run, or several seeds of one recipe (one seed's weights are shipped: see --ship)",
    )
    s.add_argument(
        "--ship",
        choices=zoo_registry.SHIP_RULES,
        default="best-val",
        help="which seed's weights are shipped: the best validation metric (default; first on ties), or the first "
        "RUN_DIR given",
    )
    s.add_argument("--name", required=True, help="hod-gnn-k{K}[-m{M}][-d{T}]-{dataset} or {arch}-{dataset}")
    s.add_argument("--replace", action="store_true", help="replace an existing entry of that name (and its weights)")
    s.add_argument(
        "--supersedes",
        action="append",
        metavar="OLD",
        help="an older entry this one replaces under a new name (repeatable): removed from zoo.yaml in the same "
        "atomic write, then its weights and history files are deleted",
    )
    s.add_argument("--notes", default="")
    s = sub.add_parser("remove", help="remove zoo entries: zoo.yaml (atomically), then their models/ files")
    s.add_argument("names", nargs="+", metavar="NAME", help="zoo entries to remove")
    s = sub.add_parser("report", help="training curves and accuracy-vs-cost PNGs + a Markdown page (matplotlib)")
    s.add_argument("--out", default="docs/results.md", help="the Markdown page to write (default docs/results.md)")
    s.add_argument("--png-dir", default=None, help="folder of the PNGs (default: img/ next to --out)")
    return p


#: errors a user can cause (bad input, edited or missing files): printed as one line, exit 2
USER_ERRORS: tuple[type[BaseException], ...] = (
    CLIError,
    KeyError,
    ValueError,
    TypeError,
    OSError,
    zoo_registry.WeightsError,
)


def _user_errors() -> tuple[type[BaseException], ...]:
    extra: list[type[BaseException]] = []
    try:
        from .datasets import DatasetFileError

        extra.append(DatasetFileError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from .nn.base_mpnn import JetMemoryError

        extra.append(JetMemoryError)
    except ImportError:  # pragma: no cover
        pass
    return USER_ERRORS + tuple(extra)


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one ``dgl-hod`` command; returns the exit status (errors: one line on stderr, no traceback)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else None
    try:
        if command in PASSTHROUGH:
            return _passthrough(command, argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        simple = {
            "list": cmd_list,
            "info": cmd_info,
            "eval": cmd_eval,
            "demo": cmd_demo,
            "package": cmd_package,
            "remove": cmd_remove,
            "report": cmd_report,
            "predict": own_data.cmd_predict,
        }
        return simple[args.command](args)
    except _user_errors() as exc:
        if os.environ.get("DGL_HOD_DEBUG"):
            raise
        print(f"dgl-hod {command}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dgl-hod {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
