"""Removing zoo entries: `dgl-hod remove NAME` and `dgl-hod package ... --supersedes OLD` (a renamed model).

The registry is rewritten once, atomically, and only then are the removed entries' weights and history files
deleted; every check here compares against the files as they were before (bytes) or against the registry read back.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import zinc12k_zoo_entry

from dgl_hod import cli, create_model
from dgl_hod import zoo as zoo_module
from dgl_hod.zoo import Zoo, ZooError, default_zoo, save_weights

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(node_vocab=(28,), edge_vocab=(4,), num_tasks=1, hidden_dim=8, num_layers=2)
NAMES = ("gine-a-zinc", "gine-b-zinc", "gine-c-zinc")


def _zoo(tmp_path: Path) -> Zoo:
    """Three tiny GINE entries; gine-b-zinc also has a (fake) history file bound to it."""
    zoo = Zoo(tmp_path / "zoo.yaml", tmp_path / "models")
    for i, name in enumerate(NAMES):
        torch.manual_seed(i)
        model = create_model("gine", **TINY)
        sha = save_weights(model, zoo.models_dir / f"{name}.safetensors", arch="gine", config=TINY)
        history = {}
        if name == "gine-b-zinc":
            path = zoo.models_dir / f"{name}.history.json"
            path.write_text("{}")
            history = {"file": f"models/{name}.history.json", "sha256": "0" * 64, "seeds": [0], "epochs": [1]}
        metrics = {"test": {"metric": "mae", "mean": 0.5 + i}}
        zoo.write_entry(zinc12k_zoo_entry(name, "gine", TINY, model, sha, metrics=metrics, history=history))
    return zoo


def _snapshot(zoo: Zoo) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in [zoo.path, *sorted(zoo.models_dir.iterdir())]}


def test_remove_entries_drops_the_entry_and_its_files_only(tmp_path):
    zoo = _zoo(tmp_path)
    before = _snapshot(zoo)
    deleted = zoo.remove_entries(["gine-b-zinc"])
    assert sorted(p.name for p in deleted) == ["gine-b-zinc.history.json", "gine-b-zinc.safetensors"]
    raw = yaml.safe_load(zoo.path.read_text())["models"]
    assert list(raw) == ["gine-a-zinc", "gine-c-zinc"]  # the others keep their order ...
    for name in ("gine-a-zinc", "gine-c-zinc"):  # ... and their fields and files, byte for byte
        assert (zoo.models_dir / f"{name}.safetensors").read_bytes() == before[f"{name}.safetensors"]
        assert raw[name] == yaml.safe_load(before["zoo.yaml"])["models"][name]
    assert sorted(p.name for p in zoo.models_dir.iterdir()) == ["gine-a-zinc.safetensors", "gine-c-zinc.safetensors"]
    assert zoo.list_models() == ["gine-a-zinc", "gine-c-zinc"] and zoo.unreferenced_files() == []
    zoo.load_model("gine-a-zinc")  # the remaining entries still load with every check


def test_remove_refuses_unknown_names_and_changes_nothing(tmp_path):
    zoo = _zoo(tmp_path)
    before = _snapshot(zoo)
    with pytest.raises(ZooError, match=r"no zoo entry 'gine-x-zinc' .*already removed\?.*Did you mean"):
        zoo.remove_entries(["gine-a-zinc", "gine-x-zinc"])  # one unknown name: nothing is removed
    with pytest.raises(ValueError, match="at least one"):
        zoo.remove_entries([])
    assert _snapshot(zoo) == before


def test_remove_is_atomic(tmp_path, monkeypatch):
    """A failed registry write changes nothing; an interruption after it leaves only unreferenced files."""
    zoo = _zoo(tmp_path)
    before = _snapshot(zoo)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zoo_module, "atomic_write_bytes", fail)
    with pytest.raises(OSError, match="disk full"):
        zoo.remove_entries(["gine-b-zinc"])
    assert _snapshot(zoo) == before  # registry and files as they were
    monkeypatch.undo()

    real_unlink = Path.unlink

    def interrupted(self, *args, **kwargs):  # killed right after the registry was written
        if self.parent == zoo.models_dir:
            raise KeyboardInterrupt
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zoo.remove_entries(["gine-b-zinc"])
    monkeypatch.undo()
    assert zoo.list_models() == ["gine-a-zinc", "gine-c-zinc"]  # no entry points at a deleted file
    assert [p.name for p in zoo.unreferenced_files()] == ["gine-b-zinc.history.json", "gine-b-zinc.safetensors"]


def test_a_file_another_entry_names_is_kept(tmp_path):
    zoo = _zoo(tmp_path)
    shared = zoo.model_info("gine-a-zinc")
    zoo.write_entry(dataclasses.replace(shared, name="gine-d-zinc"))  # the same weights file as gine-a-zinc
    assert zoo.remove_entries(["gine-a-zinc"]) == []
    assert (zoo.models_dir / "gine-a-zinc.safetensors").is_file()
    zoo.load_model("gine-d-zinc")


def test_cli_remove(tmp_path, monkeypatch, capsys):
    zoo = _zoo(tmp_path)
    monkeypatch.setenv("DGL_HOD_ZOO", str(zoo.path))
    monkeypatch.setenv("DGL_HOD_MODELS", str(zoo.models_dir))
    assert cli.main(["remove", "gine-c-zinc", "gine-a-zinc"]) == 0
    out = capsys.readouterr().out
    assert "removed gine-c-zinc (gine on zinc12k, test mae 2.5" in out and "removed gine-a-zinc" in out
    assert "gine-c-zinc.safetensors" in out.splitlines()[-1]  # the deleted files are named
    assert zoo.list_models() == ["gine-b-zinc"]
    assert cli.main(["remove", "gine-c-zinc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no zoo entry 'gine-c-zinc'" in err


def test_mentions_finds_whole_names_only(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "README.md").write_text("load_model('hod-gnn-k1-zinc')\n")
    (tmp_path / "docs" / "a.md").write_text("hod-gnn-k1-zinc-foo and xhod-gnn-k1-zinc are other names\n")
    (tmp_path / "tests" / "test_x.py").write_text('NAME = "hod-gnn-k1-zinc"\n')
    (tmp_path / "benchmarks" / "results" / "old.md").write_text("hod-gnn-k1-zinc: history, kept as it is\n")
    assert cli.mentions("hod-gnn-k1-zinc", tmp_path) == ["README.md", "tests/test_x.py"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 1-epoch GINE run on 64 ZINC graphs (package_run needs require_full_train=False for it)."""
    from dgl_hod.train import train

    run = tmp_path_factory.mktemp("supersede") / "run"
    train("gine", "zinc12k", {"hidden_dim": 8, "num_layers": 2}, run, epochs=1, max_train_graphs=64, progress=False,
          log=False, threads=1)  # fmt: skip
    return run


