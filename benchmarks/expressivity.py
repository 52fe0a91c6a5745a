"""Expressivity suite: EXP /600, CSL classes /10, SR25 /105, BREC per category /400, for several models.

BREC's 400 pairs by category: basic 60, regular 50, str 50, extension 100, cfi 100, 4vtx 20, dr 20.

Each model is built at random initialisation (``torch.manual_seed(seed)``), in float64 and eval mode, and judged by
the reliability protocol of :mod:`dgl_hod.expressivity` (``--num-perms`` random relabelings per graph, threshold
``--tau`` times the relabeling spread, relative floor ``--rho``).  ``--time-limit`` caps each (model, set) run
(``--category-time-limit`` each BREC category); the table then says how many pairs were evaluated.

    python benchmarks/expressivity.py                                   # HOD-GNN k1/k2 at depths 4 and 8
    python benchmarks/expressivity.py --model k1-T4=hod-gnn:'{"order":1,"base_layers":4}' --sets csl sr25
    python benchmarks/expressivity.py --sets brec --categories str dr 4vtx --per-category 5 ...   # a BREC subset
    python benchmarks/expressivity.py --sets brec --pair-ids 4 24 64 89 ...                        # given pairs
    python benchmarks/expressivity.py --compare-to ds ... --model ds=ds-gnn:'{...}' --model k1=hod-gnn:'{...}'
    dgl-hod expressivity --model gine=gine:'{}'                         # any registered architecture

Writes ``benchmarks/results/expressivity.{md,json}`` (``--out``, ``--name``); the JSON holds every evaluated pair's
verdict, distance, relabeling spread and embedding scale (``results[model][set]["pairs"]``), and the files are
rewritten after each model, so an interrupted run keeps the models it finished.  With ``--compare-to LABEL`` the
Markdown adds a pair-by-pair comparison of every model with that one (the pairs one separates and the other not).

The loop here is :func:`dgl_hod.expressivity.expressivity_counts`'s (same seeding, same relabelings in the same
order, same test, same counts; ``tests/test_expressivity_pairs.py`` checks it) with the per-pair records kept and a
choice of pairs added.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("DGLBACKEND", "pytorch")


RESULTS = Path(__file__).resolve().parent / "results"
COMMON = {"hidden_dim": 32, "base_hidden_dim": 16, "downstream_layers": 2, "jet_mode": "sparse"}
DEFAULT_MODELS = {
    "hod-gnn k1 T=4": ("hod-gnn", {**COMMON, "order": 1, "base_layers": 4}),
    "hod-gnn k1 T=8": ("hod-gnn", {**COMMON, "order": 1, "base_layers": 8}),
    "hod-gnn k2 T=4": ("hod-gnn", {**COMMON, "order": 2, "base_layers": 4}),
    "hod-gnn k2 T=8": ("hod-gnn", {**COMMON, "order": 2, "base_layers": 8}),
}
BREC_CATEGORIES = ("basic", "regular", "str", "extension", "cfi", "4vtx", "dr")


def parse_model(spec: str) -> tuple[str, tuple[str, dict]]:
    """``LABEL=ARCH:JSON`` (or ``ARCH:JSON``, or ``ARCH``); the label may itself contain ``=`` (``k1 T=4=...``)."""
    head, _, cfg = spec.partition(":")
    label, _, arch = head.rpartition("=")
    config = json.loads(cfg) if cfg else {}
    return label or f"{arch} {cfg}".strip(), (arch, config)


def select_pairs(
    metas: Sequence[dict],
    categories: Sequence[str] | None = None,
    per_category: int | None = None,
    pair_ids: Iterable[int] | None = None,
    max_pairs: int | None = None,
) -> list[int]:
    """Indices of the pairs to evaluate, in evaluation order.

    ``metas[k]`` is pair ``k``'s metadata (``category`` for BREC).  ``pair_ids`` picks pairs by index (in the given
    order); ``categories`` keeps those BREC categories, in the given order (pairs of a category in data order),
    ``per_category`` the first pairs of each category; ``max_pairs`` the first pairs of what is left.  With no
    option, every pair in data order.
    """
    n = len(metas)
    if pair_ids is not None:
        idx = [int(i) for i in pair_ids]
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise ValueError(f"pair ids {bad} out of range 0..{n - 1}")
    else:
        idx = list(range(n))
    if categories is not None:
        present = {m.get("category") for m in metas}
        unknown = [c for c in categories if c not in present]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; this set has {sorted(c for c in present if c)}")
        idx = [i for c in categories for i in idx if metas[i].get("category") == c]
    if per_category is not None:
        seen: defaultdict[Any, int] = defaultdict(int)
        kept = []
        for i in idx:
            c = metas[i].get("category")
            if seen[c] < per_category:
                kept.append(i)
            seen[c] += 1
        idx = kept
    return idx if max_pairs is None else idx[:max_pairs]


def summarise(name: str, records: list[dict], num_pairs: int, full_categories: dict[str, int] | None) -> dict:
    """Counts of one set from its per-pair records (the format of :func:`~dgl_hod.expressivity.expressivity_counts`).

    A record is ``{"index", "distinguished": True | False | None (skipped), ...}`` plus ``category`` (BREC) or
    ``classes`` (CSL).  A CSL class counts when all its 9 pairs were evaluated and distinguished.
    """
    out: dict[str, Any] = {
        "distinguished": sum(bool(r["distinguished"]) for r in records),
        "total": num_pairs,
        "evaluated": len(records),
        "skipped": sum(r["distinguished"] is None for r in records),
    }
    if name == "csl":
        sep = [True] * 10
        seen = [0] * 10
        for r in records:
            for c in r["classes"]:
                seen[c] += 1
                if not r["distinguished"]:
                    sep[c] = False
        out["classes_separated"] = sum(s and n == 9 for s, n in zip(sep, seen, strict=True))
        out["classes_total"] = 10
    if full_categories is not None:
        per: dict[str, dict[str, int]] = {
            c: {"distinguished": 0, "evaluated": 0, "total": t, "skipped": 0} for c, t in full_categories.items()
        }
        for r in records:
            pc = per[r["category"]]
            pc["evaluated"] += 1
            pc["distinguished"] += int(bool(r["distinguished"]))
            pc["skipped"] += int(r["distinguished"] is None)
        out["per_category"] = per
    return out


def evaluate_set(
    factory: Callable[[str], Any],
    name: str,
    *,
    num_perms: int = 4,
    tau: float = 10.0,
    rho: float = 1e-12,
    seed: int = 0,
    dtype=None,
    categories: Sequence[str] | None = None,
    per_category: int | None = None,
    pair_ids: Iterable[int] | None = None,
    max_pairs: int | None = None,
    time_limit_s: float | None = None,
    category_time_limit_s: float | dict[str, float] | None = None,
) -> dict:
    """One set for one model, with every evaluated pair's record (``"pairs"``) next to the counts.

    Seeding, relabelings, the test and the JetMemoryError handling are those of ``expressivity_counts``; with no
    selection the counts are identical.  ``time_limit_s`` stops starting pairs after that many seconds in the
    set, ``category_time_limit_s`` after that many in the current BREC category (the next category still runs; a
    dict gives a limit per category, key ``"*"`` for the others).
    """
    import torch

    from dgl_hod.datasets import expressivity_pairs
    from dgl_hod.expressivity import pair_distinguished
    from dgl_hod.nn.base_mpnn import JetMemoryError

    dtype = torch.float64 if dtype is None else dtype
    torch.manual_seed(seed)
    model = factory(name).to(dtype).eval()
    pairs = expressivity_pairs(name)
    cats: Sequence[str] = ()
    if name == "brec":  # categories without loading the graphs: graph 2p's category is pair p's
        cats = pairs.dataset.info.options["categories"]
        metas = [{"category": cats[c]} for c in pairs.dataset.extras["category"][::2]]
    else:
        metas = [{} for _ in range(len(pairs))]
    order = select_pairs(metas, categories, per_category, pair_ids, max_pairs)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    cat_t0: dict[str, float] = {}
    records = []
    cut: list[str] = []
    for k in order:
        now = time.time()
        if time_limit_s is not None and now - t0 > time_limit_s:
            cut.append("set")
            break
        cat = str(metas[k].get("category", name))
        cat_t0.setdefault(cat, now)
        cat_limit = (
            category_time_limit_s.get(cat, category_time_limit_s.get("*"))
            if isinstance(category_time_limit_s, dict)
            else category_time_limit_s
        )
        if cat_limit is not None and now - cat_t0[cat] > cat_limit:
            if cat not in cut:
                cut.append(cat)
            continue
        g1, g2, meta = pairs[k]
        rec: dict[str, Any] = {"index": k}
        if "category" in meta:
            rec["category"] = meta["category"]
        if "classes" in meta:
            rec["classes"] = [int(c) for c in meta["classes"]]
        t1 = time.time()
        try:
            r = pair_distinguished(model, g1, g2, name, num_perms, gen, tau, rho)
            rec.update(distinguished=r["distinguished"], distance=r["distance"], spread=r["spread"], scale=r["scale"])
        except JetMemoryError:
            rec["distinguished"] = None
        rec["seconds"] = round(time.time() - t1, 3)
        records.append(rec)
    full = {c: sum(m["category"] == c for m in metas) for c in cats} if name == "brec" else None
    out = summarise(name, records, len(pairs), full)
    out["seconds"] = time.time() - t0
    out["selection"] = {
        "categories": list(categories) if categories else None,
        "per_category": per_category,
        "pair_ids": [int(i) for i in pair_ids] if pair_ids is not None else None,
        "max_pairs": max_pairs,
        "selected": len(order),
        "cut_by_time": cut,
    }
    out["pairs"] = records
    return out


def verdicts(res: dict, name: str) -> dict[int, bool | None]:
    """``{pair index: distinguished}`` of one set of one model's results (evaluated pairs only)."""
    return {r["index"]: r["distinguished"] for r in res.get(name, {}).get("pairs", [])}


