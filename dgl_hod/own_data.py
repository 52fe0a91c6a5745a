r"""Zoo models on the user's own molecules: predictions, evaluation and fine-tuning data from a SMILES table.

The featurisation is chosen from the model, never guessed from the data: a model whose input vocabularies are OGB's
(``node_vocab == (119, 5, 12, 12, 10, 6, 6, 2, 2)``, ``edge_vocab == (5, 6, 2)``) reads ``featurizer="ogb"`` graphs,
one with ZINC's ``(28,)`` / ``(4,)`` reads ``featurizer="zinc"`` graphs (see :mod:`dgl_hod.datasets.smiles`).

Example:
    >>> from dgl_hod.own_data import predict_molecules
    >>> import pandas as pd
    >>> table = predict_molecules("gine-zinc", pd.DataFrame({"smiles": ["CCO", "c1ccccc1O"]}))  # doctest: +SKIP
    >>> list(table.columns)  # doctest: +SKIP
    ['row', 'smiles', 'y_prediction']

Command line: ``dgl-hod predict NAME --data molecules.csv --smiles-column smiles --out predictions.csv``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .datasets.registry import OGB_ATOM_DIMS, OGB_BOND_DIMS
from .datasets.user import TASKS, UserDataError, UserGraphDataset, register_dataset


def task_type(task: str) -> str:
    """The long task name (``binary`` -> ``binary_classification``); unknown names are returned unchanged."""
    return TASKS.get(task, task)


__all__ = [
    "check_model_fits_labels",
    "evaluate_molecules",
    "featurizer_for",
    "molecule_dataset",
    "predict_molecules",
    "predict_dataset",
    "register_molecules",
    "skipped_path_for",
    "task_names",
]

_FEATURISATIONS = {
    "ogb": (tuple(OGB_ATOM_DIMS), tuple(OGB_BOND_DIMS)),
    "zinc": ((28,), (4,)),
}


def featurizer_for(entry: Any) -> str:
    """``"ogb"`` or ``"zinc"``: the SMILES featurisation that zoo entry ``entry`` (a ``ZooEntry``) reads.

    Raises:
        UserDataError: the model reads neither (e.g. a model trained on TU or synthetic graphs).
    """
    node = tuple(entry.config.get("node_vocab") or ())
    edge = entry.config.get("edge_vocab")
    edge = tuple(edge) if edge is not None else None
    for name, (n, e) in _FEATURISATIONS.items():
        if node == n and edge in (e, None):
            return name
    raise UserDataError(
        f"zoo model {entry.name} reads node_vocab={node} / edge_vocab={edge} (dataset {entry.dataset}), which is "
        f"neither the OGB molecule featurisation {_FEATURISATIONS['ogb']} nor ZINC's {_FEATURISATIONS['zinc']}: "
        f"it cannot read molecules from SMILES. Build its input graphs with dgl_hod.datasets.from_graphs"
    )


def skipped_path_for(out: str | os.PathLike) -> Path:
    """Where the rows left out of ``out`` are listed: ``predictions.csv`` -> ``predictions.skipped.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.skipped.csv") if out.suffix else out / "skipped.csv"


def molecule_dataset(
    entry: Any,
    data: Any,
    smiles_column: str = "smiles",
    label_columns: Sequence[str] | None = None,
    task: str | None = None,
    *,
    split: str | None = None,
    invalid: str = "skip",
    seed: int = 0,
    name: str | None = None,
    skipped_path: str | os.PathLike | None = None,
    metric: str | None = None,
) -> UserGraphDataset:
    """:func:`~dgl_hod.datasets.from_smiles` with the featurisation of zoo entry ``entry``.

    ``task`` defaults to the entry's task type when labels are given (``binary`` for a binary model, ...);
    ``metric`` defaults to the entry's metric when the task is the entry's.
    """
    from .datasets.smiles import from_smiles

    featurizer = featurizer_for(entry)
    if label_columns and task is None:
        task = entry.task
    if label_columns and metric is None and task_type(task or "") == entry.task:
        metric = entry.metrics.get("test", {}).get("metric")
    return from_smiles(
        data,
        smiles_column,
        list(label_columns or []),
        task,
        featurizer=featurizer,
        split=split,
        invalid=invalid,
        seed=seed,
        name=name,
        skipped_path=skipped_path,
        metric=metric,
    )


