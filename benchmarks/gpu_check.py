"""GPU check (issue 12 §4): every architecture, the jets and the trainer on CUDA agree with the CPU.

Runs only where torch sees a GPU *and* DGL was built with CUDA; elsewhere it prints ``skipped: <why>`` and exits 0
(the CPU-side guarantees are tested by ``tests/test_device.py``).  On a GPU machine:

1. **models**: every registered architecture (and the HOD-GNN variants: k=1 m=2 joint encoder with output and
   per-layer derivatives, k=2 sparse and dense) is built on the CPU in float64, copied to the GPU, and run
   forward + backward (train mode, no dropout) on 16 ZINC-12k validation graphs; outputs and every gradient must
   match the CPU run to ``--tol`` (relative to each tensor's largest entry), and stay float64 on the GPU.  The
   same model in float32 on the GPU must be within 1e-3 of the float64 CPU outputs, or within 10x the CPU's own
   float32 error where that is larger (round-off grows with the derivative order).
2. **jets**: ``BaseMPNN.jets`` in float64 (orders 1-3 dense and sparse, k=1 m=4, k=2 m=2) on the GPU against the
   CPU, every stored component; plus the GPU's dense order-2 jets of one graph against
   ``dgl_hod.reference.reference_jets`` (torch.func) on the GPU, an independent formulation.
3. **evaluation**: ``dgl_hod.evaluation.evaluate`` of a GPU model against the CPU model (the batches must follow
   the model to the GPU).
4. **trainer**: ``python -m dgl_hod.train hod-gnn ... --device cuda --dtype float64`` for ``--epochs`` epochs on
   ``--max-train-graphs`` ZINC-12k graphs, and the same with ``--device cpu``: the per-epoch training losses and
   validation metrics must agree to 1e-6 relative (GPU scatter sums add in another order: not bitwise).

Prints one table; exit status 0 when every check passes (or the check is skipped), 1 otherwise.  With ``--out
DIR`` it also writes ``DIR/gpu_check.md`` and ``.json`` (nothing is written by default: this machine has no GPU,
so no results file is kept in the repository).

    python benchmarks/gpu_check.py                       # cuda:0, about a minute on a recent GPU
    python benchmarks/gpu_check.py --device cuda:1 --out benchmarks/results
    python benchmarks/gpu_check.py --self-test           # the same code with "cuda" replaced by the CPU (debugging)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DGLBACKEND", "pytorch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMALL_HOD: dict[str, Any] = dict(hidden_dim=16, base_hidden_dim=8, base_layers=3, downstream_layers=2)
SMALL_MPNN: dict[str, Any] = dict(hidden_dim=16, num_layers=3)
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("hod-gnn k1 m1 sparse", "hod-gnn", dict(order=1, jet_mode="sparse")),
    ("hod-gnn k1 m1 dense rwse", "hod-gnn", dict(order=1, jet_mode="dense", base_init="rwse")),
    (
        "hod-gnn k1 m2 joint+out+layer sparse",
        "hod-gnn",
        dict(k=1, m=2, deriv_encoder="joint", output_derivatives=True, per_layer_derivatives=True, jet_mode="sparse"),
    ),
    (
        "hod-gnn k1 m2 joint+out+layer dense",
        "hod-gnn",
        dict(k=1, m=2, deriv_encoder="joint", output_derivatives=True, per_layer_derivatives=True, jet_mode="dense"),
    ),
    ("hod-gnn k2 m2 sparse", "hod-gnn", dict(k=2, m=2, max_order=3, jet_mode="sparse")),
    ("hod-gnn k2 m1 dense", "hod-gnn", dict(k=2, m=1, jet_mode="dense")),
    ("gin", "gin", {}),
    ("gine", "gine", {}),
    ("gine-rwse", "gine-rwse", dict(rwse_steps=8)),
    ("ds-gnn node_marked", "ds-gnn", dict(policy="node_marked")),
    ("ds-gnn ego_plus", "ds-gnn", dict(policy="ego_plus", ego_radius=2)),
    ("dss-gnn node_deleted", "dss-gnn", dict(policy="node_deleted")),
]
JETS: list[tuple[str, dict[str, Any]]] = [
    ("order 1 dense", dict(order=1, mode="dense")),
    ("order 1 sparse", dict(order=1, mode="sparse")),
    ("order 2 dense", dict(order=2, mode="dense")),
    ("order 2 sparse", dict(order=2, mode="sparse")),
    ("order 3 sparse", dict(order=3, mode="sparse")),
    ("k1 m4 sparse", dict(k=1, m=4, mode="sparse")),
    ("k2 m2 sparse", dict(k=2, m=2, mode="sparse")),
]
F32_BOUND = 1e-3


def availability(device: str, self_test: bool) -> str | None:
    """``None`` when ``device`` can be used, else why not (the skip message)."""
    if self_test:
        return None
    from dgl_hod.distributed import dgl_has_cuda

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    if not dgl_has_cuda():
        import dgl

        return f"DGL {dgl.__version__} is a CPU-only build; install a CUDA build of DGL to run the GPU check"
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        return f"{device} asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
    return None


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(max |b|, 1e-30), on the CPU in float64 (shapes must agree)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def zinc_batch(n: int):
    from dgl_hod.datasets import load_dataset

    g, _ = load_dataset("zinc12k", "val").batch(np.arange(n))
    return g


def fwd_bwd(model: torch.nn.Module, g) -> tuple[torch.Tensor, list[torch.Tensor], float]:
    model.zero_grad(set_to_none=True)
    sync(g.device)
    t0 = time.perf_counter()
    out = model(g, g.ndata["feat"], g.edata["feat"])
    (out.square().mean() + out.mean()).backward()
    sync(g.device)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    return out, grads, time.perf_counter() - t0


def guarded(check: str, name: str, fn, *args) -> dict[str, Any]:
    """``fn(*args)`` (a dict with ``ok`` and measurements) as one table row; an exception is a failed row."""
    try:
        row = dict(check=check, name=name, **fn(*args))
    except (Exception, SystemExit) as exc:  # SystemExit: the trainer's CLI exits on refused input
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        row = dict(check=check, name=name, ok=False, error=f"{type(exc).__name__}: {first}")
    status = "ok" if row["ok"] else "FAILED " + row.get("error", "")
    print(f"  {check}: {name}: {status}", file=sys.stderr, flush=True)
    return row


def model_case(arch: str, config: dict[str, Any], g_cpu, device: torch.device, tol: float) -> dict[str, Any]:
    from dgl_hod import create_model

    g_dev = g_cpu.to(device)
    torch.manual_seed(0)
    cpu = create_model(arch, **config).double().train()
    dev = copy.deepcopy(cpu).to(device)
    out_c, grads_c, _ = fwd_bwd(cpu, g_cpu)
    fwd_bwd(dev, g_dev)  # warm-up (kernels, caches)
    out_d, grads_d, seconds = fwd_bwd(dev, g_dev)
    out_f, _, _ = fwd_bwd(copy.deepcopy(cpu).float().to(device), g_dev)
    out_fc, _, _ = fwd_bwd(copy.deepcopy(cpu).float(), g_cpu)
    placed = out_d.device == device and out_d.dtype == torch.float64 and all(x.device == device for x in grads_d)
    d_out = rel_diff(out_d, out_c)
    d_grad = max(rel_diff(a, b) for a, b in zip(grads_d, grads_c))
    d_f32 = rel_diff(out_f, out_c)  # float32 round-off: bounded by F32_BOUND or 10x the CPU's own float32 error
    f32_ok = out_f.dtype == torch.float32 and d_f32 <= max(F32_BOUND, 10 * rel_diff(out_fc, out_c))
    ok = placed and d_out <= tol and d_grad <= tol and f32_ok
    return dict(ok=ok, out=d_out, grad=d_grad, f32=d_f32, step_ms=1e3 * seconds)


def check_models(device: torch.device, tol: float, graphs: int) -> list[dict[str, Any]]:
    g_cpu = zinc_batch(graphs)
    rows = []
    for name, arch, config in MODELS:
        full = {**(SMALL_HOD if arch == "hod-gnn" else SMALL_MPNN), **config}
        rows.append(guarded("model", name, model_case, arch, full, g_cpu, device, tol))
    return rows


def jets_case(base, g_cpu, x, e, kw: dict[str, Any], device: torch.device, tol: float) -> dict[str, Any]:
    base_dev = copy.deepcopy(base).to(device)
    with torch.no_grad():
        jc = base.jets(g_cpu, x, e, **kw)
        jd = base_dev.jets(g_cpu.to(device), x.to(device), e.to(device), **kw)
    placed = jd.h.device == device and all(c.device == device and c.dtype == torch.float64 for c in jd.derivatives)
    same_keys = list(jc.components) == list(jd.components)
    diffs = [rel_diff(jd.components[k], jc.components[k]) for k in jc.components] if same_keys else [1.0]
    diff = max([rel_diff(jd.h, jc.h), *diffs])
    return dict(ok=placed and same_keys and diff <= tol, out=diff)


def reference_case(base, x, e, device: torch.device, tol: float) -> dict[str, Any]:
    """The GPU's dense order-2 jets of the first graph against torch.func on the GPU."""
    from dgl_hod.reference import reference_jets

    base_dev = copy.deepcopy(base).to(device)
    sub = zinc_batch(1).to(device)
    xs, es = x[: sub.num_nodes()].to(device), e[: sub.num_edges()].to(device)
    with torch.no_grad():
        ours = base_dev.jets(sub, xs, es, order=2, mode="dense").dense(0)
    ref = reference_jets(base_dev, sub, xs, es, order=2)
    diff = max(rel_diff(a, b) for a, b in zip(ours, ref))
    return dict(ok=all(r.device == device for r in ref) and diff <= tol, out=diff)