def compare(results: dict[str, dict], reference: str, sets: Iterable[str]) -> dict[str, dict]:
    """Pair-by-pair comparison of every model with ``reference``, over the pairs both evaluated.

    Returns ``{model: {set: {"both", "only_model", "only_reference", "neither", "common"}}}`` where the four
    verdict groups are sorted lists of pair indices (a skipped pair counts as not separated).
    """
    if reference not in results:
        raise ValueError(f"--compare-to {reference!r} is not one of the models {list(results)}")
    out: dict[str, dict] = {}
    for label, res in results.items():
        if label == reference:
            continue
        per_set = {}
        for name in sets:
            a, b = verdicts(res, name), verdicts(results[reference], name)
            common = sorted(set(a) & set(b))
            per_set[name] = {
                "common": len(common),
                "both": [k for k in common if a[k] and b[k]],
                "only_model": [k for k in common if a[k] and not b[k]],
                "only_reference": [k for k in common if b[k] and not a[k]],
                "neither": [k for k in common if not a[k] and not b[k]],
            }
        out[label] = per_set
    return out


def _ratio(rec: dict) -> str:
    if rec.get("distinguished") is None:
        return "skipped"
    spread = rec["spread"] / rec["distance"] if rec["distance"] else float("inf")
    return f"dist {rec['distance']:.2g}, spread/dist {spread:.1g}, dist/scale {rec['distance'] / rec['scale']:.1g}"


