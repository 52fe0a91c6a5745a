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
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    "add_data_arguments",
    "add_predict_parser",
    "cmd_predict",
    "cmd_eval_data",
    "dataset_from_args",
    "register_spec",
    "register_run_data",
    "register_entry_data",
    "run_data_recipe",
    "reference_dataset",
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


def _names_of(dataset: str, n: int, run: Path | None = None, spec_names: Sequence[str] = ()) -> list[str]:
    """Task names of a dataset: its label columns (user data), OGB's task names, ``y`` for ZINC, else task0..."""
    names: list[str] = []
    spec = run / DATA_SPEC if run is not None else None
    if spec is not None and spec.is_file():
        names = list(json.loads(spec.read_text()).get("label_columns", []))
    elif spec_names:
        names = list(spec_names)
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
        _names_of(entry.dataset, entry.num_tasks, spec_names=(entry.recipe.get("data") or {}).get("label_columns", ())),
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
    from .evaluation import predict

    return predict(model, ds, batch_size)[1] if len(ds) else torch.zeros(0, 0)


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
    from .evaluation import outputs_to_predictions

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
    y_pred = outputs_to_predictions(evaluator, pred)  # the trainer's and `dgl-hod eval`'s scoring rule
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


# --- command-line glue (dgl-hod predict; --data for dgl-hod eval / finetune / train) ----------------------------
def add_data_arguments(parser: Any, *, labels: bool = True, featurizer: bool = False) -> None:
    """Add the ``--data`` options (a SMILES table instead of ``--dataset``) to an argparse parser."""
    g = parser.add_argument_group("your own molecules (docs/own-data.md)")
    g.add_argument("--data", default=None, metavar="CSV", help="a CSV (.tsv: tab-separated) of SMILES, one per row")
    g.add_argument("--smiles-column", default="smiles", metavar="COL", help="the SMILES column (default: smiles)")
    if labels:
        g.add_argument("--label-columns", nargs="+", default=None, metavar="COL", help="one label column per task")
        g.add_argument("--task", default=None, choices=tuple(TASKS), help="default: the model's task")
        g.add_argument(
            "--split-by",
            default=None,
            metavar="SPLIT",
            help="scaffold (default for training), random, or a column of train/valid/test per row",
        )
        g.add_argument("--split-seed", type=int, default=0, help="seed of --split-by random")
        g.add_argument(
            "--metric",
            default=None,
            choices=("rocauc", "ap", "rmse", "mae", "accuracy"),
            help="training: model selection metric (default: the fine-tuned model's for its task, else rocauc/rmse)",
        )
    if featurizer:
        g.add_argument(
            "--featurizer", default=None, choices=("ogb", "zinc"), help="training from scratch only (default ogb)"
        )
    g.add_argument(
        "--invalid", default="skip", choices=("skip", "error"), help="unreadable SMILES: skip (listed) or stop"
    )


def _as_user_error(exc: BaseException) -> UserDataError:
    return UserDataError(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))


def dataset_from_args(args: Any) -> str:
    """``--data ...`` of the trainer: build the molecule dataset, register it, record it in ``--out``; its name.

    The featurisation is the ``--finetune`` model's (or ``--featurizer``, default ogb, from scratch); on
    ``--resume`` the table must be the one the run started from (its sha256 is in ``--out/data.json``).
    """
    from .utils import sha256_file

    if getattr(args, "dataset", None):
        raise UserDataError("give --dataset NAME or --data CSV, not both")
    if not args.label_columns:
        raise UserDataError("--data needs --label-columns (one column per task) for training")
    out = Path(args.out)
    featurizer = getattr(args, "featurizer", None)
    task = args.task
    metric = getattr(args, "metric", None)
    if args.finetune:
        from . import zoo

        entry = zoo.model_info(args.finetune)
        model_featurizer = featurizer_for(entry.config, f"zoo model {entry.name}")
        if featurizer not in (None, model_featurizer):
            raise UserDataError(
                f"--featurizer {featurizer}: {entry.name} reads the {model_featurizer} featurisation; drop --featurizer"
            )
        featurizer = model_featurizer
        task = task or {v: k for k, v in TASKS.items()}.get(entry.task)
        if metric is None and TASKS.get(task or "", task) == entry.task:
            metric = entry.metrics.get("test", {}).get("metric")  # a ZINC model keeps MAE (L1 loss), ...
    if task is None:
        raise UserDataError("give --task binary, regression or multiclass for the label columns")
    spec_path = out / DATA_SPEC
    if getattr(args, "resume", False) and spec_path.is_file() and Path(args.data).is_file():
        old = json.loads(spec_path.read_text()).get("sha256")
        if old and old != sha256_file(args.data):
            raise UserDataError(
                f"{args.data} changed since the run in {out} started (sha256 differs from {spec_path}): resume with "
                f"the original table, or start a new run (--overwrite or another --out)"
            )
    try:
        return register_molecules(
            args.data,
            args.smiles_column,
            args.label_columns,
            task,
            featurizer=featurizer or "ogb",
            split=args.split_by or "scaffold",
            seed=args.split_seed,
            invalid=args.invalid,
            metric=metric,
            out_dir=out,
        )
    except (ImportError, OSError, KeyError) as exc:
        raise _as_user_error(exc) from None