def check_jets(device: torch.device, tol: float, graphs: int) -> list[dict[str, Any]]:
    from dgl_hod import BaseMPNN

    g_cpu = zinc_batch(graphs)  # the first graph of the batch is zinc_batch(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(g_cpu.num_nodes(), 6, generator=gen, dtype=torch.float64)
    e = torch.nn.functional.one_hot(g_cpu.edata["feat"].reshape(-1).long() % 4, 4).double()
    torch.manual_seed(0)
    base = BaseMPNN(6, 8, 3, edge_dim=4, activation="silu", num_marks=2).double().eval()
    rows = [guarded("jets", name, jets_case, base, g_cpu, x, e, kw, device, tol) for name, kw in JETS]
    rows.append(guarded("jets", "order 2 vs torch.func reference", reference_case, base, x, e, device, tol))
    return rows


def evaluation_case(device: torch.device, tol: float) -> dict[str, Any]:
    from dgl_hod import create_model
    from dgl_hod.datasets import load_dataset
    from dgl_hod.evaluation import evaluate

    ds = load_dataset("zinc12k", "val").subset(range(128))
    torch.manual_seed(0)
    cpu = create_model("hod-gnn", **SMALL_HOD, order=1).double()
    dev = copy.deepcopy(cpu).to(device)
    a, b = evaluate(cpu, ds, batch_size=32), evaluate(dev, ds, batch_size=32)
    diff = abs(a["mae"] - b["mae"]) / max(abs(a["mae"]), 1e-30)
    return dict(ok=diff <= tol, out=diff)


