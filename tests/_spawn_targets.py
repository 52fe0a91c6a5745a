"""Worker functions for the tests of :func:`dgl_hod.distributed.spawn` (importable by spawned processes).

Each misbehaves on purpose in one of the ways a training worker can: it raises, dies by a signal, ignores SIGTERM
while the others fail, or leaves a thread behind that would keep the interpreter from exiting.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path


def _rank() -> int:
    return int(os.environ["RANK"])


def rank1_raises_rank0_sleeps() -> None:
    if _rank() == 1:
        raise ValueError("rank 1 gave up")
    time.sleep(3600)


def rank1_raises_rank0_ignores_sigterm() -> None:
    if _rank() == 1:
        time.sleep(0.5)  # rank 0 has installed its handler by then
        raise ValueError("rank 1 gave up")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)


def rank0_is_killed() -> None:
    if _rank() == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(3600)


def finish_but_leave_a_thread(out: str) -> None:
    """Succeed, leaving a non-daemon thread that never ends (a plain interpreter exit would wait for it forever)."""
    threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
    Path(out, f"rank{_rank()}").write_text("done")
