"""Architectures, registered by name: build any of them with :func:`create_model`."""

from .base import GraphModel, constant_node_feat, readout
from .registry import arch_info, create_model, get_arch, list_archs, make_config, register_arch

__all__ = [
    "GraphModel",
    "arch_info",
    "constant_node_feat",
    "create_model",
    "get_arch",
    "list_archs",
    "make_config",
    "readout",
    "register_arch",
]
from . import (
    baselines,  # noqa: F401  (registers the baselines)
    hod_gnn,  # noqa: F401  (registers "hod-gnn")
)
