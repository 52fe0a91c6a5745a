"""The dataset registry: plain data (one :class:`DatasetInfo` per name) and small pure lookups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..utils import did_you_mean

__all__ = [
    "DatasetInfo",
    "REGISTRY",
    "list_datasets",
    "dataset_info",
    "get_info",
    "canonical_split",
    "OGB_ATOM_DIMS",
    "OGB_BOND_DIMS",
]

OGB_ATOM_DIMS = (119, 5, 12, 12, 10, 6, 6, 2, 2)  # ogb.utils.features.get_atom_feature_dims()
OGB_BOND_DIMS = (5, 6, 2)  # ogb.utils.features.get_bond_feature_dims()


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of one dataset.

    ``node_feat_dims`` / ``edge_feat_dims`` are the vocabulary sizes of the categorical feature columns: with one
    column, ``g.ndata["feat"]`` has shape (N,); with F columns, (N, F).  ``splits`` maps split name to its number of
    graphs (for fold-based datasets: the size in every fold).  ``num_folds`` > 0 means ``train``/``val``/``test``
    need ``fold=``.  ``label_shape`` is the shape and dtype of one ``y``.
    """

    name: str
    task_type: str  # "regression" | "binary_classification" | "multiclass_classification" | "isomorphism"
    metric: str  # "mae" | "rmse" | "rocauc" | "ap" | "accuracy" | "distinguish"
    num_tasks: int
    node_feat_dims: tuple[int, ...]
    edge_feat_dims: tuple[int, ...]
    num_graphs: int
    splits: Mapping[str, int]
    loader: str  # key into dgl_hod.datasets.loaders.LOADERS
    files: tuple[str, ...]  # shipped files used, relative to the data root
    source: str
    license: str
    num_classes: int = 0  # for classification: number of classes
    num_folds: int = 0
    label_shape: str = ""
    options: Mapping[str, object] = field(default_factory=dict)  # loader-specific constants


def _m(**kw):
    return MappingProxyType(kw)


_OGB = {  # name: (folder, task_type, metric, num_tasks, num_graphs, (train, valid, test))
    "ogbg-molhiv": ("molhiv", "binary_classification", "rocauc", 1, 41127, (32901, 4113, 4113)),
    "ogbg-molbace": ("molbace", "binary_classification", "rocauc", 1, 1513, (1210, 151, 152)),
    "ogbg-molbbbp": ("molbbbp", "binary_classification", "rocauc", 1, 2039, (1631, 204, 204)),
    "ogbg-moltox21": ("moltox21", "binary_classification", "rocauc", 12, 7831, (6264, 783, 784)),
    "ogbg-molesol": ("molesol", "regression", "rmse", 1, 1128, (902, 113, 113)),
    "ogbg-molfreesolv": ("molfreesolv", "regression", "rmse", 1, 642, (513, 64, 65)),
    "ogbg-mollipo": ("mollipo", "regression", "rmse", 1, 4200, (3360, 420, 420)),
}

_BREC_FILES = ("basic", "regular", "str", "extension", "cfi", "4vtx", "dr")  # BREC's canonical pair order

COUNTING_TARGETS = (
    "triangle",
    "tailed_triangle",
    "cycle4",
    "cycle5",
    "cycle6",
    "chordal_cycle",
    "clique4",
    "star3",
    "path4",
)

