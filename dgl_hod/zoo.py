"""The model zoo: ``zoo.yaml`` (the single source of truth) and loading pretrained models by name.

>>> from dgl_hod import list_models, model_info, load_model
>>> list_models("hod-gnn-*")                                     # doctest: +SKIP
>>> model = load_model("hod-gnn-k2-zinc")                        # doctest: +SKIP
>>> model = load_model("hod-gnn-k2-zinc", num_tasks=3, freeze="base")   # new head, frozen base MPNN  # doctest: +SKIP

Weights are local files (``models/`` next to ``zoo.yaml``; ``$DGL_HOD_MODELS`` or ``weights=`` override it), in
safetensors format only (never pickle).  Loading a zoo model checks, in this order (``docs/security.md``):

1. the entry's ``config`` hashes to its ``config_sha256`` (an edited config is refused);
2. the weights file's sha256 equals the entry's ``sha256``, and the file's own metadata names the same config hash;
3. every tensor has the model's dtype (float32; float16/64 only with ``cast=True``) and is finite, and the keys and
   shapes match the model exactly;
4. the loaded model reproduces the entry's stored ``reference`` outputs on 8 fixed test graphs.

Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from .archs import GraphModel, create_model
from .resources import shipped_root
from .utils import atomic_write, atomic_write_bytes, did_you_mean, sha256_file

__all__ = [
    "FREEZE_GROUPS",
    "HISTORY_FORMAT",
    "HistoryError",
    "WeightsError",
    "Zoo",
    "ZooEntry",
    "ZooError",
    "check_name",
    "config_sha256",
    "default_zoo",
    "freeze_parameters",
    "list_models",
    "load_model",
    "model_info",
    "reference_output",
    "save_weights",
    "sha256_file",
]

ROOT = shipped_root()

#: named parameter groups for ``freeze=``: name -> parameter-name prefixes (``None`` = everything but the head)
FREEZE_GROUPS: dict[str, tuple[str, ...] | None] = {
    "base": ("base.",),
    "encoder": ("node_encoder.", "edge_encoder."),
    "all-but-head": None,
}

#: safetensors metadata keys written into every zoo weights file
META_CONFIG_SHA256 = "dgl_hod.config_sha256"
META_ARCH = "dgl_hod.arch"
META_CONFIG = "dgl_hod.config"

#: how far a loaded model's output may be from the entry's stored reference outputs (they are rounded to 1e-6)
REFERENCE_ATOL = 1e-4
REFERENCE_RTOL = 1e-4

#: the ``format`` of ``models/NAME.history.json`` (the per-epoch history of an entry's runs, one list per seed)
HISTORY_FORMAT = "dgl-hod-history/1"
#: the per-epoch columns of a history file (``peak_rss_mib`` only where the trainer recorded it)
HISTORY_COLUMNS = ("epoch", "wall_s", "time_s", "train_loss", "val", "test", "lr")
#: how far a history's best-epoch values may be from the entry's ``per_seed`` metrics (those were recomputed from
#: the weights at packaging and agree with the training record to the packaging tolerance, 1e-4 by default)
HISTORY_ATOL = 1e-3

#: floating dtypes that ``cast=True`` converts to float32 (anything else that is not float32 is refused)
CASTABLE = (torch.float16, torch.bfloat16, torch.float64)

_SAFE_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_HOD_NAME = re.compile(r"hod-gnn-k(?P<k>[1-9])(?:-m(?P<m>[1-9][0-9]*))?(?:-d(?P<d>[1-9][0-9]*))?-(?P<dataset>.+)")
_FIX_ZOO = (
    "restore it (`git checkout -- zoo.yaml models/` in a checkout) or package the run again with `dgl-hod package`"
)


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt, or does not match its model."""


class HistoryError(ValueError):
    """A zoo entry's per-epoch history file is missing, edited, or disagrees with the entry's metrics."""


class ZooError(ValueError):
    """The registry (``zoo.yaml``) is unreadable, or an entry is invalid or was edited."""


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained model of ``zoo.yaml`` (every field is documented in ``docs/zoo.md``).

    ``num_tasks`` is stored once, in ``config``; older files that also have a top-level ``num_tasks`` still load
    (it must agree with the config's).
    """

    name: str
    arch: str
    config: Mapping[str, Any]
    dataset: str
    task: str
    weights: str
    sha256: str
    num_params: int
    metrics: Mapping[str, Any]
    recipe: Mapping[str, Any]
    head: tuple[str, ...] = ("head.",)
    license: str = "MIT"
    paper: str = ""
    reference: Mapping[str, Any] = field(default_factory=dict)  # output on a fixed data slice, checked on load
    notes: str = ""
    config_sha256: str = ""  # :func:`config_sha256` of ``config``; also in the weights file's metadata
    history: Mapping[str, Any] = field(default_factory=dict)  # {file, sha256, seeds, epochs}: per-epoch history

    @property
    def num_tasks(self) -> int:
        """Number of outputs of the head (the config's ``num_tasks``)."""
        return int(self.config.get("num_tasks", 1))

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ZooEntry:
        if not isinstance(data, Mapping):
            raise ZooError(f"zoo.yaml entry {name!r}: expected a mapping of fields, got {type(data).__name__}")
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)} - {"name"}
        legacy_tasks = data.pop("num_tasks", None)  # stored twice by older versions
        unknown = sorted(set(data) - known)
        if unknown:
            raise ZooError(f"zoo.yaml entry {name!r}: unknown field(s) {unknown}; known: {sorted(known)}")
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name != "name"
            and f.name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ZooError(f"zoo.yaml entry {name!r}: missing field(s) {missing}")
        if not isinstance(data["config"], Mapping):
            raise ZooError(f"zoo.yaml entry {name!r}: 'config' must be a mapping of architecture options")
        config = dict(data["config"])
        if legacy_tasks is not None:
            if "num_tasks" in config and config["num_tasks"] != legacy_tasks:
                raise ZooError(
                    f"zoo.yaml entry {name!r}: num_tasks {legacy_tasks} disagrees with config.num_tasks "
                    f"{config['num_tasks']}; delete the top-level num_tasks (the config's is the one used)"
                )
            config.setdefault("num_tasks", legacy_tasks)
        data["config"] = config
        data["head"] = tuple(data.get("head", ("head.",)))
        return cls(name=name, **data)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("name")
        d["head"] = list(self.head)
        if not d["config_sha256"]:
            d.pop("config_sha256")
        if not d["history"]:  # entries packaged before histories were kept
            d.pop("history")
        return d


def _legacy_defaults(arch: str) -> dict[str, Any]:
    """``LEGACY_DEFAULTS`` of ``arch``'s config class: values for keys a stored config predates (e.g. hod-gnn's
    ``base_eps`` 0.0, the init the zoo's older entries were trained from).
    """
    from .archs import get_arch

    return dict(getattr(get_arch(arch).config_cls, "LEGACY_DEFAULTS", {}))


