r"""Checkpoints and run folders of :mod:`dgl_hod.train`: the run state, safetensors checkpoints, the folder lock.

A checkpoint is one safetensors file: the model, the optimizer's tensors, the best weights and the RNG states (as
uint8 tensors) as tensors, everything else (run settings, :class:`RunState`, optimizer hyper-parameters) as JSON in
its metadata. Nothing is ever unpickled; an old pickle ``checkpoint.pt`` is refused, never opened. A run folder is
used by one trainer at a time (:class:`RunLock`) and is never silently overwritten (:func:`prepare_out_dir`).

>>> from dgl_hod.checkpoint import RunState
>>> RunState(epoch=3).to_json()["epoch"]
3
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .utils import atomic_write_bytes

__all__ = [
    "CHECKPOINT",
    "CheckpointError",
    "RunLock",
    "RunLockedError",
    "RunState",
    "load_checkpoint",
    "prepare_out_dir",
    "save_checkpoint",
]

CHECKPOINT = "checkpoint.safetensors"
LEGACY_CHECKPOINT = "checkpoint.pt"  # pickle checkpoints of dgl-hod <= 0.x: refused, never opened
CHECKPOINT_FORMAT = "dgl_hod.train checkpoint"
CHECKPOINT_VERSION = 2
LOCK_FILE = ".lock"
OUTPUTS = ("record.json", "best.safetensors")


class CheckpointError(RuntimeError):
    """A checkpoint could not be read (truncated, corrupt, a pickle file) or does not belong to this run."""


class RunLockedError(RuntimeError):
    """Another live process is training in the same run folder."""


@dataclass
class RunState:
    """Everything that changes while a run trains (JSON-ready except ``best_state``, the best weights)."""

    epoch: int = 0
    step: int = 0
    planned_epochs: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    elapsed_s: float = 0.0
    plan_rule: str | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, Tensor] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON part (no tensors)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "best_state"}


def _rng_tensors() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The torch, numpy and python RNG states: bit arrays as uint8 tensors, small scalars as JSON."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    tensors = {
        "rng/torch": torch.get_rng_state(),
        "rng/numpy": torch.from_numpy(np.asarray(keys, dtype="<u4").view(np.uint8).copy()),
        "rng/python": torch.from_numpy(np.asarray(internal, dtype="<u4").view(np.uint8).copy()),
    }
    scalars = {"numpy": [name, int(pos), int(has_gauss), float(cached)], "python": [version, gauss_next]}
    return tensors, scalars


def _set_rng(tensors: Mapping[str, Tensor], scalars: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    name, pos, has_gauss, cached = scalars["numpy"]
    keys = tensors["rng/numpy"].numpy().view("<u4").astype(np.uint32)
    np.random.set_state((name, keys, pos, has_gauss, cached))
    version, gauss_next = scalars["python"]
    random.setstate((version, tuple(int(x) for x in tensors["rng/python"].numpy().view("<u4")), gauss_next))


def _optimizer_split(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer state dict as tensors (``optim/<param>/<name>``) and JSON (groups, non-tensor values)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for index, per_param in sd["state"].items():
        for key, value in per_param.items():
            if isinstance(value, Tensor):
                tensors[f"optim/{index}/{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: Path, run_args: Mapping[str, Any], model: nn.Module, opt: torch.optim.Optimizer, state: RunState
) -> None:
    """Write the checkpoint atomically: tensors in safetensors, the rest as JSON in its metadata (no pickle)."""
    from safetensors.torch import save

    rng_tensors, rng_scalars = _rng_tensors()
    opt_tensors, opt_meta = _optimizer_split(opt)
    tensors = {f"model/{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best/{k}": v.detach().cpu().contiguous() for k, v in (state.best_state or {}).items()})
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    meta = {"run_args": run_args, "state": state.to_json(), "optimizer": opt_meta, "rng": rng_scalars}
    metadata = {"format": CHECKPOINT_FORMAT, "version": str(CHECKPOINT_VERSION), "json": json.dumps(meta)}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (safetensors + JSON; never unpickles anything).

    Returns ``{"run_args", "model", "optimizer", "state" (RunState), "rng"}``; ``optimizer`` is a torch
    optimizer state dict.
    """
    from safetensors import safe_open

    if Path(path).name == LEGACY_CHECKPOINT or Path(path).suffix != ".safetensors":
        raise CheckpointError(_legacy_message(Path(path)))
    fix = "delete it to start over (or pass --overwrite), or run without --resume in a new --out"
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:  # safetensors' own errors on truncated or malformed files
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    if metadata.get("format") != CHECKPOINT_FORMAT or metadata.get("version") != str(CHECKPOINT_VERSION):
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} (version {CHECKPOINT_VERSION}); {fix}")
    try:
        meta = json.loads(metadata["json"])
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")}
        return {
            "version": CHECKPOINT_VERSION,
            "run_args": dict(meta["run_args"]),
            "model": {k[6:]: v for k, v in tensors.items() if k.startswith("model/")},
            "optimizer": _optimizer_join(tensors, meta["optimizer"]),
            "rng": (tensors, meta["rng"]),
            "state": RunState(**meta["state"], best_state=best or None),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt (metadata: {exc!r}); {fix}") from exc


def _legacy_message(path: Path) -> str:
    return (
        f"{path} is a pickle checkpoint (written by an older dgl-hod); it is not loaded, because unpickling a file "
        f"can run arbitrary code. Start the run again: pass --overwrite (overwrite=True) to delete it, or use a new "
        f"--out"
    )


class RunLock:
    """An exclusive lock on a run folder: ``folder/.lock`` holds the owner's pid under a kernel ``flock``.

    The kernel releases the lock when its holder exits, however it exits (``kill -9`` included), so a lock file
    left by a dead process is simply taken over; a live holder makes :meth:`acquire` raise :class:`RunLockedError`
    naming its pid. The file is left in place (removing it would race with a process about to lock it).

    Example:
        >>> import tempfile
        >>> with RunLock(tempfile.mkdtemp()) as lock:
        ...     lock.path.read_text().strip() == str(os.getpid())
        True
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (creating the folder) or raise :class:`RunLockedError`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(
                f"{self.folder} is in use by another training process (pid {holder}, lock {self.path}); wait for "
                f"it to finish, or train into another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def prepare_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber a run folder: a checkpoint needs ``resume`` (or ``overwrite``), finished outputs need
    ``overwrite`` (or ``resume`` of their checkpoint). ``overwrite`` deletes the previous outputs first.
    """
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite starts it over: pass one of them")
    legacy, ckpt = out / LEGACY_CHECKPOINT, out / CHECKPOINT
    finished = [name for name in OUTPUTS if (out / name).exists()]
    if overwrite:
        for path in (legacy, ckpt, *(out / name for name in OUTPUTS)):
            path.unlink(missing_ok=True)
        return
    if legacy.exists():
        raise CheckpointError(_legacy_message(legacy))
    if ckpt.exists() and not resume:
        raise FileExistsError(
            f"{ckpt} exists: pass resume=True (--resume) to continue that run, overwrite=True (--overwrite) to "
            f"start it over, or use a new out_dir (--out)"
        )
    if finished and not (resume and ckpt.exists()):
        raise FileExistsError(
            f"{out} holds a finished run ({', '.join(finished)}); pass overwrite=True (--overwrite) to replace it, "
            f"or use a new out_dir (--out)"
        )


#: the public name of the reader
load_checkpoint = _load_checkpoint