_ENTRIES = [
    DatasetInfo(
        "zinc12k",
        "regression",
        "mae",
        1,
        (28,),
        (4,),
        12000,
        _m(train=10000, val=1000, test=1000),
        "zinc12k",
        ("zinc12k/train.npz", "zinc12k/val.npz", "zinc12k/test.npz"),
        "benchmarking-gnns ZINC subset, rebuilt from JT-VAE SMILES (datasets/README.md)",
        "MIT",
        label_shape="float32 (1,)",
    ),
    *[
        DatasetInfo(
            name,
            tt,
            metric,
            t,
            OGB_ATOM_DIMS,
            OGB_BOND_DIMS,
            g,
            _m(train=s[0], valid=s[1], test=s[2]),
            "ogb",
            (f"ogbg/{folder}/graphs.npz",),
            "MoleculeNet table featurised with OGB smiles2graph, OGB scaffold split",
            "MIT",
            label_shape=f"float32 ({t},), NaN = missing",
            options=_m(folder=folder),
        )
        for name, (folder, tt, metric, t, g, s) in _OGB.items()
    ],
    DatasetInfo(
        "peptides-func",
        "binary_classification",
        "ap",
        10,
        OGB_ATOM_DIMS,
        OGB_BOND_DIMS,
        15535,
        _m(train=10873, val=2331, test=2331),
        "peptides",
        ("peptides_func/peptides_func.npz",),
        "LRGB Peptides-func, featurised here with OGB smiles2graph (ogb 1.3.6, rdkit 2022.9.5)",
        "MIT",
        label_shape="float32 (10,) multi-label 0/1",
    ),
    DatasetInfo(
        "exp",
        "binary_classification",
        "accuracy",
        1,
        (2,),
        (1,),
        1200,
        _m(all=1200),
        "exp",
        ("synthetic/exp/exp.npz",),
        "EXP (Abboud et al. 2021) via GNN-AK",
        "MIT",
        num_classes=2,
        label_shape="int64 () 1 = satisfiable",
    ),
    DatasetInfo(
        "csl",
        "multiclass_classification",
        "accuracy",
        1,
        (1,),
        (1,),
        150,
        _m(all=150, train=90, val=30, test=30),
        "csl",
        ("synthetic/csl/csl.npz", "synthetic/csl/splits.json"),
        "CSL (Murphy et al. 2019) via benchmarking-gnns",
        "MIT",
        num_classes=10,
        num_folds=5,
        label_shape="int64 () class 0-9",
    ),
    DatasetInfo(
        "sr25",
        "isomorphism",
        "distinguish",
        1,
        (1,),
        (1,),
        15,
        _m(all=15),
        "g6",
        ("synthetic/sr25/sr251256.g6",),
        "SR25 srg(25,12,5,6) via GNN-AK",
        "MIT",
        num_classes=15,
        label_shape="int64 () graph id",
    ),
    DatasetInfo(
        "graph8c",
        "isomorphism",
        "distinguish",
        1,
        (1,),
        (1,),
        11117,
        _m(all=11117),
        "g6",
        ("synthetic/graph8c/graph8c.g6",),
        "all connected graphs on 8 vertices, via gnn-matlang",
        "MIT",
        num_classes=11117,
        label_shape="int64 () graph id",
    ),
    DatasetInfo(
        "brec",
        "isomorphism",
        "distinguish",
        1,
        (1,),
        (1,),
        800,
        _m(all=800),
        "brec",
        tuple(f"synthetic/brec/{f}.g6" for f in _BREC_FILES),
        "BREC (Wang & Zhang 2024)",
        "MIT",
        num_classes=400,
        label_shape="int64 () pair id",
        options=_m(categories=_BREC_FILES),
    ),
    DatasetInfo(
        "counting",
        "regression",
        "mae",
        len(COUNTING_TARGETS),
        (1,),
        (1,),
        5000,
        _m(all=5000, train=1500, val=1000, test=2500),
        "counting",
        (),
        "generated here (look-alike of the GNN-AK/I2-GNN counting set, NOT the original file)",
        "MIT (this project)",
        label_shape=f"float32 ({len(COUNTING_TARGETS)},) counts / std",
        options=_m(targets=COUNTING_TARGETS, seed=0),
    ),
    DatasetInfo(
        "mutag",
        "multiclass_classification",
        "accuracy",
        1,
        (7,),
        (4,),
        188,
        _m(all=188, train=170, test=18),
        "tu",
        tuple(f"tu/MUTAG/MUTAG_{k}.txt" for k in ("A", "graph_indicator", "graph_labels", "node_labels", "edge_labels"))
        + ("tu/splits/gin10fold_MUTAG.json",),
        "TUDataset MUTAG; GIN/DGCNN 10-fold index files",
        "TUDataset terms (research use)",
        num_classes=2,
        num_folds=10,
        label_shape="int64 () 0 (TU -1) / 1 (TU 1)",
        options=_m(tu="MUTAG", edge_labels=True),
    ),
    DatasetInfo(
        "proteins",
        "multiclass_classification",
        "accuracy",
        1,
        (3,),
        (1,),
        1113,
        _m(all=1113, train=1002, test=111),
        "tu",
        tuple(f"tu/PROTEINS/PROTEINS_{k}.txt" for k in ("A", "graph_indicator", "graph_labels", "node_labels"))
        + ("tu/splits/gin10fold_PROTEINS.json",),
        "TUDataset PROTEINS; GIN/DGCNN 10-fold index files",
        "TUDataset terms (research use)",
        num_classes=2,
        num_folds=10,
        label_shape="int64 () 0 (TU 1) / 1 (TU 2)",
        options=_m(tu="PROTEINS", edge_labels=False),
    ),
]

REGISTRY: Mapping[str, DatasetInfo] = MappingProxyType({e.name: e for e in _ENTRIES})
# user datasets registered for this process (dgl_hod.datasets.user.register_dataset); not in list_datasets()
USER_INFOS: dict[str, DatasetInfo] = {}

_SPLIT_ALIASES = MappingProxyType({"valid": "val", "validation": "val", "val": "valid"})


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, in registry order."""
    return list(REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """Metadata for ``name``; an unknown name raises ``KeyError`` listing close matches (old name: ``get_info``)."""
    key = name.lower().strip()
    if key in REGISTRY:
        return REGISTRY[key]
    if key in USER_INFOS:
        return USER_INFOS[key]
    raise KeyError(f"Unknown dataset {name!r}.{did_you_mean(key, REGISTRY)} Available: {', '.join(REGISTRY)}.")


get_info = dataset_info  # old name, kept as an alias


def canonical_split(info: DatasetInfo, split: str | None) -> str:
    """Map ``split`` (None = all graphs; 'valid'/'val' are aliases) to a key of ``info.splits`` or 'all'."""
    if split is None or split == "all":
        return "all"
    if split in info.splits:
        return split
    alias = _SPLIT_ALIASES.get(split)
    if alias is not None and alias in info.splits:
        return alias
    raise ValueError(f"{info.name} has splits {sorted(set(info.splits) | {'all'})}; got {split!r}")
