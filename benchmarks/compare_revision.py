"""Before/after: time one training step of a model with the working tree and with an earlier git revision.

Both code versions run the same step (fixed batch of ZINC-12k training graphs, forward + L1 loss + backward + AdamW,
1 thread) in fresh subprocesses, alternating old/new ``--rounds`` times so that machine noise hits both alike; each
child reports the median of its steps after a warm-up and its max RSS.  The old revision is checked out with
``git worktree`` into a temporary folder (removed afterwards).

    python benchmarks/compare_revision.py --rev 399fe65 \\
        --config '{"order":2,"jet_mode":"sparse","base_layers":3,"base_hidden_dim":16,"encoder_hidden_dim":32}'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
import torch
from dgl_hod import create_model
from dgl_hod.datasets import load_dataset
from dgl_hod.train import set_threads
set_threads(1)
arch, config, batch, steps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
g, y = load_dataset("zinc12k", "train").batch(list(range(batch)))
torch.manual_seed(0)
model = create_model(arch, node_vocab=(28,), edge_vocab=(4,), num_tasks=1, **config)
opt = torch.optim.AdamW(model.parameters(), 1e-3)
times = []
for _ in range(steps + 1):
    t = time.perf_counter()
    loss = (model(g, g.ndata["feat"], g.edata["feat"]) - y.reshape(-1, 1)).abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"step_s": sorted(times[1:])[len(times[1:]) // 2], "max_rss_mib": rss}))
"""


def run_child(tree: Path, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, args.arch, args.config, str(args.batch_size), str(args.steps)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rev", required=True, help="the earlier git revision (commit, tag, HEAD~3)")
    p.add_argument("--arch", default="hod-gnn")
    p.add_argument("--config", default='{"order":2,"jet_mode":"sparse"}', help="JSON config (ZINC vocabularies added)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dgl-hod-rev-") as tmp:
        old_tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old_tree), args.rev], cwd=ROOT, check=True)
        try:
            res: dict[str, list[dict]] = {"old": [], "new": []}
            for _ in range(args.rounds):
                res["old"].append(run_child(old_tree, args))
                res["new"].append(run_child(ROOT, args))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)
    summary = {
        k: {
            "step_s": statistics.median(r["step_s"] for r in v),
            "max_rss_mib": statistics.median(r["max_rss_mib"] for r in v),
        }
        for k, v in res.items()
    }
    print(f"{args.arch} {args.config}, batch {args.batch_size}, 1 thread, {args.rounds} alternating rounds")
    print(f"  {args.rev}: {summary['old']['step_s']:.3f} s/step, max RSS {summary['old']['max_rss_mib']:.0f} MiB")
    print(f"  working tree: {summary['new']['step_s']:.3f} s/step, max RSS {summary['new']['max_rss_mib']:.0f} MiB")
    print(
        f"  speed-up {summary['old']['step_s'] / summary['new']['step_s']:.2f}x, memory "
        f"{summary['new']['max_rss_mib'] / summary['old']['max_rss_mib']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
