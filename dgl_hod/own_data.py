r"""Trained models on the user's own molecules: predictions, evaluation and fine-tuning data from a SMILES table.

A model is a zoo name (``dgl-hod list``; ``$DGL_HOD_ZOO`` selects another registry) or a finished training run folder
(``record.json`` + ``best.safetensors``, e.g. the ``--out`` of ``dgl-hod finetune``).  The featurisation is taken
from the model, never guessed from the data: a model whose input vocabularies are OGB's (``node_vocab == (119, 5,
12, 12, 10, 6, 6, 2, 2)``, ``edge_vocab == (5, 6, 2)``) reads ``featurizer="ogb"`` graphs, one with ZINC's ``(28,)``
/ ``(4,)`` reads ``featurizer="zinc"`` graphs (see :mod:`dgl_hod.datasets.smiles`).

Example:
    >>> from dgl_hod.own_data import predict_molecules
    >>> import pandas as pd
    >>> table = predict_molecules("gine-zinc", pd.DataFrame({"smiles": ["CCO", "c1ccccc1O"]}))
    >>> list(table.columns)
    ['row', 'smiles', 'y_prediction']

Command line: ``dgl-hod predict NAME --data molecules.csv --smiles-column smiles --out predictions.csv``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .datasets.registry import OGB_ATOM_DIMS, OGB_BOND_DIMS
from .datasets.user import TASKS, UserDataError, UserGraphDataset, register_dataset

__all__ = [
    "DATA_SPEC",
    "Predictor",
    "load_predictor",
    "featurizer_for",
    "molecule_dataset",
    "predict_molecules",
    "evaluate_molecules",
    "predict_dataset",
    "register_molecules",
    "write_data_spec",
    "skipped_path_for",
]

#: file written into a run folder trained on user molecules: how the data was read (for predictions' column names)
DATA_SPEC = "data.json"

_FEATURISATIONS = {
    "ogb": (tuple(OGB_ATOM_DIMS), tuple(OGB_BOND_DIMS)),
    "zinc": ((28,), (4,)),
}
_TASK_OF_METRIC = {
    "rocauc": "binary_classification",
    "ap": "binary_classification",
    "mae": "regression",
    "rmse": "regression",
    "accuracy": "multiclass_classification",
}


def featurizer_for(config: Mapping[str, Any], who: str = "the model") -> str:
    """``"ogb"`` or ``"zinc"``: the SMILES featurisation a model with this config (``node_vocab``/``edge_vocab``)
    reads.

    Raises:
        UserDataError: the model reads neither (e.g. a model trained on TU or synthetic graphs).
    """
    node = tuple(config.get("node_vocab") or ())
    edge = config.get("edge_vocab")
    edge = tuple(edge) if edge is not None else None
    for name, (n, e) in _FEATURISATIONS.items():
        if node == n and edge in (e, None):
            return name
    raise UserDataError(
        f"{who} reads node_vocab={node} / edge_vocab={edge}, which is neither the OGB molecule featurisation "
        f"{_FEATURISATIONS['ogb']} nor ZINC's {_FEATURISATIONS['zinc']}: it cannot read molecules from SMILES. "
        f"Build its input graphs with dgl_hod.datasets.from_graphs"
    )


@dataclass
class Predictor:
    """A trained model and what it reads and predicts.

    Attributes:
        model: the network, eval mode.
        source: the zoo name or the run folder.
        config: its architecture config.
        dataset: the dataset it was trained on.
        task: ``binary_classification`` / ``regression`` / ``multiclass_classification``.
        metric: the metric it was selected by.
        task_names: one name per output (the training data's label columns where known, else ``task0``, ...).
        featurizer: ``"ogb"`` or ``"zinc"``.
    """

    model: torch.nn.Module
    source: str
    config: Mapping[str, Any]
    dataset: str
    task: str
    metric: str
    task_names: list[str] = field(default_factory=list)
    featurizer: str = "ogb"

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)


def _names_of(dataset: str, n: int, run: Path | None = None) -> list[str]:
    """Task names of a dataset: its label columns (user data), OGB's task names, ``y`` for ZINC, else task0..."""
    names: list[str] = []
    spec = run / DATA_SPEC if run is not None else None
    if spec is not None and spec.is_file():
        names = list(json.loads(spec.read_text()).get("label_columns", []))
    elif dataset == "zinc12k":
        names = ["y"]
    elif dataset.startswith("ogbg-mol"):
        try:
            from .datasets._store import verified_path

            meta = json.loads(verified_path("ogbg/meta.json").read_text())
            names = list(meta["datasets"][dataset[len("ogbg-") :]]["task_names"])
        except (KeyError, OSError, ValueError):
            names = []
    else:
        try:
            from .datasets import get_info

            names = [str(c) for c in get_info(dataset).options.get("label_columns", ())]  # type: ignore[attr-defined]
        except KeyError:
            names = []
    return names if len(names) == n else [f"task{t}" for t in range(n)]


def load_predictor(model: str | os.PathLike, *, weights: str | os.PathLike | None = None) -> Predictor:
    """A zoo model (by name) or a finished run folder (``record.json`` + ``best.safetensors``) as a :class:`Predictor`.

    Args:
        model: a zoo name or a run folder.
        weights: for a zoo name: a weights file with the entry's config instead of the zoo's file.

    Raises:
        UserDataError: the model does not read molecules; KeyError / FileNotFoundError: unknown name or folder.
    """
    run = Path(os.fspath(model))
    if (run / "record.json").is_file():
        from safetensors.torch import load_file

        from .archs import create_model

        record = json.loads((run / "record.json").read_text())
        best = run / "best.safetensors"
        if not best.is_file():
            raise FileNotFoundError(f"{best} not found: {run} is not a finished run (train it to the end first)")
        net = create_model(record["arch"], **record["config"])
        net.load_state_dict(load_file(str(best)), strict=True)
        net.eval()
        metric = record["metrics"]["metric"]
        n = int(record["config"].get("num_tasks", 1))
        task = _TASK_OF_METRIC.get(metric, "regression")
        return Predictor(
            net,
            str(run),
            record["config"],
            record["dataset"],
            task,
            metric,
            _names_of(record["dataset"], n, run),
            featurizer_for(record["config"], f"run {run}"),
        )
    from . import zoo

    entry = zoo.model_info(str(model))
    featurizer = featurizer_for(entry.config, f"zoo model {entry.name} (dataset {entry.dataset})")
    net = zoo.load_model(entry.name) if weights is None else zoo.load_model(entry.name, weights=weights)
    metric = entry.metrics.get("test", {}).get("metric") or ("rocauc" if "binary" in entry.task else "rmse")
    return Predictor(
        net,
        entry.name,
        entry.config,
        entry.dataset,
        entry.task,
        metric,
        _names_of(entry.dataset, entry.num_tasks),
        featurizer,
    )


def skipped_path_for(out: str | os.PathLike) -> Path:
    """Where the rows left out of ``out`` are listed: ``predictions.csv`` -> ``predictions.skipped.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.skipped.csv") if out.suffix else out / "skipped.csv"


def molecule_dataset(
    predictor: Predictor,
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
) -> UserGraphDataset:
    """:func:`~dgl_hod.datasets.from_smiles` with the predictor's featurisation (and, for labels, its task and
    metric unless ``task`` says otherwise).
    """
    from .datasets.smiles import from_smiles

    metric = None
    if label_columns:
        task = task or predictor.task
        if TASKS.get(task, task) == predictor.task:
            metric = predictor.metric
    return from_smiles(
        data,
        smiles_column,
        list(label_columns or []),
        task,
        featurizer=predictor.featurizer,
        split=split,
        invalid=invalid,
        seed=seed,
        name=name,
        skipped_path=skipped_path,
        metric=metric,
    )


def write_data_spec(out_dir: str | os.PathLike, ds: UserGraphDataset, data: Any = None) -> Path:
    """Record in ``out_dir/data.json`` how a training run's user dataset was read (file, its sha256, columns,
    task, featurisation, split, skipped rows), and list the skipped rows in ``out_dir/skipped.csv``.
    """
    from .utils import atomic_write_bytes, sha256_file

    out = Path(out_dir)
    info = ds.info
    source = None if data is None or hasattr(data, "columns") else str(Path(os.fspath(data)).resolve())
    spec = {
        "dataset": info.name,
        "source": source,
        "sha256": sha256_file(source) if source else None,
        "task": info.task_type,
        "metric": info.metric,
        "label_columns": list(info.options.get("label_columns", ())),
        "num_graphs": len(ds),
        "splits": dict(info.splits),
        **{k: v for k, v in info.options.items() if k != "label_columns"},
    }
    atomic_write_bytes(out / DATA_SPEC, (json.dumps(spec, indent=1) + "\n").encode())
    ds.write_skipped(out / "skipped.csv")
    return out / DATA_SPEC


def register_molecules(
    data: Any,
    smiles_column: str,
    label_columns: Sequence[str],
    task: str | None,
    *,
    featurizer: str = "ogb",
    split: str | None = "scaffold",
    seed: int = 0,
    invalid: str = "skip",
    metric: str | None = None,
    name: str | None = None,
    out_dir: str | os.PathLike | None = None,
) -> str:
    """Build a molecule dataset with :func:`~dgl_hod.datasets.from_smiles` and register it for this process.

    Returns the name the trainer, ``load_dataset`` and ``Evaluator`` accept (``user-<file stem>`` by default).
    With ``out_dir`` (a training run's folder) the data spec and the skipped rows are written there
    (:func:`write_data_spec`).
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
        metric=metric,
        name=name,
    )
    registered = register_dataset(ds)
    if out_dir is not None:
        write_data_spec(out_dir, ds, data)
    return registered


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


