"""``python -m dgl_hod.datasets [list | info NAME | time NAME | verify]``.

``time NAME`` loads every split of NAME and builds every graph as a ``dgl.DGLGraph`` in this (fresh) process and
prints the wall-clock time; ``verify`` re-hashes every shipped file (no cached verdict is trusted) and exits 1 naming
every missing or corrupt file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dgl_hod.datasets")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    sub.add_parser("verify")
    for c in ("info", "time"):
        sub.add_parser(c).add_argument("name")
    args = ap.parse_args(argv)

    from . import get_info, list_datasets, load_dataset
    from ._store import DatasetFileError, data_root, verify_all

    if args.cmd == "list":
        for n in list_datasets():
            i = get_info(n)
            print(f"{n:18s} {i.num_graphs:6d} graphs  {i.task_type:26s} {i.metric}")
    elif args.cmd == "info":
        for k, v in dataclasses.asdict(get_info(args.name)).items():
            print(f"{k}: {v}")
    elif args.cmd == "verify":
        t0 = time.perf_counter()
        try:
            checked = verify_all()
        except DatasetFileError as err:
            print(f"python -m dgl_hod.datasets verify: {err}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - t0
        print(f"all {len(checked)} files in {data_root()} verified (sha256 of their content, {seconds:.2f} s)")
    else:
        info = get_info(args.name)
        t1 = time.perf_counter()
        splits = [s for s in info.splits if s != "all"] or ["all"]
        if info.num_folds:
            splits = ["all"]
        count = 0
        for s in splits:
            ds = load_dataset(info.name, s)
            graphs = [ds[i] for i in range(len(ds))]
            count += len(graphs)
        t2 = time.perf_counter()
        print(f"{info.name}: {count} graphs ({', '.join(splits)}) loaded and built as DGL graphs in {t2 - t1:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
