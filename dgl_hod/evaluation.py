"""Prediction and evaluation of any GraphModel on a registered dataset split (used by the trainer, zoo and CLI)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .datasets import Evaluator, GraphDataset, load_dataset

__all__ = ["evaluate", "predict"]


@torch.no_grad()
def predict(
    model: nn.Module,
    ds: GraphDataset,
    batch_size: int = 128,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y_true, y_pred)`` over the whole dataset in order, each ``(len(ds), num_tasks)``; eval mode, no grad."""
    was_training = model.training
    model.eval()
    ys, preds = [], []
    starts = range(0, len(ds), batch_size)
    for s in tqdm(starts, desc=f"eval {ds.info.name}/{ds.split}", disable=not progress, leave=False):
        g, y = ds.batch(np.arange(s, min(s + batch_size, len(ds))))
        preds.append(model(g, g.ndata["feat"], g.edata["feat"]).float())
        ys.append(y.float().reshape(len(y), -1))
    model.train(was_training)
    return torch.cat(ys), torch.cat(preds)


def evaluate(
    model: nn.Module,
    dataset: str | GraphDataset,
    split: str | None = "test",
    batch_size: int = 128,
    progress: bool = False,
) -> dict:
    """``{"metric": name, name: value, "num_graphs": n}`` with the dataset's OGB-style :class:`Evaluator`."""
    ds = load_dataset(dataset, split) if isinstance(dataset, str) else dataset
    y_true, y_pred = predict(model, ds, batch_size, progress)
    evaluator = Evaluator(ds.info.name)
    value = evaluator.eval({"y_true": y_true, "y_pred": y_pred})[evaluator.eval_metric]
    return {"metric": evaluator.eval_metric, evaluator.eval_metric: float(value), "num_graphs": len(ds)}
