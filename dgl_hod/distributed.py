r"""Data-parallel training on ``torch.distributed``: devices, process groups, synchronised BatchNorm, sharding.

The trainer (:mod:`dgl_hod.train`) uses this module to run one training recipe on ``N`` processes, started either
by ``torchrun --nproc_per_node N -m dgl_hod.train ...`` (one machine or several, torchrun's rendezvous) or by
``python -m dgl_hod.train ... --nproc N`` (:func:`spawn`: ``N`` workers on this machine).  Every process holds a
replica of the model wrapped in :class:`torch.nn.parallel.DistributedDataParallel` (gloo on CPU, nccl on CUDA).

**The same recipe on any N.**  The global batch stays ``batch_size`` graphs: each global batch of the epoch (a
function of ``(seed, epoch)``) is cut into ``N`` contiguous parts (``np.array_split``; sizes differ by at most one
and a part may be empty), rank ``r`` takes part ``r``.  Each rank's loss is scaled so that DDP's gradient average is
the gradient of the *global* mean loss:

.. math::
    \mathcal{L}_r = \frac{N}{C}\sum_{i \in \text{part } r} \ell_i, \qquad
    \frac{1}{N}\sum_r \nabla \mathcal{L}_r = \nabla \frac{1}{C}\sum_{i \in \text{batch}} \ell_i ,

with ``C`` the number of loss terms in the global batch (graphs x tasks, NaN labels excluded), summed over the ranks
with one ``all_reduce``.  BatchNorm layers become :class:`SyncBatchNorm1d`: batch statistics over the nodes of the
whole global batch, so ``N`` processes with ``B/N`` graphs each compute what one process computes with ``B``.

**Evaluation** is sharded (each rank predicts a contiguous slice of val/test) and gathered onto every rank
(:func:`gather_rows`), so all ranks compute the same metrics; rank 0 alone writes files.

Example (one process: nothing is distributed, every helper is the identity):
    >>> ctx = DistContext()
    >>> ctx.world_size, ctx.is_main, ctx.broadcast_floats([1.5])
    (1, True, [1.5])
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistContext",
    "SyncBatchNorm1d",
    "WorkerError",
    "convert_sync_batchnorm",
    "dgl_has_cuda",
    "gather_rows",
    "in_launched_worker",
    "resolve_device",
    "spawn",
]

NO_DGL_CUDA = "this DGL build has no CUDA support; install a CUDA build of DGL (https://www.dgl.ai/pages/start.html)"


class WorkerError(RuntimeError):
    """A worker started by :func:`spawn` failed; the message is the worker's own last error line."""


