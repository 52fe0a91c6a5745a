"""Offline, checksummed benchmark datasets as DGL graphs.

>>> from dgl_hod.datasets import load_dataset, list_datasets, get_info, Evaluator, expressivity_pairs
>>> ds = load_dataset("zinc12k", split="train")
>>> g, y = ds[0]                       # g.ndata["feat"], g.edata["feat"]: int64 categorical ids
>>> bg, ys = ds.batch(range(128))      # or dgl.batch / dgl.dataloading.GraphDataLoader(ds, batch_size=128)

Data files ship in the repository's ``datasets/`` folder (``$DGL_HOD_DATA`` overrides it) and are sha256-checked on
first use; generated data (``counting``) is cached under ``$DGL_HOD_CACHE`` (default ``~/.cache/dgl_hod``).
Nothing is downloaded.  Conventions are documented in the README's "Datasets" section and ``datasets/README.md``.
"""

from __future__ import annotations

from ._store import DatasetFileError, cache_dir, data_root
from .evaluate import Evaluator
from .expressivity import expressivity_pairs
from .graphs import GraphDataset, PackedGraphs
from .loaders import LOADERS
from .registry import COUNTING_TARGETS, REGISTRY, DatasetInfo, canonical_split, dataset_info, get_info, list_datasets
from .smiles import MoleculeError, from_smiles, scaffold_split
from .user import UserDataError, UserGraphDataset, from_graphs, register_dataset

__all__ = [
    "load_dataset",
    "list_datasets",
    "get_info",
    "dataset_info",
    "DatasetInfo",
    "GraphDataset",
    "Evaluator",
    "expressivity_pairs",
    "DatasetFileError",
    "REGISTRY",
    "COUNTING_TARGETS",
    "data_root",
    "cache_dir",
    "PackedGraphs",
    "from_smiles",
    "from_graphs",
    "register_dataset",
    "scaffold_split",
    "UserGraphDataset",
    "UserDataError",
    "MoleculeError",
]


def load_dataset(name: str, split: str | None = None, *, fold: int | None = None) -> GraphDataset:
    """Load dataset ``name`` (see :func:`list_datasets`) as a :class:`GraphDataset`.

    ``split``: ``None``/``"all"`` = every graph in source order (for zinc12k: train, then val, then test); otherwise
    a key of ``get_info(name).splits`` (``"val"`` and ``"valid"`` are interchangeable).  Fold-based datasets (csl: 5
    folds with train/val/test; mutag, proteins: 10 folds with train/test) need ``fold=``.
    """
    info = get_info(name)
    split = canonical_split(info, split)
    packed, indices = LOADERS[info.loader](info, split, fold)
    label = split if fold is None else f"{split}[fold {fold}]"
    return GraphDataset(info, label, packed, indices)
