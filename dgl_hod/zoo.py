"""The model zoo: ``zoo.yaml`` (the single source of truth) and loading pretrained models by name.

>>> from dgl_hod import list_models, model_info, load_model
>>> list_models("hod-gnn-*")                                     # doctest: +SKIP
>>> model = load_model("hod-gnn-k2-zinc")                        # doctest: +SKIP
>>> model = load_model("hod-gnn-k2-zinc", num_tasks=3, freeze="base")   # new head, frozen base MPNN  # doctest: +SKIP

Weights are local files (``models/`` next to ``zoo.yaml``; ``$DGL_HOD_MODELS`` or ``weights=`` override it), in
safetensors format only (never pickle), sha256-checked before loading, loaded with a strict key/shape check.
Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from .archs import create_model

__all__ = [
    "FREEZE_GROUPS",
    "WeightsError",
    "Zoo",
    "ZooEntry",
    "default_zoo",
    "freeze_parameters",
    "list_models",
    "load_model",
    "model_info",
    "reference_output",
    "save_weights",
    "sha256_file",
]

ROOT = Path(__file__).resolve().parent.parent

#: named parameter groups for ``freeze=``: name -> parameter-name prefixes (``None`` = everything but the head)
FREEZE_GROUPS: dict[str, tuple[str, ...] | None] = {
    "base": ("base.",),
    "encoder": ("node_encoder.", "edge_encoder."),
    "all-but-head": None,
}


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt, or does not match its model."""


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained model of ``zoo.yaml`` (every field is documented in the README's zoo section)."""

    name: str
    arch: str
    config: Mapping[str, Any]
    dataset: str
    task: str
    num_tasks: int
    weights: str
    sha256: str
    num_params: int
    metrics: Mapping[str, Any]
    recipe: Mapping[str, Any]
    head: tuple[str, ...] = ("head.",)
    license: str = "MIT"
    paper: str = ""
    reference: Mapping[str, Any] = field(default_factory=dict)  # output on a fixed data slice, for tests
    notes: str = ""

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ZooEntry:
        known = {f.name for f in dataclasses.fields(cls)} - {"name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"zoo.yaml entry {name!r}: unknown field(s) {unknown}; known: {sorted(known)}")
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name != "name"
            and f.name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ValueError(f"zoo.yaml entry {name!r}: missing field(s) {missing}")
        kw = dict(data)
        kw["head"] = tuple(kw.get("head", ("head.",)))
        return cls(name=name, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("name")
        d["head"] = list(self.head)
        return d


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_weights(model: nn.Module, path: str | os.PathLike) -> str:
    """Write ``model``'s state dict as float32 safetensors, atomically; returns the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to(torch.float32).contiguous() if v.is_floating_point() else v.detach().contiguous()
        for k, v in model.state_dict().items()
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp))
    os.chmod(tmp, 0o644)  # weights are shared files, not secrets
    os.replace(tmp, path)
    return sha256_file(path)


def _close(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.4)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class Zoo:
    """A registry file plus its weights folder.  The package-level functions use :func:`default_zoo`."""

    def __init__(self, path: str | os.PathLike | None = None, models_dir: str | os.PathLike | None = None):
        self.path = Path(path or os.environ.get("DGL_HOD_ZOO") or ROOT / "zoo.yaml")
        self.models_dir = Path(models_dir or os.environ.get("DGL_HOD_MODELS") or self.path.parent / "models")
        self._entries: dict[str, ZooEntry] | None = None
        self._stamp: tuple[int, int] | None = None

    # -- registry -----------------------------------------------------------------------------------------------------
    @property
    def entries(self) -> dict[str, ZooEntry]:
        """The parsed registry, re-read whenever the file changes (e.g. another process packaged a model)."""
        if not self.path.exists():
            raise FileNotFoundError(f"zoo registry {self.path} not found; set DGL_HOD_ZOO to a zoo.yaml")
        st = self.path.stat()
        if self._entries is None or self._stamp != (st.st_mtime_ns, st.st_size):
            self._stamp = (st.st_mtime_ns, st.st_size)
            raw = yaml.safe_load(self.path.read_text()) or {}
            models = raw.get("models", {}) if isinstance(raw, dict) else None
            if not isinstance(models, dict):
                raise ValueError(f"{self.path}: expected a mapping 'models: {{name: entry}}'")
            self._entries = {name: ZooEntry.from_dict(name, e) for name, e in models.items()}
        return self._entries

    def list_models(self, pattern: str = "*", pretrained: bool | None = None) -> list[str]:
        """Names matching the glob ``pattern``; ``pretrained=True`` keeps those whose weights file is present."""
        names = sorted(n for n in self.entries if fnmatch.fnmatch(n, pattern))
        if pretrained is not None:
            names = [n for n in names if self.weights_path(self.entries[n]).exists() == pretrained]
        return names

    def model_info(self, name: str) -> ZooEntry:
        if name not in self.entries:
            raise KeyError(
                f"unknown model {name!r}.{_close(name, self.entries)} "
                f"See list_models() / `dgl-hod list` for the {len(self.entries)} available models."
            )
        return self.entries[name]

    def weights_path(self, entry: ZooEntry) -> Path:
        return self.models_dir / Path(entry.weights).name

    def write_entry(self, entry: ZooEntry) -> None:
        """Add or replace ``entry`` in the registry file (atomic write; other entries keep their order)."""
        raw = yaml.safe_load(self.path.read_text()) if self.path.exists() else None
        raw = raw or {}
        raw.setdefault("models", {})
        raw["models"][entry.name] = entry.to_dict()
        header = "# dgl-hod model zoo: the single source of truth (see README, 'Model zoo').\n"
        text = header + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=120)
        _atomic_write_bytes(self.path, text.encode())
        self._entries = None

    # -- loading ------------------------------------------------------------------------------------------------------
    def build(self, name: str, num_tasks: int | None = None) -> nn.Module:
        entry = self.model_info(name)
        config = dict(entry.config)
        if num_tasks is not None:
            config["num_tasks"] = num_tasks
        return create_model(entry.arch, **config)

    def load_model(
        self,
        name: str,
        pretrained: bool = True,
        num_tasks: int | None = None,
        freeze: str | Sequence[str] | None = None,
        weights: str | os.PathLike | None = None,
        strict: bool = True,
        new_head: bool | None = None,
    ) -> nn.Module:
        """Build zoo model ``name`` and load its weights.

        Args:
            pretrained: load the weights (else: the architecture with fresh initialisation).
            num_tasks: a new number of tasks: exactly the entry's head parameters (``entry.head`` prefixes) are
                dropped and re-initialised; everything else is loaded.
            freeze: ``"base"``, ``"encoder"``, ``"all-but-head"``, or parameter-name prefixes: those parameters get
                ``requires_grad=False``.
            weights: an explicit weights file (then the zoo's sha256 is not applied: you vouch for the file).
            strict: refuse missing/unexpected keys.
            new_head: re-initialise the head (``True``) even when ``num_tasks`` is unchanged -- a new task with
                the same number of outputs (fine-tuning on another dataset) should not start from the old task's
                head.  Default: only when ``num_tasks`` differs.
        """
        entry = self.model_info(name)
        if new_head is None:
            new_head = num_tasks is not None and num_tasks != entry.num_tasks
        model = self.build(name, num_tasks if new_head else None)
        if pretrained:
            state = self._read_weights(entry, weights)
            if new_head:
                state = {k: v for k, v in state.items() if not k.startswith(entry.head)}
            self._load_state(model, state, entry, strict=strict, skip_prefixes=entry.head if new_head else ())
        if freeze is not None:
            freeze_parameters(model, freeze, head=entry.head)
        model.eval()
        return model

    def _read_weights(self, entry: ZooEntry, weights: str | os.PathLike | None) -> dict[str, torch.Tensor]:
        path = Path(weights) if weights is not None else self.weights_path(entry)
        if not path.exists():
            raise WeightsError(
                f"weights file {path} for {entry.name!r} is missing; restore it from git "
                f"(`git checkout -- {path}`), set DGL_HOD_MODELS, or pass weights=PATH"
            )
        if path.suffix != ".safetensors":
            raise WeightsError(f"{path}: only .safetensors weights are loaded (never pickle files)")
        if weights is None:
            digest = sha256_file(path)
            if digest != entry.sha256:
                raise WeightsError(
                    f"sha256 mismatch for {path} ({entry.name!r}): expected {entry.sha256}, got "
                    f"{digest}. The file is corrupt or was changed; restore it with "
                    f"`git checkout -- {path}`"
                )
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types on corrupt headers
            raise WeightsError(f"cannot read {path} as safetensors: {exc}") from exc

    @staticmethod
    def _load_state(
        model: nn.Module,
        state: Mapping[str, torch.Tensor],
        entry: ZooEntry,
        strict: bool,
        skip_prefixes: tuple[str, ...] = (),
    ) -> None:
        own = model.state_dict()
        wrong = [
            f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in state.items()
            if k in own and own[k].shape != v.shape
        ]
        if wrong:
            raise WeightsError(f"weights for {entry.name!r} do not fit the model (shape mismatch): " + "; ".join(wrong))
        missing = [k for k in own if k not in state and not k.startswith(skip_prefixes)]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise WeightsError(
                f"weights for {entry.name!r} do not match the model: missing keys {missing[:8]}, "
                f"unexpected keys {unexpected[:8]} (pass strict=False to load the overlap)"
            )
        model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def freeze_parameters(model: nn.Module, freeze: str | Sequence[str], head: tuple[str, ...] = ("head.",)) -> list[str]:
    """Set ``requires_grad=False`` on a named group (see :data:`FREEZE_GROUPS`) or on parameter-name prefixes.

    Returns the frozen parameter names; an unknown group or a prefix matching nothing is an error.
    """
    names = [n for n, _ in model.named_parameters()]
    if isinstance(freeze, str):
        if freeze in FREEZE_GROUPS:
            prefixes = FREEZE_GROUPS[freeze]
            selected = (
                [n for n in names if not n.startswith(head)]
                if prefixes is None
                else [n for n in names if n.startswith(prefixes)]
            )
        elif freeze.endswith("."):
            selected = [n for n in names if n.startswith(freeze)]
        else:
            raise ValueError(
                f"unknown freeze group {freeze!r}: use one of {sorted(FREEZE_GROUPS)} or parameter-name "
                f"prefixes ending in '.' (e.g. 'base.layers.0.')"
            )
    else:
        selected = [n for n in names if n.startswith(tuple(freeze))]
    if not selected:
        raise ValueError(f"freeze={freeze!r} matches no parameter of {type(model).__name__}")
    params = dict(model.named_parameters())
    for n in selected:
        params[n].requires_grad_(False)
    return selected


@torch.no_grad()
def reference_output(model: nn.Module, dataset: str, split: str, indices: Sequence[int]) -> torch.Tensor:
    """``model``'s output ``(len(indices), num_tasks)`` on a fixed slice of a dataset split (eval mode, float32).

    Stored in each zoo entry (``reference``) so that tests check a loaded model reproduces it, without training.
    """
    from .datasets import load_dataset

    was_training = model.training
    model.eval()
    g, _ = load_dataset(dataset, split).batch(list(indices))
    out = model(g, g.ndata["feat"], g.edata["feat"])
    model.train(was_training)
    return out.detach().to(torch.float32)


PAPERS = {
    "hod-gnn": "Eitan et al., On The Expressive Power of GNN Derivatives, ICLR 2026",
    "gin": "Xu et al., How Powerful are Graph Neural Networks?, ICLR 2019",
    "gine": "Hu et al., Strategies for Pre-training Graph Neural Networks, ICLR 2020 (GINE)",
    "gine-rwse": "Dwivedi et al., Graph Neural Networks with Learnable Structural and Positional Representations, "
    "ICLR 2022 (RWSE) on GINE",
    "ds-gnn": "Bevilacqua et al., Equivariant Subgraph Aggregation Networks, ICLR 2022 (DS-GNN)",
    "dss-gnn": "Bevilacqua et al., Equivariant Subgraph Aggregation Networks, ICLR 2022 (DSS-GNN)",
}
REFERENCE_INDICES = list(range(8))


def _verified_run(run: Path, tolerance: float, require_full_train: bool) -> tuple[dict, dict, nn.Module, dict]:
    """(record, config, model, measured {"val", "test"}) of one finished run, its metrics recomputed from its file."""
    import dataclasses as dc
    import json

    from .archs import make_config
    from .datasets import get_info
    from .evaluation import evaluate

    record = json.loads((run / "record.json").read_text())
    if require_full_train and record["data"].get("train_graphs") != get_info(record["dataset"]).splits.get("train"):
        raise ValueError(f"{run}: trained on {record['data'].get('train_graphs')} graphs, not the full train split")
    config = dc.asdict(make_config(record["arch"], **record["config"]))
    model = create_model(record["arch"], **config)
    model.load_state_dict(load_file(str(run / record.get("weights", "best.safetensors"))), strict=True)
    model.eval()
    metrics_rec = record["metrics"]
    metric = metrics_rec["metric"]
    measured = {
        "val": evaluate(model, record["dataset"], record["data"].get("val_split", "val"))[metric],
        "test": evaluate(model, record["dataset"], "test")[metric],
    }
    for split, key in (("val", "best_val"), ("test", "test_at_best_val")):
        if abs(measured[split] - metrics_rec[key]) > tolerance:
            raise ValueError(
                f"{run}: recomputed {split} {metric} {measured[split]:.6f} differs from the recorded "
                f"{metrics_rec[key]:.6f} by more than {tolerance}"
            )
    return record, config, model, measured


#: run settings that must agree between the seeds packaged into one entry
_SAME_ACROSS_SEEDS = ("arch", "dataset", "config", "finetuned_from")
_SAME_RECIPE_ACROSS_SEEDS = ("lr", "batch_size", "weight_decay", "time_budget_s", "epochs_requested", "threads")


def package_run(
    run_dir: str | os.PathLike | Sequence[str | os.PathLike],
    name: str,
    zoo: Zoo | None = None,
    tolerance: float = 1e-4,
    notes: str = "",
    require_full_train: bool = True,
) -> ZooEntry:
    """Turn finished training runs (``record.json`` + ``best.safetensors`` of :mod:`dgl_hod.train`) into a zoo entry.

    ``run_dir`` is one run or several runs of the same recipe with different seeds.  The first run's weights are
    shipped: loaded strictly into a freshly built model and written to ``models/NAME.safetensors`` (float32).
    Every run's val/test metrics are recomputed from its weights file (packaging refuses if one differs from its
    record by more than ``tolerance``); the entry's ``mean``/``std`` are over all seeds, and ``weights_value`` is
    the shipped file's own value (what ``dgl-hod eval`` reproduces).  Nothing in the entry is typed by hand.
    """
    import json

    from .datasets import get_info

    zoo = zoo or default_zoo()
    runs = [Path(run_dir)] if isinstance(run_dir, (str, os.PathLike)) else [Path(r) for r in run_dir]
    if not runs:
        raise ValueError("give at least one run directory")
    verified = [_verified_run(r, tolerance, require_full_train) for r in runs]
    record, config, model, _ = verified[0]
    for run, (rec_i, _, _, _) in zip(runs[1:], verified[1:]):
        differ = [k for k in _SAME_ACROSS_SEEDS if rec_i.get(k) != record.get(k)]
        differ += [
            f"recipe.{k}" for k in _SAME_RECIPE_ACROSS_SEEDS if rec_i["recipe"].get(k) != record["recipe"].get(k)
        ]
        if differ:
            raise ValueError(f"{run} is not a seed of {runs[0]}: {', '.join(differ)} differ")
    seeds = [rec_i["recipe"].get("seed", 0) for rec_i, *_ in verified]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs {', '.join(map(str, runs))} repeat a seed: {seeds}")
    metric = record["metrics"]["metric"]
    seed_arg = str(seeds[0]) if len(seeds) == 1 else "SEED"
    origin = record.get("finetuned_from")
    if origin:  # a fine-tuned run is reproduced from its zoo model, not from a config
        start = f"--finetune {origin['zoo_model']}" + (f" --freeze {origin['freeze']}" if origin.get("freeze") else "")
        if origin.get("body_lr_scale", 1.0) != 1.0:
            start += f" --body-lr-scale {origin['body_lr_scale']:g}"
    else:
        start = f"{record['arch']} --config '{json.dumps(record['config'], separators=(',', ':'))}'"
    weights_rel = f"models/{name}.safetensors"
    sha = save_weights(model, zoo.models_dir / f"{name}.safetensors")
    recipe = dict(record["recipe"])
    timing = record["timing"]
    recipe.update(
        wall_time_s=round(timing["wall_time_s"], 1),
        seconds_per_epoch=round(timing["time_per_epoch_s_mean"], 2),
        machine=timing["machine"],
        best_epoch=record["metrics"]["best_epoch"],
        finished=record.get("finished"),
        seeds=seeds,
        command=(
            f"python -m dgl_hod.train {start} --dataset {record['dataset']} --seed {seed_arg} "
            f"--batch-size {recipe.get('batch_size')} --lr {recipe.get('lr')} --threads "
            f"{recipe.get('threads')}"
            + (f" --time-budget {recipe['time_budget_s']:g}" if recipe.get("time_budget_s") else "")
            + (
                f" --out runs/{name}"
                if len(seeds) == 1
                else f" --out runs/{name}-sSEED  # SEED in {seeds}; the first seed's weights are shipped"
            )
        ),
    )
    if origin:
        recipe["finetuned_from"] = origin
    if len(verified) > 1:
        recipe["epochs_run_per_seed"] = [rec_i["recipe"]["epochs_run"] for rec_i, *_ in verified]
    metrics = {}
    for split in ("val", "test"):
        values = [float(m[split]) for *_, m in verified]
        metrics[split] = {
            "metric": metric,
            "mean": round(float(np.mean(values)), 6),
            "std": round(float(np.std(values)), 6) if len(values) > 1 else None,
            "num_seeds": len(values),
            "seeds": seeds,
            "per_seed": [round(v, 6) for v in values],
            "weights_seed": seeds[0],
            "weights_value": round(values[0], 6),
        }
    info = get_info(record["dataset"])
    ref = reference_output(model, record["dataset"], "test", REFERENCE_INDICES)
    entry = ZooEntry(
        name=name,
        arch=record["arch"],
        config=_plain(config),
        dataset=record["dataset"],
        task=info.task_type,
        num_tasks=int(config.get("num_tasks", info.num_tasks)),
        weights=weights_rel,
        sha256=sha,
        num_params=sum(p.numel() for p in model.parameters()),
        metrics=metrics,
        recipe=_plain(recipe),
        head=("head.",),
        license="MIT",
        paper=PAPERS.get(record["arch"], ""),
        reference={
            "split": "test",
            "indices": REFERENCE_INDICES,
            "output": [[round(float(v), 6) for v in row] for row in ref.tolist()],
        },
        notes=notes,
    )
    zoo.write_entry(entry)
    return entry


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively (for YAML)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


_DEFAULT: Zoo | None = None


def default_zoo() -> Zoo:
    """The zoo of ``$DGL_HOD_ZOO`` or the repository's ``zoo.yaml`` (re-read when the variables change)."""
    global _DEFAULT
    want = Zoo()
    if _DEFAULT is None or (_DEFAULT.path, _DEFAULT.models_dir) != (want.path, want.models_dir):
        _DEFAULT = want
    return _DEFAULT


def list_models(pattern: str = "*", pretrained: bool | None = None) -> list[str]:
    """Zoo model names matching a glob ``pattern`` (``pretrained=True``: only those with weights present)."""
    return default_zoo().list_models(pattern, pretrained)


def model_info(name: str) -> ZooEntry:
    """The :class:`ZooEntry` of ``name`` (unknown names list close matches)."""
    return default_zoo().model_info(name)


def load_model(
    name: str,
    pretrained: bool = True,
    num_tasks: int | None = None,
    freeze: str | Sequence[str] | None = None,
    weights: str | os.PathLike | None = None,
    strict: bool = True,
    new_head: bool | None = None,
) -> nn.Module:
    """Load zoo model ``name`` (see :meth:`Zoo.load_model`)."""
    return default_zoo().load_model(name, pretrained, num_tasks, freeze, weights, strict, new_head)
