"""Prediction and evaluation of any GraphModel on a registered dataset split: the one ``evaluate`` of the project.

The trainer (every epoch), ``dgl-hod package`` (re-evaluation from the weights file) and ``dgl-hod eval`` (zoo
models) all call :func:`evaluate`, so a number is computed the same way wherever it is printed. Model outputs are
turned into what the dataset's :class:`~dgl_hod.datasets.Evaluator` scores by :func:`outputs_to_predictions`:

* regression, binary (ROC-AUC / AP) and multi-task with NaN labels: the raw outputs ``(n, num_tasks)`` (the
  Evaluator skips NaN labels);
* accuracy with one output column (binary, e.g. EXP): the class is ``logit > 0``;
* accuracy with ``C > 1`` columns (multi-class, e.g. CSL, MUTAG, PROTEINS): the class is ``argmax`` of the logits.

Example:
    >>> from dgl_hod.archs.build import build_model
    >>> model, _ = build_model("gine", "mutag", {"hidden_dim": 8, "num_layers": 2})
    >>> result = evaluate(model, "mutag", "test", fold=0)
    >>> sorted(result), result["num_graphs"]
    (['accuracy', 'metric', 'num_graphs'], 18)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .datasets import Evaluator, GraphDataset, load_dataset

__all__ = [
    "batchnorm_layers",
    "check_batch_size",
    "check_fold",
    "evaluate",
    "outputs_to_predictions",
    "predict",
    "recalibrate_batchnorm",
]


def check_batch_size(batch_size: object, what: str = "batch_size", example: int = 128) -> int:
    """``batch_size`` as a positive int, or a ``ValueError`` that names ``what`` and the fix (``example``)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{what} must be a positive integer (e.g. {example}), got {batch_size!r}")
    return int(batch_size)


def check_fold(dataset: str, fold: object, what: str = "fold") -> int | None:
    """Validate ``fold`` for ``dataset``: an int in ``0..num_folds-1`` for fold datasets, ``None`` otherwise.

    Raises:
        ValueError: naming ``what``, the dataset's folds and the fix (``1.7``, ``True`` and ``"1"`` are refused,
            not rounded).
    """
    from .datasets import get_info

    info = get_info(dataset)
    if not info.num_folds:
        if fold is not None:
            raise ValueError(f"{info.name} has fixed splits, no folds: drop {what} (got {fold!r})")
        return None
    if fold is None:
        raise ValueError(f"{info.name} has {info.num_folds} folds: pass {what} 0..{info.num_folds - 1}")
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)):  # 1.7 and "1" are refused, not rounded
        raise ValueError(f"{what} must be an integer 0..{info.num_folds - 1} for {info.name}, got {fold!r}")
    index = int(fold)
    if not 0 <= index < info.num_folds:
        raise ValueError(f"{info.name} has folds 0..{info.num_folds - 1}; {what} {index} does not exist")
    return index


