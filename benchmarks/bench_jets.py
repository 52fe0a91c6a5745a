"""Benchmark: derivative jets of BaseMPNN (dgl-hod, one DGL pass) vs torch.func computing the same tensors.

Part A (molecule-sized batch): --num-graphs (default 32, a training batch) random molecule-like
graphs (9-37 nodes, degree <= 4, a few rings),
GINE base MPNN (hidden 64, 4 bond types), orders 1 and 2, depth 4 and 8.  (a) ``BaseMPNN.jets(mode="dense")`` vs (b)
``torch.func`` (``jacrev`` then ``jacfwd``) on a pure-torch index_add formulation, graph by graph (the per-graph
blocks are exactly the tensors (a) returns; differentiating the whole batch at once would also compute the
cross-graph zeros).  Both run in inference (no autograd graph); results are compared entry by entry.

Part B (big sparse graphs): ``mode="sparse"``, order 1, depth 3 on random 3-regular graphs of 10^3, 10^4, 10^5
nodes; peak memory per node should stay flat (it grows with the 3-hop ball, not with n).

Every measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss minus the RSS before the
measured call) is its own.  Times are medians of ``--repeats`` runs (torch.func: one run).  Ratios come from one
invocation on one machine.

    python benchmarks/bench_jets.py            # full run, writes benchmarks/results/jets.{md,json}
    python benchmarks/bench_jets.py --quick    # small version (the demo)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DGLBACKEND", "pytorch")

import dgl  # noqa: E402
import torch  # noqa: E402
from _isolated import exit_with_parent, peak_bytes, rss_bytes, run_in_subprocess  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def molecule_like_batch(num_graphs: int, seed: int, min_nodes: int = 9, max_nodes: int = 37):
    """Random trees with max degree 4 plus 0-3 ring-closing edges, bidirected; 4 edge types."""
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(num_graphs):
        n = int(torch.randint(min_nodes, max_nodes + 1, (1,), generator=gen))
        deg = [0] * n
        edges = set()
        for i in range(1, n):
            while True:
                j = int(torch.randint(0, i, (1,), generator=gen))
                if deg[j] < 4:
                    break
            edges.add((j, i))
            deg[i] += 1
            deg[j] += 1
        for _ in range(int(torch.randint(0, 4, (1,), generator=gen))):
            a, b = (int(t) for t in torch.randint(0, n, (2,), generator=gen))
            if a != b and deg[a] < 4 and deg[b] < 4 and (a, b) not in edges and (b, a) not in edges:
                edges.add((a, b))
                deg[a] += 1
                deg[b] += 1
        src, dst = zip(*edges)
        graphs.append(dgl.graph((torch.tensor(src + dst), torch.tensor(dst + src)), num_nodes=n))
    g = dgl.batch(graphs)
    x = torch.randn(g.num_nodes(), 16, generator=gen)
    # each graph lists its bonds forward then backward, so one bond type per bond, repeated
    e = torch.cat(
        [
            torch.nn.functional.one_hot(torch.randint(0, 4, (gi.num_edges() // 2,), generator=gen).repeat(2), 4)
            for gi in graphs
        ]
    ).float()
    return graphs, g, x, e


def random_regular(n: int, seed: int) -> dgl.DGLGraph:
    """A cycle plus a random perfect matching (3-regular up to rare repeated edges), bidirected."""
    gen = torch.Generator().manual_seed(seed)
    ring = torch.arange(n)
    perm = torch.randperm(n, generator=gen)
    a, b = perm[0::2], perm[1::2]
    src = torch.cat([ring, a])
    dst = torch.cat([(ring + 1) % n, b])
    return dgl.graph((torch.cat([src, dst]), torch.cat([dst, src])), num_nodes=n)


def _measure(fn, repeats: int):
    fn()  # warm-up (also builds caches); the peak below includes it, which is the same work
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _worker(task: dict, queue) -> None:
    exit_with_parent()
    torch.set_num_threads(task["threads"])
    from dgl_hod import BaseMPNN
    from dgl_hod.reference import reference_jets

    torch.manual_seed(0)
    if task["part"] == "A":
        graphs, g, x, e = molecule_like_batch(task["num_graphs"], seed=0)
        base = BaseMPNN(16, task["hidden"], task["depth"], edge_dim=4, activation="silu").eval()
        if task["which"] == "ours":

            def run():
                return base.jets(g, x, e, order=task["order"], mode="dense")
        else:
            offsets = torch.cumsum(g.batch_num_edges(), 0) - g.batch_num_edges()
            noffsets = torch.cumsum(g.batch_num_nodes(), 0) - g.batch_num_nodes()

            def run():
                return [
                    reference_jets(
                        base,
                        gi,
                        x[noffsets[i] : noffsets[i] + gi.num_nodes()],
                        e[offsets[i] : offsets[i] + gi.num_edges()],
                        order=task["order"],
                    )
                    for i, gi in enumerate(graphs)
                ]

        repeats = task["repeats"] if task["which"] == "ours" else 1
    else:
        g = random_regular(task["num_nodes"], seed=0)
        x = torch.randn(g.num_nodes(), 16)
        base = BaseMPNN(16, task["hidden"], task["depth"], activation="silu").eval()

        def run():
            return base.jets(g, x, order=1, mode="sparse")

        repeats = task["repeats"]
    with torch.no_grad():
        rss0 = rss_bytes()
        seconds, out = _measure(run, repeats)
        peak = peak_bytes() - rss0
        result = {**task, "seconds": seconds, "peak_bytes": peak}
        if task["part"] == "A" and task.get("compare_path"):
            # save per-graph blocks of a few graphs for the cross-check in the parent
            blocks = [out.dense(i) for i in range(4)] if task["which"] == "ours" else out[:4]
            torch.save(blocks, task["compare_path"])
        if task["part"] == "B":
            result["entries"] = int(out.derivatives[0].shape[0])
    queue.put(result)


def run_task(task: dict) -> dict:
    return run_in_subprocess(_worker, task)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument(
        "--num-graphs",
        type=int,
        default=32,
        help="graphs in the compared batch (torch.func at order 2 takes minutes per 32 graphs)",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write the .md/.json (default results/)")
    args = parser.parse_args(argv)

    quick = args.quick
    num_graphs = 8 if quick else args.num_graphs
    depths = (4,) if quick else (4, 8)
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    out_dir = args.out or (RESULTS / ("quick" if quick else ""))
    out_dir.mkdir(parents=True, exist_ok=True)

    rows_a, rows_b = [], []
    for depth in depths:
        for order in (1, 2):
            res = {}
            for which in ("ours", "torch.func"):
                path = str(out_dir / f".cmp_{which.replace('.', '_')}.pt")
                task = dict(
                    part="A",
                    which=which,
                    depth=depth,
                    order=order,
                    num_graphs=num_graphs,
                    hidden=args.hidden,
                    repeats=args.repeats,
                    threads=args.threads,
                    compare_path=path,
                )
                res[which] = run_task(task)
                print(
                    f"[A] depth {depth} order {order} {which:10s} {res[which]['seconds']:8.3f} s "
                    f"peak {res[which]['peak_bytes'] / 2**20:8.1f} MiB",
                    flush=True,
                )
            ours = torch.load(out_dir / ".cmp_ours.pt")
            ref = torch.load(out_dir / ".cmp_torch_func.pt")
            err = max(
                float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))
                for oa, ob in zip(ours, ref)
                for a, b in zip(oa, ob)
            )
            rows_a.append(
                dict(
                    depth=depth,
                    order=order,
                    ours_s=res["ours"]["seconds"],
                    func_s=res["torch.func"]["seconds"],
                    speedup=res["torch.func"]["seconds"] / res["ours"]["seconds"],
                    ours_mib=res["ours"]["peak_bytes"] / 2**20,
                    func_mib=res["torch.func"]["peak_bytes"] / 2**20,
                    max_rel_err=err,
                )
            )
    for f in out_dir.glob(".cmp_*.pt"):
        f.unlink()
    for n in sizes:
        task = dict(part="B", num_nodes=n, depth=3, hidden=args.hidden, repeats=args.repeats, threads=args.threads)
        r = run_task(task)
        print(f"[B] n={n:>7,} {r['seconds']:8.3f} s peak {r['peak_bytes'] / 2**20:8.1f} MiB", flush=True)
        rows_b.append(
            dict(
                num_nodes=n,
                seconds=r["seconds"],
                peak_mib=r["peak_bytes"] / 2**20,
                pairs=r["entries"],
                kib_per_node=r["peak_bytes"] / 1024 / n,
                us_per_node=r["seconds"] / n * 1e6,
            )
        )

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, dgl {dgl.__version__}, "
        f"{args.threads} threads"
    )
    cmd = " ".join(["python benchmarks/bench_jets.py", *(argv if argv is not None else sys.argv[1:])])
    md = [
        f"Command: `{cmd}` ({machine}). Float32, inference, hidden {args.hidden}, GINE, SiLU.",
        "",
        f"**A. {num_graphs} molecule-like graphs (9-37 nodes), dense jets vs torch.func per graph**",
        "",
        "| depth | order | dgl-hod (s) | torch.func (s) | speed-up | dgl-hod peak (MiB) | torch.func peak (MiB) "
        "| max rel. diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['depth']} | {r['order']} | {r['ours_s']:.3f} | {r['func_s']:.2f} | {r['speedup']:.0f}x | "
        f"{r['ours_mib']:.0f} | {r['func_mib']:.0f} | {r['max_rel_err']:.1e} |"
        for r in rows_a
    ]
    md += [
        "",
        "**B. sparse mode, order 1, depth 3, random 3-regular graphs**",
        "",
        "| nodes | stored (v, u) pairs | time (s) | peak (MiB) | peak per node (KiB) | time per node (us) |",
        "|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['num_nodes']:,} | {r['pairs']:,} | {r['seconds']:.3f} | {r['peak_mib']:.0f} | "
        f"{r['kib_per_node']:.1f} | {r['us_per_node']:.1f} |"
        for r in rows_b
    ]
    text = "\n".join(md) + "\n"
    (out_dir / "jets.md").write_text(text)
    (out_dir / "jets.json").write_text(
        json.dumps(
            {"command": cmd, "machine": machine, "dense_vs_torch_func": rows_a, "sparse_scaling": rows_b}, indent=2
        )
    )
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
