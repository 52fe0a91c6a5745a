"""Neural-network building blocks.

- :mod:`~dgl_hod.nn.common`: activation and norm tables, segment reductions, graph / local id of each node.
- :mod:`~dgl_hod.nn.encoders`: categorical input encoders.
- :mod:`~dgl_hod.nn.base_mpnn` and :mod:`~dgl_hod.nn.layouts`: the base MPNN and its derivative jets.
- :mod:`~dgl_hod.nn.derivative_encoders`: equivariant encoders of the jets.
- :mod:`~dgl_hod.nn.downstream`: the residual GINE layer and HOD-GNN's downstream GNN.
- :mod:`~dgl_hod.nn.subgraphs`: ESAN subgraph policies (bags of subgraphs).
"""

from .base_mpnn import BaseMPNN, GraphJets, JetGINLayer, JetMemoryError
from .common import ACTIVATIONS, NORMS, activation, graph_ids, local_ids, norm_layer, segment_reduce
from .derivative_encoders import DerivativeEncoder
from .downstream import DownstreamGNN, ResidualGINELayer
from .encoders import CategoricalEncoder
from .layouts import DenseLayout, SparseLayout
from .subgraphs import POLICIES, SubgraphPolicy, get_policy, subgraph_bag

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "POLICIES",
    "BaseMPNN",
    "CategoricalEncoder",
    "DenseLayout",
    "DerivativeEncoder",
    "DownstreamGNN",
    "GraphJets",
    "JetGINLayer",
    "JetMemoryError",
    "ResidualGINELayer",
    "SparseLayout",
    "SubgraphPolicy",
    "activation",
    "get_policy",
    "graph_ids",
    "local_ids",
    "norm_layer",
    "segment_reduce",
    "subgraph_bag",
]