# ---------------------------------------------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------------------------------------------
def dgl_has_cuda() -> bool:
    """Whether the installed DGL was built with CUDA (independent of whether a GPU is present).

    A CPU-only build refuses to allocate on a GPU with "Device API cuda is not enabled"; a CUDA build without a
    visible GPU fails with another error, so the two are told apart.
    """
    import dgl

    try:
        dgl.ndarray.empty((1,), "float32", dgl.ndarray.gpu(0))
    except Exception as exc:  # DGLError, whatever the build says
        return "is not enabled" not in str(exc)
    return True


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`, refused at once when this DGL or torch cannot use it.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        ValueError: device (--device) must be cpu, cuda or cuda:INDEX, got 'tpu'
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = torch.device("meta")
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device (--device) must be cpu, cuda or cuda:INDEX, got {str(device)!r}")
    if not dgl_has_cuda():
        raise ValueError(NO_DGL_CUDA)
    if not torch.cuda.is_available():
        raise ValueError(
            f"torch sees no CUDA device (torch {torch.__version__}, CUDA {torch.version.cuda}); "
            "train with --device cpu, or on a machine with a GPU"
        )
    return dev


# ---------------------------------------------------------------------------------------------------------------------
# the process group
# ---------------------------------------------------------------------------------------------------------------------
def in_launched_worker() -> bool:
    """Whether this process was started by torchrun (or :func:`spawn`) as one of several (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or (dist.is_available() and dist.is_initialized())


@dataclass
class DistContext:
    """This process's place in a data-parallel run: rank, world size, device; collectives that are no-ops for 1.

    :meth:`from_env` joins the process group described by torchrun's environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``) or uses one initialised by the caller.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False
    ddp_group: Any = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, records and weights."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> DistContext:
        """Join (or reuse) the process group; one process without torchrun's environment is ``DistContext()``."""
        if not in_launched_worker():
            return cls(device=device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        owns = not dist.is_initialized()
        backend = "nccl" if device.type == "cuda" else "gloo"
        if owns:
            minutes = float(os.environ.get("DGL_HOD_DIST_TIMEOUT_MIN", "10"))
            dist.init_process_group(backend, timeout=timedelta(minutes=minutes))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # DDP's gradient buckets get a group of their own: its asynchronous all-reduces then never interleave with
        # the trainer's collectives (SyncBatchNorm1d in forward and backward, loss counts, broadcasts, gathers)
        return cls(dist.get_rank(), dist.get_world_size(), device, owns, dist.new_group(backend=backend))

    def close(self) -> None:
        """Leave the process group if this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Elementwise sum over the ranks of a few numbers (float64)."""
        if self.world_size == 1:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def all_max(self, values: Sequence[float]) -> list[float]:
        """Elementwise maximum over the ranks of a few numbers (float64)."""
        if self.world_size == 1:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def broadcast_floats(self, values: Sequence[float]) -> list[float]:
        """Rank 0's numbers on every rank (times, elapsed seconds: the decisions made from them must agree)."""
        if self.world_size == 1:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return t.tolist()

    def agree(self, ok_on_rank0: bool) -> bool:
        """Rank 0's yes/no on every rank (used so that all ranks stop when rank 0 cannot go on)."""
        return bool(self.broadcast_floats([1.0 if ok_on_rank0 else 0.0])[0])

    def barrier(self) -> None:
        """Wait for every rank (no-op for one process)."""
        if self.world_size > 1:
            dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model for training: itself for one process, else its BatchNorms synchronised and DDP-wrapped.

        ``broadcast_buffers=False``: with synchronised BatchNorm the running statistics are equal on every rank.
        """
        if self.world_size == 1:
            return model
        convert_sync_batchnorm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            model, device_ids=ids, broadcast_buffers=False, process_group=self.ddp_group
        )


def gather_rows(ctx: DistContext, part: Tensor, sizes: Sequence[int]) -> Tensor:
    """Concatenate every rank's ``part`` (rank order) on every rank; rank ``r``'s part has ``sizes[r]`` rows.

    Parts are padded to the largest size for ``all_gather`` (gloo needs equal shapes) and trimmed after.
    """
    if ctx.world_size == 1:
        return part
    pad = max(sizes)
    buf = part.new_zeros((pad, *part.shape[1:]))
    buf[: part.shape[0]] = part
    bufs = [torch.empty_like(buf) for _ in range(ctx.world_size)]
    dist.all_gather(bufs, buf)
    return torch.cat([b[:n] for b, n in zip(bufs, sizes)])


# ---------------------------------------------------------------------------------------------------------------------
# BatchNorm over the global batch
# ---------------------------------------------------------------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """``all_reduce(SUM)`` whose backward is the ``all_reduce(SUM)`` of the incoming gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # noqa: D102
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # noqa: D102
        g = grad.clone()
        dist.all_reduce(g)
        return g


class SyncBatchNorm1d(nn.BatchNorm1d):
    r"""``BatchNorm1d`` whose training-mode statistics are those of the nodes of every rank together.

    ``torch.nn.SyncBatchNorm`` runs on GPUs only (torch 2.2); this one runs wherever ``torch.distributed`` does
    (gloo on CPU, nccl on CUDA).  One ``all_reduce`` of ``[sum x, sum x^2, n]`` (accumulated in float64) per
    forward and one of its gradient per backward; mean :math:`\mu = \sum x / n`, biased variance
    :math:`\sigma^2 = \sum x^2 / n - \mu^2` for normalising, unbiased :math:`\sigma^2 n/(n-1)` for the running
    variance, as ``BatchNorm1d`` does.  Eval mode, or no process group, is plain ``BatchNorm1d``.  Same parameters,
    buffers and state-dict keys as ``BatchNorm1d``.
    """

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        if x.dim() not in (2, 3):
            raise ValueError(f"SyncBatchNorm1d expects (N, C) or (N, C, L) inputs, got shape {tuple(x.shape)}")
        flat = x if x.dim() == 2 else x.transpose(1, 2).reshape(-1, x.shape[1])
        wide = flat.double()
        count = torch.full((1,), float(flat.shape[0]), dtype=torch.float64, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([wide.sum(0), (wide * wide).sum(0), count]))
        c = self.num_features
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr]
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        out = (flat - mean.to(x.dtype)) * torch.rsqrt(var.to(x.dtype) + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out if x.dim() == 2 else out.reshape(x.shape[0], x.shape[2], c).transpose(1, 2)


def convert_sync_batchnorm(model: nn.Module) -> int:
    """Turn every ``BatchNorm1d`` of ``model`` into a :class:`SyncBatchNorm1d` in place; returns how many.

    The parameters and buffers are kept (the same tensors), so the state dict is unchanged.
    """
    converted = 0
    for module in model.modules():
        if type(module) is nn.BatchNorm1d:
            module.__class__ = SyncBatchNorm1d
            converted += 1
    return converted


# ---------------------------------------------------------------------------------------------------------------------
# spawning workers on this machine
# ---------------------------------------------------------------------------------------------------------------------
#: seconds the other workers get to stop on their own after one failed, and the stragglers after SIGTERM, before
#: SIGKILL; also how long a worker that reported success may take to exit
SPAWN_GRACE_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when the process that spawned it dies (no orphaned workers)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _worker(rank: int, nproc: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...], report: Any) -> None:
    """One spawned worker: run ``fn(*args)``, send ``("ok", "")`` or ``("error", traceback)``, then ``os._exit``.

    ``os._exit`` skips the interpreter's teardown: a worker whose peers are gone can hang there (destructors of
    process groups and their threads), and everything the trainer writes is already written atomically.
    """
    import traceback

    _die_with_parent()
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
    )
    code = 0
    try:
        fn(*args)
        report.send(("ok", ""))
    except BaseException:
        code = 1
        text = traceback.format_exc()
        print(text, file=sys.stderr, end="")
        report.send(("error", text))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def spawn(nproc: int, fn: Callable[..., Any], *args: Any, grace_s: float | None = None) -> None:
    """Run ``fn(*args)`` in ``nproc`` fresh processes forming one process group on this machine (127.0.0.1).

    ``fn`` must be importable (a module-level function).  Every wait is bounded: when a worker fails (or dies), the
    others get ``grace_s`` seconds (default :data:`SPAWN_GRACE_S`) to stop on their own, then SIGTERM, then
    SIGKILL; a worker that reported success and does not exit within ``grace_s`` is killed.  A failure raises
    :class:`WorkerError` carrying the first failing worker's last error line (its full traceback is on stderr).
    """
    import multiprocessing as mp
    import multiprocessing.connection as mpc
    import time

    grace = SPAWN_GRACE_S if grace_s is None else grace_s
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs: list[Any] = []
    reports: list[Any] = []
    status: dict[int, tuple[str, str]] = {}
    failure: str | None = None
    deadline: float | None = None  # set once every worker reported, or one failed
    try:
        for rank in range(nproc):  # inside the try: a start that fails stops the workers already started
            receive, send = ctx.Pipe(duplex=False)
            reports.append(receive)
            proc = ctx.Process(target=_worker, args=(rank, nproc, port, fn, args, send), name=f"dgl-hod-rank{rank}")
            proc.start()
            procs.append(proc)
            send.close()  # the worker holds the only sending end: EOF here means it is gone
        while len(status) < nproc or any(p.is_alive() for p in procs):
            if deadline is not None and time.monotonic() > deadline:
                break
            waiting = [reports[r] for r in range(nproc) if r not in status]
            waiting += [p.sentinel for p in procs if p.is_alive()]
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            for ready in mpc.wait(waiting, timeout=timeout):
                rank = next((r for r, conn in enumerate(reports) if conn is ready), -1)
                if rank >= 0:  # a report (or its EOF); a process sentinel only wakes the loop
                    try:
                        status[rank] = reports[rank].recv()
                    except EOFError:  # died without a word (a signal, os._exit elsewhere, out of memory)
                        procs[rank].join(1.0)
                        status[rank] = ("error", f"worker {rank} died (exit code {procs[rank].exitcode})")
                    if status[rank][0] == "error" and failure is None:
                        failure = status[rank][1]
            if deadline is None and (failure is not None or len(status) == nproc):
                deadline = time.monotonic() + grace
    finally:
        _stop(procs, grace)
        for r in reports:
            r.close()
    if failure is not None:
        last = failure.strip().splitlines()[-1] if failure.strip() else "unknown error"
        raise WorkerError(f"a training worker failed: {last}")


def _stop(procs: Sequence[Any], grace: float) -> None:
    """SIGTERM the workers still alive, SIGKILL those alive ``grace`` seconds later, and reap them all."""
    import time

    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.terminate()
    end = time.monotonic() + grace
    for p in alive:
        p.join(max(0.0, end - time.monotonic()))
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join()
