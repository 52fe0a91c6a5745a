"""Device and dtype agnosticism (issue 12 §4): nothing in ``dgl_hod`` creates a tensor on a fixed device or in the
default dtype behind the user's back.

This machine has no GPU and a CPU-only DGL, so a wrong device cannot show up as a failure here; instead
:class:`FactoryWatch` (a ``TorchFunctionMode``) sees every tensor factory call (``torch.zeros``, ``torch.arange``,
``torch.tensor``, ...) made directly by a ``dgl_hod`` source line and records the call when

- no ``device=`` is given (the tensor lands on the default device, CPU, whatever the inputs' device), or the device
  is a string literal such as ``"cpu"`` (a fixed device; code that follows its inputs passes ``x.device``), or
- the result is floating point and no ``dtype=`` is given (the default dtype, float32, whatever the inputs' dtype),
  or the call is ``torch.from_numpy`` (always CPU).

Models run under the watch while the default dtype is float32 and the model and inputs are float64, so both kinds of
slip would also change the numbers (the outputs are compared with an unwatched run and must be float64).

Scope: the watch looks at the frame that called the factory (one called inside a torch function is torch's) and
records it only when that frame is a ``dgl_hod`` file.  DGL's own Python code is outside the scope on purpose: DGL
makes tensors of its own (graph metadata, readout segment sizes) on the default device, so
``torch.set_default_device("meta")`` (the other way to run this check) stops inside DGL once our code is fixed: a
GINE forward fails in ``dgl.readout`` -> ``DGLGraph.batch_num_nodes`` -> ``dgl.backend.pytorch.copy_to`` with
"Cannot copy out of meta tensor" (DGL 2.1.0), so it cannot tell our slips from DGL's, and it stops at the first one.
Files whose job is to make CPU tensors are exempt (:data:`EXEMPT`).  The GPU half of the check is
``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import dgl
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import dgl_hod
from dgl_hod import create_model, list_archs

pytestmark = pytest.mark.usefixtures("one_thread")

PACKAGE = Path(dgl_hod.__file__).resolve().parent
_OVERRIDES = str(Path(torch.__file__).resolve().parent / "overrides.py")
EXEMPT = {
    "datasets/": "datasets are stored and batched on the host; the trainer and evaluation move batches to the model",
    "checkpoint.py": "checkpoints and RNG states are serialised from host copies by design",
}
PENDING: dict[str, str] = {}  # modules known to create tensors on a fixed device, with the reason (none left)
FACTORIES = {
    torch.zeros,
    torch.ones,
    torch.empty,
    torch.full,
    torch.arange,
    torch.range,
    torch.linspace,
    torch.logspace,
    torch.eye,
    torch.tensor,
    torch.as_tensor,
    torch.asarray,
    torch.scalar_tensor,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.randperm,
    torch.empty_strided,
    torch.tril_indices,
    torch.triu_indices,
    torch.sparse_coo_tensor,
    torch.from_numpy,
}


class FactoryWatch(TorchFunctionMode):
    """Records tensor factory calls made directly from files under ``root`` that do not follow their inputs.

    ``sites`` lists ``"path:line func: reason"`` (each site once).  ``root`` defaults to the ``dgl_hod`` package;
    files under it whose relative path starts with a key of ``exempt`` (default: :data:`EXEMPT` and
    :data:`PENDING`) are ignored.
    """

    def __init__(self, root: Path = PACKAGE, exempt: dict[str, str] | None = None):
        super().__init__()
        self.root = str(root)
        self.exempt = {**EXEMPT, **PENDING} if exempt is None else exempt
        self.sites: list[str] = []
        self.calls = 0

    def _caller(self) -> tuple[str, int] | None:
        """The file (relative to ``root``) and line that called the factory, or ``None`` when out of scope.

        The caller is the innermost frame outside torch's override machinery: a factory called inside a torch
        function (``clip_grad_norm_``) is torch's, not ours.  Calls made while a module is constructed or
        re-initialised (``__init__`` / ``reset_parameters`` of an ``nn.Module``) are not counted: parameters are
        made on the default device and then moved with ``model.to(device)``, torch's own convention.
        """
        frame: FrameType | None = sys._getframe(2)
        while frame is not None and (frame.f_code is _SELF_CODE or frame.f_code.co_filename.startswith(_OVERRIDES)):
            frame = frame.f_back
        if frame is None:
            return None
        path = str(Path(frame.f_code.co_filename).resolve())
        if not path.startswith(self.root + "/"):
            return None
        rel = path[len(self.root) + 1 :]
        if any(rel.startswith(prefix) for prefix in self.exempt):
            return None
        outer: FrameType | None = frame
        while outer is not None:
            if outer.f_code.co_name in ("__init__", "reset_parameters") and isinstance(
                outer.f_locals.get("self"), nn.Module
            ):
                return None
            outer = outer.f_back
        return rel, frame.f_lineno

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func in FACTORIES:
            caller = self._caller()
            if caller is not None:
                self.calls += 1
                reasons = self._reasons(func, args, kwargs, result)
                site = f"{caller[0]}:{caller[1]} torch.{func.__name__}: {'; '.join(reasons)}"
                if reasons and site not in self.sites:
                    self.sites.append(site)
        return result

    @staticmethod
    def _reasons(func, args, kwargs, result) -> list[str]:
        if func is torch.from_numpy:
            return ["from_numpy makes a CPU tensor"]
        if func in (torch.as_tensor, torch.asarray) and args and isinstance(args[0], torch.Tensor):
            return []  # follows its input
        reasons = []
        device = kwargs.get("device")
        if device is None:
            reasons.append("no device= (lands on the default device)")
        elif isinstance(device, str):
            reasons.append(f"fixed device {device!r}")
        if isinstance(result, torch.Tensor) and result.is_floating_point() and "dtype" not in kwargs:
            reasons.append("floating result without dtype= (the default dtype)")
        return reasons


_SELF_CODE = FactoryWatch.__torch_function__.__code__


# ------------------------------------------------------------------------------------------------- the watch works


def test_the_watch_flags_factories_that_ignore_their_inputs_and_passes_those_that_follow_them():
    x = torch.ones(2, dtype=torch.float64)
    here = Path(__file__).resolve()
    with FactoryWatch(root=here.parent, exempt={}) as watch:
        torch.zeros(3, device=x.device, dtype=x.dtype)
        torch.arange(3, device=x.device)
        x.new_zeros(4)
        torch.zeros_like(x)
        torch.as_tensor(x)
        assert watch.sites == []
        torch.zeros(3)
        torch.arange(3, device="cpu")
        torch.tensor([1.0], device=x.device)
    assert len(watch.sites) == 3, watch.sites
    assert "no device=" in watch.sites[0] and "without dtype=" in watch.sites[0]
    assert "fixed device 'cpu'" in watch.sites[1] and "dtype" not in watch.sites[1]  # arange of ints is int64
    assert "without dtype=" in watch.sites[2] and "no device=" not in watch.sites[2]
    assert all(s.startswith(here.name + ":") for s in watch.sites)
    with FactoryWatch() as pkg:  # default scope: only dgl_hod files count
        torch.zeros(3)
    assert pkg.sites == []


# ------------------------------------------------------------------------------------------------- models


def _undirected(n: int, edges: list[tuple[int, int]]) -> dgl.DGLGraph:
    src = [a for a, b in edges] + [b for a, b in edges]
    dst = [b for a, b in edges] + [a for a, b in edges]
    return dgl.graph((torch.tensor(src, dtype=torch.long), torch.tensor(dst, dtype=torch.long)), num_nodes=n)


def _batch() -> dgl.DGLGraph:
    """Three graphs (a ring with a tail, a bicyclic graph, an isolated node) with ZINC-like categorical ids."""
    gen = torch.Generator().manual_seed(0)
    ring = [(i, (i + 1) % 5) for i in range(5)]
    graphs = [
        _undirected(7, ring + [(4, 5), (5, 6)]),
        _undirected(8, [(i, (i + 1) % 6) for i in range(6)] + [(0, 6), (6, 7), (7, 3)]),
        _undirected(1, []),
    ]
    for g in graphs:
        g.ndata["feat"] = torch.randint(0, 28, (g.num_nodes(),), generator=gen)
        half = torch.randint(0, 4, (g.num_edges() // 2,), generator=gen)
        g.edata["feat"] = torch.cat([half, half])
    return dgl.batch(graphs)


SMALL_HOD: dict[str, Any] = dict(
    hidden_dim=8, base_hidden_dim=4, base_layers=2, downstream_layers=1, encoder_hidden_dim=8
)
SMALL_MPNN: dict[str, Any] = dict(hidden_dim=8, num_layers=2)
HOD_VARIANTS: list[dict[str, Any]] = [
    dict(m=0),
    dict(order=1, jet_mode="dense"),
    dict(order=1, jet_mode="sparse", base_init="rwse"),
    dict(order=2, jet_mode="dense", num_marks=2, jet_norm="asinh", base_aggregation="mean"),
    dict(k=1, m=2, deriv_encoder="joint", output_derivatives=True, per_layer_derivatives=True, jet_mode="sparse"),
    dict(k=1, m=2, deriv_encoder="joint", output_derivatives=True, per_layer_derivatives=True, jet_mode="dense"),
    dict(k=1, m=3, jet_mode="sparse", readout="mean", global_pool=False),
    dict(k=2, m=1, jet_mode="sparse"),
    dict(k=2, m=2, max_order=3, jet_mode="sparse"),
    dict(k=2, m=2, max_order=3, jet_mode="dense", downstream_norm="layer"),
]
BASELINE_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "gin": [{}],
    "gine": [dict(norm="layer", readout="mean")],
    "gine-rwse": [dict(rwse_steps=4)],
    "ds-gnn": [dict(policy=p) for p in ("node_marked", "node_deleted", "ego", "ego_plus")],
    "dss-gnn": [dict(policy="node_marked"), dict(policy="ego_plus", ego_radius=1)],
}
CASES = [("hod-gnn", {**SMALL_HOD, **v}) for v in HOD_VARIANTS] + [
    (arch, {**SMALL_MPNN, **v}) for arch, variants in BASELINE_VARIANTS.items() for v in variants
]


def test_every_registered_architecture_is_covered():
    assert {arch for arch, _ in CASES} == set(list_archs())


def _forward_backward(model: nn.Module, g: dgl.DGLGraph) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(g, g.ndata["feat"], g.edata["feat"])
    (out.square().sum() + out.sum()).backward()
    return out, [p.grad for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("arch,config", CASES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(CASES)])
def test_forward_and_backward_follow_the_inputs_device_and_dtype(arch, config):
    """Under the watch, in float64 with the default dtype float32: no factory call of ours picks a device or a
    dtype, the outputs and gradients are float64 on the inputs' device and equal to an unwatched run."""
    assert torch.get_default_dtype() == torch.float32
    torch.manual_seed(0)
    model = create_model(arch, **config).double().train()
    g = _batch()
    ref, ref_grads = _forward_backward(model, g)
    with FactoryWatch() as watch:
        out, grads = _forward_backward(model, g)
        with torch.no_grad():
            evaluated = model.eval()(g, g.ndata["feat"], g.edata["feat"])
    model.train()
    assert watch.sites == [], "\n".join(watch.sites)
    assert out.dtype == torch.float64 and out.device == g.device and out.shape == (3, 1)
    assert evaluated.dtype == torch.float64 and torch.isfinite(evaluated).all()
    assert grads and all(x.dtype == torch.float64 and x.device == g.device for x in grads)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)  # no dropout: the watched run is the same computation
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("arch,config", CASES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(CASES)])
def test_modules_hold_no_tensor_that_to_would_not_move(arch, config):
    """A tensor kept as a plain attribute (not a parameter or buffer) stays on the CPU after ``model.to(device)``."""
    model = create_model(arch, **config)
    g = _batch()
    with torch.no_grad():
        model.eval()(g, g.ndata["feat"], g.edata["feat"])  # caches, if any, are filled by a forward pass
    stray = []
    for name, module in model.named_modules():
        for key, value in vars(module).items():
            if key in ("_parameters", "_buffers"):
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, torch.Tensor) for v in values):
                stray.append(f"{name or type(module).__name__}.{key}")
    assert stray == []


