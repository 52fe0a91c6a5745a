"""Packaging details the issue-14 protocol runs meet: committed checkpoints of packaged runs, and fixed-epoch entries
(no time budget) in the command-line tables."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dgl_hod import cli


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_tracked_files_lists_what_git_tracks_under_the_runs(tmp_path):
    root = tmp_path / "repo"
    run = root / "runs" / "gine-zinc-s0"
    run.mkdir(parents=True)
    (root / ".gitignore").write_text("/runs/\n")
    for name in ("checkpoint.safetensors", "record.json", "best.safetensors"):
        (run / name).write_bytes(b"x")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", ".gitignore"], cwd=root, check=True)
    subprocess.run([*git, "add", "-f", "runs/gine-zinc-s0/checkpoint.safetensors"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "resume later"], cwd=root, check=True)
    other = root / "runs" / "gine-zinc-s1"
    other.mkdir()
    assert cli.tracked_files([str(run), str(other)], root) == ["runs/gine-zinc-s0/checkpoint.safetensors"]
    assert cli.tracked_files([str(other)], root) == []
    assert cli.tracked_files([str(tmp_path / "elsewhere")], root) == []  # outside the checkout
    plain = tmp_path / "plain"  # a folder outside any repository (pytest's tmp_path is not in one)
    (plain / "runs" / "x").mkdir(parents=True)
    (plain / "runs" / "x" / "checkpoint.safetensors").write_bytes(b"x")
    assert cli.tracked_files([str(plain / "runs" / "x")], plain) == []  # no repository: nothing, no error


def test_budget_cell_of_fixed_epoch_entries():
    assert cli._budget({"time_budget_s": 1200.0}) == "1200.0"  # as README's table has always printed it
    assert cli._budget({"time_budget_s": None, "epochs_requested": 300}) == "—"  # not "None"
    assert cli._budget({}) == "—"


def test_saved_weights_are_the_same_bytes_every_time(tmp_path):
    """safetensors writes its metadata map in a random order; save_weights fixes the header order, so packaging the
    same run twice gives the same file and sha256 (the tensors and metadata read back unchanged)."""
    import torch
    from safetensors import safe_open

    from dgl_hod import create_model
    from dgl_hod.zoo import save_weights

    torch.manual_seed(0)
    config = dict(node_vocab=(28,), edge_vocab=(4,), num_tasks=1, hidden_dim=8, num_layers=2)
    model = create_model("gine", **config)
    shas = {save_weights(model, tmp_path / f"w{i}.safetensors", arch="gine", config=config) for i in range(12)}
    assert len(shas) == 1
    data = (tmp_path / "w0.safetensors").read_bytes()
    assert int.from_bytes(data[:8], "little") % 8 == 0
    with safe_open(str(tmp_path / "w0.safetensors"), framework="pt") as f:
        assert sorted(f.metadata()) == ["dgl_hod.arch", "dgl_hod.config", "dgl_hod.config_sha256"]
        state = model.state_dict()
        assert sorted(f.keys()) == sorted(state)
        assert all(torch.equal(f.get_tensor(k), state[k].to(f.get_tensor(k).dtype)) for k in state)
