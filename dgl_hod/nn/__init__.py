"""Neural-network building blocks: jet layouts, the base MPNN (more to come: encoders, downstream GNNs)."""

from .base_mpnn import BaseMPNN, GraphJets, JetGINLayer, JetMemoryError
from .layouts import DenseLayout, SparseLayout

__all__ = ["BaseMPNN", "DenseLayout", "GraphJets", "JetGINLayer", "JetMemoryError", "SparseLayout"]