def test_package_supersedes_a_renamed_entry(tiny_run, tmp_path, monkeypatch, capsys):
    zoo = _zoo(tmp_path)
    before = _snapshot(zoo)
    package = functools.partial(zoo_module.package_run, zoo=zoo, require_full_train=False)
    # refused before any work: an unknown old name, or the new name itself
    with pytest.raises(ZooError, match="no zoo entry 'gine-x-zinc'"):
        package(tiny_run, "gine-new-zinc", supersedes=["gine-x-zinc"])
    with pytest.raises(ZooError, match="cannot supersede itself"):
        package(tiny_run, "gine-b-zinc", replace=True, supersedes=["gine-b-zinc"])
    assert _snapshot(zoo) == before

    entry = package(tiny_run, "gine-new-zinc", supersedes=["gine-b-zinc"])
    raw = yaml.safe_load(zoo.path.read_text())["models"]
    assert list(raw) == ["gine-a-zinc", "gine-new-zinc", "gine-c-zinc"]  # in the old entry's place
    assert raw["gine-new-zinc"]["sha256"] == entry.sha256
    names = sorted(p.name for p in zoo.models_dir.iterdir())
    assert "gine-b-zinc.safetensors" not in names and "gine-b-zinc.history.json" not in names
    assert {"gine-new-zinc.safetensors", "gine-new-zinc.history.json"} <= set(names)
    assert zoo.unreferenced_files() == []
    record = json.loads((tiny_run / "record.json").read_text())
    assert entry.metrics["test"]["weights_value"] == pytest.approx(record["metrics"]["test_at_best_val"], abs=1e-4)

    # the command line: --supersedes, then eval reproduces the new entry
    monkeypatch.setenv("DGL_HOD_ZOO", str(zoo.path))
    monkeypatch.setenv("DGL_HOD_MODELS", str(zoo.models_dir))
    monkeypatch.setattr(zoo_module, "package_run", functools.partial(zoo_module.package_run, require_full_train=False))
    args = ["package", str(tiny_run), "--name", "gine-newer-zinc", "--supersedes", "gine-new-zinc"]
    assert cli.main([*args, "--supersedes", "gine-c-zinc"]) == 0
    out = capsys.readouterr()
    assert "superseding (removing) gine-new-zinc" in out.err and "removed gine-c-zinc" in out.out
    assert zoo.list_models() == ["gine-a-zinc", "gine-newer-zinc"]
    assert cli.main([*args, "--replace"]) == 2  # run again: the old entry is gone, one line says so
    assert "no zoo entry 'gine-new-zinc'" in capsys.readouterr().err
    assert cli.main(["eval", "gine-newer-zinc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agrees"] is True


def test_shipped_models_folder_has_no_stale_files():
    """Every file in models/ belongs to a zoo.yaml entry (a removed or renamed entry leaves none behind)."""
    zoo = default_zoo()
    assert zoo.unreferenced_files() == [], "remove them, or package/restore the entries that name them"
