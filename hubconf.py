"""torch.hub entry points: one per zoo.yaml entry, generated from the registry.

>>> import torch
>>> torch.hub.list("/path/to/dgl-hod", source="local")                           # doctest: +SKIP
['ds_gnn_zinc', ..., 'hod_gnn_k2_zinc']
>>> model = torch.hub.load("/path/to/dgl-hod", "hod_gnn_k2_zinc", source="local")   # doctest: +SKIP

Each entry point is the zoo name with ``-`` replaced by ``_`` and takes :func:`dgl_hod.load_model`'s keyword
options (``pretrained``, ``num_tasks``, ``new_head``, ``freeze``, ...): ``torch.hub.load(repo, "hod_gnn_k2_zinc")``
returns the same model as ``load_model("hod-gnn-k2-zinc")``, with the same integrity checks.  The registry and the
weights are the ones of this checkout (``zoo.yaml`` and ``models/`` next to this file); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

dependencies = ["torch", "dgl", "safetensors", "yaml"]

_HERE = Path(__file__).resolve().parent


def _zoo() -> Any:
    from dgl_hod.zoo import Zoo

    return Zoo(_HERE / "zoo.yaml", _HERE / "models")


def _entry_point(name: str) -> Any:
    def load(**kwargs: Any) -> Any:
        return _zoo().load_model(name, **kwargs)

    entry = _zoo().model_info(name)
    test = entry.metrics.get("test", {})
    load.__name__ = load.__qualname__ = name.replace("-", "_")
    load.__doc__ = (
        f"Zoo model {name!r}: {entry.arch} trained on {entry.dataset} ({entry.num_params:,} parameters, test "
        f"{test.get('metric', '')} {test.get('mean', '')}); keyword options as in dgl_hod.load_model."
    )
    return load


for _name in _zoo().list_models():
    globals()[_name.replace("-", "_")] = _entry_point(_name)
