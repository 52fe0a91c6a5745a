"""Data-parallel training (issue 12 §3) and the trainer's device/dtype handling (§4).

The references are independent of the code under test: a one-process run of the same recipe (plain ``BatchNorm1d``,
no DDP) for the two-process runs, and the CPU-only DGL build itself for the CUDA refusal.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_HOD_GNN
from safetensors.torch import load_file

import dgl_hod.train as train_mod
from dgl_hod.distributed import NO_DGL_CUDA, SyncBatchNorm1d, WorkerError, dgl_has_cuda, spawn
from dgl_hod.train import CHECKPOINT, epoch_batches, train

ROOT = Path(__file__).resolve().parent.parent
# TINY_HOD_GNN leaves downstream_norm at "batch": the two-process runs need synchronised batch statistics to match
# one process
F64: dict[str, Any] = dict(dtype="float64", progress=False, log=False, seed=0)


@pytest.fixture(autouse=True)
def _short_collective_timeout(monkeypatch):
    """A rank waiting on a collective fails after 3 minutes instead of hanging the test session (default 10)."""
    monkeypatch.setenv("DGL_HOD_DIST_TIMEOUT_MIN", "3")


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_global_batches_are_cut_into_rank_parts():
    for n, batch, world in ((100, 8, 2), (37, 7, 3), (9, 8, 2)):
        whole = epoch_batches(n, batch, seed=3, epoch=1)
        parts = [epoch_batches(n, batch, seed=3, epoch=1, rank=r, world_size=world) for r in range(world)]
        assert all(len(p) == len(whole) for p in parts)  # the same number of steps on every rank
        for s, b in enumerate(whole):  # step s of the ranks together is step s of one process
            assert np.concatenate([p[s] for p in parts]).tolist() == b.tolist()
    assert [len(p[-1]) for p in ([epoch_batches(9, 8, 0, 0, r, 2) for r in range(2)])] == [1, 0]  # an empty part


def test_two_processes_take_the_step_of_one_process_on_the_same_global_batch(tmp_path):
    """Global batch 7 = parts of 4 and 3 graphs, then a batch of 1 graph = parts of 1 and 0: float64, two steps."""
    kw: dict[str, Any] = dict(batch_size=7, max_train_graphs=8, max_eval_graphs=10, epochs=1, lr=1e-2, **F64)
    one = train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "one", **kw)
    two = train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "two", nproc=2, **kw)
    w1, w2 = (
        load_file(str(tmp_path / "one" / "best.safetensors")),
        load_file(str(tmp_path / "two" / "best.safetensors")),
    )
    assert any(k.endswith("running_var") for k in w1)  # the model has BatchNorm: the test is about its statistics
    assert all(v.dtype == torch.float64 for v in w2.values() if v.is_floating_point())
    assert _max_diff(w1, w2) < 1e-6, _max_diff(w1, w2)
    h1, h2 = one["history"][0], two["history"][0]
    assert h1["train_loss"] == pytest.approx(h2["train_loss"], rel=1e-12)
    assert (h1["val"], h1["test"]) == pytest.approx((h2["val"], h2["test"]), rel=1e-6)
    assert (two["recipe"]["world_size"], two["recipe"]["threads_per_process"]) == (2, 1)
    assert two["recipe"]["steps_per_epoch"] == one["recipe"]["steps_per_epoch"] == 2


def test_killed_two_process_run_resumes_with_two_or_one_process(tmp_path, monkeypatch):
    kw: dict[str, Any] = dict(batch_size=8, max_train_graphs=24, max_eval_graphs=16, epochs=2, lr=3e-3, **F64)
    straight = train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "straight", **kw)
    monkeypatch.setattr(train_mod, "_STOP_AFTER_EPOCHS", 1)
    with pytest.raises(train_mod._SimulatedKill):
        train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "two", nproc=2, **kw)
    monkeypatch.setattr(train_mod, "_STOP_AFTER_EPOCHS", None)
    assert (tmp_path / "two" / CHECKPOINT).exists() and not (tmp_path / "two" / "record.json").exists()
    shutil.copytree(tmp_path / "two", tmp_path / "one")
    # resumed by torchrun (2 processes, the command line) and by one process (the API)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    argv += ["-m", "dgl_hod.train", "hod-gnn", "--dataset", "zinc12k", "--config", json.dumps(TINY_HOD_GNN)]
    argv += shlex.split("--batch-size 8 --max-train-graphs 24 --max-eval-graphs 16 --epochs 2 --lr 3e-3")
    argv += ["--dtype", "float64", "--out", str(tmp_path / "two"), "--resume", "--no-progress", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # its own process group: on a timeout torchrun's workers are killed with it, not left holding the pipes
    with subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as done:
        try:
            stdout, stderr = done.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(done.pid, signal.SIGKILL)
            raise
    assert done.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["epochs_run"] == 2  # rank 0 alone prints the summary
    resumed_one = train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "one", resume=True, **kw)
    resumed_two = json.loads((tmp_path / "two" / "record.json").read_text())
    for rec, sizes in ((resumed_two, [2, 2]), (resumed_one, [2, 1])):
        assert [s["world_size"] for s in rec["recipe"]["sessions"]] == sizes
        assert rec["recipe"]["world_size"] == sizes[-1] and rec["recipe"]["epochs_run"] == 2
        assert [h["epoch"] for h in rec["history"]] == [1, 2]
        for h, ref in zip(rec["history"], straight["history"]):  # the same recipe as one uninterrupted process
            assert (h["train_loss"], h["val"], h["test"]) == pytest.approx(
                (ref["train_loss"], ref["val"], ref["test"]), rel=1e-6
            )
        best = rec["metrics"]["best_epoch"]
        assert rec["metrics"]["best_val"] == rec["history"][best - 1]["val"]
    w_ref = load_file(str(tmp_path / "straight" / "best.safetensors"))
    for name in ("one", "two"):
        assert _max_diff(w_ref, load_file(str(tmp_path / name / "best.safetensors"))) < 1e-5


def test_sync_batchnorm_is_batchnorm_with_one_process():
    torch.manual_seed(0)
    plain, sync = torch.nn.BatchNorm1d(5), SyncBatchNorm1d(5)
    x = torch.randn(12, 5)
    assert torch.equal(plain(x), sync(x)) and torch.equal(
        plain.state_dict()["running_var"], sync.state_dict()["running_var"]
    )
    assert plain.state_dict().keys() == sync.state_dict().keys()


def test_cuda_with_a_cpu_only_dgl_is_refused_at_once(tmp_path, capsys):
    if dgl_has_cuda():
        pytest.skip("this DGL build has CUDA")
    with pytest.raises(ValueError, match="this DGL build has no CUDA support; install a CUDA build of DGL"):
        train("gine", "zinc12k", {}, tmp_path / "run", epochs=1, device="cuda")
    assert not (tmp_path / "run").exists()  # refused before the folder, the data or the model
    with pytest.raises(SystemExit) as exit_info:
        train_mod.main(
            ["gine", "--dataset", "zinc12k", "--epochs", "1", "--out", str(tmp_path / "r"), "--device", "cuda"]
        )
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(NO_DGL_CUDA)
    with pytest.raises(ValueError, match="device .* must be cpu, cuda or cuda:INDEX"):
        train("gine", "zinc12k", {}, tmp_path / "run", epochs=1, device="gpu")


def test_a_float64_run_stays_float64_end_to_end(tmp_path, monkeypatch):
    seen = set()
    name, loss_fn = train_mod.loss_function("zinc12k")

    def spy(dataset):
        def checked(pred, y):
            seen.add(pred.dtype)
            loss = loss_fn(pred, y)
            seen.add(loss.dtype)
            return loss

        return name, checked

    monkeypatch.setattr(train_mod, "loss_function", spy)
    monkeypatch.setattr(train_mod, "_STOP_AFTER_EPOCHS", 1)
    small = {"hidden_dim": 8, "num_layers": 2}
    with pytest.raises(train_mod._SimulatedKill):
        train("gine", "zinc12k", small, tmp_path, epochs=2, max_train_graphs=32, max_eval_graphs=16, **F64)
    assert seen == {torch.float64}
    ckpt = load_file(str(tmp_path / CHECKPOINT))
    floats = {v.dtype for k, v in ckpt.items() if v.is_floating_point() and not k.endswith("/step")}
    assert floats == {torch.float64}  # model, best weights and the optimizer's moments (AdamW counts steps in fp32)


def test_package_command_reproduces_the_world_size_and_dtype():
    from dgl_hod.train import _parser, _recipe_from_args
    from dgl_hod.zoo import _train_command

    record: dict[str, Any] = {
        "arch": "gine",
        "config": {"hidden_dim": 8},
        "dataset": "zinc12k",
        "data": {"fold": None, "max_train_graphs": None},
        "recipe": {"batch_size": 32, "lr": 0.001, "threads": 1, "epochs_requested": 3, "world_size": 2},
    }
    record["recipe"]["dtype"] = "float64"
    argv = shlex.split(_train_command(record, "gine-x", [0]), comments=True)
    recipe = _recipe_from_args(_parser().parse_args(argv[3:]))
    assert (recipe.nproc, recipe.threads, recipe.dtype, recipe.batch_size) == (2, 1, "float64", 32)


def test_nproc_refuses_a_dataset_registered_in_this_process_only(tmp_path, monkeypatch):
    from dgl_hod.datasets import registry

    monkeypatch.setitem(registry.USER_INFOS, "my-zinc", registry.REGISTRY["zinc12k"])  # as --data registers one
    with pytest.raises(ValueError, match="registered in this process only .* torchrun"):
        train("gine", "my-zinc", {}, tmp_path / "run", epochs=1, nproc=2)
    assert not (tmp_path / "run").exists()  # refused before the folder is touched


def test_a_time_budget_run_on_two_processes_plans_and_stops_together(tmp_path):
    """The plan and the budget stop use rank 0's clock on every rank: the ranks finish together (no hang)."""
    rec = train(
        "gine",
        "zinc12k",
        {"hidden_dim": 8, "num_layers": 2},
        tmp_path,
        time_budget_s=3.0,
        nproc=2,
        max_train_graphs=64,
        max_eval_graphs=16,
        progress=False,
        log=False,
    )
    r = rec["recipe"]
    assert r["world_size"] == 2 and r["planned_epochs"] >= 1 and "t1 =" in r["plan_rule"]
    assert 1 <= r["epochs_run"] <= r["planned_epochs"] and len(rec["history"]) == r["epochs_run"]
    assert json.loads((tmp_path / "record.json").read_text())["recipe"]["epochs_run"] == r["epochs_run"]


