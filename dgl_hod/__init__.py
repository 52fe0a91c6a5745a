"""dgl-hod: HOD-GNN (High-Order Derivative GNNs) on DGL.

Pipeline: data (:mod:`dgl_hod.datasets`) -> base MPNN jets (:mod:`dgl_hod.jets`, :mod:`dgl_hod.nn.base_mpnn`)
-> derivative encoders -> downstream GNN -> head -> registry / CLI.
"""

import os as _os

_os.environ.setdefault("DGLBACKEND", "pytorch")  # silence DGL's backend notice; we only support PyTorch

from .archs import create_model, list_archs  # noqa: E402
from .nn.base_mpnn import BaseMPNN, GraphJets, JetMemoryError  # noqa: E402
from .zoo import list_models, load_model, model_info  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "BaseMPNN",
    "GraphJets",
    "JetMemoryError",
    "__version__",
    "create_model",
    "list_archs",
    "list_models",
    "load_model",
    "model_info",
]