def _ids(ids: Sequence[int], limit: int = 40) -> str:
    if not ids:
        return "–"
    s = ", ".join(map(str, ids[:limit]))
    return s + (f", … ({len(ids)} in all)" if len(ids) > limit else "")


def missed_table(results: dict[str, dict], sets: Iterable[str]) -> str:
    """Markdown: per model and set (BREC: category), the evaluated pairs it does NOT separate."""
    lines = ["| model | set | evaluated | separated | not separated (pair ids) |", "|---|---|---|---|---|"]
    for label, res in results.items():
        for name in sets:
            recs = res.get(name, {}).get("pairs")
            if not recs:
                continue
            groups: dict[str, list[dict]] = defaultdict(list)
            for r in recs:
                groups[f"brec {r['category']}" if name == "brec" else name].append(r)
            for g, rs in groups.items():
                miss = [r["index"] for r in rs if not r["distinguished"]]
                ids = f"all ({miss[0]}–{miss[-1]})" if len(miss) == len(rs) > 3 else _ids(miss)
                lines.append(f"| {label} | {g} | {len(rs)} | {len(rs) - len(miss)} | {ids} |")
    return "\n".join(lines)


def floor_only_table(results: dict[str, dict], tau: float) -> str:
    """Markdown: pairs that pass the spread test (dist > tau x spread) but not the relative floor (rho)."""
    lines = []
    for label, res in results.items():
        for name, r in res.items():
            if not isinstance(r, dict):
                continue
            for rec in r.get("pairs", []):
                if rec.get("distinguished") is False and rec["distance"] > tau * rec["spread"]:
                    where = f"brec {rec['category']}" if "category" in rec else name
                    lines.append(f"| {label} | {where} | {rec['index']} | {_ratio(rec)} |")
    if not lines:
        return ""
    head = ["| model | set | pair | numbers |", "|---|---|---|---|"]
    return "\n".join(head + lines)