def add_predict_parser(sub: Any) -> Any:
    """The ``dgl-hod predict`` subcommand (``sub``: the CLI's subparsers)."""
    s = sub.add_parser(
        "predict",
        help="predictions of a zoo model or run folder for a table of SMILES",
        description="One row per molecule: input row id, SMILES, then per task a probability (binary) or value.",
    )
    s.add_argument("name", metavar="MODEL", help="a zoo model name or a finished run folder")
    add_data_arguments(s, labels=False)
    s.add_argument("--out", default=None, help="CSV to write (default: print to stdout); skipped rows: OUT.skipped.csv")
    s.add_argument("--keep-columns", nargs="+", default=(), metavar="COL", help="input columns copied to the output")
    s.add_argument("--batch-size", type=int, default=128)
    return s


def cmd_predict(args: Any) -> int:
    """``dgl-hod predict``: writes the predictions (or prints them) and one summary line on stderr."""
    if not args.data:
        raise UserDataError("give the molecules: dgl-hod predict MODEL --data molecules.csv --smiles-column smiles")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the summary line below reports skipped rows
            result = predict_molecules(
                args.name,
                args.data,
                args.smiles_column,
                out=args.out,
                batch_size=args.batch_size,
                invalid=args.invalid,
                keep_columns=args.keep_columns,
            )
    except (ImportError, FileNotFoundError) as exc:
        raise _as_user_error(exc) from None
    skipped = result.attrs.get("skipped", [])
    if args.out is None:
        sys.stdout.write(result.to_csv(index=False))
    where = f" -> {args.out}" if args.out else ""
    note = ""
    if skipped:
        listed = f" (listed in {skipped_path_for(args.out)})" if args.out else ""
        rows = ", ".join(str(s["row"]) for s in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        note = f"; skipped {len(skipped)} invalid row(s) {rows}{listed}"
    print(f"dgl-hod predict: {len(result)} molecule(s) predicted by {args.name}{where}{note}", file=sys.stderr)
    return 0


def cmd_eval_data(args: Any) -> int:
    """``dgl-hod eval MODEL --data CSV --label-columns ...``: the model's metric on the user's molecules."""
    if not args.label_columns:
        raise UserDataError("eval --data needs --label-columns (one column per model output)")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            res = evaluate_molecules(
                args.name,
                args.data,
                args.smiles_column,
                args.label_columns,
                args.task,
                split_by=args.split_by,
                split=args.split if args.split_by else "test",
                seed=args.split_seed,
                batch_size=args.batch_size,
                invalid=args.invalid,
            )
    except (ImportError, FileNotFoundError) as exc:
        raise _as_user_error(exc) from None
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        metric = res["metric"]
        print(
            f"{res['name']} on {res['data']} ({res['split']}, {res['num_graphs']} molecules, "
            f"{res['num_skipped']} skipped): {metric} = {res[metric]:.6f}"
        )
    for w in caught:
        print(f"dgl-hod eval: warning: {w.message}", file=sys.stderr)
    return 0


# --- runs and zoo entries trained on the user's molecules (packaging, eval by name) -----------------------------
def _known(dataset: str) -> bool:
    from .datasets import get_info

    try:
        get_info(dataset)
    except KeyError:
        return False
    return True


def register_spec(spec: Mapping[str, Any], where: str) -> str:
    """Re-read and register the user dataset described by a ``data.json`` spec (the table must be unchanged).

    Raises:
        UserDataError: the table is gone, was a DataFrame (no file to re-read) or changed since training.
    """
    from .datasets.smiles import from_smiles
    from .utils import sha256_file

    source = spec.get("source")
    name = str(spec["dataset"])
    if not source:
        raise UserDataError(
            f"{where} was trained on {name}, built from a DataFrame: register that dataset in this process first "
            f"(dgl_hod.datasets.register_dataset(from_smiles(df, ...), {name!r}))"
        )
    if not Path(source).is_file():
        raise UserDataError(
            f"{where} was trained on {name}, read from {source}, which is not there any more: restore the table, or "
            f"evaluate with --data CSV --smiles-column ... --label-columns ..."
        )
    if spec.get("sha256") and sha256_file(source) != spec["sha256"]:
        raise UserDataError(
            f"{where} was trained on {source}, which has changed since (sha256 differs from the recorded one): "
            f"restore the original table, or evaluate on the new one with --data"
        )
    inverse = {v: k for k, v in TASKS.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the skipped rows were reported when the run was made
        ds = from_smiles(
            source,
            spec["smiles_column"],
            list(spec["label_columns"]),
            inverse.get(spec["task"], spec["task"]),
            featurizer=spec["featurizer"],
            split=spec.get("split"),
            frac=tuple(spec.get("frac", (0.8, 0.1, 0.1))),
            seed=int(spec.get("seed", 0)),
            invalid=spec.get("invalid", "skip"),
            metric=spec.get("metric"),
            name=name,
        )
    return register_dataset(ds)


def register_run_data(run: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Before a run is re-evaluated or packaged in a new process: register its user dataset from ``data.json``
    (no-op for built-in or already registered datasets, and for runs without ``data.json``).
    """
    spec_path = Path(run) / DATA_SPEC
    if _known(str(record["dataset"])) or not spec_path.is_file():
        return
    register_spec(json.loads(spec_path.read_text()), f"run {run}")


def register_entry_data(entry: Any) -> None:
    """Before ``dgl-hod eval NAME`` of a zoo entry fine-tuned on user molecules: register its dataset from the
    ``recipe.data`` spec that packaging recorded (no-op for built-in datasets).
    """
    spec = entry.recipe.get("data") if isinstance(entry.recipe, Mapping) else None
    if _known(str(entry.dataset)) or not spec:
        return
    register_spec(spec, f"zoo model {entry.name}")


def run_data_recipe(run: str | os.PathLike, command: str | None = None) -> dict[str, Any]:
    """For a run trained on user molecules: ``{"data": spec}`` for the zoo entry's recipe and, given the packaged
    ``command``, the same command with ``--dataset NAME`` replaced by the ``--data`` options that rebuild the
    dataset; ``{}`` for other runs.
    """
    import shlex

    spec_path = Path(run) / DATA_SPEC
    if not spec_path.is_file():
        return {}
    spec = json.loads(spec_path.read_text())
    out: dict[str, Any] = {"data": spec}
    if command and f"--dataset {spec['dataset']}" in command:
        inverse = {v: k for k, v in TASKS.items()}
        data_args = (
            f"--data {shlex.quote(str(spec['source']))} --smiles-column {shlex.quote(spec['smiles_column'])} "
            f"--label-columns {' '.join(shlex.quote(c) for c in spec['label_columns'])} "
            f"--task {inverse.get(spec['task'], spec['task'])} --split-by {spec.get('split') or 'scaffold'} "
            f"--split-seed {spec.get('seed', 0)} --metric {spec['metric']}"
        )
        out["command"] = command.replace(f"--dataset {spec['dataset']}", data_args)
    return out


def reference_dataset(dataset: str) -> str:
    """The dataset whose first test graphs a zoo entry's ``reference`` outputs are computed on: the entry's own for
    built-in data; for user data (not there when the entry is loaded elsewhere) a shipped set with the same
    featurisation (``ogbg-molbace`` for OGB features, ``zinc12k`` for ZINC's).
    """
    from .datasets import REGISTRY, get_info

    if dataset in REGISTRY:
        return dataset
    info = get_info(dataset)
    dims = (tuple(info.node_feat_dims), tuple(info.edge_feat_dims))
    if dims == _FEATURISATIONS["zinc"]:
        return "zinc12k"
    if dims == _FEATURISATIONS["ogb"]:
        return "ogbg-molbace"
    return dataset
