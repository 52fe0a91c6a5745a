"""dgl-hod: HOD-GNN (High-Order Derivative GNNs) on DGL.

Pipeline: data (:mod:`dgl_hod.datasets`) -> base MPNN jets (:mod:`dgl_hod.jets`, :mod:`dgl_hod.nn.base_mpnn`)
-> derivative encoders -> downstream GNN -> head -> registry / CLI.

Metadata look-ups are named ``{thing}_info``, next to ``list_{things}``: :func:`arch_info` / :func:`list_archs`,
:func:`model_info` / :func:`list_models` (the zoo), :func:`dataset_info` / :func:`list_datasets`.  The older names
``get_arch`` and ``get_info`` remain as aliases in :mod:`dgl_hod.archs` and :mod:`dgl_hod.datasets`.
"""

import os as _os

_os.environ.setdefault("DGLBACKEND", "pytorch")  # silence DGL's backend notice; we only support PyTorch

from .archs import GraphModel, arch_info, create_model, list_archs  # noqa: E402
from .datasets import dataset_info, list_datasets, load_dataset  # noqa: E402
from .nn.base_mpnn import BaseMPNN, GraphJets, JetMemoryError  # noqa: E402
from .zoo import list_models, load_model, model_info  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "BaseMPNN",
    "GraphJets",
    "GraphModel",
    "JetMemoryError",
    "__version__",
    "arch_info",
    "create_model",
    "dataset_info",
    "list_archs",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_model",
    "model_info",
]
