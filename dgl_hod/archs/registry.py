"""Architecture registry: data (name -> builder + typed config) plus a few pure lookup functions.

Every architecture (``hod-gnn`` and the baselines) registers a config dataclass and a model class::

    @register_arch("hod-gnn", HODGNNConfig)
    class HODGNN(GraphModel): ...

and is built by name with validated keyword arguments: ``create_model("hod-gnn", order=2, num_tasks=1)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..utils import did_you_mean

if TYPE_CHECKING:
    from .base import GraphModel

__all__ = ["ArchEntry", "arch_info", "create_model", "get_arch", "list_archs", "register_arch"]


@dataclass(frozen=True)
class ArchEntry:
    name: str
    config_cls: type
    model_cls: type


_ARCHS: dict[str, ArchEntry] = {}
M = TypeVar("M", bound=type)


def register_arch(name: str, config_cls: type) -> Callable[[M], M]:
    """Class decorator registering ``model_cls(config)`` under ``name`` with its config dataclass."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_cls for {name!r} must be a dataclass")

    def deco(model_cls: M) -> M:
        if name in _ARCHS:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHS[name] = ArchEntry(name, config_cls, model_cls)
        return model_cls

    return deco


def list_archs() -> list[str]:
    return sorted(_ARCHS)


def arch_info(name: str) -> ArchEntry:
    """The registered :class:`ArchEntry` of ``name`` (``get_arch`` is the old name of this function)."""
    if name not in _ARCHS:
        raise KeyError(f"unknown architecture {name!r}.{did_you_mean(name, _ARCHS)} Available: {list_archs()}")
    return _ARCHS[name]


def make_config(arch: str, **config: Any):
    """The validated config dataclass of ``arch`` (unknown keys -> error naming the valid ones)."""
    entry = arch_info(arch)
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        hints = "".join(did_you_mean(k, fields) for k in unknown)
        raise TypeError(f"unknown config key(s) {unknown} for {arch!r}.{hints} Valid keys: {sorted(fields)}")
    cfg = entry.config_cls(**config)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def create_model(arch: str, **config: Any) -> GraphModel:
    """Build architecture ``arch`` (see :func:`list_archs`) from keyword config, validated by its dataclass."""
    return cast("GraphModel", arch_info(arch).model_cls(make_config(arch, **config)))


get_arch = arch_info  # old name, kept as an alias
