"""Shared by the benchmark scripts: one fresh subprocess per measurement, so each peak RSS is its own."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import threading
import time
from collections.abc import Callable


def rss_bytes() -> int:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_bytes() -> int:
    """Peak resident memory of this process so far (``ru_maxrss``, read by the trainer's own helper)."""
    from dgl_hod.train import peak_rss_mib

    return int((peak_rss_mib() or 0.0) * 1024 * 1024)


def exit_with_parent() -> None:
    """Call first in a measurement child: it must not outlive a killed benchmark (it can hold GBs for minutes)."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run_in_subprocess(worker: Callable[[dict, object], None], task: dict) -> dict:
    """Run ``worker(task, queue)`` in a fresh ``spawn`` process and return what it puts on the queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=worker, args=(task, queue))
    proc.start()
    while True:  # a child that dies (e.g. out of memory) must not hang the benchmark
        try:
            result = queue.get(timeout=5)
            break
        except queue_mod.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"benchmark task {task} died with exit code {proc.exitcode}") from None
    proc.join()
    return result
