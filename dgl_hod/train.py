r"""Generic trainer for every registered architecture on every labelled dataset, with resumable checkpoints.

>>> from dgl_hod.train import Recipe, train
>>> record = train("hod-gnn", "zinc12k", {"order": 1}, "runs/k1", time_budget_s=1200)  # doctest: +SKIP
>>> record = train("gine", "zinc12k", {}, "runs/g", Recipe(epochs=10, lr=3e-3))  # doctest: +SKIP

or ``python -m dgl_hod.train hod-gnn --dataset zinc12k --config '{"order": 1}' --time-budget 1200 --out runs/k1``.
The settings are one :class:`Recipe`; a run is a sequence of small named steps (:func:`load_splits`,
:func:`build_or_load_model`, :func:`parameter_groups`, :func:`restore_or_start`, :func:`run_epoch`,
:func:`plan_epochs`, :func:`_finish`). ``docs/training.md`` describes the recipe, the schedule, checkpoints,
resuming, locking and the outputs.

**Recipe.** AdamW; learning rate: linear warm-up over ``warmup_epochs`` epochs, then cosine decay to
``min_lr_ratio * lr`` at the end of the planned epochs (updated every step). Loss by task: L1 for MAE-judged
regression (ZINC), MSE for RMSE-judged regression, BCE-with-logits masked on NaN labels for binary tasks, cross
entropy for multi-class. Validation and test metrics (:func:`dgl_hod.evaluation.evaluate`) after every epoch; the
weights of the best validation epoch are kept, and the test metric *at that epoch* is reported.

**Time budget.** With ``time_budget_s`` and no ``epochs``: epoch 1 runs the warm-up (``warmup_epochs`` is forced to
1), its wall time ``t1`` (training + evaluation) fixes the plan ``planned_epochs = max(1, floor(0.97 * budget / t1))``
and the cosine runs over the planned epochs. Before each later epoch the trainer stops if the mean epoch time so
far would overrun the budget.

**Checkpoints.** After every epoch ``out_dir/checkpoint.safetensors`` is rewritten atomically: tensors in
safetensors, everything else as JSON in its metadata; nothing is ever unpickled (:mod:`dgl_hod.checkpoint`).
``resume=True`` continues bit for bit (a killed run loses at most the epoch in progress). The epoch's batches are a
function of ``(seed, epoch)`` only (:func:`epoch_batches`), and each epoch reseeds the RNGs from ``(seed, epoch,
rank)`` (:func:`seed_epoch`).

**Data-parallel.** ``--nproc N`` (spawned workers) or ``torchrun --nproc_per_node N -m dgl_hod.train``: every
process trains a DDP replica on its part of each global batch of ``batch_size`` graphs, BatchNorm statistics are
synchronised, evaluation is sharded and gathered, rank 0 alone writes (:mod:`dgl_hod.distributed`). A checkpoint
holds no per-rank state, so a run resumes with any number of processes.

**Device and dtype.** ``--device cpu|cuda[:i]`` (a CPU-only DGL is refused at once) and ``--dtype
float32|float64``: the model is moved/cast once, batches follow it, nothing else picks a device or a dtype.

**Run folder.** One trainer at a time: an exclusive lock (``out_dir/.lock``, holding the pid); a folder that holds
finished outputs is not started over unless ``overwrite=True``.

**Outputs.** ``out_dir/best.safetensors`` (best-validation weights) and ``out_dir/record.json`` (arch, full config,
dataset, parameters, recipe, timings, machine, metrics).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import Tensor, nn

from .archs.build import build_model, check_vocab_fits, fill_config
from .checkpoint import (  # noqa: F401 (re-exported: dgl_hod.train keeps its public names)
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    LEGACY_CHECKPOINT,
    LOCK_FILE,
    OUTPUTS,
    CheckpointError,
    RunLock,
    RunLockedError,
    RunState,
    _legacy_message,
    _load_checkpoint,
    _set_rng,
    prepare_out_dir,
    save_checkpoint,
)
from .datasets import Evaluator, GraphDataset
from .distributed import DistContext, WorkerError, gather_rows, in_launched_worker, resolve_device, spawn
from .evaluation import check_batch_size, check_fold, evaluate, outputs_to_predictions
from .utils import atomic_write_bytes, did_you_mean

__all__ = [
    "CHECKPOINT",
    "DTYPES",
    "CheckpointError",
    "Recipe",
    "RunLock",
    "RunLockedError",
    "build_model",
    "build_or_load_model",
    "epoch_batches",
    "evaluate",
    "load_splits",
    "loss_terms",
    "lr_factor",
    "machine_string",
    "main",
    "parameter_groups",
    "plan_epochs",
    "restore_or_start",
    "run_epoch",
    "seed_epoch",
    "set_threads",
    "train",
    "validation_split",
]


#: test-only hook: stop (as if killed) once this many epochs ran in one call, after their checkpoint is written
_STOP_AFTER_EPOCHS: int | None = None
#: set in workers started by ``--nproc``: their parent holds the run folder's lock and has prepared the folder
_FOLDER_READY = False
#: the ``dtype`` recipe values
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class _SimulatedKill(Exception):
    """Raised by the test-only ``_STOP_AFTER_EPOCHS`` hook: the run stops as if killed after a checkpoint."""


# ---------------------------------------------------------------------------------------------------------------------
# the recipe
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """Every setting of a training run except the architecture, its config, the dataset and the output folder.

    Give ``epochs``, ``time_budget_s`` or both (then ``epochs`` is the plan and the budget a hard stop).
    ``max_train_graphs`` / ``max_eval_graphs`` use only the first graphs of the (shuffled with ``seed``) train split /
    of val and test (smoke tests). ``finetune`` names a zoo model to start from (its arch and config are used; the
    head is re-initialised when the dataset is not the entry's); ``freeze`` is ``"base"``, ``"encoder"``,
    ``"all-but-head"`` or a parameter-name prefix; ``body_lr_scale`` trains everything but the head at
    ``lr * body_lr_scale`` (0 < scale <= 1). ``nproc`` data-parallel processes (each with ``threads`` threads; the
    global batch stays ``batch_size``, see :mod:`dgl_hod.distributed`), on ``device`` (``cpu``, ``cuda``,
    ``cuda:i``), in ``dtype`` (``float32`` or ``float64``: parameters, features, outputs and losses). Invalid values
    raise ``ValueError`` naming the setting and the fix.

    Example:
        >>> Recipe(epochs=10).warmup_epochs_used
        1
        >>> Recipe(batch_size=0, epochs=1)
        Traceback (most recent call last):
        ...
        ValueError: batch_size (--batch-size) must be a positive integer (e.g. 32), got 0
    """

    epochs: int | None = None
    time_budget_s: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_epochs: int = 1
    min_lr_ratio: float = 0.0
    grad_clip: float = 5.0
    seed: int = 0
    threads: int = 1
    eval_batch_size: int = 128
    fold: int | None = None
    max_train_graphs: int | None = None
    max_eval_graphs: int | None = None
    finetune: str | None = None
    freeze: str | None = None
    body_lr_scale: float = 1.0
    optimizer: str = "AdamW"
    nproc: int = 1
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_schedule(self)
        for name, example in (("batch_size", 32), ("eval_batch_size", 128), ("threads", 1), ("nproc", 2)):
            check_batch_size(getattr(self, name), f"{name} (--{name.replace('_', '-')})", example)
        for name in ("max_train_graphs", "max_eval_graphs"):
            if getattr(self, name) is not None:
                check_batch_size(getattr(self, name), f"{name} (--{name.replace('_', '-')})", 64)
        if not 0.0 < self.body_lr_scale <= 1.0:
            raise ValueError(
                f"body_lr_scale (--body-lr-scale) must be in (0, 1], got {self.body_lr_scale!r}; "
                "use freeze= to stop training the body altogether"
            )
        if self.body_lr_scale != 1.0 and self.finetune is None:
            raise ValueError(
                "body_lr_scale only applies when fine-tuning (finetune=ZOO_MODEL): a model trained from "
                "scratch has no pretrained body"
            )
        if self.freeze is not None and self.finetune is None:
            raise ValueError("freeze (--freeze) only applies when fine-tuning (finetune=ZOO_MODEL / --finetune)")
        if self.optimizer != "AdamW":
            raise ValueError(f"optimizer must be 'AdamW' (the only one implemented), got {self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype (--dtype) must be one of {sorted(DTYPES)}, got {self.dtype!r}")

    @property
    def warmup_epochs_used(self) -> int:
        """``warmup_epochs``, or 1 for a budget-only run (the plan is fixed after the warm-up epoch)."""
        return 1 if self.time_budget_s is not None and self.epochs is None else self.warmup_epochs

    @classmethod
    def from_kwargs(cls, recipe: Recipe | None, overrides: Mapping[str, Any]) -> Recipe:
        """``recipe`` (default: ``Recipe()``) with ``overrides`` replaced; an unknown name is a ``TypeError``."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            hints = "".join(did_you_mean(k, names) for k in unknown)
            raise TypeError(f"train() got unknown recipe setting(s) {unknown}.{hints} Recipe fields: {names}")
        return cls(**overrides) if recipe is None else dataclasses.replace(recipe, **overrides)


def _check_schedule(r: Recipe) -> None:
    if r.time_budget_s is None and r.epochs is None:
        raise ValueError("give epochs=..., time_budget_s=..., or both (--epochs N / --time-budget SECONDS)")
    if r.epochs is not None and (isinstance(r.epochs, bool) or not isinstance(r.epochs, int) or r.epochs < 1):
        raise ValueError(f"epochs (--epochs) must be a positive integer, got {r.epochs!r}")
    if r.time_budget_s is not None and not r.time_budget_s > 0:
        raise ValueError(f"time_budget_s (--time-budget) must be positive seconds, got {r.time_budget_s!r}")
    if isinstance(r.warmup_epochs, bool) or not isinstance(r.warmup_epochs, int) or r.warmup_epochs < 0:
        raise ValueError(f"warmup_epochs (--warmup-epochs) must be an integer >= 0, got {r.warmup_epochs!r}")
    if not (r.lr > 0 and math.isfinite(r.lr)):
        raise ValueError(f"lr (--lr) must be a positive number, got {r.lr!r}")
    if not 0.0 <= r.min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio (--min-lr-ratio) must be in [0, 1], got {r.min_lr_ratio!r}")
    if not (r.weight_decay >= 0 and r.grad_clip >= 0):
        raise ValueError(
            f"weight_decay and grad_clip must be >= 0 (0 disables clipping), got {r.weight_decay!r}, {r.grad_clip!r}"
        )


# ---------------------------------------------------------------------------------------------------------------------
# machine, threads, schedule, batches
# ---------------------------------------------------------------------------------------------------------------------
def peak_rss_mib() -> float | None:
    """This process's peak resident set so far, in MiB (``ru_maxrss``; ``None`` where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # pragma: no cover (Windows)
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 / (1024 if sys.platform == "darwin" else 1)  # macOS reports bytes, Linux KiB


def machine_string() -> str:
    """CPU model, core count, OS, python, torch and dgl versions, for records."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    import dgl

    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}, torch {torch.__version__}, dgl {dgl.__version__}"
    )