def register_molecules(
    data: Any,
    smiles_column: str,
    label_columns: Sequence[str],
    task: str,
    *,
    featurizer: str = "ogb",
    split: str | None = "scaffold",
    seed: int = 0,
    invalid: str = "skip",
    name: str | None = None,
    skipped_path: str | os.PathLike | None = None,
) -> str:
    """Build a molecule dataset with :func:`~dgl_hod.datasets.from_smiles` and register it for this process.

    Returns the name the trainer, ``load_dataset`` and ``Evaluator`` accept (``user-<file stem>`` by default).
    """
    from .datasets.smiles import from_smiles

    if not label_columns:
        raise UserDataError("training and evaluation need labels: give the label column(s) (--label-columns y1 y2)")
    ds = from_smiles(
        data,
        smiles_column,
        list(label_columns),
        task,
        featurizer=featurizer,
        split=split,
        seed=seed,
        invalid=invalid,
        name=name,
        skipped_path=skipped_path,
    )
    return register_dataset(ds)


def task_names(entry: Any) -> list[str]:
    """Names of the model's outputs: the task names of its dataset where known (ogbg-mol*, zinc12k), else task0..."""
    n = entry.num_tasks
    dataset = str(entry.dataset)
    names: list[str] = []
    if dataset == "zinc12k":
        names = ["y"]
    elif dataset.startswith("ogbg-mol"):
        try:
            from .datasets._store import verified_path

            meta = json.loads(verified_path("ogbg/meta.json").read_text())
            names = list(meta["datasets"][dataset[len("ogbg-") :]]["task_names"])
        except (KeyError, OSError, ValueError):
            names = []
    return names if len(names) == n else [f"task{t}" for t in range(n)]


@torch.no_grad()
def predict_dataset(model: torch.nn.Module, ds: Any, batch_size: int = 128) -> torch.Tensor:
    """Raw model outputs ``(len(ds), num_tasks)`` in dataset order (eval mode, no gradients)."""
    was = model.training
    model.eval()
    outs = []
    for s in range(0, len(ds), batch_size):
        g, _ = ds.batch(np.arange(s, min(s + batch_size, len(ds))))
        outs.append(model(g, g.ndata["feat"], g.edata["feat"]).float())
    model.train(was)
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def check_model_fits_labels(entry: Any, ds: UserGraphDataset) -> None:
    """Refuse to score zoo model ``entry`` on labels of another task type or task count (fine-tune it instead)."""
    info = ds.info
    if info.task_type != entry.task or info.num_tasks != entry.num_tasks:
        raise UserDataError(
            f"zoo model {entry.name} predicts {entry.num_tasks} {entry.task} task(s) but the data has "
            f"{info.num_tasks} {info.task_type} label column(s) {list(info.options.get('label_columns', ()))}: its "
            f"outputs do not mean these labels. Fine-tune it on the data first (dgl-hod finetune {entry.name} "
            f"--data ... --out runs/x), then evaluate the fine-tuned model"
        )


