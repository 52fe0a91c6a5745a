r"""Generic trainer for every registered architecture on every labelled dataset, with resumable checkpoints.

>>> from dgl_hod.train import train
>>> record = train("hod-gnn", "zinc12k", {"order": 1}, "runs/k1", time_budget_s=1200)   # doctest: +SKIP

or ``python -m dgl_hod.train hod-gnn --dataset zinc12k --config '{"order": 1}' --time-budget 1200 --out runs/k1``.

**Recipe.** AdamW; learning rate: linear warm-up over ``warmup_epochs`` epochs, then cosine decay to
``min_lr_ratio * lr`` at the end of the planned epochs (updated every step).  Loss by task: L1 for MAE-judged
regression (ZINC), MSE for RMSE-judged regression, BCE-with-logits masked on NaN labels for binary tasks, cross
entropy for multi-class.  Validation and test metrics (the dataset's :class:`~dgl_hod.datasets.Evaluator`) after
every epoch; the weights of the best validation epoch are kept, and the test metric *at that epoch* is reported.

**Config auto-fill.**  If the architecture's config dataclass has the fields ``node_vocab``, ``edge_vocab``,
``num_tasks`` and they are not given, they are filled from :func:`~dgl_hod.datasets.get_info` (``edge_vocab`` is
``None`` for datasets whose edges carry no information, i.e. ``edge_feat_dims == (1,)``, and ``num_tasks`` is the
number of classes for multi-class sets).

**Time budget.**  With ``time_budget_s`` and no ``epochs``: epoch 1 runs the warm-up (``warmup_epochs`` is forced to
1), its wall time ``t1`` (training + evaluation) fixes the plan ``planned_epochs = max(1, floor(0.97 * budget / t1))``
and the cosine runs over the planned epochs.  Before each later epoch the trainer stops if the mean epoch time so
far would overrun the budget.  ``record.json`` states the plan, the rule and the epochs actually run.

**Checkpoints.**  After every epoch ``out_dir/checkpoint.pt`` is rewritten atomically (temporary file + ``os.replace``)
with the model, optimizer, step counter, planned epochs, RNG states, history, best-so-far weights and elapsed time.
``resume=True`` continues from it (a killed run loses at most the epoch in progress); a truncated or corrupt
checkpoint raises :class:`CheckpointError`.  The epoch's shuffling is a function of ``(seed, epoch)`` only.

**Outputs.**  ``out_dir/best.safetensors`` (best-validation weights) and ``out_dir/record.json`` (arch, full config,
dataset, parameters, recipe, timings, machine, metrics).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["train", "CheckpointError", "evaluate", "build_model", "machine_string", "lr_factor", "set_threads", "main"]

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_VERSION = 1
HIGHER_IS_BETTER = {"mae": False, "rmse": False, "rocauc": True, "ap": True, "accuracy": True}


class CheckpointError(RuntimeError):
    """A checkpoint could not be read (truncated, corrupt) or does not belong to this run."""


# ---------------------------------------------------------------------------------------------------------------------
def machine_string() -> str:
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
    """Use ``threads`` threads in torch *and* in DGL's own OpenMP kernels (message passing), which otherwise use
    every core whatever ``torch.set_num_threads`` says.
    """
    import dgl.utils

    torch.set_num_threads(threads)
    dgl.utils.set_num_threads(threads)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up from ``1/warmup_steps`` to 1, then cosine to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _fill_config(arch: str, dataset: str, config: dict) -> dict:
    from .archs import get_arch
    from .datasets import get_info

    info = get_info(dataset)
    fields = {f.name for f in dataclasses.fields(get_arch(arch).config_cls)}
    config = dict(config)
    if "node_vocab" in fields and "node_vocab" not in config:
        config["node_vocab"] = tuple(info.node_feat_dims)
    if "edge_vocab" in fields and "edge_vocab" not in config:
        config["edge_vocab"] = None if tuple(info.edge_feat_dims) == (1,) else tuple(info.edge_feat_dims)
    if "num_tasks" in fields and "num_tasks" not in config:
        config["num_tasks"] = info.num_classes if info.task_type == "multiclass_classification" else info.num_tasks
    return config


def check_vocab_fits(config: dict, dataset: str, source: str) -> None:
    """Refuse a model whose categorical input encoders cannot take ``dataset``'s feature ids (an index error deep
    inside an embedding otherwise).  ``source`` names where the config came from, for the message.
    """
    from .datasets import get_info

    info = get_info(dataset)
    for key, dims in (("node_vocab", info.node_feat_dims), ("edge_vocab", info.edge_feat_dims)):
        vocab = config.get(key)
        if vocab is None or (key == "edge_vocab" and tuple(dims) == (1,)):
            continue
        if len(vocab) != len(dims) or any(v < d for v, d in zip(vocab, dims)):
            raise ValueError(
                f"{source} has {key}={tuple(vocab)} but {dataset} has feature vocabularies "
                f"{tuple(dims)}: the encoders cannot read its features. Use a dataset with the same "
                f"featurisation (e.g. a zinc12k model on zinc12k, an ogbg-mol* model on ogbg-mol*) or "
                f"a config whose {key} covers {tuple(dims)}"
            )


def build_model(arch: str, dataset: str, config: dict) -> tuple[nn.Module, dict]:
    """``create_model(arch, **config)`` with the dataset-derived fields filled in; returns the model and the full
    config (a JSON-ready dict).
    """
    from .archs import create_model

    filled = _fill_config(arch, dataset, config)
    check_vocab_fits(filled, dataset, "the config")
    model = create_model(arch, **filled)
    full = dataclasses.asdict(model.config) if dataclasses.is_dataclass(getattr(model, "config", None)) else config
    return model, json.loads(json.dumps(full))


def _model_inputs(g):
    ef = g.edata["feat"] if "feat" in g.edata else None
    return g, g.ndata["feat"], ef


def _loss_fn(info):
    if info.task_type == "regression":
        return nn.L1Loss() if info.metric == "mae" else nn.MSELoss()
    if info.task_type == "binary_classification" and info.metric != "accuracy":

        def bce(pred: Tensor, y: Tensor) -> Tensor:
            mask = ~torch.isnan(y)
            return nn.functional.binary_cross_entropy_with_logits(pred[mask], y[mask])

        return bce
    return lambda pred, y: nn.functional.cross_entropy(pred, y.long().reshape(-1))


def evaluate(model: nn.Module, ds, batch_size: int = 128) -> dict[str, float]:
    """The dataset's metric for ``model`` on ``ds`` (eval mode; restores the previous mode).  Predictions come from
    :func:`dgl_hod.evaluation.predict`; for accuracy-judged sets the class is the argmax (or logit > 0).
    """
    from .datasets import Evaluator
    from .evaluation import predict

    evaluator = Evaluator(ds.name)
    y, pred = predict(model, ds, batch_size)
    if evaluator.eval_metric == "accuracy":
        pred = pred.argmax(1, keepdim=True) if pred.shape[1] > 1 else (pred > 0).long()
        y = y.reshape(-1, 1).long()
    return evaluator.eval({"y_true": y, "y_pred": pred})


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, pickle errors, ...
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc}); delete it "
            f"to start over, or run without resume"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} is not a dgl_hod.train checkpoint (version {CHECKPOINT_VERSION})")
    return ckpt


def _split(info, name: str):
    from .datasets.registry import canonical_split

    try:
        canonical_split(info, name)
        return name
    except (KeyError, ValueError):
        return None


def train(
    arch: str | None,
    dataset: str,
    config: dict | None = None,
    out_dir: str | os.PathLike = "runs/run",
    *,
    time_budget_s: float | None = None,
    epochs: int | None = None,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    warmup_epochs: int = 1,
    min_lr_ratio: float = 0.0,
    grad_clip: float = 5.0,
    seed: int = 0,
    threads: int = 1,
    fold: int | None = None,
    resume: bool = False,
    max_train_graphs: int | None = None,
    max_eval_graphs: int | None = None,
    eval_batch_size: int = 128,
    progress: bool = True,
    log: bool = True,
    stop_after_epochs: int | None = None,
    finetune: str | None = None,
    freeze: str | None = None,
    body_lr_scale: float = 1.0,
) -> dict:
    """Train ``arch`` on ``dataset`` (see the module docstring); returns the record written to ``record.json``.

    Args:
        config: architecture config (``create_model`` keywords); dataset-derived fields are filled in.
        time_budget_s / epochs: at least one; with both, ``epochs`` is the plan and the budget a hard stop.
        max_train_graphs / max_eval_graphs: use only the first graphs of the (shuffled with ``seed``) train split /
            of val and test (smoke tests).
        progress: tqdm bars; log: one line per epoch on stderr.
        stop_after_epochs: stop (checkpoint written, no final outputs) after this many epochs in this call;
            simulates a killed run in tests.
        finetune: a zoo model name: start from its pretrained weights (``arch`` and ``config`` come from the zoo
            entry; pass ``arch=None``); the head is re-initialised when the dataset is not the entry's (a new task).
        freeze: with ``finetune``: ``"base"``, ``"encoder"``, ``"all-but-head"`` or parameter-name prefixes.
        body_lr_scale: with ``finetune``: the learning rate of every parameter outside the zoo entry's head is
            ``lr * body_lr_scale`` (the usual "lower lr for the pretrained body"; 0 < scale <= 1).
    """
    from tqdm.auto import tqdm

    from .datasets import get_info, load_dataset

    if time_budget_s is None and epochs is None:
        raise ValueError("give epochs=..., time_budget_s=..., or both")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if time_budget_s is not None and time_budget_s <= 0:
        raise ValueError(f"time_budget_s must be positive, got {time_budget_s!r}")
    if not 0.0 < body_lr_scale <= 1.0:
        raise ValueError(
            f"body_lr_scale must be in (0, 1], got {body_lr_scale!r}; use freeze= to stop training the body altogether"
        )
    if body_lr_scale != 1.0 and finetune is None:
        raise ValueError(
            "body_lr_scale only applies when fine-tuning (finetune=ZOO_MODEL): a model trained from "
            "scratch has no pretrained body"
        )
    config = dict(config or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    set_threads(threads)
    info = get_info(dataset)
    if info.metric not in HIGHER_IS_BETTER:
        raise ValueError(
            f"{dataset} is judged by {info.metric!r}, not a training metric; use dgl_hod.expressivity for it"
        )

    # --- data ---
    kw = {"fold": fold} if info.num_folds else {}
    if info.num_folds and fold is None:
        raise ValueError(f"{dataset} has {info.num_folds} folds: pass fold=")
    train_ds = load_dataset(dataset, "train", **kw)
    val_name = "val" if _split(info, "val") else "test"
    val_ds, test_ds = load_dataset(dataset, val_name, **kw), load_dataset(dataset, "test", **kw)
    if max_train_graphs is not None and max_train_graphs < len(train_ds):
        pick = np.random.default_rng(seed).permutation(len(train_ds))[:max_train_graphs]
        train_ds = train_ds.subset(np.sort(pick))
    if max_eval_graphs is not None:
        val_ds = val_ds.subset(np.arange(min(max_eval_graphs, len(val_ds))))
        test_ds = test_ds.subset(np.arange(min(max_eval_graphs, len(test_ds))))
    steps_per_epoch = math.ceil(len(train_ds) / batch_size)

    # --- model ---
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    finetuned_from = None
    if finetune is not None:
        from . import zoo as Z

        entry = Z.model_info(finetune)
        if arch not in (None, entry.arch):
            raise ValueError(f"--finetune {finetune} is a {entry.arch!r} model, not {arch!r}")
        arch = entry.arch
        check_vocab_fits(entry.config, dataset, f"zoo model {finetune}")
        filled = _fill_config(arch, dataset, {})
        # a new dataset is a new task: fresh head even when the number of outputs matches
        model = Z.load_model(
            finetune, num_tasks=filled.get("num_tasks"), freeze=freeze, new_head=dataset != entry.dataset
        )
        model.train()
        full_config = json.loads(json.dumps(dataclasses.asdict(model.config)))
        finetuned_from = {"zoo_model": finetune, "freeze": freeze, "body_lr_scale": body_lr_scale}
        head_prefixes = entry.head
    else:
        if arch is None:
            raise ValueError("give an architecture name (or finetune=ZOO_MODEL)")
        model, full_config = build_model(arch, dataset, config)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if finetuned_from is not None and body_lr_scale != 1.0:
        groups = [
            {"params": [p for n, p in trainable if n.startswith(head_prefixes)], "lr_scale": 1.0},
            {"params": [p for n, p in trainable if not n.startswith(head_prefixes)], "lr_scale": body_lr_scale},
        ]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for _, p in trainable], "lr_scale": 1.0}]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    loss_fn = _loss_fn(info)
    higher = HIGHER_IS_BETTER[info.metric]
    if time_budget_s is not None and epochs is None:
        warmup_epochs = 1
    warmup_steps = max(1, warmup_epochs * steps_per_epoch)
    run_args = {
        "arch": arch,
        "dataset": dataset,
        "config": full_config,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_epochs": warmup_epochs,
        "min_lr_ratio": min_lr_ratio,
        "grad_clip": grad_clip,
        "seed": seed,
        "fold": fold,
        "max_train_graphs": max_train_graphs,
        "max_eval_graphs": max_eval_graphs,
        "epochs": epochs,
        "time_budget_s": time_budget_s,
        "finetuned_from": finetuned_from,
    }

    state = {
        "epoch": 0,
        "step": 0,
        "planned_epochs": epochs,
        "history": [],
        "best": None,
        "best_state": None,
        "elapsed_s": 0.0,
        "plan_rule": None,
        "sessions": [],
    }
    if resume and ckpt_path.exists():
        ckpt = _load_checkpoint(ckpt_path)
        mismatch = {
            k: (ckpt["run_args"].get(k), v)
            for k, v in run_args.items()
            if k not in ("epochs", "time_budget_s") and ckpt["run_args"].get(k) != v
        }
        if mismatch:
            raise CheckpointError(
                f"checkpoint {ckpt_path} was written by a different run; differing settings "
                f"(checkpoint, now): {mismatch}"
            )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"])
        state = ckpt["state"]
        if epochs is not None and epochs != state["planned_epochs"]:  # extend/shorten the plan on resume
            state["planned_epochs"] = epochs
            state["plan_rule"] = f"epochs={epochs} given on resume (the cosine is stretched from there)"
    elif ckpt_path.exists() and not resume:
        raise FileExistsError(
            f"{ckpt_path} exists: pass resume=True (--resume) to continue that run, or use a new out_dir"
        )
    session_start = time.time()
    state["sessions"].append(
        {"start_epoch": state["epoch"], "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    )

    def save_checkpoint() -> None:
        ckpt = {
            "version": CHECKPOINT_VERSION,
            "run_args": run_args,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": _rng_state(),
            "state": state,
        }
        _atomic_write_bytes(ckpt_path, lambda f: torch.save(ckpt, f))

    def elapsed() -> float:
        return base_elapsed + (time.time() - session_start)  # state["elapsed_s"] already holds this session's time

    base_elapsed = state["elapsed_s"]
    stop_reason = None
    epochs_this_call = 0
    while True:
        planned = state["planned_epochs"]
        if planned is not None and state["epoch"] >= planned:
            stop_reason = "planned epochs done"
            break
        if time_budget_s is not None and state["history"]:
            mean_epoch = np.mean([h["time_s"] for h in state["history"]])
            if elapsed() + mean_epoch > time_budget_s:
                stop_reason = (
                    f"time budget: {elapsed():.0f} s used + {mean_epoch:.0f} s per epoch > {time_budget_s:.0f} s"
                )
                break
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs:
            state["elapsed_s"] = elapsed()
            return {"stopped_after_epochs": epochs_this_call, "epoch": state["epoch"]}
        epoch = state["epoch"]
        t0 = time.time()
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(train_ds))
        total_steps = (planned or max(epoch + 1, 1)) * steps_per_epoch
        losses, counts = [], []
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{planned or '?'}",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        for b in bar:
            idx = order[b * batch_size : (b + 1) * batch_size]
            g, y = train_ds.batch(idx)
            factor = lr_factor(state["step"], warmup_steps, total_steps, min_lr_ratio)
            for group in opt.param_groups:
                group["lr"] = lr * factor * group.get("lr_scale", 1.0)
            pred = model(*_model_inputs(g))
            loss = loss_fn(pred, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            state["step"] += 1
            losses.append(loss.item())
            counts.append(len(idx))
            if b % 20 == 0:
                bar.set_postfix(loss=f"{np.average(losses, weights=counts):.4f}")
        bar.close()
        train_time = time.time() - t0
        val = evaluate(model, val_ds, eval_batch_size)[info.metric]
        test = evaluate(model, test_ds, eval_batch_size)[info.metric]
        epoch_time = time.time() - t0
        state["epoch"] = epoch + 1
        entry = {
            "epoch": epoch + 1,
            "train_loss": float(np.average(losses, weights=counts)),
            "val": val,
            "test": test,
            "lr_end": lr * factor,
            "train_time_s": train_time,
            "time_s": epoch_time,
        }
        state["history"].append(entry)
        best = state["best"]
        if best is None or (val > best["val"] if higher else val < best["val"]):
            state["best"] = {"epoch": epoch + 1, "val": val, "test": test}
            state["best_state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if state["planned_epochs"] is None:  # time budget, no epochs: plan after the warm-up epoch
            state["planned_epochs"] = max(1, int(0.97 * time_budget_s // epoch_time))
            state["plan_rule"] = (
                f"planned_epochs = max(1, floor(0.97 * time_budget_s / t1)) with t1 = "
                f"{epoch_time:.1f} s, the wall time of epoch 1 (training + evaluation)"
            )
        state["elapsed_s"] = base_elapsed + (time.time() - session_start)
        save_checkpoint()
        epochs_this_call += 1
        if log:
            print(
                f"epoch {epoch + 1}/{state['planned_epochs']}: loss {entry['train_loss']:.4f} val {info.metric} "
                f"{val:.4f} test {test:.4f} ({epoch_time:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    state["elapsed_s"] = elapsed()  # wall time of the whole run, checkpoint writes included
    return _finish(
        model,
        state,
        run_args,
        info,
        out,
        stop_reason,
        len(train_ds),
        len(val_ds),
        len(test_ds),
        val_name,
        threads,
        steps_per_epoch,
    )


def _finish(
    model, state, run_args, info, out: Path, stop_reason, n_train, n_val, n_test, val_name, threads, steps_per_epoch
) -> dict:
    from safetensors.torch import save_file

    best_state = state["best_state"]
    if best_state is None:
        raise RuntimeError("no epoch finished; nothing to save")
    tensors = {k: v.contiguous().clone() for k, v in best_state.items()}
    tmp = out / "best.safetensors.tmp"
    save_file(
        tensors,
        str(tmp),
        metadata={"arch": run_args["arch"], "dataset": run_args["dataset"], "config": json.dumps(run_args["config"])},
    )
    os.replace(tmp, out / "best.safetensors")
    hist = state["history"]
    times = [h["time_s"] for h in hist]
    record = {
        "arch": run_args["arch"],
        "dataset": run_args["dataset"],
        "config": run_args["config"],
        "num_params": int(sum(p.numel() for p in model.parameters())),
        "finetuned_from": run_args["finetuned_from"],
        "data": {
            "train_graphs": n_train,
            "val_graphs": n_val,
            "test_graphs": n_test,
            "val_split": val_name,
            "fold": run_args["fold"],
        },
        "recipe": {
            "optimizer": "AdamW",
            "lr": run_args["lr"],
            "weight_decay": run_args["weight_decay"],
            "lr_schedule": (
                f"linear warm-up over {run_args['warmup_epochs']} epoch(s), then cosine decay to "
                f"{run_args['min_lr_ratio']} x lr at the end of the planned epochs; updated per step"
            ),
            "grad_clip_norm": run_args["grad_clip"],
            "loss": {"mae": "L1", "rmse": "MSE"}.get(
                info.metric,
                "BCE-with-logits (NaN masked)" if info.task_type == "binary_classification" else "cross-entropy",
            ),
            "batch_size": run_args["batch_size"],
            "steps_per_epoch": steps_per_epoch,
            "seed": run_args["seed"],
            "threads": threads,
            "epochs_requested": run_args["epochs"],
            "time_budget_s": run_args["time_budget_s"],
            "planned_epochs": state["planned_epochs"],
            "plan_rule": state["plan_rule"] or "epochs given",
            "epochs_run": state["epoch"],
            "stop_reason": stop_reason,
            "sessions": state["sessions"],
        },
        "timing": {
            "wall_time_s": state["elapsed_s"],
            "time_per_epoch_s_mean": float(np.mean(times)),
            "time_per_epoch_s_median": float(np.median(times)),
            "train_time_per_epoch_s_mean": float(np.mean([h["train_time_s"] for h in hist])),
            "machine": machine_string(),
        },
        "metrics": {
            "metric": info.metric,
            "best_epoch": state["best"]["epoch"],
            "best_val": state["best"]["val"],
            "test_at_best_val": state["best"]["test"],
            "final_val": hist[-1]["val"],
            "final_test": hist[-1]["test"],
        },
        "history": hist,
        "weights": "best.safetensors",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write_bytes(out / "record.json", lambda f: f.write(json.dumps(record, indent=2).encode()))
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dgl_hod.train", description=__doc__.split("\n\n")[0])
    p.add_argument("arch", nargs="?", default=None, help="architecture name (omit with --finetune)")
    p.add_argument("--finetune", default=None, metavar="ZOO_MODEL", help="start from a pretrained zoo model")
    p.add_argument("--freeze", default=None, help="with --finetune: base, encoder, all-but-head or prefixes")
    p.add_argument(
        "--body-lr-scale",
        type=float,
        default=1.0,
        help="with --finetune: learning rate of everything but the head = lr * this (e.g. 0.1)",
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--config", default="{}", help="JSON dict of architecture config keys")
    p.add_argument("--out", required=True)
    p.add_argument("--time-budget", type=float, default=None, help="seconds")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--min-lr-ratio", type=float, default=0.0)
    p.add_argument("--grad-clip", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fold", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-train-graphs", type=int, default=None)
    p.add_argument("--max-eval-graphs", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON line (for scripts)")
    a = p.parse_args(argv)
    if a.arch is None and a.finetune is None:
        p.error("give an architecture (e.g. hod-gnn) or --finetune ZOO_MODEL")
    try:
        config: dict[str, Any] = json.loads(a.config)
    except json.JSONDecodeError as exc:
        p.error(f"--config is not valid JSON: {exc}")
    rec = train(
        a.arch,
        a.dataset,
        config,
        a.out,
        time_budget_s=a.time_budget,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        warmup_epochs=a.warmup_epochs,
        min_lr_ratio=a.min_lr_ratio,
        grad_clip=a.grad_clip,
        seed=a.seed,
        threads=a.threads,
        fold=a.fold,
        resume=a.resume,
        max_train_graphs=a.max_train_graphs,
        max_eval_graphs=a.max_eval_graphs,
        progress=not a.no_progress,
        finetune=a.finetune,
        freeze=a.freeze,
        body_lr_scale=a.body_lr_scale,
    )
    m = rec["metrics"]
    summary = {
        "out": a.out,
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
    if a.json:
        print(json.dumps(summary))
    else:
        metric = m["metric"]
        width = max(len(k) for k in summary) + 2
        print(f"\nfinished {rec['arch']} on {rec['dataset']} ({metric}; weights and record in {a.out}/)")
        for key, value in summary.items():
            text = f"{value:.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
            print(f"  {key.ljust(width)}{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
