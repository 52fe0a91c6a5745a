"""Issue 11, the trainer's items: no pickle on resume (1), package re-derives the data (5), one trainer per run
folder and no silent overwrite (7), records that reproduce (9), one-line input errors (10)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import dgl_hod.train as train_mod
from dgl_hod.train import CHECKPOINT, CheckpointError, RunLock, RunLockedError, main, train
from dgl_hod.zoo import Zoo, package_run

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"hidden_dim": 8, "num_layers": 2}
KW = dict(max_train_graphs=64, max_eval_graphs=32, progress=False, log=False)


def _kill_after_first_epoch(monkeypatch, *args, **kw) -> None:
    monkeypatch.setattr(train_mod, "_STOP_AFTER_EPOCHS", 1)
    with pytest.raises(train_mod._SimulatedKill):
        train(*args, **kw)
    monkeypatch.setattr(train_mod, "_STOP_AFTER_EPOCHS", None)


class _Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


# --- 1: no pickle on resume -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["checkpoint.pt", CHECKPOINT])
def test_a_planted_pickle_checkpoint_is_never_unpickled(tmp_path, name):
    out, marker = tmp_path / "evil", tmp_path / "pwned"
    out.mkdir()
    torch.save({"version": 1, "x": _Payload(marker)}, out / name)
    with pytest.raises(CheckpointError, match="pickle checkpoint|truncated or corrupt"):
        train("gine", "zinc12k", SMALL, out, epochs=1, resume=True, **KW)
    with pytest.raises(SystemExit) as exit_info:  # the CLI: one line, exit 2
        main(["gine", "--dataset", "zinc12k", "--epochs", "1", "--out", str(out), "--resume", "--no-progress"])
    assert exit_info.value.code == 2
    assert not marker.exists(), "the pickle payload ran"


def test_old_pt_checkpoint_is_refused_with_the_fix_and_overwrite_replaces_it(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"old pickle")
    for resume in (False, True):
        with pytest.raises(CheckpointError, match=r"checkpoint.pt is a pickle checkpoint .* --overwrite"):
            train("gine", "zinc12k", SMALL, tmp_path, epochs=1, resume=resume, **KW)
    train("gine", "zinc12k", SMALL, tmp_path, epochs=1, overwrite=True, **KW)
    assert not (tmp_path / "checkpoint.pt").exists() and (tmp_path / "record.json").exists()


def test_checkpoint_is_safetensors_with_json_and_uint8_rng_states(tmp_path, monkeypatch):
    _kill_after_first_epoch(monkeypatch, "gine", "zinc12k", SMALL, tmp_path, epochs=2, **KW)
    with safe_open(str(tmp_path / CHECKPOINT), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
        rng = {k: f.get_tensor(k).dtype for k in keys if k.startswith("rng/")}
    assert rng == {"rng/torch": torch.uint8, "rng/numpy": torch.uint8, "rng/python": torch.uint8}
    assert any(k.startswith("model/") for k in keys) and any(k.startswith("best/") for k in keys)
    assert any(k.startswith("optim/") for k in keys)
    state = json.loads(meta["json"])
    assert state["state"]["epoch"] == 1 and state["run_args"]["epochs"] == 2


def test_foreign_or_tampered_checkpoints_are_clear_errors(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    _kill_after_first_epoch(monkeypatch, "gine", "zinc12k", SMALL, tmp_path, epochs=2, **KW)
    ckpt = tmp_path / CHECKPOINT
    tensors = load_file(str(ckpt))
    with safe_open(str(ckpt), framework="pt") as f:
        meta = dict(f.metadata())
    save_file(tensors, str(ckpt), metadata={**meta, "json": meta["json"].replace('"epoch"', '"epoch_x"', 1)})
    with pytest.raises(CheckpointError, match="truncated or corrupt .*metadata"):
        train("gine", "zinc12k", SMALL, tmp_path, epochs=2, resume=True, **KW)
    save_file({"w": torch.zeros(2)}, str(ckpt))  # a safetensors file, but not a checkpoint
    with pytest.raises(CheckpointError, match="is not a dgl_hod.train checkpoint"):
        train("gine", "zinc12k", SMALL, tmp_path, epochs=2, resume=True, **KW)


# --- 5: package re-derives the data selection -------------------------------------------------------------------------
def _edit_record(run: Path, **data) -> None:
    rec = json.loads((run / "record.json").read_text())
    rec["data"].update(data)
    (run / "record.json").write_text(json.dumps(rec))


def test_package_does_not_trust_record_data(tmp_path):
    zoo = Zoo(tmp_path / "zoo.yaml", tmp_path / "models")
    run = tmp_path / "run"
    train("gine", "zinc12k", SMALL, run, epochs=1, max_train_graphs=64, progress=False, log=False)
    original = (run / "record.json").read_text()
    _edit_record(run, val_split="test")  # would make the entry's val equal its test
    with pytest.raises(ValueError, match="data.val_split='test'.*was edited"):
        package_run(run, "gine-zinc", zoo, require_full_train=False)
    (run / "record.json").write_text(original)
    _edit_record(run, train_graphs=10000, max_train_graphs=None)  # claim the full train split
    with pytest.raises(ValueError, match="max_train_graphs=None but .* was trained with 64"):
        package_run(run, "gine-zinc", zoo)
    (run / "record.json").write_text(original)
    _edit_record(run, train_graphs=10000)  # counts are re-derived: the cap decides
    with pytest.raises(ValueError, match="trained on 64 graphs, not the full train split"):
        package_run(run, "gine-zinc", zoo)
    _edit_record(run, val_graphs=3, test_graphs=5)
    entry = package_run(run, "gine-zinc", zoo, require_full_train=False)
    assert entry.metrics["val"]["split"] == "val" and entry.metrics["val"]["mean"] != entry.metrics["test"]["mean"]


def test_package_refuses_an_edited_fold(tmp_path):
    run = tmp_path / "run"
    train("gine", "mutag", SMALL, run, epochs=1, fold=2, progress=False, log=False)
    _edit_record(run, fold=5)
    with pytest.raises(ValueError, match="data.fold=5 but .* was trained with 2"):
        package_run(run, "gine-mutag", Zoo(tmp_path / "zoo.yaml", tmp_path / "models"))


# --- 7: one trainer per run folder, no silent overwrite ---------------------------------------------------------------
def test_a_live_lock_refuses_a_second_trainer(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()}"):
            train("gine", "zinc12k", SMALL, tmp_path, epochs=1, **KW)
    train("gine", "zinc12k", SMALL, tmp_path, epochs=1, **KW)  # released: the next one runs


def test_two_trainers_on_one_folder_then_a_stale_lock_taken_over(tmp_path, capsys):
    """A trainer process holds the folder: a second one (the CLI) is refused naming its pid; once it is killed
    (``kill -9`` leaves its lock file behind, with its pid), the folder is taken over."""
    cmd = ["gine", "--dataset", "zinc12k", "--config", json.dumps(SMALL), "--no-progress", "--out", str(tmp_path)]
    first = subprocess.Popen(
        [sys.executable, "-m", "dgl_hod.train", *cmd, "--time-budget", "300"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (tmp_path / CHECKPOINT).exists() and time.time() < deadline:  # it trains (holds the lock)
            time.sleep(0.1)
        assert first.poll() is None, "the first trainer should still be running"
        with pytest.raises(SystemExit) as exit_info:
            main([*cmd, "--time-budget", "300", "--resume"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
        assert f"in use by another training process (pid {first.pid}, lock" in err
    finally:
        first.kill()
        first.wait()
    assert (tmp_path / ".lock").read_text().strip() == str(first.pid)  # the dead holder's lock file ...
    rec = train("gine", "zinc12k", SMALL, tmp_path, epochs=1, overwrite=True, **KW)  # ... is taken over
    assert rec["recipe"]["epochs_run"] == 1 and (tmp_path / ".lock").read_text().strip() == str(os.getpid())


def test_finished_outputs_need_overwrite(tmp_path):
    train("gine", "zinc12k", SMALL, tmp_path, epochs=1, **KW)
    before = (tmp_path / "record.json").read_text()
    with pytest.raises(FileExistsError, match="resume"):  # the checkpoint is there: resume or overwrite
        train("gine", "zinc12k", SMALL, tmp_path, epochs=1, seed=1, **KW)
    (tmp_path / CHECKPOINT).unlink()
    for resume in (False, True):
        with pytest.raises(FileExistsError, match=r"holds a finished run \(record.json, best.safetensors\)"):
            train("gine", "zinc12k", SMALL, tmp_path, epochs=1, seed=1, resume=resume, **KW)
    assert (tmp_path / "record.json").read_text() == before
    with pytest.raises(ValueError, match="pass one of them"):
        train("gine", "zinc12k", SMALL, tmp_path, epochs=1, resume=True, overwrite=True, **KW)
    rec = train("gine", "zinc12k", SMALL, tmp_path, epochs=1, seed=1, overwrite=True, **KW)
    assert rec["recipe"]["seed"] == 1 and json.loads((tmp_path / "record.json").read_text())["recipe"]["seed"] == 1


# --- 9: records that reproduce ----------------------------------------------------------------------------------------
def test_recipe_command_of_an_epoch_run_reproduces_it(tmp_path, capsys):
    run = tmp_path / "run"
    rec = train("gine", "zinc12k", SMALL, run, epochs=2, lr=3e-3, warmup_epochs=0, max_train_graphs=64, log=False)
    entry = package_run(run, "gine-zinc", Zoo(tmp_path / "zoo.yaml", tmp_path / "models"), require_full_train=False)
    command = entry.recipe["command"]
    assert "--epochs 2" in command and "--warmup-epochs 0" in command and "--max-train-graphs 64" in command
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "dgl_hod.train"]
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    assert main([*argv[3:], "--no-progress", "--json"]) == 0
    again = json.loads((tmp_path / "again" / "record.json").read_text())
    assert [h["train_loss"] for h in again["history"]] == [h["train_loss"] for h in rec["history"]]
    assert again["metrics"]["best_val"] == rec["metrics"]["best_val"]


def test_resume_with_other_epochs_is_refused(tmp_path, monkeypatch):
    _kill_after_first_epoch(monkeypatch, "gine", "zinc12k", SMALL, tmp_path, epochs=3, **KW)
    for epochs in (1, 2, 5):
        with pytest.raises(CheckpointError, match=rf"'epochs': \(3, {epochs}\).*plan cannot change on resume"):
            train("gine", "zinc12k", SMALL, tmp_path, epochs=epochs, resume=True, **KW)
    rec = train("gine", "zinc12k", SMALL, tmp_path, epochs=3, resume=True, **KW)
    assert rec["recipe"]["planned_epochs"] == rec["recipe"]["epochs_run"] == rec["recipe"]["epochs_requested"] == 3


# --- 10: one-line input errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "batch_size (--batch-size) must be a positive integer (e.g. 32), got 0"),
        (["--config", "[1,2]"], "--config must be a JSON object of config keys"),
        (["--config", "{nope"], "--config is not valid JSON"),
        (["--fold", "1.7"], "argument --fold: invalid int value: '1.7'"),
        (["--epochs", "0"], "epochs (--epochs) must be a positive integer, got 0"),
        (["--config", '{"hiden_dim": 8}'], "unknown config key(s) ['hiden_dim']"),
        (["--dataset", "zinc"], "Unknown dataset 'zinc'. Did you mean 'zinc12k'?"),
        (["--dataset", "mutag", "--fold", "10"], "mutag has folds 0..9; fold (--fold) 10 does not exist"),
        (["--dataset", "mutag"], "mutag has 10 folds: pass fold (--fold) 0..9"),
    ],
)
def test_cli_input_errors_are_one_line(tmp_path, capsys, args, message):
    base = {"--dataset": "zinc12k", "--epochs": "1", "--out": str(tmp_path / "x")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = [
        "gine",
        *[t for kv in base.items() for t in kv],
        *[a for a in args if a not in base and a not in base.values()],
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_api_fold_must_be_an_integer(tmp_path):
    with pytest.raises(ValueError, match="fold \\(--fold\\) must be an integer 0..9 for mutag, got 1.7"):
        train("gine", "mutag", SMALL, tmp_path, epochs=1, fold=1.7, **KW)


def test_cli_errors_in_a_subprocess_have_no_traceback(tmp_path):
    cmd = [sys.executable, "-m", "dgl_hod.train", "gine", "--dataset", "zinc12k", "--epochs", "1"]
    res = subprocess.run([*cmd, "--batch-size", "0", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "--batch-size" in res.stderr