def evaluate_molecules(
    model: str,
    data: Any,
    smiles_column: str = "smiles",
    label_columns: Sequence[str] = (),
    task: str | None = None,
    *,
    split_by: str | None = None,
    split: str = "test",
    seed: int = 0,
    batch_size: int = 128,
    invalid: str = "skip",
    skipped_path: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The metric of zoo model ``model`` on the user's labelled molecules (the model's own metric for its task).

    Args:
        model: a zoo model name.
        data: a CSV path or a DataFrame with SMILES and label columns.
        smiles_column: the SMILES column.
        label_columns: one column per model output, in the model's task order.
        task: ``binary`` / ``regression`` / ``multiclass``; default the model's.
        split_by: ``None`` (every valid row is scored), ``"scaffold"``, ``"random"`` or a split column.
        split: with ``split_by``: the split to score (``train``, ``valid``, ``test``).
        seed: seed of a random split.
        batch_size: molecules per forward pass.
        invalid: ``"skip"`` or ``"error"`` for unreadable SMILES.
        skipped_path: where to list the skipped rows.
        weights: a weights file instead of the zoo's.

    Returns:
        ``{"name", "data", "split", "metric", <metric>: value, "num_graphs", "num_skipped"}``.
    """
    from . import zoo
    from .datasets.evaluate import Evaluator

    entry = zoo.model_info(model)
    ds = molecule_dataset(
        entry,
        data,
        smiles_column,
        list(label_columns),
        task,
        split=split_by,
        invalid=invalid,
        seed=seed,
        skipped_path=skipped_path,
    )
    if not label_columns:
        raise UserDataError("evaluation needs labels: give the label column(s) (--label-columns y1 y2)")
    check_model_fits_labels(entry, ds)
    view = ds if split_by is None else ds.split(split)
    name = register_dataset(ds)
    net = zoo.load_model(model) if weights is None else zoo.load_model(model, weights=weights)
    pred = predict_dataset(net, view, batch_size)
    evaluator = Evaluator(name)
    y = view.labels
    y_true = y.reshape(-1, 1) if y.ndim == 1 else y
    y_pred = pred.argmax(dim=1, keepdim=True) if evaluator.eval_metric == "accuracy" else pred
    value = evaluator.eval({"y_true": y_true.float(), "y_pred": y_pred.float()})[evaluator.eval_metric]
    return {
        "name": model,
        "data": str(data) if not hasattr(data, "columns") else "DataFrame",
        "split": "all" if split_by is None else split,
        "metric": evaluator.eval_metric,
        evaluator.eval_metric: float(value),
        "num_graphs": len(view),
        "num_skipped": len(ds.skipped),
    }


def predict_molecules(
    model: str,
    data: Any,
    smiles_column: str = "smiles",
    *,
    out: str | os.PathLike | None = None,
    batch_size: int = 128,
    invalid: str = "skip",
    keep_columns: Sequence[str] = (),
    weights: str | os.PathLike | None = None,
) -> Any:
    """Predictions of zoo model ``model`` for every molecule of a SMILES table.

    Args:
        model: a zoo model name (``dgl-hod list``; ``$DGL_HOD_ZOO`` selects another registry).
        data: a CSV path or a pandas DataFrame.
        smiles_column: the column holding the SMILES.
        out: write the table as CSV here (atomically); the skipped rows go to ``<out stem>.skipped.csv``
            (written even when empty, so a stale list never survives).
        batch_size: molecules per forward pass.
        invalid: ``"skip"`` (leave unreadable SMILES out, listed) or ``"error"``.
        keep_columns: input columns copied into the output (e.g. an id column).
        weights: a weights file instead of the zoo's (``load_model(weights=...)``).

    Returns:
        A DataFrame with one row per valid molecule, in input order: ``row`` (0-based row of the input table),
        ``smiles``, the ``keep_columns``, then one column per task: ``<task>_probability`` (sigmoid) for binary
        models, ``<task>_prediction`` for regression, ``class<c>_probability`` + ``predicted_class`` for
        multi-class models.

    Raises:
        UserDataError: a missing column, an invalid SMILES with ``invalid="error"``, atoms a ZINC model cannot read,
            a model that does not read molecules.
    """
    import pandas as pd

    from . import zoo
    from .datasets.smiles import read_table
    from .utils import atomic_write_bytes

    entry = zoo.model_info(model)
    skipped_path = skipped_path_for(out) if out is not None else None
    ds = molecule_dataset(entry, data, smiles_column, invalid=invalid, skipped_path=skipped_path)
    net = zoo.load_model(model) if weights is None else zoo.load_model(model, weights=weights)
    raw = predict_dataset(net, ds, batch_size)
    table, _ = read_table(data)
    missing = [c for c in keep_columns if c not in table.columns]
    if missing:
        raise UserDataError(f"--keep-columns {missing} not in the table; columns: {', '.join(map(str, table.columns))}")
    result = pd.DataFrame({"row": ds.indices, "smiles": table[smiles_column].to_numpy()[ds.indices]})
    for c in keep_columns:
        result[c] = table[c].to_numpy()[ds.indices]
    names = task_names(entry)
    if entry.task == "binary_classification":
        for t, n in enumerate(names):
            result[f"{n}_probability"] = torch.sigmoid(raw[:, t]).numpy()
    elif entry.task == "multiclass_classification":
        prob = torch.softmax(raw, dim=1).numpy()
        for k in range(prob.shape[1]):
            result[f"class{k}_probability"] = prob[:, k]
        result["predicted_class"] = prob.argmax(axis=1)
    else:
        for t, n in enumerate(names):
            result[f"{n}_prediction"] = raw[:, t].numpy()
    result.attrs["skipped"] = ds.skipped
    result.attrs["skipped_path"] = str(skipped_path) if skipped_path is not None else None
    if out is not None:
        atomic_write_bytes(out, result.to_csv(index=False).encode())
    return result