def _check_fits(p: Predictor, ds: UserGraphDataset) -> None:
    """Refuse to score a model on labels of another task type or task count (fine-tune it instead)."""
    info = ds.info
    multiclass = info.task_type == "multiclass_classification"
    outputs = info.num_classes if multiclass else info.num_tasks
    if info.task_type != p.task or (outputs > p.num_tasks if multiclass else outputs != p.num_tasks):
        raise UserDataError(
            f"{p.source} predicts {p.num_tasks} {p.task} task(s) but the data has {info.num_tasks} "
            f"{info.task_type} label column(s) {list(info.options.get('label_columns', ()))}: its outputs do not "
            f"mean these labels. Fine-tune it on the data first (dgl-hod finetune NAME --data ... --out runs/x), "
            f"then evaluate the run folder"
        )


def evaluate_molecules(
    model: str | os.PathLike,
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
) -> dict[str, Any]:
    """The metric of a model (zoo name or run folder) on the user's labelled molecules (the model's own metric).

    Args:
        model: a zoo name or a finished run folder.
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

    Returns:
        ``{"name", "data", "split", "metric", <metric>: value, "num_graphs", "num_skipped"}``.
    """
    from .datasets.evaluate import Evaluator

    if not label_columns:
        raise UserDataError("evaluation needs labels: give the label column(s) (--label-columns y1 y2)")
    p = load_predictor(model)
    ds = molecule_dataset(
        p, data, smiles_column, list(label_columns), task, split=split_by, invalid=invalid, seed=seed,
        skipped_path=skipped_path,
    )  # fmt: skip
    _check_fits(p, ds)
    view = ds if split_by is None else ds.split(split)
    evaluator = Evaluator(register_dataset(ds))
    pred = predict_dataset(p.model, view, batch_size)
    y = view.labels
    y_true = y.reshape(-1, 1) if y.ndim == 1 else y
    y_pred = pred.argmax(dim=1, keepdim=True) if evaluator.eval_metric == "accuracy" else pred
    value = evaluator.eval({"y_true": y_true.float(), "y_pred": y_pred.float()})[evaluator.eval_metric]
    return {
        "name": p.source,
        "data": "DataFrame" if hasattr(data, "columns") else str(data),
        "split": "all" if split_by is None else split,
        "metric": evaluator.eval_metric,
        evaluator.eval_metric: float(value),
        "num_graphs": len(view),
        "num_skipped": len(ds.skipped),
    }