def run_trainer(device: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from dgl_hod.train import main

    config = json.dumps(dict(SMALL_HOD, order=1, jet_mode="sparse"))
    argv = ["hod-gnn", "--dataset", "zinc12k", "--config", config, "--out", str(out), "--device", device]
    argv += ["--dtype", "float64", "--epochs", str(args.epochs), "--batch-size", "32", "--threads", "1"]
    argv += ["--max-train-graphs", str(args.max_train_graphs), "--max-eval-graphs", "128", "--no-progress", "--json"]
    t0 = time.perf_counter()
    status = main(argv)
    record = json.loads((out / "record.json").read_text())
    record["wall_s"] = time.perf_counter() - t0
    record["status"] = status
    return record


def trainer_case(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        dev = run_trainer(str(device), Path(tmp) / "dev", args)
        cpu = run_trainer("cpu", Path(tmp) / "cpu", args)
    hd, hc = dev["history"], cpu["history"]
    keys = ("train_loss", "val")
    diffs = [abs(a[k] - b[k]) / max(abs(b[k]), 1e-30) for a, b in zip(hd, hc) for k in keys]
    diff = max(diffs) if diffs and len(hd) == len(hc) == args.epochs else float("inf")
    ok = dev["status"] == 0 and dev["recipe"]["device"] == str(device) and diff <= 1e-6
    return dict(ok=ok, out=diff, step_ms=1e3 * dev["wall_s"] / max(len(hd), 1))


def table(rows: list[dict[str, Any]], header: str) -> str:
    def fmt(v: Any) -> str:
        return "" if v is None else f"{v:.2e}" if isinstance(v, float) else str(v)

    lines = [
        header,
        "",
        "| check | case | ok | max rel diff (out) | max rel diff (grads) | float32 vs float64 | ms | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = r.get("step_ms")
        cells = [r["check"], r["name"], "yes" if r["ok"] else "**NO**", fmt(r.get("out")), fmt(r.get("grad"))]
        cells += [fmt(r.get("f32")), "" if ms is None else f"{ms:.1f}", r.get("error", "").replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="the GPU to check (default cuda, i.e. cuda:0)")
    p.add_argument("--tol", type=float, default=1e-9, help="float64 GPU vs CPU bound, relative (default 1e-9)")
    p.add_argument("--graphs", type=int, default=16, help="ZINC-12k validation graphs per batch (default 16)")
    p.add_argument("--epochs", type=int, default=2, help="trainer epochs on each device (default 2)")
    p.add_argument("--max-train-graphs", type=int, default=256, help="trainer subset (default 256)")
    p.add_argument("--skip-train", action="store_true", help="leave out the trainer check")
    p.add_argument("--out", type=Path, default=None, help="also write OUT/gpu_check.{md,json}")
    p.add_argument("--self-test", action="store_true", help="run every check with the CPU as the 'GPU'")
    args = p.parse_args(argv)
    why = availability(args.device, args.self_test)
    if why is not None:
        print(f"skipped: {why}")
        return 0
    device = torch.device("cpu") if args.self_test else torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    torch.set_num_threads(1)
    rows = check_models(device, args.tol, args.graphs)
    rows += check_jets(device, args.tol, args.graphs)
    rows.append(guarded("evaluate", "hod-gnn k1 evaluate() mae", evaluation_case, device, args.tol))
    if not args.skip_train:
        name = f"train {args.epochs} epochs --device {device} vs cpu (float64)"
        rows.append(guarded("trainer", name, trainer_case, device, args))
    import dgl

    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (self-test)"
    cmd = "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        f"GPU check on {what} (torch {torch.__version__}, CUDA {torch.version.cuda}, DGL {dgl.__version__}); "
        f"float64 bound {args.tol:g}, float32 bound {F32_BOUND:g}; ms: one forward+backward on the device "
        f"(models) or seconds per epoch x1000 (trainer), informative only.\n\nCommand: `{cmd.strip()}`"
    )
    text = table(rows, header)
    failed = [r["name"] for r in rows if not r["ok"]]
    text += f"\n{len(rows) - len(failed)}/{len(rows)} checks passed" + (f"; failed: {failed}" if failed else "") + "\n"
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.md").write_text(text)
        meta = dict(device=what, torch=torch.__version__, cuda=torch.version.cuda, dgl=dgl.__version__, command=cmd)
        (args.out / "gpu_check.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
