"""Build a registered architecture for a dataset: fill in the dataset-derived config fields, check the vocabularies.

:func:`~dgl_hod.archs.registry.create_model` builds a model from a complete config; :func:`build_model` is the same
with the fields a dataset determines filled in from :func:`~dgl_hod.datasets.get_info` (``node_vocab``,
``edge_vocab``, ``num_tasks``), so a config names only the architecture's own choices.

Example:
    >>> from dgl_hod.archs.build import build_model
    >>> model, full = build_model("gine", "zinc12k", {"hidden_dim": 8, "num_layers": 2})
    >>> full["node_vocab"], full["edge_vocab"], full["num_tasks"]
    ([28], [4], 1)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from torch import nn

from .registry import create_model, get_arch

__all__ = ["build_model", "check_vocab_fits", "fill_config"]


def fill_config(arch: str, dataset: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the dataset-derived fields of ``arch``'s config dataclass filled in where not given.

    ``node_vocab`` / ``edge_vocab`` are the dataset's categorical vocabularies (``edge_vocab`` is ``None`` when the
    edges carry no information, ``edge_feat_dims == (1,)``); ``num_tasks`` is the number of classes for multi-class
    datasets and the number of tasks otherwise. Fields the config dataclass does not have are left out.

    Args:
        arch: a registered architecture name.
        dataset: a registered dataset name.
        config: the architecture's keyword config (not modified).

    Returns:
        A new dict.
    """
    from ..datasets import get_info

    info = get_info(dataset)
    fields = {f.name for f in dataclasses.fields(get_arch(arch).config_cls)}
    filled = dict(config)
    if "node_vocab" in fields and "node_vocab" not in filled:
        filled["node_vocab"] = tuple(info.node_feat_dims)
    if "edge_vocab" in fields and "edge_vocab" not in filled:
        filled["edge_vocab"] = None if tuple(info.edge_feat_dims) == (1,) else tuple(info.edge_feat_dims)
    if "num_tasks" in fields and "num_tasks" not in filled:
        multiclass = info.task_type == "multiclass_classification"
        filled["num_tasks"] = info.num_classes if multiclass else info.num_tasks
    return filled


def check_vocab_fits(config: Mapping[str, Any], dataset: str, source: str) -> None:
    """Refuse a model whose categorical input encoders cannot take ``dataset``'s feature ids.

    Without this check the mismatch surfaces as an index error deep inside an embedding.

    Args:
        config: a (filled) architecture config.
        dataset: the dataset the model will read.
        source: where the config came from, for the message (e.g. ``"zoo model gine-zinc"``).

    Raises:
        ValueError: a vocabulary has the wrong number of columns or a column is smaller than the dataset's.
    """
    from ..datasets import get_info

    info = get_info(dataset)
    for key, dims in (("node_vocab", info.node_feat_dims), ("edge_vocab", info.edge_feat_dims)):
        vocab = config.get(key)
        if vocab is None or (key == "edge_vocab" and tuple(dims) == (1,)):
            continue
        if len(vocab) != len(dims) or any(v < d for v, d in zip(vocab, dims)):
            raise ValueError(
                f"{source} has {key}={tuple(vocab)} but {dataset} has feature vocabularies "
                f"{tuple(dims)}: the encoders cannot read its features. Use a dataset with the same "
                f"featurisation (e.g. a zinc12k model on zinc12k, an ogbg-mol* model on ogbg-mol*) or "
                f"a config whose {key} covers {tuple(dims)}"
            )


def build_model(arch: str, dataset: str, config: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """``create_model(arch, **config)`` with the dataset-derived fields filled in (:func:`fill_config`).

    Args:
        arch: a registered architecture name.
        dataset: a registered dataset name.
        config: the architecture's keyword config.

    Returns:
        The model and its full config as a JSON-ready dict (tuples become lists).
    """
    filled = fill_config(arch, dataset, config)
    check_vocab_fits(filled, dataset, "the config")
    model = create_model(arch, **filled)
    cfg = getattr(model, "config", None)
    full = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type) else filled
    return model, json.loads(json.dumps(full))