def test_jet_layouts_follow_their_inputs_device():
    g = _batch()
    watch = FactoryWatch(exempt=EXEMPT)
    for variant in HOD_VARIANTS:
        torch.manual_seed(0)
        model = create_model("hod-gnn", **{**SMALL_HOD, **variant}).double()
        with watch:
            model(g, g.ndata["feat"], g.edata["feat"]).sum().backward()
    assert watch.sites == [], "\n".join(watch.sites)


# ------------------------------------------------------------------------------------------------- static scan

STATIC_ALLOWED = {
    ("nn/base_mpnn.py", "__init__"): "parameters and buffers are made at construction, then moved by model.to()",
    ("nn/base_mpnn.py", "rwse_operating_point"): "float64 host scalars for the init constants (returns floats)",
    ("expressivity.py", "pair_distinguished"): "permutations drawn with the caller's CPU generator for host graphs",
    ("own_data.py", "predict_dataset"): "the empty result, on the host like evaluation.predict's outputs",
    ("zoo.py", "check_reference"): "stored reference outputs compared on the host (zoo checks run on the CPU)",
}


def _factory_calls_without_device() -> list[tuple[str, str, int, str]]:
    names = {f.__name__ for f in FACTORIES}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if any(rel.startswith(prefix) for prefix in {**EXEMPT, **PENDING}):
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if not isinstance(node, ast.Call):
                    continue
                call = node.func
                if not (isinstance(call, ast.Attribute) and isinstance(call.value, ast.Name)):
                    continue
                if call.value.id != "torch" or call.attr not in names:
                    continue
                keywords = {k.arg for k in node.keywords}  # None: **kwargs
                if "device" not in keywords and None not in keywords:
                    found.append((rel, func.name, node.lineno, call.attr))
    return found


