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

``--ratios`` times the zoo configs of ``gine-zinc``, ``hod-gnn-k1-zinc`` and ``hod-gnn-k2-zinc`` in one process (1
thread), interleaved round by round so that load from other jobs hits all three alike; the ratio is the median over
rounds of (model step / GINE step in the same round).  It rewrites only its own section of train_step.md and the
``ratios`` key of train_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DGLBACKEND", "pytorch")

import torch  # noqa: E402
from _isolated import exit_with_parent, peak_bytes, rss_bytes, run_in_subprocess  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = dict(hidden_dim=64, base_hidden_dim=32, num_marks=1, downstream_layers=4)
#: the models of ``--ratios``: GINE's default config (the issue-12 reference, hidden 64 x 4 layers) and zoo configs
RATIO_MODELS = ("gine", "gine-zinc", "hod-gnn-k1-zinc", "hod-gnn-k2-zinc")
ZINC_VOCABS = {"node_vocab": (28,), "edge_vocab": (4,), "num_tasks": 1}
RATIO_BEGIN, RATIO_END = "<!-- ratios: begin -->", "<!-- ratios: end -->"


def _ratio_worker(task: dict, queue) -> None:
    exit_with_parent()
    try:
        import numpy as np

        from dgl_hod import create_model
        from dgl_hod.datasets import load_dataset
        from dgl_hod.train import set_threads
        from dgl_hod.zoo import Zoo

        set_threads(task["threads"])
        ds = load_dataset("zinc12k", "train")
        idx = np.random.default_rng(0).choice(len(ds), task["batch_size"], replace=False)
        g, y = ds.batch(idx)
        zoo = Zoo()
        steps = {}
        for name in RATIO_MODELS:
            arch, config = (name, ZINC_VOCABS) if name == "gine" else (zoo.model_info(name).arch, {})
            config = config or dict(zoo.model_info(name).config)
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
        times: dict[str, list[float]] = {name: [] for name in RATIO_MODELS}
        for _ in range(task["rounds"]):
            for name, step in steps.items():
                ts = []
                for _ in range(task["repeats"]):
                    t0 = time.perf_counter()
                    step()
                    ts.append(time.perf_counter() - t0)
                times[name].append(statistics.median(ts))
        ref, zoo_ref = times[RATIO_MODELS[0]], times[RATIO_MODELS[1]]
        queue.put(
            {
                **task,
                "seconds": {name: statistics.median(t) for name, t in times.items()},
                "round_seconds": times,
                "ratio": {name: statistics.median(a / b for a, b in zip(t, ref)) for name, t in times.items()},
                "ratio_zoo_gine": {
                    name: statistics.median(a / b for a, b in zip(t, zoo_ref)) for name, t in times.items()
                },
                "load_average": os.getloadavg(),
            }
        )
    except Exception as exc:  # report, don't hang
        queue.put({**task, "error": f"{type(exc).__name__}: {exc}"})


def ratios(a: argparse.Namespace) -> int:
    """``--ratios``: step time of the zoo's k1 and k2 configs over a GINE step, in one run."""
    from dgl_hod.train import machine_string
    from dgl_hod.utils import atomic_write_bytes

    task = {"batch_size": a.batch_size, "repeats": a.repeats, "rounds": a.rounds, "threads": a.threads}
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
        f"One process, {a.threads} thread(s), batch of {a.batch_size} ZINC-12k training graphs, the zoo configs; "
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
    old = md.read_text() if md.exists() else ""
    if RATIO_BEGIN in old and RATIO_END in old:
        head, rest = old.split(RATIO_BEGIN, 1)
        text = head + section + rest.split(RATIO_END, 1)[1]
    else:
        text = old.rstrip("\n") + ("\n\n" if old else "") + section + "\n"
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
    a = p.parse_args(argv)
    if a.ratios:
        return ratios(a)
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
