"""Benchmark: time and peak memory of one HOD-GNN training step on a ZINC-12k batch.

One step = forward, L1 loss, backward, AdamW update, on a fixed batch of 32 ZINC-12k training graphs (seeded
choice).  Variants: order k in {1, 2} x base depth T in {4, 8} x jet mode {sparse, dense}; the rest is the
configuration of the ZINC training runs (hidden 64, base hidden 32, one mark, 4 downstream GINE layers).

Every variant runs in a fresh ``spawn`` subprocess so that its peak resident memory is its own: peak = ru_maxrss
after the steps minus the RSS before the first step (model and data already built).  Time: median of ``--repeats``
steps after one warm-up step.

    python benchmarks/bench_train_step.py                 # writes benchmarks/results/train_step.{md,json}
    python benchmarks/bench_train_step.py --modes sparse --repeats 3
    python benchmarks/bench_train_step.py --ratios        # step time / GINE step for the zoo's k1 and k2 configs

``--ratios`` times GINE's default config, the zoo config of ``gine-zinc``, issue 12's short-budget configs of
``hod-gnn-k1-zinc`` and ``hod-gnn-k2-zinc`` (written out below; the zoo has since retrained them), and the HOD-GNN
configs of ``benchmarks/zoo_protocol.sh`` (what the zoo trains now) in one process (1 thread), interleaved round by
round so that load from other jobs hits them alike; the ratio is the median over rounds of (model step / GINE step in
the same round).  It rewrites only its own section of train_step.md and the ``ratios`` key of train_step.json.

``--ratios --rev REV`` measures the same before and after: child processes alternate between a ``git worktree`` of
``REV`` and the working tree (``--rev-rounds`` each), every child timing every model as above; it reports each
model's ratio to GINE with both code versions and the speed-up (median over children of the old step time over the
new one), in its own section of train_step.md and the ``before_after`` key of train_step.json.

    python benchmarks/bench_train_step.py --ratios --rev e8643cb --rev-rounds 3
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

os.environ.setdefault("DGLBACKEND", "pytorch")

import torch  # noqa: E402
from _isolated import exit_with_parent, peak_bytes, rss_bytes, run_in_subprocess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MODEL = dict(hidden_dim=64, base_hidden_dim=32, num_marks=1, downstream_layers=4)
ZINC_VOCABS: dict[str, object] = {"node_vocab": [28], "edge_vocab": [4], "num_tasks": 1}
#: the HOD-GNN configs of benchmarks/zoo_protocol.sh (what the zoo trains now), on top of the defaults
PROTOCOL_CONFIGS: dict[str, dict[str, object]] = {
    "hod-gnn-k1-m2": {"k": 1, "m": 2, "deriv_encoder": "joint", "output_derivatives": True},
    "hod-gnn-k1-m2-d8": {
        "k": 1,
        "m": 2,
        "deriv_encoder": "joint",
        "output_derivatives": True,
        "base_layers": 8,
        "base_hidden_dim": 16,
    },
    "hod-gnn-k2-m1": {"k": 2, "m": 1, "base_layers": 3, "base_hidden_dim": 16, "encoder_hidden_dim": 32},
}
_SHORT_BUDGET = {"base_activation": "silu", "base_init": "default", "jet_mode": "sparse", "jet_norm": "rms"}
#: the configs issue 12's goals were set on: the zoo's short-budget hod-gnn-k1-zinc and hod-gnn-k2-zinc, written out
#: here because the issue-14 protocol replaces those entries (hod-gnn-k1-zinc -> hod-gnn-k1-m2-zinc; hod-gnn-k2-zinc
#: is retrained as the k2-m1 config below), so the ratios stay comparable from run to run
ISSUE12_CONFIGS: dict[str, dict[str, object]] = {
    "hod-gnn-k1-zinc": {**_SHORT_BUDGET, "order": 1, "base_layers": 4, "base_hidden_dim": 32, "base_eps": 0.0},
    "hod-gnn-k2-zinc": {
        **_SHORT_BUDGET,
        **{"order": 2, "base_layers": 3, "base_hidden_dim": 16, "encoder_hidden_dim": 32, "base_eps": 0.0},
    },
}
#: the models of ``--ratios``: GINE's default config (the issue-12 reference, hidden 64 x 4 layers), the zoo's
#: gine-zinc, the issue-12 configs and the protocol configs
RATIO_MODELS = ("gine", "gine-zinc", *ISSUE12_CONFIGS, *PROTOCOL_CONFIGS)
RATIO_BEGIN, RATIO_END = "<!-- ratios: begin -->", "<!-- ratios: end -->"
REV_BEGIN, REV_END = "<!-- before-after: begin -->", "<!-- before-after: end -->"


def ratio_configs() -> dict[str, list]:
    """``name -> [arch, config]`` of every model of ``--ratios`` (zoo configs read from this tree's zoo.yaml)."""
    from dgl_hod.zoo import Zoo

    zoo = Zoo()
    out: dict[str, list] = {"gine": ["gine", ZINC_VOCABS]}
    info = zoo.model_info("gine-zinc")
    out["gine-zinc"] = [info.arch, dict(info.config)]
    for name, config in {**ISSUE12_CONFIGS, **PROTOCOL_CONFIGS}.items():
        out[name] = ["hod-gnn", {**ZINC_VOCABS, **config}]
    return out


def time_models(task: dict) -> dict:
    """Step times of ``task["models"]`` (name -> [arch, config]) in this process, interleaved round by round."""
    import numpy as np

    import dgl_hod
    from dgl_hod import create_model
    from dgl_hod.datasets import load_dataset
    from dgl_hod.train import set_threads

    set_threads(task["threads"])
    ds = load_dataset("zinc12k", "train")
    idx = np.random.default_rng(0).choice(len(ds), task["batch_size"], replace=False)
    g, y = ds.batch(idx)
    names = list(task["models"])
    steps = {}
    for name in names:
        arch, config = task["models"][name]
        torch.manual_seed(0)
        model = create_model(arch, **config).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step(model=model, opt=opt):
            loss = (model(g, g.ndata["feat"], g.edata["feat"]) - y.reshape(-1, 1)).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # warm-up
        steps[name] = step
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(task["rounds"]):
        for name, step in steps.items():
            ts = []
            for _ in range(task["repeats"]):
                t0 = time.perf_counter()
                step()
                ts.append(time.perf_counter() - t0)
            times[name].append(statistics.median(ts))
    ref, zoo_ref = times[names[0]], times[names[1]]
    return {
        **task,
        "dgl_hod": str(Path(dgl_hod.__file__).resolve().parent.parent),
        "seconds": {name: statistics.median(t) for name, t in times.items()},
        "round_seconds": times,
        "ratio": {name: statistics.median(a / b for a, b in zip(t, ref)) for name, t in times.items()},
        "ratio_zoo_gine": {name: statistics.median(a / b for a, b in zip(t, zoo_ref)) for name, t in times.items()},
        "load_average": os.getloadavg(),
    }


def _ratio_worker(task: dict, queue) -> None:
    exit_with_parent()
    try:
        queue.put(time_models(task))
    except Exception as exc:  # report, don't hang
        queue.put({**task, "error": f"{type(exc).__name__}: {exc}"})


def _replace_section(old: str, begin: str, end: str, section: str) -> str:
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        return head + section + rest.split(end, 1)[1]
    return old.rstrip("\n") + ("\n\n" if old else "") + section + "\n"


def _ratio_task(a: argparse.Namespace) -> dict:
    """What a ``--ratios`` worker times: the batch, repeats, rounds, threads and every ratio model's config."""
    return {
        "batch_size": a.batch_size,
        "repeats": a.repeats,
        "rounds": a.rounds,
        "threads": a.threads,
        "models": ratio_configs(),
    }


def before_after(a: argparse.Namespace) -> int:
    """``--ratios --rev REV``: the ratios of every model with REV's code and with the working tree's, alternating."""
    from dgl_hod.datasets._store import data_root
    from dgl_hod.train import machine_string
    from dgl_hod.utils import atomic_write_bytes

    task = _ratio_task(a)
    rev = subprocess.run(["git", "rev-parse", "--short", a.rev], cwd=ROOT, check=True, capture_output=True, text=True)
    rev_id = rev.stdout.strip()
    res: dict[str, list[dict]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="dgl-hod-rev-") as tmp:
        old_tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old_tree), a.rev], cwd=ROOT, check=True)
        try:
            for _ in range(a.rev_rounds):
                for label, tree in (("old", old_tree), ("new", ROOT)):
                    env = dict(
                        os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(a.threads), DGL_HOD_DATA=str(data_root())
                    )
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--ratio-child", json.dumps(task)]
                    out = subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
                    r = json.loads(out.strip().splitlines()[-1])
                    if Path(r["dgl_hod"]) != tree.resolve():
                        raise RuntimeError(f"the {label} child imported dgl_hod from {r['dgl_hod']}, not {tree}")
                    res[label].append(r)
                    print(f"{label}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["ratio"].items()), file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)
    names = list(task["models"])

    def med(label: str, key: str, name: str) -> float:
        return statistics.median(r[key][name] for r in res[label])

    speedup = {
        name: statistics.median(o["seconds"][name] / n["seconds"][name] for o, n in zip(res["old"], res["new"]))
        for name in names
    }
    load = ", ".join(f"{x:.1f}" for x in res["new"][-1]["load_average"])
    lines = [
        REV_BEGIN,
        f"## Before and after ({rev_id} against the working tree)",
        "",
        f"{a.rev_rounds} child processes per code version, alternating ({rev_id}, working tree, ...); each child "
        f"times every model as in the section above ({a.rounds} interleaved rounds of {a.repeats} steps, 1 thread, "
        f"batch of {a.batch_size}). Ratio = median over children of (model / GINE default in the same child); "
        f"speed-up = median over alternating pairs of children of (old step / new step). Load average at the end: "
        f"{load}. {machine_string()}.",
        "",
        f"| model | ms / step {rev_id} | ms / step now | x GINE {rev_id} | x GINE now | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        label = "gine (default config)" if name == "gine" else f"`{name}`"
        lines.append(
            f"| {label} | {med('old', 'seconds', name) * 1000:.0f} | {med('new', 'seconds', name) * 1000:.0f} | "
            f"{med('old', 'ratio', name):.2f} | {med('new', 'ratio', name):.2f} | {speedup[name]:.2f} |"
        )
    command = (
        f"python benchmarks/bench_train_step.py --ratios --rev {a.rev} --rev-rounds {a.rev_rounds} "
        f"--rounds {a.rounds} --repeats {a.repeats}"
    )
    lines += ["", f"Command: `{command}`.", REV_END]
    section = "\n".join(lines)
    print(section)
    a.out.mkdir(parents=True, exist_ok=True)
    md, js = a.out / "train_step.md", a.out / "train_step.json"
    text = _replace_section(md.read_text() if md.exists() else "", REV_BEGIN, REV_END, section)
    data = json.loads(js.read_text()) if js.exists() else {}
    data["before_after"] = {"rev": rev_id, "machine": machine_string(), "speedup": speedup, **res}
    atomic_write_bytes(md, text.encode())
    atomic_write_bytes(js, (json.dumps(data, indent=2) + "\n").encode())
    return 0


def ratios(a: argparse.Namespace) -> int:
    """``--ratios``: step time of the zoo's k1 and k2 configs over a GINE step, in one run."""
    from dgl_hod.train import machine_string
    from dgl_hod.utils import atomic_write_bytes

    task = _ratio_task(a)
    r = run_in_subprocess(_ratio_worker, task)
    if "error" in r:
        print(f"ratio benchmark failed: {r['error']}", file=sys.stderr)
        return 1
    machine = machine_string()
    load = ", ".join(f"{x:.1f}" for x in r["load_average"])
    lines = [
        RATIO_BEGIN,
        "## Step time relative to GINE",
        "",
        f"One process, {a.threads} thread(s), batch of {a.batch_size} ZINC-12k training graphs; the zoo configs "
        f"(`gine-zinc` as in zoo.yaml; `hod-gnn-k1-zinc`, `hod-gnn-k2-zinc`: the short-budget zoo configs issue 12's "
        f"goals were set on) and the HOD-GNN configs of "
        f"`benchmarks/zoo_protocol.sh` (`hod-gnn-k1-m2`: k=1, m=2, joint encoder, output derivatives; "
        f"`-d8`: also base depth 8, width 16; `hod-gnn-k2-m1`: k=2, m=1, depth 3, width 16, encoder 32); "
        f"{a.rounds} interleaved rounds of {a.repeats} steps (median per round), ratio = median over rounds of "
        f"model / GINE in the same round. Load average at the end: {load}. {machine}.",
        "",
        "| model | ms / step | x GINE (default: hidden 64, 4 layers) | x `gine-zinc` (hidden 96, 6 layers) |",
        "|---|---|---|---|",
    ]
    for name in RATIO_MODELS:
        label = "gine (default config)" if name == "gine" else f"`{name}`"
        lines.append(
            f"| {label} | {r['seconds'][name] * 1000:.0f} | {r['ratio'][name]:.2f} | {r['ratio_zoo_gine'][name]:.2f} |"
        )
    lines += ["", f"Command: `python benchmarks/bench_train_step.py --ratios --rounds {a.rounds}`.", RATIO_END]
    section = "\n".join(lines)
    print(section)
    a.out.mkdir(parents=True, exist_ok=True)
    md, js = a.out / "train_step.md", a.out / "train_step.json"
    text = _replace_section(md.read_text() if md.exists() else "", RATIO_BEGIN, RATIO_END, section)
    data = json.loads(js.read_text()) if js.exists() else {}
    data["ratios"] = {"machine": machine, **r}
    atomic_write_bytes(md, text.encode())
    atomic_write_bytes(js, (json.dumps(data, indent=2) + "\n").encode())
    return 0


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
    p.add_argument("--ratios", action="store_true", help="only the step-time ratios to GINE (zoo k1 and k2 configs)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of --ratios")
    p.add_argument("--rev", help="with --ratios: also time this git revision, alternating with the working tree")
    p.add_argument("--rev-rounds", type=int, default=3, help="child processes per code version of --rev")
    p.add_argument("--ratio-child", help=argparse.SUPPRESS)  # internal: time_models(JSON task), print JSON
    a = p.parse_args(argv)
    if a.ratio_child:
        print(json.dumps(time_models(json.loads(a.ratio_child))))
        return 0
    if a.ratios:
        return before_after(a) if a.rev else ratios(a)
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
    from dgl_hod.utils import atomic_write_bytes

    a.out.mkdir(parents=True, exist_ok=True)
    md, js = a.out / "train_step.md", a.out / "train_step.json"
    old = md.read_text() if md.exists() else ""
    if RATIO_BEGIN in old and RATIO_END in old:  # keep the --ratios section
        text += "\n\n" + RATIO_BEGIN + old.split(RATIO_BEGIN, 1)[1].split(RATIO_END, 1)[0] + RATIO_END
    data = {"machine": machine, "rows": rows}
    if js.exists() and "ratios" in (previous := json.loads(js.read_text())):
        data["ratios"] = previous["ratios"]
    atomic_write_bytes(md, (text + "\n").encode())
    atomic_write_bytes(js, json.dumps(data, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