def dumps(data: Any) -> str:
    """JSON with two-space indentation, each per-pair record on one line (the files stay small and diffable)."""
    compact: list[str] = []

    def walk(o: Any) -> Any:
        if isinstance(o, dict) and "index" in o and "distinguished" in o:
            compact.append(json.dumps(o, separators=(", ", ": ")))
            return f"@@{len(compact) - 1}@@"
        if isinstance(o, dict):
            return {k: walk(v) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    text = json.dumps(walk(data), indent=2)
    return re.sub(r'"@@(\d+)@@"', lambda m: compact[int(m.group(1))], text)


def _seeds(results: dict[str, dict]) -> str:
    """``"0"``, or ``"0; 1 for m1, m2"`` when the models were built with different seeds (the first one's is bare)."""
    by_seed: dict[int, list[str]] = defaultdict(list)
    for label, res in results.items():
        by_seed[res["protocol"]["seed"]].append(label)
    items = list(by_seed.items())
    return "; ".join([str(s) for s, _ in items[:1]] + [f"{s} for {', '.join(ls)}" for s, ls in items[1:]])


def comparison_markdown(cmp: dict[str, dict], results: dict[str, dict], reference: str) -> str:
    """Markdown of :func:`compare`: counts of the four verdict groups, then every disagreeing pair with numbers."""
    lines = [
        f"### Pair by pair against `{reference}`",
        "",
        "Over the pairs both models evaluated: separated by both, by the model only, by the reference only, by "
        "neither.",
        "",
        "| model | set | common | both | model only | reference only | neither |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for label, per_set in cmp.items():
        for name, c in per_set.items():
            if not c["common"]:
                continue
            where_of = {}
            for r in results[label][name]["pairs"]:
                where_of[r["index"]] = f"{name} {r['category']}" if "category" in r else name
            groups = ("both", "only_model", "only_reference", "neither")
            for where in dict.fromkeys(where_of.values()):
                n = {g: sum(where_of[k] == where for k in c[g]) for g in groups}
                if not sum(n.values()):
                    continue
                lines.append(
                    f"| {label} | {where} | {sum(n.values())} | {n['both']} | {n['only_model']} | "
                    f"{n['only_reference']} | {n['neither']} |"
                )
            for side in ("only_model", "only_reference"):
                for k in c[side]:
                    rec_m = next(r for r in results[label][name]["pairs"] if r["index"] == k)
                    rec_r = next(r for r in results[reference][name]["pairs"] if r["index"] == k)
                    where = f"{name} {rec_m['category']}" if "category" in rec_m else name
                    who = label if side == "only_model" else reference
                    rows.append(f"| {label} | {where} | {k} | {who} | {_ratio(rec_m)} | {_ratio(rec_r)} |")
    lines += ["", "Pairs on which they disagree:", ""]
    if rows:
        lines += ["| model | set | pair | separated by | model's numbers | reference's numbers |"]
        lines += ["|---|---|---|---|---|---|"] + rows
    else:
        lines.append("none: on every common pair both separate or both do not.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="LABEL=ARCH:JSON",
        help="model to evaluate (repeatable); default: HOD-GNN k1/k2 at depths 4 and 8",
    )
    p.add_argument("--sets", nargs="+", default=["exp", "csl", "sr25", "brec"])
    p.add_argument("--num-perms", type=int, default=4)
    p.add_argument("--tau", type=float, default=10.0)
    p.add_argument("--rho", type=float, default=1e-12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-pairs", type=int, default=None)
    p.add_argument("--time-limit", type=float, default=150.0, help="seconds per (model, set); 0 = none")
    p.add_argument(
        "--set-time-limit",
        action="append",
        default=[],
        metavar="SET=SECONDS",
        help="override --time-limit for one set (repeatable)",
    )
    p.add_argument("--categories", nargs="+", default=None, help="BREC: these categories only, evaluated in this order")
    p.add_argument("--per-category", type=int, default=None, help="BREC: the first N pairs of each category")
    p.add_argument(
        "--category-time-limit",
        nargs="+",
        default=None,
        metavar="[CAT=]SECONDS",
        help="BREC: seconds per (model, category); CAT=SECONDS for one category (e.g. 60 str=150)",
    )
    p.add_argument("--pair-ids", type=int, nargs="+", default=None, help="evaluate only these pair indices")
    p.add_argument("--compare-to", default=None, metavar="LABEL", help="add a pair-by-pair comparison with LABEL")
    p.add_argument("--note", action="append", default=[], help="a paragraph for the Markdown file (repeatable)")
    p.add_argument("--append", action="store_true", help="add the models to --name's existing files")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="expressivity", help="output file stem")
    a = p.parse_args(argv)
    from dgl_hod.expressivity import format_table, model_factory
    from dgl_hod.train import machine_string, set_threads
    from dgl_hod.utils import atomic_write_bytes

    set_threads(a.threads)
    if a.categories and set(a.categories) - set(BREC_CATEGORIES):
        p.error(f"--categories: choose from {BREC_CATEGORIES}")

    set_limits = {}
    for spec in a.set_time_limit:
        name, _, sec = spec.partition("=")
        if name not in a.sets or not sec:
            p.error(f"--set-time-limit {spec!r}: want SET=SECONDS with SET one of --sets {a.sets}")
        set_limits[name] = float(sec)
    cat_limits: dict[str, float] | None = None
    if a.category_time_limit:
        cat_limits = {}
        for spec in a.category_time_limit:
            cat, _, sec = spec.rpartition("=")
            if cat and cat not in BREC_CATEGORIES:
                p.error(f"--category-time-limit {spec!r}: choose a category from {BREC_CATEGORIES}")
            cat_limits[cat or "*"] = float(sec)
    models = dict(parse_model(s) for s in a.model) if a.model else DEFAULT_MODELS
    if a.compare_to is not None and a.compare_to not in models and not a.append:
        p.error(f"--compare-to {a.compare_to!r} is not one of the model labels {list(models)}")
    command = "python benchmarks/expressivity.py " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    protocol = {
        "num_perms": a.num_perms,
        "tau": a.tau,
        "rho": a.rho,
        "seed": a.seed,
        "dtype": "torch.float64",
        "rule": "dist(mean emb) > tau * max relabeling spread and > rho * |mean emb|",
    }
    machine = machine_string()
    results: dict[str, dict] = {}

    commands, notes = [command], list(a.note)
    if a.append and (a.out / f"{a.name}.json").exists():  # add this run's models to an earlier run's file
        prev = json.loads((a.out / f"{a.name}.json").read_text())
        for label, old in prev["results"].items():
            if {k: old["protocol"][k] for k in ("num_perms", "tau", "rho")} != {
                k: protocol[k] for k in ("num_perms", "tau", "rho")
            }:
                p.error(f"--append: {label!r} in {a.name}.json was run under another protocol: {old['protocol']}")
            if label not in models:
                results[label] = old
        commands = prev.get("commands", [prev.get("command")]) + commands
        notes = prev.get("notes", []) + notes

    def write() -> str:
        seeds = _seeds(results) or str(a.seed)
        header = (
            f"Random initialisation (seed {seeds}), float64, eval mode; a pair counts when the distance of the "
            f"mean embeddings exceeds {a.tau:g} x the largest spread over {a.num_perms} random relabelings of each "
            f"graph and {a.rho:g} x the embedding norm. Time limits (`--time-limit` and `--set-time-limit` per "
            f"(model, set), "
            f"`--category-time-limit` per (model, BREC category)) and pair selections are in the command"
            f"{'s' if len(commands) > 1 else ''}; a cell `x/N (of n run)` counts the n pairs evaluated. {machine}."
        )
        if len(commands) == 1:
            parts = [f"Command: `{command}`", header]
        else:
            parts = ["Commands (each added its models to this file, in this order):\n"]
            parts[0] += "\n".join(f"```bash\n{c}\n```" for c in commands)
            parts.append(header)
        parts += notes
        all_sets = list(dict.fromkeys(s for res in results.values() for s in res if s not in ("protocol", "model")))
        rows = {
            k: {s: {f: v for f, v in r.items() if f != "pairs"} for s, r in res.items() if s != "model"}
            for k, res in results.items()
        }
        parts.append(format_table(rows))
        cut = [
            f"{label}: {name} ({', '.join(r['selection']['cut_by_time'])})"
            for label, res in results.items()
            for name, r in res.items()
            if isinstance(r, dict) and r.get("selection", {}).get("cut_by_time")
        ]
        parts.append("Cut short by a time limit: " + ("; ".join(cut) if cut else "none") + ".")
        parts.append("Pairs not separated, per model and set:\n\n" + missed_table(results, all_sets))
        floor = floor_only_table(results, a.tau)
        if floor:
            parts.append(
                f"Pairs not counted although their distance exceeds {a.tau:g} x the relabeling spread (they fail "
                f"only the relative floor {a.rho:g} x the embedding norm):\n\n" + floor
            )
        data: dict[str, Any] = {"machine": machine, "commands": commands, "notes": notes, "results": results}
        if a.compare_to is not None and len(results) > 1 and a.compare_to in results:
            cmp = compare(results, a.compare_to, all_sets)
            parts.append(comparison_markdown(cmp, results, a.compare_to))
            data["comparison"] = {"reference": a.compare_to, "models": cmp}
        text = "\n\n".join(parts)
        atomic_write_bytes(a.out / f"{a.name}.md", (text + "\n").encode())
        atomic_write_bytes(a.out / f"{a.name}.json", dumps(data).encode())
        return text

    text = ""
    for label, (arch, config) in models.items():
        t0 = time.time()
        factory = model_factory(arch, **config)
        res: dict[str, Any] = {"protocol": protocol}
        for name in a.sets:
            res[name] = evaluate_set(
                factory,
                name,
                num_perms=a.num_perms,
                tau=a.tau,
                rho=a.rho,
                seed=a.seed,
                categories=a.categories if name == "brec" else None,
                per_category=a.per_category if name == "brec" else None,
                pair_ids=a.pair_ids,
                max_pairs=a.max_pairs,
                time_limit_s=set_limits.get(name, a.time_limit) or None,
                category_time_limit_s=cat_limits if name == "brec" else None,
            )
        res["model"] = {"arch": arch, "config": config}
        results[label] = res
        summary = {k: v["distinguished"] for k, v in res.items() if isinstance(v, dict) and "total" in v}
        print(f"{label}: {summary} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        text = write()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