def set_threads(threads: int) -> None:
    """Use ``threads`` threads in torch *and* in DGL's own OpenMP kernels (message passing).

    DGL's kernels otherwise use every core whatever ``torch.set_num_threads`` says.
    """
    import dgl.utils

    torch.set_num_threads(threads)
    dgl.utils.set_num_threads(threads)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up from ``1/warmup_steps`` to 1, then cosine to ``min_ratio`` at ``total_steps``.

    Example:
        >>> lr_factor(0, 10, 100), lr_factor(55, 10, 100), lr_factor(100, 10, 100)
        (0.1, 0.5, 0.0)
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def epoch_batches(
    num_graphs: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[np.ndarray]:
    """The graph indices of each training batch of ``epoch`` (rank ``rank``'s part): a function of ``(seed, epoch)``.

    The epoch's permutation is ``default_rng([seed, epoch])``, cut into global batches of ``batch_size`` graphs
    (the last one may be smaller). With ``world_size > 1`` each global batch is cut into ``world_size`` contiguous
    parts (``np.array_split``: sizes differ by at most one, a part may be empty) and rank ``r`` takes part ``r``:
    every rank makes the same number of steps, the ranks partition the epoch, and step ``s`` of ``N`` ranks together
    trains on the graphs of step ``s`` of one process.

    Example:
        >>> [b.tolist() for b in epoch_batches(5, 2, seed=0, epoch=0)]
        [[2, 4], [3, 0], [1]]
        >>> [b.tolist() for b in epoch_batches(5, 2, seed=0, epoch=0, rank=1, world_size=2)]
        [[4], [0], []]
    """
    order = np.random.default_rng([seed, epoch]).permutation(num_graphs)
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if world_size == 1:
        return batches
    return [np.array_split(b, world_size)[rank] for b in batches]


def steps_per_epoch(num_graphs: int, batch_size: int, world_size: int = 1) -> int:
    """Optimizer steps per epoch: ``ceil(num_graphs / batch_size)`` whatever the world size (same on every rank)."""
    del world_size  # the global batch does not depend on it
    return math.ceil(num_graphs / batch_size)


# ---------------------------------------------------------------------------------------------------------------------
# step 1: the data
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class Splits:
    """The train, validation and test graphs of a run; ``val_name`` is the split used for validation."""

    train: GraphDataset
    val: GraphDataset
    test: GraphDataset
    val_name: str
    fold: int | None


def validation_split(dataset: str) -> str:
    """``"val"`` when ``dataset`` has a validation split, else ``"test"`` (e.g. MUTAG's 10-fold train/test)."""
    from .datasets import get_info
    from .datasets.registry import canonical_split

    try:
        canonical_split(get_info(dataset), "val")
        return "val"
    except (KeyError, ValueError):
        return "test"


def load_splits(dataset: str, recipe: Recipe) -> Splits:
    """Load train/val/test of ``dataset`` (the recipe's fold), cut to ``max_*_graphs`` if given."""
    from .datasets import load_dataset

    fold = check_fold(dataset, recipe.fold, "fold (--fold)")
    val_name = validation_split(dataset)
    train_ds = load_dataset(dataset, "train", fold=fold)
    val_ds, test_ds = load_dataset(dataset, val_name, fold=fold), load_dataset(dataset, "test", fold=fold)
    if recipe.max_train_graphs is not None and recipe.max_train_graphs < len(train_ds):
        pick = np.random.default_rng(recipe.seed).permutation(len(train_ds))[: recipe.max_train_graphs]
        train_ds = train_ds.subset(np.sort(pick))
    if recipe.max_eval_graphs is not None:
        val_ds = val_ds.subset(np.arange(min(recipe.max_eval_graphs, len(val_ds))))
        test_ds = test_ds.subset(np.arange(min(recipe.max_eval_graphs, len(test_ds))))
    return Splits(train_ds, val_ds, test_ds, val_name, fold)


# ---------------------------------------------------------------------------------------------------------------------
# step 2: the model and its parameter groups
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class ModelSetup:
    """A model ready to train, with its full config, where it started, and its head's parameter-name prefixes."""

    model: nn.Module
    arch: str
    config: dict[str, Any]
    finetuned_from: dict[str, Any] | None = None
    head: tuple[str, ...] = ("head.",)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def build_or_load_model(arch: str | None, dataset: str, config: Mapping[str, Any], recipe: Recipe) -> ModelSetup:
    """A fresh ``arch`` model for ``dataset`` (seeded), or the recipe's ``finetune`` zoo model."""
    seed_everything(recipe.seed)
    if recipe.finetune is None:
        if arch is None:
            raise ValueError("give an architecture name (e.g. hod-gnn), or finetune=ZOO_MODEL (--finetune)")
        try:
            model, full = build_model(arch, dataset, config)
        except TypeError as exc:  # unknown config keys, wrong types
            raise ValueError(f"--config: {exc}") from exc
        return ModelSetup(model, arch, full)
    from . import zoo

    entry = zoo.model_info(recipe.finetune)
    if arch not in (None, entry.arch):
        raise ValueError(f"--finetune {recipe.finetune} is a {entry.arch!r} model, not {arch!r}")
    check_vocab_fits(entry.config, dataset, f"zoo model {recipe.finetune}")
    num_tasks = fill_config(entry.arch, dataset, {}).get("num_tasks")
    # a new dataset is a new task: a fresh head even when the number of outputs matches
    model = zoo.load_model(
        recipe.finetune, num_tasks=num_tasks, freeze=recipe.freeze, new_head=dataset != entry.dataset
    )
    model.train()
    full = json.loads(json.dumps(dataclasses.asdict(model.config)))
    origin = {"zoo_model": recipe.finetune, "freeze": recipe.freeze, "body_lr_scale": recipe.body_lr_scale}
    return ModelSetup(model, entry.arch, full, origin, tuple(entry.head))


def parameter_groups(setup: ModelSetup, recipe: Recipe) -> list[dict[str, Any]]:
    """Optimizer parameter groups of the trainable parameters, each with its ``lr_scale``.

    One group at scale 1, or (fine-tuning with ``body_lr_scale != 1``) the head at 1 and the body at the scale.
    """
    trainable = [(n, p) for n, p in setup.model.named_parameters() if p.requires_grad]
    if setup.finetuned_from is None or recipe.body_lr_scale == 1.0:
        return [{"params": [p for _, p in trainable], "lr_scale": 1.0}]
    groups = [
        {"params": [p for n, p in trainable if n.startswith(setup.head)], "lr_scale": 1.0},
        {"params": [p for n, p in trainable if not n.startswith(setup.head)], "lr_scale": recipe.body_lr_scale},
    ]
    return [g for g in groups if g["params"]]


def loss_function(dataset: str) -> tuple[str, Callable[[Tensor, Tensor], Tensor]]:
    """The training loss of ``dataset``'s task: ``(name, fn(outputs, labels))``.

    L1 for MAE-judged regression, MSE for RMSE-judged regression, BCE-with-logits (NaN labels masked) for binary
    tasks (ROC-AUC, AP, or accuracy with one logit), cross entropy for multi-class. Each is the mean over its
    :func:`loss_terms`; labels are cast to the outputs' dtype (a float64 run stays float64).
    """
    from .datasets import get_info

    info = get_info(dataset)
    if info.task_type == "regression":
        if info.metric == "mae":
            return "L1", lambda pred, y: nn.functional.l1_loss(pred, y.to(pred.dtype))
        return "MSE", lambda pred, y: nn.functional.mse_loss(pred, y.to(pred.dtype))
    if info.task_type == "binary_classification":

        def bce(pred: Tensor, y: Tensor) -> Tensor:
            y = y.to(pred.dtype).reshape(pred.shape)
            mask = ~torch.isnan(y)
            return nn.functional.binary_cross_entropy_with_logits(pred[mask], y[mask])

        return "BCE-with-logits (NaN masked)", bce
    return "cross-entropy", lambda pred, y: nn.functional.cross_entropy(pred, y.long().reshape(-1))


def loss_terms(loss_name: str, y: Tensor) -> int:
    """How many terms the loss ``loss_name`` averages over for labels ``y``: labels (regression), non-NaN labels
    (BCE), graphs (cross entropy). Data-parallel ranks weight their losses by it (:mod:`dgl_hod.distributed`).

    Example:
        >>> loss_terms("BCE-with-logits (NaN masked)", torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
        3
    """
    if loss_name.startswith("BCE"):
        return int((~torch.isnan(y.float())).sum())
    if loss_name == "cross-entropy":
        return len(y)
    return y.numel()


# ---------------------------------------------------------------------------------------------------------------------
# step 3: restore or start (state, checkpoints and the run folder: dgl_hod/checkpoint.py)
# ---------------------------------------------------------------------------------------------------------------------
def restore_or_start(
    out: Path, setup: ModelSetup, opt: torch.optim.Optimizer, run_args: Mapping[str, Any], resume: bool
) -> RunState:
    """Continue from ``out``'s checkpoint (``resume``; model, optimizer, RNG and state restored) or start fresh.

    A checkpoint written with other settings (config, recipe, ``--epochs``, ``--time-budget``) is refused.
    """
    path = out / CHECKPOINT
    if not (resume and path.exists()):
        return RunState(planned_epochs=run_args["epochs"])
    ckpt = _load_checkpoint(path)
    mismatch = {k: (ckpt["run_args"].get(k), v) for k, v in run_args.items() if ckpt["run_args"].get(k) != v}
    if mismatch:
        hint = (
            " A run's plan cannot change on resume (the schedule would no longer match the recorded command): "
            "resume with the checkpoint's values, or start a new run in another --out."
            if {"epochs", "time_budget_s"} & set(mismatch)
            else ""
        )
        raise CheckpointError(
            f"checkpoint {path} was written by a different run; differing settings (checkpoint, now): {mismatch}."
            + hint
        )
    setup.model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    _set_rng(*ckpt["rng"])
    return ckpt["state"]


# ---------------------------------------------------------------------------------------------------------------------
# steps 4-5: one epoch, the plan
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _Run:
    """What the epoch loop needs besides the recipe and the state.

    ``setup.model`` is the model itself (state dicts, evaluation); ``net`` is what trains: the model, or its
    ``DistributedDataParallel`` wrapper on several processes.
    """

    setup: ModelSetup
    splits: Splits
    opt: torch.optim.Optimizer
    loss_name: str
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    evaluator: Evaluator
    run_args: dict[str, Any]
    out: Path
    progress: bool
    log: bool
    ctx: DistContext = field(default_factory=DistContext)
    net: nn.Module | None = None
    dtype: torch.dtype = torch.float32


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed torch, numpy and python's ``random`` from ``(seed, epoch, rank)`` at the start of an epoch.

    Dropout masks then depend on the epoch and the rank only: ranks draw different masks, and a resumed run (with the
    same number of processes) draws the masks of an uninterrupted one without any per-rank RNG state in the
    checkpoint.
    """
    a, b = (int(x) for x in np.random.SeedSequence([seed, epoch, rank]).generate_state(2))
    torch.manual_seed((a << 32) | b)
    np.random.seed(a)
    random.seed(b)


def _batch(run: _Run, ds: GraphDataset, idx: np.ndarray) -> tuple[Any, Tensor, Tensor | None, Tensor]:
    """Graphs ``idx`` of ``ds`` on the run's device: ``(graph, node features, edge features or None, labels)``.

    Categorical (integer) features stay integers; float features take the model's dtype.
    """
    g, y = ds.batch(idx)
    device = run.ctx.device
    if device.type != "cpu":
        g, y = g.to(device), y.to(device)
    nf = g.ndata["feat"]
    ef = g.edata["feat"] if "feat" in g.edata else None
    nf = nf.to(run.dtype) if nf.is_floating_point() else nf
    ef = ef.to(run.dtype) if ef is not None and ef.is_floating_point() else ef
    return g, nf, ef, y


def _train_steps(run: _Run, recipe: Recipe, state: RunState) -> tuple[list[float], list[int], float]:
    """One epoch of optimizer steps; returns the per-step mean losses (of the global batch), its sizes, the last lr
    factor. On ``N`` processes each rank's loss is weighted so that DDP's average is the global batch's mean.
    """
    from tqdm.auto import tqdm

    ctx, opt, epoch, n = run.ctx, run.opt, state.epoch, len(run.splits.train)
    net = run.net if run.net is not None else run.setup.model
    net.train()
    sizes = [len(b) for b in epoch_batches(n, recipe.batch_size, recipe.seed, epoch)]
    mine = epoch_batches(n, recipe.batch_size, recipe.seed, epoch, ctx.rank, ctx.world_size)
    warmup_steps = max(1, recipe.warmup_epochs_used * len(sizes))
    total_steps = (state.planned_epochs or max(epoch + 1, 1)) * len(sizes)
    values, terms, factor = [], [], 1.0
    bar = tqdm(mine, desc=f"epoch {epoch + 1}/{state.planned_epochs or '?'}", disable=not run.progress, leave=False)
    for b, idx in enumerate(bar):
        g, nf, ef, y = _batch(run, run.splits.train, idx)
        factor = lr_factor(state.step, warmup_steps, total_steps, recipe.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = recipe.lr * factor * group.get("lr_scale", 1.0)
        out = net(g, nf, ef)
        if ctx.world_size == 1:
            loss = run.loss_fn(out, y)
        else:  # sum of this rank's terms * N / (terms of the global batch): DDP's mean is the global batch's mean
            local = loss_terms(run.loss_name, y)
            terms.append(max(ctx.all_sum([local])[0], 1.0))
            total = run.loss_fn(out, y) * local if local else out.sum() * 0.0
            loss = total * (ctx.world_size / terms[-1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip:
            nn.utils.clip_grad_norm_(run.setup.model.parameters(), recipe.grad_clip)
        opt.step()
        state.step += 1
        values.append(loss.item() if ctx.world_size == 1 else total.item())
        if b % 20 == 0 and ctx.world_size == 1:
            bar.set_postfix(loss=f"{np.average(values, weights=sizes[: len(values)]):.4f}")
    bar.close()
    if ctx.world_size > 1:  # the global batch's mean loss of each step
        values = [v / t for v, t in zip(ctx.all_sum(values), terms)]
    return values, sizes, factor


@torch.no_grad()
def _evaluate(run: _Run, ds: GraphDataset, batch_size: int) -> float:
    """The run's metric on ``ds`` (eval mode; each rank predicts a contiguous slice, gathered on every rank)."""
    ctx, model = run.ctx, run.setup.model
    parts = np.array_split(np.arange(len(ds)), ctx.world_size)
    idx = parts[ctx.rank]
    ys, outs = [], []
    was_training = model.training
    model.eval()
    try:
        for s in range(0, max(len(idx), 1), batch_size):  # an empty slice still runs once (the outputs' shape)
            g, nf, ef, y = _batch(run, ds, idx[s : s + batch_size])
            outs.append(model(g, nf, ef))
            ys.append(y.float().reshape(len(y), -1))
    finally:
        model.train(was_training)
    sizes = [len(p) for p in parts]
    y_true, outputs = gather_rows(ctx, torch.cat(ys), sizes), gather_rows(ctx, torch.cat(outs), sizes)
    ev = run.evaluator
    result = ev.eval({"y_true": y_true.cpu(), "y_pred": outputs_to_predictions(ev, outputs).cpu()})
    return float(result[ev.eval_metric])


def run_epoch(run: _Run, recipe: Recipe, state: RunState) -> dict[str, Any]:
    """Train one epoch (batches of :func:`epoch_batches`, lr set per step), then evaluate val and test.

    Returns the epoch's history entry (``train_loss``, ``val``, ``test``, ``lr_end``, wall times, ``train_cpu_s``:
    the CPU seconds of training summed over threads and processes); updates ``state``'s
    step, epoch, history, best and best weights.
    """
    t0, cpu0 = time.time(), time.process_time()
    seed_epoch(recipe.seed, state.epoch, run.ctx.rank)
    losses, counts, factor = _train_steps(run, recipe, state)
    train_time = time.time() - t0
    train_cpu = run.ctx.all_sum([time.process_time() - cpu0])[0]  # CPU seconds of all threads of all processes
    val = _evaluate(run, run.splits.val, recipe.eval_batch_size)
    test = _evaluate(run, run.splits.test, recipe.eval_batch_size)
    state.epoch += 1
    entry = {
        "epoch": state.epoch,
        "train_loss": float(np.average(losses, weights=counts)),
        "val": val,
        "test": test,
        "lr_end": recipe.lr * factor,
        "train_time_s": train_time,
        "train_cpu_s": train_cpu,
        "time_s": time.time() - t0,
        "peak_rss_mib": run.ctx.all_max([peak_rss_mib() or 0.0])[0] or None,
    }
    state.history.append(entry)
    if run.evaluator.is_better(val, None if state.best is None else state.best["val"]):
        state.best = {"epoch": state.epoch, "val": val, "test": test}
        state.best_state = {k: v.detach().clone() for k, v in run.setup.model.state_dict().items()}
    return entry


def plan_epochs(state: RunState, recipe: Recipe, epoch_time: float) -> None:
    """Budget-only runs: after the warm-up epoch, fix ``planned_epochs = max(1, floor(0.97 * budget / t1))``."""
    if state.planned_epochs is not None or recipe.time_budget_s is None:
        return
    state.planned_epochs = max(1, int(0.97 * recipe.time_budget_s // epoch_time))
    state.plan_rule = (
        f"planned_epochs = max(1, floor(0.97 * time_budget_s / t1)) with t1 = "
        f"{epoch_time:.1f} s, the wall time of epoch 1 (training + evaluation)"
    )


def stop_reason(state: RunState, recipe: Recipe, elapsed_s: float) -> str | None:
    """Why to stop before the next epoch (plan done, or the budget would overrun), or ``None`` to go on."""
    if state.planned_epochs is not None and state.epoch >= state.planned_epochs:
        return "planned epochs done"
    if recipe.time_budget_s is not None and state.history:
        mean_epoch = float(np.mean([h["time_s"] for h in state.history]))
        if elapsed_s + mean_epoch > recipe.time_budget_s:
            return f"time budget: {elapsed_s:.0f} s used + {mean_epoch:.0f} s per epoch > {recipe.time_budget_s:.0f} s"
    return None


def _train_epochs(run: _Run, recipe: Recipe, state: RunState) -> str:
    """The epoch loop: plan, train, checkpoint, until :func:`stop_reason` says stop; returns the reason."""
    ctx, session_start, base_elapsed = run.ctx, time.time(), state.elapsed_s
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    state.sessions.append(
        {"start_epoch": state.epoch, "started": started, "world_size": ctx.world_size, "threads": recipe.threads}
    )

    def elapsed() -> float:  # rank 0's clock on every rank: the plan and the stop decisions must agree
        return ctx.broadcast_floats([base_elapsed + (time.time() - session_start)])[0]

    epochs_this_call = 0
    while (reason := stop_reason(state, recipe, elapsed())) is None:
        if _STOP_AFTER_EPOCHS is not None and epochs_this_call >= _STOP_AFTER_EPOCHS:
            raise _SimulatedKill(f"stopped after {epochs_this_call} epoch(s) (test hook)")
        entry = run_epoch(run, recipe, state)
        entry["train_time_s"], entry["time_s"] = ctx.broadcast_floats([entry["train_time_s"], entry["time_s"]])
        plan_epochs(state, recipe, entry["time_s"])
        state.elapsed_s = elapsed()
        if ctx.is_main:
            save_checkpoint(run.out / CHECKPOINT, run.run_args, run.setup.model, run.opt, state)
        ctx.barrier()  # a rank stopping now (a kill, the test hook) leaves a complete checkpoint behind
        epochs_this_call += 1
        if run.log:
            print(
                f"epoch {entry['epoch']}/{state.planned_epochs}: loss {entry['train_loss']:.4f} val "
                f"{run.evaluator.eval_metric} {entry['val']:.4f} test {entry['test']:.4f} ({entry['time_s']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    state.elapsed_s = elapsed()  # wall time of the whole run, checkpoint writes included
    return reason


# ---------------------------------------------------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------------------------------------------------
def train(
    arch: str | None,
    dataset: str,
    config: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike = "runs/run",
    recipe: Recipe | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """Train ``arch`` on ``dataset`` into ``out_dir`` (see the module docstring); returns the written record.

    Args:
        arch: a registered architecture (``None`` with ``finetune=``: the zoo entry's).
        dataset: a registered dataset with a training metric.
        config: the architecture's config (``create_model`` keywords); dataset-derived fields are filled in.
        out_dir: the run folder (locked while training).
        recipe: the settings; ``**settings`` override single fields (``epochs=5, lr=3e-3``, see :class:`Recipe`).
        resume: continue from ``out_dir``'s checkpoint (a fresh start if there is none).
        overwrite: delete a previous run's outputs in ``out_dir`` and start over.
        progress: tqdm bars.
        log: one line per epoch on stderr.
        **settings: :class:`Recipe` fields.

    Returns:
        The ``record.json`` dict (always the same shape).
    """
    recipe = Recipe.from_kwargs(recipe, settings)
    from .datasets import get_info

    if get_info(dataset).task_type == "isomorphism":
        raise ValueError(
            f"{dataset} is judged by pair distinction, not a training metric; use dgl_hod.expressivity for it"
        )
    out, config = Path(out_dir), dict(config or {})
    device = resolve_device(recipe.device)  # no CUDA DGL / no GPU: refused before anything is loaded
    if recipe.nproc > 1 and not in_launched_worker():
        return _spawn_workers(arch, dataset, config, out, recipe, resume, overwrite, progress, log)
    ctx = DistContext.from_env(device)
    try:
        if recipe.nproc not in (1, ctx.world_size):
            raise ValueError(
                f"nproc (--nproc) is {recipe.nproc} but this process is one of {ctx.world_size} (torchrun's "
                "WORLD_SIZE): under torchrun leave --nproc out"
            )
        with _run_folder(out, ctx, resume, overwrite):
            return _train_here(
                arch, dataset, config, out, recipe, ctx, resume, progress and ctx.is_main, log and ctx.is_main
            )
    finally:
        ctx.close()


def _train_here(
    arch: str | None,
    dataset: str,
    config: dict[str, Any],
    out: Path,
    recipe: Recipe,
    ctx: DistContext,
    resume: bool,
    progress: bool,
    log: bool,
) -> dict[str, Any]:
    """The steps of a run in this process (one of ``ctx.world_size``), in a prepared and locked run folder."""
    set_threads(recipe.threads)
    splits = load_splits(dataset, recipe)
    setup = build_or_load_model(arch, dataset, config, recipe)
    dtype = DTYPES[recipe.dtype]
    setup.model.to(device=ctx.device, dtype=dtype)
    opt = torch.optim.AdamW(parameter_groups(setup, recipe), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_name, loss_fn = loss_function(dataset)
    run_args = _run_args(setup, dataset, recipe)
    state = restore_or_start(out, setup, opt, run_args, resume)
    net = ctx.wrap(setup.model)  # after the restore: every rank starts from the same weights
    run = _Run(
        setup, splits, opt, loss_name, loss_fn, Evaluator(dataset), run_args, out, progress, log, ctx, net, dtype
    )
    reason = _train_epochs(run, recipe, state)
    return _finish(recipe, run, state, reason)


@contextlib.contextmanager
def _run_folder(out: Path, ctx: DistContext, resume: bool, overwrite: bool) -> Iterator[None]:
    """Rank 0 locks and prepares the run folder (:class:`RunLock`, :func:`prepare_out_dir`); the other ranks learn
    whether it could. Workers started by ``--nproc`` skip this: their parent did it and holds the lock.
    """
    if _FOLDER_READY:
        yield
        return
    lock, error = RunLock(out), None
    if ctx.is_main:
        try:
            lock.acquire()
            prepare_out_dir(out, resume, overwrite)
        except Exception as exc:
            lock.release()
            error = exc
    if not ctx.agree(error is None):
        raise error or RuntimeError(f"rank 0 could not prepare the run folder {out} (see its error); stopping")
    try:
        yield
    finally:
        lock.release()


def _spawn_workers(
    arch: str | None,
    dataset: str,
    config: dict[str, Any],
    out: Path,
    recipe: Recipe,
    resume: bool,
    overwrite: bool,
    progress: bool,
    log: bool,
) -> dict[str, Any]:
    """``nproc`` worker processes train the run together (:func:`dgl_hod.distributed.spawn`); this process holds the
    folder's lock meanwhile and returns the record rank 0 wrote. Input errors are raised here, before spawning.
    """
    import importlib

    from .datasets.registry import REGISTRY

    if dataset.lower().strip() not in REGISTRY:
        raise ValueError(
            f"--nproc starts fresh worker processes, which cannot see {dataset!r}: it is registered in this process "
            f"only (--data, register_dataset). Run the command under torchrun instead (torchrun --standalone "
            f"--nproc_per_node {recipe.nproc} -m dgl_hod.train ...: every rank registers it), or without --nproc"
        )
    with RunLock(out):
        prepare_out_dir(out, resume, overwrite)
        build_or_load_model(arch, dataset, config, recipe)  # a bad config or zoo name: one error here, not N
        this = importlib.import_module(__name__ if __name__ != "__main__" else "dgl_hod.train")
        args = (arch, dataset, config, str(out), recipe, resume, progress, log, _STOP_AFTER_EPOCHS)
        try:
            spawn(recipe.nproc, this._worker_main, *args)
        except WorkerError as exc:
            if "_SimulatedKill" in str(exc):
                raise _SimulatedKill(str(exc)) from None
            raise
    return json.loads((out / "record.json").read_text())


def _worker_main(
    arch: str | None,
    dataset: str,
    config: dict[str, Any],
    out: str,
    recipe: Recipe,
    resume: bool,
    progress: bool,
    log: bool,
    stop_after: int | None,
) -> None:
    """One ``--nproc`` worker (its rank is in the environment :func:`~dgl_hod.distributed.spawn` set)."""
    global _FOLDER_READY, _STOP_AFTER_EPOCHS
    _FOLDER_READY, _STOP_AFTER_EPOCHS = True, stop_after
    train(arch, dataset, config, out, recipe, resume=resume, progress=progress, log=log)


def _run_args(setup: ModelSetup, dataset: str, recipe: Recipe) -> dict[str, Any]:
    """The settings a checkpoint must agree with to be resumed (JSON-normalised)."""
    args = {
        "arch": setup.arch,
        "dataset": dataset,
        "config": setup.config,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "weight_decay": recipe.weight_decay,
        "warmup_epochs": recipe.warmup_epochs_used,
        "min_lr_ratio": recipe.min_lr_ratio,
        "grad_clip": recipe.grad_clip,
        "seed": recipe.seed,
        "fold": recipe.fold,
        "max_train_graphs": recipe.max_train_graphs,
        "max_eval_graphs": recipe.max_eval_graphs,
        "epochs": recipe.epochs,
        "time_budget_s": recipe.time_budget_s,
        "finetuned_from": setup.finetuned_from,
    }
    if recipe.dtype != "float32":  # absent for float32, so checkpoints written before the setting existed resume
        args["dtype"] = recipe.dtype
    return json.loads(json.dumps(args))


# ---------------------------------------------------------------------------------------------------------------------
# step 6: outputs
# ---------------------------------------------------------------------------------------------------------------------
def _finish(recipe: Recipe, run: _Run, state: RunState, reason: str) -> dict[str, Any]:
    """Write ``best.safetensors`` and ``record.json`` (both atomically, rank 0 only); returns the record."""
    from safetensors.torch import save

    if state.best_state is None or state.best is None:
        raise RuntimeError("no epoch finished; nothing to save")
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.best_state.items()}
    data = _data_record(run.splits, recipe)
    metadata = {
        "arch": run.setup.arch,
        "dataset": run.run_args["dataset"],
        "config": json.dumps(run.setup.config),
        "data": json.dumps(data),  # package cross-checks record.json's data selection against this
    }
    if run.ctx.is_main:
        atomic_write_bytes(run.out / "best.safetensors", save(tensors, metadata=metadata))
    hist = state.history
    times = [h["time_s"] for h in hist]
    record = {
        "arch": run.setup.arch,
        "dataset": run.run_args["dataset"],
        "config": run.setup.config,
        "num_params": int(sum(p.numel() for p in run.setup.model.parameters())),
        "finetuned_from": run.setup.finetuned_from,
        "data": data,
        "recipe": _recipe_record(recipe, run, state, reason),
        "timing": {
            "wall_time_s": state.elapsed_s,
            "time_per_epoch_s_mean": float(np.mean(times)),
            "time_per_epoch_s_median": float(np.median(times)),
            "train_time_per_epoch_s_mean": float(np.mean([h["train_time_s"] for h in hist])),
            # epochs trained before this field existed (resumed runs) have none
            "peak_rss_mib": max((h["peak_rss_mib"] for h in hist if h.get("peak_rss_mib")), default=None),
            "machine": machine_string(),
        },
        "metrics": {
            "metric": run.evaluator.eval_metric,
            "best_epoch": state.best["epoch"],
            "best_val": state.best["val"],
            "test_at_best_val": state.best["test"],
            "final_val": hist[-1]["val"],
            "final_test": hist[-1]["test"],
        },
        "history": hist,
        "weights": "best.safetensors",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if run.ctx.is_main:
        atomic_write_bytes(run.out / "record.json", json.dumps(record, indent=2).encode())
    return record


def _data_record(splits: Splits, recipe: Recipe) -> dict[str, Any]:
    return {
        "train_graphs": len(splits.train),
        "val_graphs": len(splits.val),
        "test_graphs": len(splits.test),
        "val_split": splits.val_name,
        "fold": splits.fold,
        "max_train_graphs": recipe.max_train_graphs,
        "max_eval_graphs": recipe.max_eval_graphs,
    }


def _recipe_record(recipe: Recipe, run: _Run, state: RunState, reason: str) -> dict[str, Any]:
    warmup = recipe.warmup_epochs_used
    return {
        "optimizer": recipe.optimizer,
        "lr": recipe.lr,
        "weight_decay": recipe.weight_decay,
        "lr_schedule": (
            f"linear warm-up over {warmup} epoch(s), then cosine decay to {recipe.min_lr_ratio} x lr at the end "
            f"of the planned epochs; updated per step"
        ),
        "warmup_epochs": warmup,
        "min_lr_ratio": recipe.min_lr_ratio,
        "grad_clip_norm": recipe.grad_clip,
        "loss": run.loss_name,
        "batch_size": recipe.batch_size,
        "eval_batch_size": recipe.eval_batch_size,
        "steps_per_epoch": steps_per_epoch(len(run.splits.train), recipe.batch_size),
        "seed": recipe.seed,
        "threads": recipe.threads,
        "world_size": run.ctx.world_size,
        "threads_per_process": recipe.threads,
        "device": str(run.ctx.device),
        "dtype": recipe.dtype,
        "epochs_requested": recipe.epochs,
        "time_budget_s": recipe.time_budget_s,
        "planned_epochs": state.planned_epochs,
        "plan_rule": state.plan_rule or "epochs given",
        "epochs_run": state.epoch,
        "stop_reason": reason,
        "sessions": state.sessions,
    }


# ---------------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``prog: error: message (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m dgl_hod.train", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("arch", nargs="?", default=None, help="architecture name (omit with --finetune)")
    p.add_argument("--finetune", default=None, metavar="ZOO_MODEL", help="start from a pretrained zoo model")
    p.add_argument("--freeze", default=None, help="with --finetune: base, encoder, all-but-head or a prefix")
    p.add_argument("--body-lr-scale", type=float, default=1.0, help="with --finetune: lr of all but the head = lr * s")
    p.add_argument(
        "--dataset", default=None, help="a registered dataset (python -m dgl_hod.datasets list), or --data CSV"
    )
    p.add_argument("--config", default="{}", help="JSON object of architecture config keys")
    p.add_argument("--out", required=True, help="the run folder (checkpoint, best weights, record.json)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds; alone, the plan is fixed after epoch 1")
    p.add_argument(
        "--epochs", type=int, default=None, help="planned epochs (given with --time-budget: the budget is a hard stop)"
    )
    defaults = Recipe(epochs=1)
    for flag, kind, text in (
        ("batch-size", int, "training graphs per step"),
        ("lr", float, "peak learning rate (AdamW)"),
        ("weight-decay", float, "AdamW weight decay"),
        ("warmup-epochs", int, "linear warm-up epochs (1 for a budget-only run)"),
        ("min-lr-ratio", float, "the cosine ends at lr * this"),
        ("grad-clip", float, "gradient-norm clipping (0 = off)"),
        ("seed", int, "initialisation, batch order, train subset"),
        ("threads", int, "torch and DGL threads (per process)"),
        ("nproc", int, "data-parallel processes on this machine (not with torchrun); the global batch is unchanged"),
        ("device", str, "cpu, cuda or cuda:INDEX"),
        ("dtype", str, "float32 or float64"),
        ("eval-batch-size", int, "graphs per forward pass when evaluating"),
    ):
        default = getattr(defaults, flag.replace("-", "_"))
        p.add_argument(f"--{flag}", type=kind, default=default, help=f"{text} (default {default})")
    p.add_argument("--fold", type=int, default=None, help="fold of a fold dataset (csl 0-4, mutag/proteins 0-9)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete a previous run's outputs in --out, start over")
    p.add_argument("--max-train-graphs", type=int, default=None)
    p.add_argument("--max-eval-graphs", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON line (for scripts)")
    from .own_data import add_data_arguments

    add_data_arguments(p, featurizer=True)
    return p


def _recipe_from_args(a: argparse.Namespace) -> Recipe:
    return Recipe(
        epochs=a.epochs,
        time_budget_s=a.time_budget,
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        warmup_epochs=a.warmup_epochs,
        min_lr_ratio=a.min_lr_ratio,
        grad_clip=a.grad_clip,
        seed=a.seed,
        threads=a.threads,
        eval_batch_size=a.eval_batch_size,
        fold=a.fold,
        max_train_graphs=a.max_train_graphs,
        max_eval_graphs=a.max_eval_graphs,
        finetune=a.finetune,
        freeze=a.freeze,
        body_lr_scale=a.body_lr_scale,
        nproc=a.nproc,
        device=a.device,
        dtype=a.dtype,
    )


def _summary_lines(rec: Mapping[str, Any], out: str, as_json: bool) -> Iterator[str]:
    m = rec["metrics"]
    summary = {
        "out": out,
        "arch": rec["arch"],
        "dataset": rec["dataset"],
        "params": rec["num_params"],
        "epochs_run": rec["recipe"]["epochs_run"],
        "best_epoch": m["best_epoch"],
        "best_val": m["best_val"],
        "test_at_best_val": m["test_at_best_val"],
        "time_per_epoch_s_mean": rec["timing"]["time_per_epoch_s_mean"],
        "wall_time_s": rec["timing"]["wall_time_s"],
        "stop_reason": rec["recipe"]["stop_reason"],
    }
    if as_json:
        yield json.dumps(summary)
        return
    width = max(len(k) for k in summary) + 2
    yield f"\nfinished {rec['arch']} on {rec['dataset']} ({m['metric']}; weights and record in {out}/)"
    for key, value in summary.items():
        text = f"{value:.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        yield f"  {key.ljust(width)}{text}"


def main(argv: list[str] | None = None) -> int:
    """``python -m dgl_hod.train``: errors in the input are one line on stderr and exit status 2."""
    p = _parser()
    a = p.parse_args(argv)
    if a.arch is None and a.finetune is None:
        p.error("give an architecture (e.g. hod-gnn) or --finetune ZOO_MODEL")
    try:
        config = json.loads(a.config)
    except json.JSONDecodeError as exc:
        p.error(f"--config is not valid JSON ({exc}); give an object, e.g. --config '{{\"hidden_dim\": 64}}'")
    if not isinstance(config, dict):
        p.error(f"--config must be a JSON object of config keys, e.g. '{{\"hidden_dim\": 64}}'; got {a.config!r}")
    try:
        if a.data is not None or a.dataset is None:  # the user's molecules (docs/own-data.md)
            from .own_data import dataset_from_args

            if a.data is None:
                raise ValueError("give --dataset NAME or --data CSV (your molecules, see docs/own-data.md)")
            a.dataset = dataset_from_args(a)
        recipe = _recipe_from_args(a)
        rec = train(
            a.arch, a.dataset, config, a.out, recipe, resume=a.resume, overwrite=a.overwrite, progress=not a.no_progress
        )
    except (ValueError, KeyError, FileExistsError, CheckpointError, RunLockedError, WorkerError) as exc:
        p.exit(2, f"{p.prog}: error: {exc.args[0] if exc.args else exc}\n")
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 prints the summary
        return 0
    for line in _summary_lines(rec, a.out, a.json):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