def config_sha256(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a config (sorted keys, tuples as lists): what binds a config to its weights.

    Example:
        >>> config_sha256({"b": (1, 2), "a": 0.5}) == config_sha256({"a": 0.5, "b": [1, 2]})
        True
    """
    text = json.dumps(_plain(dict(config)), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_name(name: str, arch: str | None = None, config: Mapping[str, Any] | None = None) -> None:
    """Refuse a zoo name that breaks the naming scheme (raises :class:`ZooError` saying what to use).

    Names are lower-case words of ``[a-z0-9]`` joined by single hyphens (no path separators, no ``..``, at most 64
    characters): ``hod-gnn-k{k}[-m{m}][-d{T}]-{dataset}`` for HOD-GNN (the paper's axes: at most ``k`` distinct
    marked nodes per derivative, order at most ``m`` in each, ``m`` omitted when 1; base depth ``T``) and
    ``{arch}-{dataset}`` for the other architectures.  With ``arch`` (and ``config``) given, the name must start
    with that architecture and its ``k``/``m``/``d`` must equal the config's ``k``/``m``/``base_layers``.  A config
    in the older spelling ``order=K`` (every derivative of total order ``<= K``) is named ``k{K}`` with no ``m``.

    Example:
        >>> check_name("hod-gnn-k1-m3-d4-zinc", "hod-gnn", {"k": 1, "m": 3, "base_layers": 4})
        >>> check_name("hod-gnn-k2-zinc", "hod-gnn", {"order": 2})
        >>> check_name("../escape")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        dgl_hod.zoo.ZooError: invalid zoo name '../escape': use lower-case letters, digits and single hyphens ...
    """
    if not isinstance(name, str) or len(name) > 64 or not _SAFE_NAME.fullmatch(name):
        raise ZooError(
            f"invalid zoo name {name!r}: use lower-case letters, digits and single hyphens (no '/', '.', '_' or "
            f"spaces, at most 64 characters), e.g. 'hod-gnn-k2-zinc' or 'gine-zinc'"
        )
    hod = _HOD_NAME.fullmatch(name)
    if arch is None:
        if name.startswith("hod-gnn") and not hod:
            raise ZooError(f"invalid zoo name {name!r}: HOD-GNN names are hod-gnn-k{{K}}[-m{{M}}][-d{{T}}]-{{dataset}}")
        if "-" not in name:
            raise ZooError(f"invalid zoo name {name!r}: use {{arch}}-{{dataset}}, e.g. 'gine-zinc'")
        return
    if arch == "hod-gnn":
        if not hod:
            raise ZooError(
                f"invalid zoo name {name!r} for a hod-gnn model: use hod-gnn-k{{K}}[-m{{M}}][-d{{T}}]-{{dataset}}, "
                f"e.g. 'hod-gnn-k2-zinc'"
            )
        config = dict(config or {})
        if config.get("order") is not None:  # older spelling: named by its total order alone
            if hod.group("m") is not None:
                raise ZooError(
                    f"zoo name {name!r} has an m, but the model uses order={config['order']} (every derivative of "
                    f"total order <= {config['order']}); name it hod-gnn-k{config['order']}[-d{{T}}]-{{dataset}}"
                )
            wanted = {"k": config["order"], "d": config.get("base_layers")}
            keys = {"k": "order", "d": "base_layers"}
        else:  # the paper's (k, m); both default to 1, and a name without m means m = 1
            wanted = {"k": config.get("k") or 1, "m": 1 if config.get("m") is None else config["m"]}
            wanted["d"] = config.get("base_layers")
            keys = {"k": "k", "m": "m", "d": "base_layers"}
        for part, want in wanted.items():
            got = hod.group(part) or ("1" if part == "m" else None)
            if got is not None and want is not None and int(got) != int(want):
                raise ZooError(
                    f"zoo name {name!r} says {part}{got} but the model has {keys[part]}={want}; name it after the "
                    f"model (e.g. {part}{want}; m is omitted when 1)"
                )
        return
    if not name.startswith(f"{arch}-") or name == f"{arch}-":
        raise ZooError(f"invalid zoo name {name!r} for a {arch} model: use {arch}-{{dataset}}, e.g. '{arch}-zinc'")


def _weights_metadata(arch: str, config: Mapping[str, Any]) -> dict[str, str]:
    return {
        META_ARCH: arch,
        META_CONFIG_SHA256: config_sha256(config),
        META_CONFIG: json.dumps(_plain(dict(config)), sort_keys=True, separators=(",", ":")),
    }


def save_weights(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> str:
    """Write ``model``'s state dict as float32 safetensors, atomically; returns the file's sha256.

    With ``arch`` and ``config``, the file's metadata records them and the config's :func:`config_sha256`, which
    binds the weights to their config (the zoo checks it on load).
    """
    tensors = {
        k: v.detach().to(torch.float32).contiguous() if v.is_floating_point() else v.detach().contiguous()
        for k, v in model.state_dict().items()
    }
    meta = _weights_metadata(arch, config) if arch is not None and config is not None else None
    atomic_write(Path(path), lambda f: f.write(_safetensors_bytes(tensors, meta)), mode=0o644)
    return sha256_file(path)


def _safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> bytes:
    """A safetensors file of ``tensors`` and ``metadata``, the same bytes for the same inputs (:func:`_canonical`)."""
    from safetensors.torch import save

    return _canonical(save(dict(tensors), metadata=dict(metadata) if metadata else None))


def _canonical(data: bytes) -> bytes:
    """``data`` (a safetensors file) with its JSON header in one fixed order: the metadata first, keys sorted, then
    the tensors in the order of their bytes. safetensors writes the metadata map in a random order, so packaging the
    same run twice gave two files (and two sha256) with the same tensors. The tensor bytes are not touched (their
    offsets count from the end of the header); the header is padded with spaces to 8 bytes, as safetensors does.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    meta = header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    ordered.update(sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"], kv[0])))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size :]


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file (no code runs: the format holds only a JSON header and bytes)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, meta  # noqa: SIM118  (safe_open has no __iter__)
    except Exception as exc:  # safetensors raises its own error types on corrupt headers
        raise WeightsError(
            f"cannot read {path} as safetensors ({exc}); the file is corrupt or not safetensors"
        ) from exc


def _check_tensors(
    state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], path: Path, cast: bool
) -> dict[str, torch.Tensor]:
    """Refuse tensors whose dtype is not the model's (floats: cast only with ``cast=True``) or that are not finite."""
    out: dict[str, torch.Tensor] = {}
    wrong: list[str] = []
    castable: list[str] = []
    nonfinite: list[str] = []
    for k, v in state.items():
        want = own[k].dtype if k in own else (torch.float32 if v.is_floating_point() else v.dtype)
        if v.dtype != want:
            if cast and want == torch.float32 and v.dtype in CASTABLE:
                v = v.to(torch.float32)
            elif want == torch.float32 and v.dtype in CASTABLE:
                castable.append(f"{k} ({str(v.dtype).removeprefix('torch.')})")
            else:
                wrong.append(f"{k}: {str(v.dtype).removeprefix('torch.')}, model {str(want).removeprefix('torch.')}")
                continue
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            nonfinite.append(k)
        out[k] = v
    if wrong:
        raise WeightsError(
            f"{path}: tensors of the wrong type ({'; '.join(wrong[:4])}): weights must be float32 (integer "
            f"buffers such as num_batches_tracked keep their type); save them with dgl_hod.zoo.save_weights"
        )
    if castable:
        raise WeightsError(
            f"{path}: {len(castable)} tensor(s) are not float32 ({', '.join(castable[:3])}); zoo models are "
            f"float32: pass cast=True to load_model to cast them deliberately (precision may differ)"
        )
    if nonfinite:
        raise WeightsError(f"{path}: tensor(s) {nonfinite[:4]} hold NaN or inf values; the file is unusable")
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate mapping keys (plain PyYAML lets the last one win silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: the base class reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined on line {first + 1}); every name must appear once",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _load_yaml(path: Path) -> Any:
    """Parse a registry file with duplicate keys refused; any problem is a one-line :class:`ZooError`."""
    if path.is_dir():
        raise ZooError(f"zoo registry {path} is a folder, not a file; point DGL_HOD_ZOO at a zoo.yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooError(f"cannot read zoo registry {path}: {exc}; point DGL_HOD_ZOO at a readable zoo.yaml") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ZooError(
            f"{path}{where}: invalid YAML ({problem}); fix the file or restore it (`git checkout -- zoo.yaml`)"
        ) from exc


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
            raw = _load_yaml(self.path) or {}
            models = raw.get("models", {}) if isinstance(raw, dict) else None
            if not isinstance(models, dict):
                raise ZooError(f"{self.path}: expected a mapping 'models: {{name: entry}}' at the top level")
            self._entries = {str(name): ZooEntry.from_dict(str(name), e) for name, e in models.items()}
            self._stamp = (st.st_mtime_ns, st.st_size)
        return self._entries

    def list_models(self, pattern: str = "*", pretrained: bool | None = None) -> list[str]:
        """Names matching the glob ``pattern``; ``pretrained=True`` keeps those whose weights file is present."""
        names = sorted(n for n in self.entries if fnmatch.fnmatch(n, pattern))
        if pretrained is not None:
            names = [n for n in names if self.weights_path(self.entries[n]).exists() == pretrained]
        return names

    def model_info(self, name: str) -> ZooEntry:
        """The :class:`ZooEntry` of ``name`` (unknown names list close matches)."""
        if name not in self.entries:
            raise KeyError(
                f"unknown model {name!r}.{did_you_mean(name, self.entries, cutoff=0.4)} "
                f"See list_models() / `dgl-hod list` for the {len(self.entries)} available models."
            )
        return self.entries[name]

    def weights_path(self, entry: ZooEntry) -> Path:
        return self.models_dir / Path(entry.weights).name

    def history_path(self, entry: ZooEntry) -> Path | None:
        """Where entry's per-epoch history file is (``None``: the entry was packaged before histories were kept)."""
        return self.models_dir / Path(entry.history["file"]).name if entry.history else None

    def read_history(self, name: str) -> dict[str, Any] | None:
        """The checked per-epoch history of entry ``name`` (``models/NAME.history.json``), or ``None`` if it has none.

        Refused (:class:`HistoryError`, naming the file and the fix) unless: the file exists; its sha256 equals the
        entry's ``history.sha256`` (an edited file); it is a :data:`HISTORY_FORMAT` document of this model and
        metric with one run per seed of ``history.seeds`` and ``history.epochs`` epochs each, numbered 1..n; and in
        each run the best validation epoch holds the entry's ``per_seed`` val and test values (recomputed from the
        weights when the run was packaged) to :data:`HISTORY_ATOL`. Returns the parsed document.
        """
        entry = self.model_info(name)
        path = self.history_path(entry)
        if path is None:
            return None
        fix = f"restore it (`git checkout -- {entry.history['file']}`) or package the run(s) again"
        if not path.is_file():
            raise HistoryError(f"history file {path} of zoo entry {name!r} is missing; {fix}")
        digest = sha256_file(path)
        if digest != entry.history.get("sha256"):
            raise HistoryError(
                f"history file {path} of zoo entry {name!r} was edited (sha256 {digest[:12]}..., zoo.yaml says "
                f"{str(entry.history.get('sha256'))[:12]}...); {fix}"
            )
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HistoryError(f"history file {path} of zoo entry {name!r} is not JSON ({exc}); {fix}") from exc
        problem = _history_problem(doc, entry)
        if problem:
            raise HistoryError(f"history file {path} of zoo entry {name!r}: {problem}; {fix}")
        return doc

    def describe(self, name: str) -> str:
        """One line naming an existing entry (what ``package --replace`` would replace)."""
        e = self.model_info(name)
        test = e.metrics.get("test", {})
        value = test.get("weights_value", test.get("mean"))
        return f"{name} ({e.arch} on {e.dataset}, test {test.get('metric', '?')} {value}, weights {e.weights})"

    def check_new_name(self, name: str, *, replace: bool = False) -> None:
        """Refuse a name that breaks the naming scheme, or that exists unless ``replace`` (the error says what)."""
        check_name(name)
        if self.path.exists() and name in self.entries and not replace:
            raise ZooError(
                f"zoo.yaml already has {self.describe(name)}; pass --replace (replace=True) to overwrite it, or "
                f"choose another --name"
            )

    def write_entry(self, entry: ZooEntry, *, supersedes: Sequence[str] = ()) -> ZooEntry:
        """Add or replace ``entry`` in the registry file (atomic write; other entries keep their order).

        The entry's weights file is bound to its config first (:meth:`bind_weights`: the config hash goes into the
        file's metadata and the entry; tensors stay bit-identical), so the returned entry may have a new
        ``sha256`` and ``config_sha256``.

        ``supersedes``: names of entries this one replaces under a new name (a renamed model, e.g.
        ``hod-gnn-k1-zinc`` -> ``hod-gnn-k1-m2-zinc``). They leave the registry in the same atomic write that adds
        ``entry`` (which takes the first one's place), and their weights and history files are deleted afterwards
        (:meth:`remove_entries` has the rules).
        """
        check_name(entry.name)
        supersedes = list(dict.fromkeys(supersedes))
        if entry.name in supersedes:
            raise ZooError(f"{entry.name!r} cannot supersede itself; pass --replace to overwrite an entry in place")
        self.check_entries(supersedes)
        if self.weights_path(entry).exists():
            entry = self._bind(entry)
        raw = _load_yaml(self.path) if self.path.exists() else None
        raw = raw or {}
        old = dict(raw.get("models") or {})
        gone = {n: ZooEntry.from_dict(n, old[n]) for n in supersedes}
        models: dict[str, Any] = {}
        for name, data in old.items():
            if name == entry.name or (name in gone and entry.name not in old and entry.name not in models):
                models[entry.name] = entry.to_dict()
            elif name not in gone:
                models[name] = data
        models.setdefault(entry.name, entry.to_dict())
        raw["models"] = models
        self._write_registry(raw)
        self._delete_files(gone.values())
        return entry

    def _write_registry(self, raw: Mapping[str, Any]) -> None:
        """The one write of ``zoo.yaml`` (atomic: readers see the old file or the new one, never a mixture)."""
        header = "# dgl-hod model zoo: the single source of truth (see docs/zoo.md).\n"
        text = header + yaml.safe_dump(dict(raw), sort_keys=False, default_flow_style=None, width=120)
        atomic_write_bytes(self.path, text.encode())
        self._entries = None

    def check_entries(self, names: Sequence[str]) -> None:
        """Refuse (:class:`ZooError`, with close matches) unless every name is an entry of the registry."""
        unknown = [n for n in names if not self.path.exists() or n not in self.entries]
        if unknown:
            hints = "".join(did_you_mean(n, self.entries if self.path.exists() else []) for n in unknown)
            raise ZooError(
                f"no zoo entry {', '.join(map(repr, unknown))} in {self.path} to remove (already removed?).{hints} "
                f"`dgl-hod list` shows the entries"
            )

    def entry_files(self, entry: ZooEntry) -> list[Path]:
        """The files of ``models/`` that belong to ``entry``: its weights and, where it has one, its history."""
        history = self.history_path(entry)
        return [self.weights_path(entry), *([history] if history is not None else [])]

    def remove_entries(self, names: Sequence[str]) -> list[Path]:
        """Remove entries ``names`` from the registry and delete their weights and history files.

        Every name must exist (nothing is changed otherwise). The registry is rewritten once, atomically, without
        them, and only then are their files deleted, so a reader never finds an entry whose file is gone; an
        interruption between the two steps can only leave unreferenced files, which :meth:`unreferenced_files`
        lists and a second ``remove`` cannot reach (delete them by hand). A file that another remaining entry still
        names is kept. Returns the deleted files.
        """
        names = list(dict.fromkeys(names))
        if not names:
            raise ValueError("give at least one zoo entry name to remove")
        self.check_entries(names)
        gone = [self.entries[n] for n in names]
        raw = _load_yaml(self.path) or {}
        raw["models"] = {n: e for n, e in (raw.get("models") or {}).items() if n not in names}
        self._write_registry(raw)
        return self._delete_files(gone)

    def _delete_files(self, gone: Iterable[ZooEntry]) -> list[Path]:
        """Delete the files of removed entries that no entry of the (already rewritten) registry names."""
        kept = {p.resolve() for e in self.entries.values() for p in self.entry_files(e)}
        deleted = []
        for entry in gone:
            for path in self.entry_files(entry):
                if path.resolve() not in kept and path.is_file():
                    path.unlink()
                    deleted.append(path)
        return deleted

    def unreferenced_files(self) -> list[Path]:
        """Files in ``models/`` that no entry names (left by an interrupted removal, or by hand): sorted.

        Hidden files (``.gitkeep``) are not counted.
        """
        if not self.models_dir.is_dir():
            return []
        named = {p.resolve() for e in self.entries.values() for p in self.entry_files(e)}
        files = (p for p in self.models_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        return sorted(p for p in files if p.resolve() not in named)

    def _bind(self, entry: ZooEntry) -> ZooEntry:
        """``entry`` with its weights file rewritten to carry the config hash in its metadata (tensors unchanged)."""
        path = self.weights_path(entry)
        want = _weights_metadata(entry.arch, entry.config)
        state, meta = _read_safetensors(path)
        if {k: meta.get(k) for k in want} != want:
            data = _safetensors_bytes(state, {**meta, **want})
            again, _ = _read_safetensors_bytes(data)
            if again.keys() != state.keys() or not all(_same_bits(again[k], state[k]) for k in state):
                raise WeightsError(f"{path}: re-writing the metadata changed a tensor; the file was left as it was")
            atomic_write_bytes(path, data, mode=0o644)
        return dataclasses.replace(entry, sha256=sha256_file(path), config_sha256=want[META_CONFIG_SHA256])

    def bind_weights(self, name: str) -> ZooEntry:
        """Maintenance: bind entry ``name``'s weights to its current config and update ``sha256`` in zoo.yaml.

        Refused unless the weights pass their current sha256 check and the model built from the current config
        reproduces the entry's reference outputs, so binding cannot bless an edited config that changes outputs.
        Use it after renaming a config key (a deprecated alias), which changes the config hash but not the model.
        """
        entry = self.model_info(name)
        model = self.build(name)
        state, _ = self._read_weights(entry, None)
        self._load_state(model, _check_tensors(state, model.state_dict(), self.weights_path(entry), False), entry)
        model.eval()
        self.check_reference(entry, model)
        return self.write_entry(dataclasses.replace(entry, config_sha256=""))

    # -- loading ------------------------------------------------------------------------------------------------------
    def check_config(self, entry: ZooEntry) -> None:
        """Refuse an entry whose ``config`` no longer hashes to its ``config_sha256`` (an edited config)."""
        if entry.config_sha256 and config_sha256(entry.config) != entry.config_sha256:
            raise ZooError(
                f"zoo.yaml entry {entry.name!r}: its config was edited (sha256 {config_sha256(entry.config)[:12]}..., "
                f"the weights were trained with {entry.config_sha256[:12]}...); {_FIX_ZOO}. To try a modified "
                f"architecture, build it with create_model({entry.arch!r}, **config) instead"
            )

    def check_reference(self, entry: ZooEntry, model: nn.Module) -> None:
        """Refuse a model that does not reproduce the entry's stored ``reference`` outputs (an edited config/file)."""
        ref = entry.reference
        if not ref or "output" not in ref:
            return
        dataset = ref.get("dataset", entry.dataset)  # a shipped set with the entry's featurisation, for user data
        got = reference_output(model, dataset, ref.get("split", "test"), ref["indices"])
        want = torch.tensor(ref["output"], dtype=torch.float32)
        if got.shape != want.shape or not torch.allclose(got, want, atol=REFERENCE_ATOL, rtol=REFERENCE_RTOL):
            diff = (got - want).abs().max().item() if got.shape == want.shape else float("nan")
            raise ZooError(
                f"zoo model {entry.name!r} does not reproduce its reference outputs on {len(ref['indices'])} "
                f"{dataset} {ref.get('split', 'test')} graphs (max |diff| {diff:.3g}, shape {tuple(got.shape)} "
                f"vs {tuple(want.shape)}): zoo.yaml or the weights were changed; {_FIX_ZOO}"
            )

    def build(self, name: str, num_tasks: int | None = None) -> GraphModel:
        entry = self.model_info(name)
        config = {**_legacy_defaults(entry.arch), **entry.config}  # keys the stored config predates: old values
        if num_tasks is not None:
            config["num_tasks"] = num_tasks
        return create_model(entry.arch, **config)

    def load_model(
        self,
        name: str,
        *,
        pretrained: bool = True,
        num_tasks: int | None = None,
        freeze: str | Sequence[str] | None = None,
        weights: str | os.PathLike | None = None,
        strict: bool = True,
        new_head: bool | None = None,
        cast: bool = False,
        verify: bool = True,
    ) -> GraphModel:
        """Build zoo model ``name`` and load its weights (options are keyword-only).

        Args:
            name: a zoo name (see :meth:`list_models`).
            pretrained: load the weights (else: the architecture with fresh initialisation).
            num_tasks: a new number of tasks: exactly the entry's head parameters (``entry.head`` prefixes) are
                re-initialised with ``num_tasks`` outputs; everything else is loaded.  With ``new_head=False`` a
                different ``num_tasks`` is an error (the trained head has ``entry.num_tasks`` outputs).
            freeze: ``"base"``, ``"encoder"``, ``"all-but-head"``, or parameter-name prefixes: those parameters get
                ``requires_grad=False``.
            weights: an explicit weights file (then the zoo's sha256 and reference outputs are not applied: you
                vouch for the file; its dtypes, finiteness, keys, shapes and config metadata are still checked).
            strict: refuse missing/unexpected keys.
            new_head: re-initialise the head (``True``) even when ``num_tasks`` is unchanged -- a new task with
                the same number of outputs (fine-tuning on another dataset) should not start from the old task's
                head.  Default: only when ``num_tasks`` differs.
            cast: accept float16/bfloat16/float64 tensors and cast them to float32 (refused by default: a file in
                another precision is not the model the zoo describes).
            verify: check the stored reference outputs after loading the zoo's own weights (costs one forward pass
                on 8 graphs).

        Returns:
            The model in eval mode.
        """
        entry = self.model_info(name)
        if num_tasks is not None and num_tasks != entry.num_tasks and new_head is False:
            raise ValueError(
                f"load_model({name!r}, num_tasks={num_tasks}, new_head=False): the trained head has "
                f"{entry.num_tasks} output(s); pass new_head=True (or omit new_head) for a fresh {num_tasks}-output "
                f"head, or omit num_tasks to keep the trained one"
            )
        if new_head is None:
            new_head = num_tasks is not None and num_tasks != entry.num_tasks
        self.check_config(entry)
        model = self.build(name, num_tasks if new_head else None)
        if pretrained:
            state, meta = self._read_weights(entry, weights)
            path = Path(weights) if weights is not None else self.weights_path(entry)
            if meta.get(META_ARCH, entry.arch) != entry.arch:
                raise WeightsError(
                    f"{path} holds a {meta[META_ARCH]!r} model, but zoo entry {name!r} is a {entry.arch!r}: use the "
                    f"weights of a {entry.arch!r} entry"
                )
            bound = meta.get(META_CONFIG_SHA256)
            if bound is not None and bound != config_sha256(entry.config):
                raise WeightsError(
                    f"{path} was saved for another config (sha256 {bound[:12]}...) than zoo entry {name!r} "
                    f"({config_sha256(entry.config)[:12]}...): use the weights of that entry, or build the model "
                    f"from the config in the file's metadata"
                )
            if weights is None and verify:
                full = model if not new_head else self.build(name)
                self._load_state(full, _check_tensors(state, full.state_dict(), path, cast), entry, strict=True)
                self.check_reference(entry, full)
            if new_head:
                state = {k: v for k, v in state.items() if not k.startswith(entry.head)}
            state = _check_tensors(state, model.state_dict(), path, cast)
            self._load_state(model, state, entry, strict=strict, skip_prefixes=entry.head if new_head else ())
        if freeze is not None:
            freeze_parameters(model, freeze, head=entry.head)
        model.eval()
        return model

    def _read_weights(
        self, entry: ZooEntry, weights: str | os.PathLike | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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
        return _read_safetensors(path)

    @staticmethod
    def _load_state(
        model: nn.Module,
        state: Mapping[str, torch.Tensor],
        entry: ZooEntry,
        strict: bool = True,
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


def _read_safetensors_bytes(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors.torch import load

    return load(data), {}


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.reshape(-1).contiguous().view(torch.uint8).equal(b.reshape(-1).contiguous().view(torch.uint8))


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
    """(record, config, model, measured {"val", "test"}) of one finished run, its metrics recomputed from its file.

    The data selection is re-derived, not read from ``record.json``: the split names (``val`` or, for datasets
    without one, ``test``) and the graph counts come from the dataset itself, the fold and the train/eval caps are
    cross-checked with the metadata the trainer wrote into ``best.safetensors``. The returned record's ``data`` is
    the re-derived one.
    """
    import dataclasses as dc
    import json

    from .archs import make_config
    from .datasets import load_dataset
    from .evaluation import check_fold, evaluate
    from .own_data import register_run_data
    from .train import validation_split

    record_path, weights_path = run / "record.json", run / "best.safetensors"
    for path in (record_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: give the --out folder of a finished `dgl-hod train` run")
    record = json.loads(record_path.read_text())
    register_run_data(run, record)  # a run on the user's molecules: re-read its table (data.json)
    dataset, data = record["dataset"], dict(record.get("data", {}))
    with safe_open(str(weights_path), framework="pt") as f:
        trained = json.loads((f.metadata() or {}).get("data", "null")) or {}
    for key in ("fold", "max_train_graphs", "max_eval_graphs"):  # runs before 0.x wrote no metadata: record only
        if key in trained and data.get(key) != trained[key]:
            raise ValueError(
                f"{record_path} says data.{key}={data.get(key)!r} but {weights_path} was trained with "
                f"{trained[key]!r}: the record was edited; restore it or train the run again"
            )
    fold = check_fold(dataset, data.get("fold"), f"{record_path}'s data.fold")
    val_name = validation_split(dataset)
    if data.get("val_split", val_name) != val_name:
        raise ValueError(
            f"{record_path} says data.val_split={data['val_split']!r}, but the trainer validates {dataset} on "
            f"{val_name!r}: the record was edited; restore it or train the run again"
        )
    sizes = {s: len(load_dataset(dataset, s, fold=fold)) for s in ("train", val_name, "test")}
    cap = data.get("max_train_graphs")
    train_graphs = min(cap, sizes["train"]) if cap else data.get("train_graphs", sizes["train"])
    if require_full_train and train_graphs != sizes["train"]:
        raise ValueError(f"{run}: trained on {train_graphs} graphs, not the full train split ({sizes['train']})")
    if data.get("max_eval_graphs") is not None and data["max_eval_graphs"] < max(sizes[val_name], sizes["test"]):
        raise ValueError(
            f"{run}: validated and tested on the first {data['max_eval_graphs']} graphs only (--max-eval-graphs); "
            f"its metrics are not the split's: train it again without --max-eval-graphs"
        )
    record["data"] = {
        "train_graphs": train_graphs,
        "val_graphs": sizes[val_name],
        "test_graphs": sizes["test"],
        "val_split": val_name,
        "fold": fold,
        "max_train_graphs": cap,
    }
    config = dc.asdict(make_config(record["arch"], **{**_legacy_defaults(record["arch"]), **record["config"]}))
    model = create_model(record["arch"], **config)
    model.load_state_dict(load_file(str(weights_path)), strict=True)
    model.eval()
    metrics_rec = record["metrics"]
    metric = metrics_rec["metric"]
    measured = {
        "val": evaluate(model, dataset, val_name, fold=fold)[metric],
        "test": evaluate(model, dataset, "test", fold=fold)[metric],
    }
    for split, key in (("val", "best_val"), ("test", "test_at_best_val")):
        if abs(measured[split] - metrics_rec[key]) > tolerance:
            raise ValueError(
                f"{run}: recomputed {split} {metric} {measured[split]:.6f} differs from the recorded "
                f"{metrics_rec[key]:.6f} by more than {tolerance}"
            )
    return record, config, model, measured


def _train_command(record: Mapping[str, Any], name: str, seeds: list[int], shipped_seed: int | None = None) -> str:
    """The ``python -m dgl_hod.train`` command that reproduces a run (every setting that differs from the default)."""
    import json

    from .train import Recipe

    recipe, data, origin = record["recipe"], record["data"], record.get("finetuned_from")
    if origin:  # a fine-tuned run is reproduced from its zoo model, not from a config
        start = f"--finetune {origin['zoo_model']}" + (f" --freeze {origin['freeze']}" if origin.get("freeze") else "")
        if origin.get("body_lr_scale", 1.0) != 1.0:
            start += f" --body-lr-scale {origin['body_lr_scale']:g}"
    else:
        start = f"{record['arch']} --config '{json.dumps(record['config'], separators=(',', ':'))}'"
    seed_arg = str(seeds[0]) if len(seeds) == 1 else "SEED"
    cmd = (
        f"python -m dgl_hod.train {start} --dataset {record['dataset']} --seed {seed_arg} "
        f"--batch-size {recipe.get('batch_size')} --lr {recipe.get('lr')} --threads {recipe.get('threads')}"
    )
    if recipe.get("epochs_requested"):
        cmd += f" --epochs {recipe['epochs_requested']}"
    if recipe.get("time_budget_s"):
        cmd += f" --time-budget {recipe['time_budget_s']:g}"
    if data.get("fold") is not None:
        cmd += f" --fold {data['fold']}"
    if recipe.get("world_size", 1) > 1:  # data-parallel processes (the global --batch-size is unchanged)
        cmd += f" --nproc {recipe['world_size']}"
    if recipe.get("dtype", "float32") != "float32":
        cmd += f" --dtype {recipe['dtype']}"
    defaults = Recipe(epochs=1)
    for flag, key, default in (
        ("--weight-decay", "weight_decay", defaults.weight_decay),
        ("--warmup-epochs", "warmup_epochs", 1 if recipe.get("epochs_requested") is None else defaults.warmup_epochs),
        ("--min-lr-ratio", "min_lr_ratio", defaults.min_lr_ratio),
        ("--grad-clip", "grad_clip_norm", defaults.grad_clip),
        ("--max-train-graphs", "max_train_graphs", None),
    ):
        value = data.get(key) if key == "max_train_graphs" else recipe.get(key, default)
        if value != default:
            cmd += f" {flag} {value}"
    if len(seeds) == 1:
        return cmd + f" --out runs/{name}"
    shipped_seed = seeds[0] if shipped_seed is None else shipped_seed
    return cmd + f" --out runs/{name}-sSEED  # SEED in {seeds}; seed {shipped_seed}'s weights are shipped"


#: how ``package_run`` picks the seed whose weights are shipped
SHIP_RULES = ("best-val", "first")


def _shipped_index(measured: Sequence[Mapping[str, float]], metric: str, ship: str) -> int:
    """Index of the shipped run: the best recomputed validation value (first on ties), or the first run."""
    from .datasets.evaluate import HIGHER_IS_BETTER

    if ship == "first":
        return 0
    sign = -1.0 if HIGHER_IS_BETTER.get(metric, False) else 1.0
    return min(range(len(measured)), key=lambda i: (sign * float(measured[i]["val"]), i))


def _num(value: Any) -> float | None:
    """A finite float rounded to 7 significant digits, or ``None`` (NaN/inf: a diverged epoch)."""
    v = float(value)
    return float(f"{v:.7g}") if np.isfinite(v) else None


def history_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-epoch rows of a training record's ``history``, in the zoo's history-file columns.

    ``epoch``, ``wall_s`` (seconds since the run started: the trainer's per-epoch ``elapsed_s`` where it records
    one, else the sum of the epochs' ``time_s``, i.e. training + evaluation without checkpoint writes and pauses
    between resumed sessions), ``time_s`` (the epoch's own wall time), ``train_loss``, ``val``, ``test`` (the
    dataset's metric) and ``lr`` (at the end of the epoch); ``peak_rss_mib`` where the trainer recorded it.

    Example:
        >>> history_rows({"history": [{"epoch": 1, "time_s": 2.0, "train_loss": 1.5, "val": 0.9, "test": 0.8,
        ...                             "lr_end": 1e-3}, {"epoch": 2, "time_s": 3.0, "train_loss": 1.0,
        ...                             "val": 0.7, "test": 0.6, "lr_end": 5e-4}]})[1]["wall_s"]
        5.0
    """
    rows, wall = [], 0.0
    for h in record.get("history") or []:
        wall += float(h["time_s"])
        row = {
            "epoch": int(h["epoch"]),
            "wall_s": _num(h.get("elapsed_s", wall)),
            "time_s": _num(h["time_s"]),
            "train_loss": _num(h["train_loss"]),
            "val": _num(h["val"]),
            "test": _num(h["test"]),
            "lr": _num(h.get("lr_end", h.get("lr", float("nan")))),
        }
        if h.get("peak_rss_mib") is not None:
            row["peak_rss_mib"] = _num(h["peak_rss_mib"])
        rows.append(row)
    return rows


def _history_text(doc: Mapping[str, Any]) -> str:
    """JSON of a history document with one line per epoch (readable, and small diffs when a run is repackaged)."""
    head = {k: v for k, v in doc.items() if k != "runs"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()] + [' "runs": [']
    for i, run in enumerate(doc["runs"]):
        meta = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in run.items() if k != "epochs")
        rows = run["epochs"]
        lines.append(f'  {{{meta}, "epochs": [')
        lines += [f"   {json.dumps(row)}" + ("," if j < len(rows) - 1 else "") for j, row in enumerate(rows)]
        lines.append("  ]}" + ("," if i < len(doc["runs"]) - 1 else ""))
    return "\n".join([*lines, " ]", "}"]) + "\n"


def _best_epoch(values: Sequence[float | None], higher_is_better: bool) -> int | None:
    """1-based epoch of the best value, the first one on ties (the trainer keeps the first best)."""
    best: int | None = None
    best_value = 0.0
    for i, v in enumerate(values):
        if v is not None and (best is None or (v > best_value if higher_is_better else v < best_value)):
            best, best_value = i, v
    return None if best is None else best + 1


def _history_problem(doc: Any, entry: ZooEntry) -> str | None:
    """What is wrong with a parsed history document for ``entry`` (``None``: nothing)."""
    from .datasets.evaluate import HIGHER_IS_BETTER

    if not isinstance(doc, dict) or doc.get("format") != HISTORY_FORMAT:
        return f"not a {HISTORY_FORMAT!r} document"
    metric = entry.metrics.get("test", {}).get("metric")
    if doc.get("model") != entry.name or doc.get("metric") != metric:
        return f"it is the history of {doc.get('model')!r} ({doc.get('metric')}), not of {entry.name!r} ({metric})"
    runs = doc.get("runs")
    want_seeds = list(entry.history.get("seeds", []))
    if not isinstance(runs, list) or [r.get("seed") if isinstance(r, dict) else None for r in runs] != want_seeds:
        return f"its runs are not one per seed of zoo.yaml's history.seeds {want_seeds}"
    higher = HIGHER_IS_BETTER.get(str(metric), False)
    for run, want_epochs in zip(runs, entry.history.get("epochs", [])):
        rows = run.get("epochs")
        if not isinstance(rows, list) or len(rows) != want_epochs:
            got = len(rows) if isinstance(rows, list) else "no"
            return f"seed {run['seed']} has {got} epochs, zoo.yaml says {want_epochs}"
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or row.get("epoch") != i + 1:
                return f"seed {run['seed']}: row {i + 1} is not epoch {i + 1}"
            for col in HISTORY_COLUMNS[1:]:
                v = row.get(col)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)):
                    return f"seed {run['seed']} epoch {i + 1}: {col} {v!r} is not a finite number"
        best = _best_epoch([row.get("val") for row in rows], higher)
        if best is None:
            return f"seed {run['seed']} has no validation value"
        for split in ("val", "test"):
            m = entry.metrics.get(split, {})
            seeds, per_seed = list(m.get("seeds", [])), list(m.get("per_seed", []))
            if run["seed"] not in seeds or len(per_seed) != len(seeds):
                continue
            want, got_value = per_seed[seeds.index(run["seed"])], rows[best - 1][split]
            if got_value is None or abs(got_value - want) > HISTORY_ATOL:
                return (
                    f"seed {run['seed']}'s best validation epoch {best} has {split} {metric} {got_value}, but the "
                    f"weights give {want} (zoo.yaml per_seed)"
                )
    return None


def _write_history(
    zoo: Zoo, name: str, records: Sequence[Mapping[str, Any]], seeds: Sequence[int], metric: str
) -> dict[str, Any]:
    """Write ``models/NAME.history.json`` (atomically) from the runs' records; returns the entry's ``history``.

    Runs whose record has no ``history`` are left out (``seeds`` in the returned field says which are in); with
    none, a stale file of an earlier entry of this name is removed and the field is empty.
    """
    from .datasets.evaluate import HIGHER_IS_BETTER

    path = zoo.models_dir / f"{name}.history.json"
    runs = []
    for rec, seed in zip(records, seeds):
        rows = history_rows(rec)
        if rows:
            timing, recipe = rec.get("timing", {}), rec.get("recipe", {})
            runs.append(
                {
                    "seed": seed,
                    "best_epoch": rec["metrics"]["best_epoch"],
                    "world_size": recipe.get("world_size", 1),
                    "threads": recipe.get("threads"),
                    "machine": timing.get("machine"),
                    "epochs": rows,
                }
            )
    if not runs:
        path.unlink(missing_ok=True)
        return {}
    doc = {
        "format": HISTORY_FORMAT,
        "model": name,
        "dataset": records[0]["dataset"],
        "metric": metric,
        "higher_is_better": HIGHER_IS_BETTER.get(metric, False),
        "columns": list(HISTORY_COLUMNS),
        "wall_s": "seconds since the run started: the trainer's elapsed_s, else the sum of the epochs' time_s",
        "runs": runs,
    }
    atomic_write_bytes(path, _history_text(doc).encode(), mode=0o644)
    return {
        "file": f"models/{name}.history.json",
        "sha256": sha256_file(path),
        "seeds": [r["seed"] for r in runs],
        "epochs": [len(r["epochs"]) for r in runs],
    }


#: run settings that must agree between the seeds packaged into one entry
_SAME_ACROSS_SEEDS = ("arch", "dataset", "config", "finetuned_from")
_SAME_RECIPE_ACROSS_SEEDS = (
    "lr",
    "batch_size",
    "weight_decay",
    "time_budget_s",
    "epochs_requested",
    "threads",
    "lr_schedule",
    "grad_clip_norm",
)


def package_run(
    run_dir: str | os.PathLike | Sequence[str | os.PathLike],
    name: str,
    zoo: Zoo | None = None,
    tolerance: float = 1e-4,
    notes: str = "",
    require_full_train: bool = True,
    replace: bool = False,
    supersedes: Sequence[str] = (),
    ship: str = "best-val",
) -> ZooEntry:
    """Turn finished training runs (``record.json`` + ``best.safetensors`` of :mod:`dgl_hod.train`) into a zoo entry.

    ``run_dir`` is one run or several runs of the same recipe with different seeds.  One run's weights are shipped:
    with ``ship="best-val"`` (the default) the seed with the best recomputed validation metric (the first on ties;
    a choice made on validation only, like the best epoch), with ``ship="first"`` the first run given. They are
    loaded strictly into a freshly built model and written to ``models/NAME.safetensors`` (float32).
    Every run's val/test metrics are recomputed from its weights file (packaging refuses if one differs from its
    record by more than ``tolerance``); the entry's ``mean``/``std`` are over all seeds, and ``weights_value`` is
    the shipped file's own value (what ``dgl-hod eval`` reproduces).  Nothing in the entry is typed by hand.

    Each run's per-epoch history (:func:`history_rows`, one list per seed) is written to
    ``models/NAME.history.json`` and bound to the entry by its sha256 (the ``history`` field, checked by
    :meth:`Zoo.read_history`), so ``dgl-hod report`` can redraw the curves from the repository alone.

    ``supersedes``: older entries this one replaces under another name (a renamed model): they are removed from
    ``zoo.yaml`` in the same atomic write that adds the new entry, then their weights and history files are deleted
    (:meth:`Zoo.write_entry`). Checked before any work is done.
    """
    from .datasets import get_info
    from .own_data import reference_dataset, run_data_recipe

    zoo = zoo or default_zoo()
    zoo.check_new_name(name, replace=replace)  # naming scheme; an existing entry needs replace=True
    if name in supersedes:
        raise ZooError(f"{name!r} cannot supersede itself; pass --replace to overwrite an entry in place")
    zoo.check_entries(list(supersedes))  # before the runs are re-evaluated
    runs = [Path(run_dir)] if isinstance(run_dir, (str, os.PathLike)) else [Path(r) for r in run_dir]
    if not runs:
        raise ValueError("give at least one run directory")
    if ship not in SHIP_RULES:
        raise ValueError(f"ship={ship!r}: choose one of {', '.join(SHIP_RULES)}")
    verified = [_verified_run(r, tolerance, require_full_train) for r in runs]
    first = verified[0][0]
    for run, (rec_i, _, _, _) in zip(runs[1:], verified[1:]):
        differ = [k for k in _SAME_ACROSS_SEEDS if rec_i.get(k) != first.get(k)]
        differ += ["data.fold"] if rec_i["data"]["fold"] != first["data"]["fold"] else []
        differ += [f"recipe.{k}" for k in _SAME_RECIPE_ACROSS_SEEDS if rec_i["recipe"].get(k) != first["recipe"].get(k)]
        if differ:
            raise ValueError(f"{run} is not a seed of {runs[0]}: {', '.join(differ)} differ")
    seeds = [rec_i["recipe"].get("seed", 0) for rec_i, *_ in verified]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs {', '.join(map(str, runs))} repeat a seed: {seeds}")
    shipped = _shipped_index([m for *_, m in verified], first["metrics"]["metric"], ship)
    record, config, model, _ = verified[shipped]
    check_name(name, record["arch"], config)
    metric = record["metrics"]["metric"]
    origin = record.get("finetuned_from")
    fold = record["data"]["fold"]
    weights_rel = f"models/{name}.safetensors"
    sha = save_weights(model, zoo.models_dir / f"{name}.safetensors")
    history = _write_history(zoo, name, [rec_i for rec_i, *_ in verified], seeds, metric)
    recipe = dict(record["recipe"])
    timing = record["timing"]
    recipe.update(
        wall_time_s=round(timing["wall_time_s"], 1),
        seconds_per_epoch=round(timing["time_per_epoch_s_mean"], 2),
        machine=timing["machine"],
        best_epoch=record["metrics"]["best_epoch"],
        finished=record.get("finished"),
        seeds=seeds,
        command=_train_command(record, name, seeds, seeds[shipped]),
    )
    if fold is not None:  # csl, mutag, proteins: the metrics are those of this fold; `dgl-hod eval` uses it
        recipe["fold"] = fold
    if origin:
        recipe["finetuned_from"] = origin
    recipe.update(run_data_recipe(runs[shipped], recipe["command"]))  # user molecules: the table's spec, --data command
    if len(verified) > 1:
        recipe["epochs_run_per_seed"] = [rec_i["recipe"]["epochs_run"] for rec_i, *_ in verified]
    peak = record["timing"].get("peak_rss_mib")
    if peak is not None:  # the trainer's peak resident memory of the shipped seed (MiB), where it records one
        recipe["peak_rss_mib"] = round(float(peak), 1)
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
            "weights_seed": seeds[shipped],
            "weights_value": round(values[shipped], 6),
            "split": record["data"]["val_split"] if split == "val" else "test",
        }
        if fold is not None:
            metrics[split]["fold"] = fold
    info = get_info(record["dataset"])
    ref_split = "test" if fold is None else "all"  # a fold dataset's "test" needs a fold; "all" does not
    ref_dataset = reference_dataset(record["dataset"])  # user molecules: a shipped set with their featurisation
    ref = reference_output(model, ref_dataset, ref_split, REFERENCE_INDICES)
    entry = ZooEntry(
        name=name,
        arch=record["arch"],
        config=_plain(config),
        dataset=record["dataset"],
        task=info.task_type,
        weights=weights_rel,
        sha256=sha,
        num_params=sum(p.numel() for p in model.parameters()),
        metrics=metrics,
        recipe=_plain(recipe),
        head=("head.",),
        license="MIT",
        paper=PAPERS.get(record["arch"], ""),
        reference={
            **({"dataset": ref_dataset} if ref_dataset != record["dataset"] else {}),
            "split": ref_split,
            "indices": REFERENCE_INDICES,
            "output": [[round(float(v), 6) for v in row] for row in ref.tolist()],
        },
        notes=notes,
        history=history,
    )
    return zoo.write_entry(entry, supersedes=supersedes)  # binds the weights to the config (hash in metadata)


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively (for YAML)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


_DEFAULT: Zoo | None = None
_P = ParamSpec("_P")
_R = TypeVar("_R")


def default_zoo() -> Zoo:
    """The zoo of ``$DGL_HOD_ZOO`` or the shipped ``zoo.yaml`` (re-read when the variables change)."""
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


def _on_default_zoo(method: Callable[Concatenate[Zoo, _P], _R]) -> Callable[_P, _R]:
    """``method`` as a module-level function on :func:`default_zoo`, with the method's parameters (less ``self``),
    defaults and docstring: an option added to the method needs no second copy here.
    """

    @functools.wraps(method)
    def on_default_zoo(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(default_zoo(), *args, **kwargs)

    signature = inspect.signature(method)
    on_default_zoo.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    on_default_zoo.__qualname__ = method.__name__
    return on_default_zoo


#: load zoo model ``name`` from :func:`default_zoo`; the options are keyword-only (see :meth:`Zoo.load_model`)
load_model = _on_default_zoo(Zoo.load_model)