def test_every_factory_call_in_the_package_names_its_device_or_is_listed():
    """Static complement of the watch (it also sees paths the tests above do not run): a ``torch.<factory>`` call
    without ``device=`` in ``dgl_hod`` must be in an exempt file or a function of :data:`STATIC_ALLOWED`."""
    calls = _factory_calls_without_device()
    assert len(calls) > 0  # the allowed sites are found (the scan works)
    unlisted = [
        f"{rel}:{line} torch.{name} in {fn}()" for rel, fn, line, name in calls if (rel, fn) not in STATIC_ALLOWED
    ]
    assert unlisted == [], "\n".join(unlisted)
    stale = set(STATIC_ALLOWED) - {(rel, fn) for rel, fn, _, _ in calls}
    assert not stale, f"allowed sites that no longer exist (remove them): {sorted(stale)}"


# ------------------------------------------------------------------------------------------------- trainer


def test_trainer_steps_and_evaluation_follow_the_run_device_and_dtype(tmp_path):
    """One float64 epoch of the trainer (steps, val/test evaluation, checkpoint) and ``evaluate`` under the watch."""
    from dgl_hod.evaluation import evaluate
    from dgl_hod.train import train

    tiny = dict(k=1, m=2, jet_mode="sparse", hidden_dim=8, base_hidden_dim=4, base_layers=2, downstream_layers=1)
    kw: dict[str, Any] = dict(batch_size=16, max_train_graphs=32, max_eval_graphs=16, progress=False, log=False, seed=0)
    with FactoryWatch() as watch:
        rec = train("hod-gnn", "zinc12k", tiny, tmp_path, epochs=1, dtype="float64", device="cpu", **kw)
    assert watch.calls > 0  # the watch saw our factory calls
    assert watch.sites == [], "\n".join(watch.sites)
    assert rec["recipe"]["dtype"] == "float64" and rec["recipe"]["device"] == "cpu"

    torch.manual_seed(0)
    model = create_model("hod-gnn", **tiny).double()
    from dgl_hod.datasets import load_dataset

    ds = load_dataset("zinc12k", "val")
    ds = ds.subset(range(16))
    with FactoryWatch() as watch:
        result = evaluate(model, ds, batch_size=8)
    assert watch.sites == [], "\n".join(watch.sites)
    assert set(result) >= {"mae"} and result["mae"] == result["mae"]