def predict_molecules(
    model: str | os.PathLike,
    data: Any,
    smiles_column: str = "smiles",
    *,
    out: str | os.PathLike | None = None,
    batch_size: int = 128,
    invalid: str = "skip",
    keep_columns: Sequence[str] = (),
    weights: str | os.PathLike | None = None,
) -> Any:
    """Predictions of a model (zoo name or run folder) for every molecule of a SMILES table.

    Args:
        model: a zoo name or a finished run folder (e.g. the ``--out`` of ``dgl-hod finetune``).
        data: a CSV path or a pandas DataFrame.
        smiles_column: the column holding the SMILES.
        out: write the table as CSV here (atomically); the skipped rows go to ``<out stem>.skipped.csv``
            (written even when empty, so a stale list never survives).
        batch_size: molecules per forward pass.
        invalid: ``"skip"`` (leave unreadable SMILES out, listed) or ``"error"``.
        keep_columns: input columns copied into the output (e.g. an id column).
        weights: for a zoo name: a weights file with the entry's config instead of the zoo's.

    Returns:
        A DataFrame with one row per valid molecule, in input order: ``row`` (0-based row of the input table),
        ``smiles``, the ``keep_columns``, then one column per task: ``<task>_probability`` (sigmoid) for binary
        models, ``<task>_prediction`` for regression, ``class<c>_probability`` + ``predicted_class`` for
        multi-class models.  Task names are the training data's label columns where known.
        ``result.attrs["skipped"]`` lists the skipped rows.

    Raises:
        UserDataError: a missing column, an invalid SMILES with ``invalid="error"``, atoms a ZINC model cannot read,
            a model that does not read molecules.
    """
    import pandas as pd

    from .datasets.smiles import read_table
    from .utils import atomic_write_bytes

    p = load_predictor(model, weights=weights)
    table, _ = read_table(data)
    missing = [c for c in keep_columns if c not in table.columns]
    if missing:
        raise UserDataError(
            f"keep columns {missing} are not in the table; columns: {', '.join(map(str, table.columns))}"
        )
    skipped_path = skipped_path_for(out) if out is not None else None
    ds = molecule_dataset(p, data, smiles_column, invalid=invalid, skipped_path=skipped_path)
    raw = predict_dataset(p.model, ds, batch_size)
    result = pd.DataFrame({"row": ds.indices, "smiles": table[smiles_column].to_numpy()[ds.indices]})
    for c in keep_columns:
        result[c] = table[c].to_numpy()[ds.indices]
    if p.task == "binary_classification":
        for t, n in enumerate(p.task_names):
            result[f"{n}_probability"] = torch.sigmoid(raw[:, t]).numpy()
    elif p.task == "multiclass_classification":
        prob = torch.softmax(raw, dim=1).numpy()
        for k in range(prob.shape[1]):
            result[f"class{k}_probability"] = prob[:, k]
        result["predicted_class"] = prob.argmax(axis=1)
    else:
        for t, n in enumerate(p.task_names):
            result[f"{n}_prediction"] = raw[:, t].numpy()
    result.attrs["skipped"] = ds.skipped
    if out is not None:
        atomic_write_bytes(out, result.to_csv(index=False).encode())
    return result