# spawn: every wait is bounded, whatever the workers do (tests/_spawn_targets.py); the limits below are far above
# the grace periods (1 s) and only turn a hang into a failure
@pytest.mark.parametrize(
    "target, message",
    [
        ("rank1_raises_rank0_sleeps", "ValueError: rank 1 gave up"),
        ("rank1_raises_rank0_ignores_sigterm", "ValueError: rank 1 gave up"),
        ("rank0_is_killed", "worker 0 died (exit code -9)"),
    ],
)
def test_spawn_stops_every_worker_when_one_fails(target, message):
    import time

    import _spawn_targets

    t0 = time.monotonic()
    with pytest.raises(WorkerError, match=re.escape(f"a training worker failed: {message}")):
        spawn(2, getattr(_spawn_targets, target), grace_s=1.0)
    assert time.monotonic() - t0 < 120  # the sleeping worker was stopped, not waited for (it sleeps for an hour)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("dgl-hod-rank")]


def test_spawn_returns_when_the_workers_succeed_even_if_their_exit_would_hang(tmp_path):
    import time

    import _spawn_targets

    t0 = time.monotonic()
    spawn(2, _spawn_targets.finish_but_leave_a_thread, str(tmp_path), grace_s=1.0)
    assert time.monotonic() - t0 < 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0", "rank1"]


def test_spawn_refuses_a_function_the_workers_cannot_import():
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError), match="pickle"):
        spawn(2, lambda: None, grace_s=1.0)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("dgl-hod-rank")]