@torch.no_grad()
def predict(
    model: nn.Module,
    ds: GraphDataset,
    batch_size: int = 128,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw model outputs over a dataset in order, in eval mode without gradients (the previous mode is restored).

    Args:
        model: a :class:`~dgl_hod.archs.GraphModel` (``model(g, node_feat, edge_feat)``).
        ds: the graphs.
        batch_size: graphs per forward pass.
        progress: a tqdm bar.

    Returns:
        ``(y_true, outputs)``: labels ``(n, label_columns)`` and outputs ``(n, num_outputs)``, float32, on the CPU
        (each batch runs on the model's device, float features in the model's dtype, as in the trainer).
    """
    batch_size = check_batch_size(batch_size)
    was_training = model.training
    model.eval()
    ys, preds = [], []
    try:
        starts = range(0, len(ds), batch_size)
        for s in tqdm(starts, desc=f"eval {ds.info.name}/{ds.split}", disable=not progress, leave=False):
            g, y = ds.batch(np.arange(s, min(s + batch_size, len(ds))))
            preds.append(_forward(model, g).float().cpu())
            ys.append(y.float().reshape(len(y), -1))
    finally:
        model.train(was_training)
    if not preds:
        raise ValueError(f"{ds.info.name}/{ds.split} has no graphs to evaluate")
    return torch.cat(ys), torch.cat(preds)


def _forward(model: nn.Module, g) -> torch.Tensor:
    """``model(g, node_feat, edge_feat)`` on the model's device, float features in the model's dtype."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    if g.device != device:
        g = g.to(device)
    nf = g.ndata["feat"]
    ef = g.edata["feat"] if "feat" in g.edata else None
    if param is not None:
        nf = nf.to(param.dtype) if nf.is_floating_point() else nf
        ef = ef.to(param.dtype) if ef is not None and ef.is_floating_point() else ef
    return model(g, nf, ef)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers (any dimension), in module order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batchnorm(
    model: nn.Module, ds: GraphDataset, num_graphs: int | None = None, batch_size: int = 32, seed: int = 0
) -> int:
    """Recompute every BatchNorm layer's running statistics, in place, as the plain average over ``num_graphs``
    random graphs of ``ds`` (all of them when ``None``) in batches of ``batch_size``; the weights do not change.

    "Precise" statistics (benchmarks/spike_probe.py measured why: the running statistics, an exponential average over
    the last training batches, lag behind weights that still move). Every other layer stays in eval mode (no
    dropout), so the statistics describe what evaluation sees. Returns the number of BatchNorm layers (0: nothing
    done); the model is left in eval mode.

    Example:
        >>> from dgl_hod.archs.build import build_model
        >>> model, _ = build_model("gine", "zinc12k", {"hidden_dim": 8, "num_layers": 2})
        >>> recalibrate_batchnorm(model, load_dataset("zinc12k", "train"), num_graphs=64)
        2
    """
    batch_size = check_batch_size(batch_size)
    layers = batchnorm_layers(model)
    order = np.random.default_rng(seed).permutation(len(ds))[: len(ds) if num_graphs is None else num_graphs]
    momenta = [bn.momentum for bn in layers]
    model.eval()
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # type: ignore[assignment]  # None: cumulative average over every batch seen
        bn.train()
    try:
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                g, _ = ds.batch(order[s : s + batch_size])
                _forward(model, g)
    finally:
        model.eval()
        for bn, momentum in zip(layers, momenta):  # later training averages as before
            bn.momentum = momentum
    return len(layers)


def outputs_to_predictions(evaluator: Evaluator, outputs: torch.Tensor) -> torch.Tensor:
    """What ``evaluator`` scores, from model outputs ``(n, C)``: class ids ``(n, 1)`` for accuracy, else the outputs.

    For accuracy: ``argmax`` over ``C > 1`` logits, ``logit > 0`` for one logit.
    """
    if evaluator.eval_metric != "accuracy":
        return outputs
    if outputs.shape[1] > 1:
        return outputs.argmax(1, keepdim=True).float()
    return (outputs > 0).float()


def evaluate(
    model: nn.Module,
    dataset: str | GraphDataset,
    split: str | None = "test",
    *,
    fold: int | None = None,
    batch_size: int = 128,
    progress: bool = False,
) -> dict:
    """The dataset's metric for ``model`` on a split, scored by the dataset's OGB-style :class:`Evaluator`.

    Args:
        model: the model (its train/eval mode is restored afterwards).
        dataset: a registered dataset name, or a loaded :class:`GraphDataset` (then ``split`` and ``fold`` are
            ignored: the dataset is the split).
        split: ``"train"``, ``"val"``/``"valid"``, ``"test"`` or ``None``/``"all"`` (every graph).
        fold: for fold datasets (csl: 0..4, mutag and proteins: 0..9), which fold's split.
        batch_size: graphs per forward pass (a positive int).
        progress: a tqdm bar.

    Returns:
        ``{"metric": name, name: value, "num_graphs": n}``, e.g. ``{"metric": "mae", "mae": 0.22, ...}``.

    Raises:
        ValueError: a bad ``batch_size`` or ``fold``, an unknown split, or a dataset without an Evaluator.
    """
    batch_size = check_batch_size(batch_size)
    if isinstance(dataset, str):
        if split not in (None, "all"):
            fold = check_fold(dataset, fold)
        ds = load_dataset(dataset, split, fold=fold)
    else:
        ds = dataset
    evaluator = Evaluator(ds.info.name)
    y_true, outputs = predict(model, ds, batch_size, progress)
    value = evaluator.eval({"y_true": y_true, "y_pred": outputs_to_predictions(evaluator, outputs)})
    metric = evaluator.eval_metric
    return {"metric": metric, metric: float(value[metric]), "num_graphs": len(ds)}
