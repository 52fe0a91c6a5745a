"""Regression tests for the zoo's integrity, the CLI's errors and the public API edges (issues 10 and 11).

Each test failed before its fix: edited configs loaded silently, `eval`/`demo` exited 0 on a wrong value, weights
files with int/float16/NaN tensors loaded, `num_tasks=3, new_head=False` returned a 1-output model, duplicate names
in zoo.yaml were silently merged, `package --name` replaced entries and escaped models/, and several CLI errors
were tracebacks.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import zinc12k_zoo_entry
from safetensors import safe_open
from safetensors.torch import save_file

import dgl_hod
from dgl_hod import cli, create_model
from dgl_hod.zoo import (
    WeightsError,
    Zoo,
    ZooError,
    check_name,
    config_sha256,
    default_zoo,
    save_weights,
    sha256_file,
)

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(node_vocab=(28,), edge_vocab=(4,), num_tasks=1, hidden_dim=8, num_layers=2)


def _tiny_zoo(tmp_path: Path, metrics: dict | None = None, name: str = "gine-tiny-zinc") -> tuple[Zoo, torch.nn.Module]:
    """A one-entry zoo with a tiny GINE whose reference outputs are recorded like package_run does."""
    from dgl_hod.zoo import reference_output

    torch.manual_seed(0)
    model = create_model("gine", **TINY).eval()
    sha = save_weights(model, tmp_path / "models" / f"{name}.safetensors")
    ref = reference_output(model, "zinc12k", "test", list(range(8)))
    zoo = Zoo(tmp_path / "zoo.yaml", tmp_path / "models")
    reference = {"split": "test", "indices": list(range(8)), "output": ref.tolist()}
    zoo.write_entry(zinc12k_zoo_entry(name, "gine", TINY, model, sha, metrics=metrics or {}, reference=reference))
    return zoo, model


def _edit_registry(zoo: Zoo, edit) -> None:
    raw = yaml.safe_load(zoo.path.read_text())
    edit(raw["models"])
    zoo.path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _copy_shipped_registry(tmp_path: Path) -> Zoo:
    """The shipped zoo.yaml copied to tmp_path, reading the shipped models/ (nothing in the checkout changes)."""
    shutil.copy(default_zoo().path, tmp_path / "zoo.yaml")
    return Zoo(tmp_path / "zoo.yaml", default_zoo().models_dir)


# ------------------------------------------------------------------------------------------------ item 11.2: configs
def test_edited_config_is_refused_by_its_hash(tmp_path):
    zoo = _copy_shipped_registry(tmp_path)
    _edit_registry(zoo, lambda m: m["gine-zinc"]["config"].update(readout="mean"))
    with pytest.raises(ZooError, match=r"'gine-zinc': its config was edited .*create_model\('gine'"):
        zoo.load_model("gine-zinc")
    with pytest.raises(ZooError, match="config was edited"):  # the architecture alone is refused as well
        zoo.load_model("gine-zinc", pretrained=False)


def test_edited_config_with_a_matching_hash_fails_the_reference_outputs(tmp_path):
    zoo = _copy_shipped_registry(tmp_path)

    def edit(models):
        cfg = models["hod-gnn-k2-zinc"]["config"]
        key = "base_activation" if "base_activation" in cfg else "activation"
        cfg[key] = "tanh"
        models["hod-gnn-k2-zinc"]["config_sha256"] = config_sha256(cfg)

    _edit_registry(zoo, edit)
    # the weights file's metadata still names the trained config
    with pytest.raises(WeightsError, match="was saved for another config"):
        zoo.load_model("hod-gnn-k2-zinc")
    # a registry without hashes (an old file) is still caught by the stored reference outputs
    _edit_registry(zoo, lambda m: m["hod-gnn-k2-zinc"].pop("config_sha256"))
    with pytest.raises(WeightsError, match="was saved for another config"):
        zoo.load_model("hod-gnn-k2-zinc")


def test_reference_outputs_are_checked_on_load(tmp_path):
    zoo, _ = _tiny_zoo(tmp_path)
    zoo.load_model("gine-tiny-zinc")  # passes as written
    _edit_registry(zoo, lambda m: m["gine-tiny-zinc"]["reference"]["output"][3].__setitem__(0, 42.0))
    with pytest.raises(ZooError, match=r"'gine-tiny-zinc' does not reproduce its reference outputs .*max \|diff\|"):
        zoo.load_model("gine-tiny-zinc")
    assert zoo.load_model("gine-tiny-zinc", verify=False) is not None  # the explicit opt-out


def test_shipped_weights_carry_their_config_hash():
    zoo = default_zoo()
    for name in zoo.list_models():
        entry = zoo.model_info(name)
        assert entry.config_sha256 == config_sha256(entry.config), name
        with safe_open(str(zoo.weights_path(entry)), framework="pt") as f:
            meta = f.metadata()
        assert meta["dgl_hod.config_sha256"] == entry.config_sha256, name
        assert meta["dgl_hod.arch"] == entry.arch


def test_binding_keeps_tensors_bit_identical_and_updates_sha(tmp_path):
    torch.manual_seed(0)
    model = create_model("gine", **TINY)
    path = tmp_path / "models" / "gine-tiny-zinc.safetensors"
    sha = save_weights(model, path)  # no metadata yet, like the files shipped before binding
    before = path.read_bytes()
    zoo, _ = _tiny_zoo(tmp_path / "other")
    entry = dataclass_replace(zoo.model_info("gine-tiny-zinc"), sha256=sha, config_sha256="")
    zoo2 = Zoo(tmp_path / "zoo.yaml", tmp_path / "models")
    bound = zoo2.write_entry(entry)
    assert bound.sha256 == sha256_file(path) != sha
    from safetensors.torch import load

    old, new = load(before), load(path.read_bytes())
    assert old.keys() == new.keys()
    for k in old:
        assert old[k].dtype == new[k].dtype and torch.equal(old[k], new[k]), k
    assert yaml.safe_load(zoo2.path.read_text())["models"]["gine-tiny-zinc"]["sha256"] == bound.sha256


def dataclass_replace(entry, **kw):
    import dataclasses

    return dataclasses.replace(entry, **kw)


def test_eval_and_demo_exit_non_zero_when_the_metric_disagrees(tmp_path, monkeypatch, capsys):
    metrics = {"test": {"metric": "mae", "mean": 0.5, "weights_value": 0.5, "num_seeds": 1}}
    zoo, _ = _tiny_zoo(tmp_path, metrics)
    monkeypatch.setenv("DGL_HOD_ZOO", str(zoo.path))
    monkeypatch.setenv("DGL_HOD_MODELS", str(zoo.models_dir))
    assert cli.main(["eval", "gine-tiny-zinc", "--json"]) == 1
    err = capsys.readouterr().err
    assert "differs from zoo.yaml's 0.500000" in err and err.count("\n") == 1
    assert cli.main(["demo"]) == 1
    assert "DEMO FAILED" in capsys.readouterr().err
    # the recomputed value itself, recorded: both pass
    value = cli.evaluate_entry("gine-tiny-zinc", progress=False)["mae"]
    _edit_registry(zoo, lambda m: m["gine-tiny-zinc"]["metrics"]["test"].update(weights_value=round(value, 6)))
    assert cli.main(["eval", "gine-tiny-zinc"]) == 0
    assert cli.main(["demo"]) == 0


# ----------------------------------------------------------------------------------------- item 11.6: weights files
def test_weights_with_int_nan_or_other_float_tensors_are_refused(tmp_path):
    zoo, model = _tiny_zoo(tmp_path)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    floats = [k for k, v in state.items() if v.is_floating_point()]

    def write(name, change):
        s = dict(state)
        change(s)
        save_file(s, str(tmp_path / name))
        return tmp_path / name

    ints = write("int.safetensors", lambda s: s.update({k: s[k].to(torch.int64) for k in floats}))
    with pytest.raises(WeightsError, match=r"tensors of the wrong type .*int64, model float32"):
        zoo.load_model("gine-tiny-zinc", weights=ints)
    bad = state[floats[0]].clone()
    bad.view(-1)[0] = float("nan")
    nan = write("nan.safetensors", lambda s: s.update({floats[0]: bad}))
    with pytest.raises(WeightsError, match="hold NaN or inf"):
        zoo.load_model("gine-tiny-zinc", weights=nan)
    half = write("half.safetensors", lambda s: s.update({k: s[k].to(torch.float16) for k in floats}))
    with pytest.raises(WeightsError, match="pass cast=True to load_model"):
        zoo.load_model("gine-tiny-zinc", weights=half)
    loaded = zoo.load_model("gine-tiny-zinc", weights=half, cast=True)
    assert all(v.dtype == torch.float32 for k, v in loaded.state_dict().items() if k in floats)
    double = write("double.safetensors", lambda s: s.update({k: s[k].to(torch.float64) for k in floats}))
    exact = zoo.load_model("gine-tiny-zinc", weights=double, cast=True).state_dict()
    assert all(torch.equal(exact[k], state[k]) for k in floats)  # float32 -> float64 -> float32 is exact
    other = tmp_path / "dss.safetensors"
    save_weights(create_model("dss-gnn", **TINY), other, arch="dss-gnn", config=TINY)
    with pytest.raises(WeightsError, match="holds a 'dss-gnn' model, but zoo entry 'gine-tiny-zinc' is a 'gine'"):
        zoo.load_model("gine-tiny-zinc", weights=other)


def test_num_tasks_with_new_head_false_is_an_error(tmp_path):
    zoo, _ = _tiny_zoo(tmp_path)
    with pytest.raises(ValueError, match=r"trained head has 1 output\(s\); pass new_head=True"):
        zoo.load_model("gine-tiny-zinc", num_tasks=3, new_head=False)
    assert zoo.load_model("gine-tiny-zinc", num_tasks=3).config.num_tasks == 3
    assert zoo.load_model("gine-tiny-zinc", num_tasks=1, new_head=False).config.num_tasks == 1


def test_duplicate_names_in_the_registry_are_refused(tmp_path):
    zoo, _ = _tiny_zoo(tmp_path)
    text = zoo.path.read_text()
    block = text[text.index("  gine-tiny-zinc:") :]
    zoo.path.write_text(text + block.replace("hidden_dim: 8", "hidden_dim: 16"))
    with pytest.raises(ZooError, match=r"line \d+: invalid YAML \(duplicate key 'gine-tiny-zinc'"):
        _ = zoo.entries


def test_num_tasks_is_stored_once_and_old_files_load(tmp_path):
    text = default_zoo().path.read_text()
    assert not re.search(r"^    num_tasks:", text, flags=re.M)  # only inside config
    zoo, _ = _tiny_zoo(tmp_path)
    _edit_registry(zoo, lambda m: m["gine-tiny-zinc"].update(num_tasks=1))  # an old file: stored twice
    assert zoo.model_info("gine-tiny-zinc").num_tasks == 1
    _edit_registry(zoo, lambda m: m["gine-tiny-zinc"].update(num_tasks=2))
    with pytest.raises(ZooError, match="num_tasks 2 disagrees with config.num_tasks 1"):
        _ = zoo.entries


# ------------------------------------------------------------------------------------------- item 11.8: --name
@pytest.mark.parametrize("name", ["../../escape", "a/b", "gine-zinc/..", "Gine-Zinc", "gine_zinc", "gine--zinc", ""])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ZooError, match="invalid zoo name"):
        check_name(name)


def test_names_follow_the_scheme():
    for name in default_zoo().list_models():
        check_name(name, default_zoo().model_info(name).arch, default_zoo().model_info(name).config)
    check_name("hod-gnn-k1-m3-d4-zinc", "hod-gnn", {"k": 1, "m": 3, "base_layers": 4})
    check_name("hod-gnn-k2-zinc", "hod-gnn", {"k": 2, "m": 1})
    with pytest.raises(ZooError, match="says m1 but the model has m=3"):
        check_name("hod-gnn-k1-zinc", "hod-gnn", {"k": 1, "m": 3})
    with pytest.raises(ZooError, match="says m4"):
        check_name("hod-gnn-k1-m4-zinc", "hod-gnn", {"k": 1, "m": 2})
    with pytest.raises(ZooError, match="has an m"):
        check_name("hod-gnn-k2-m2-zinc", "hod-gnn", {"order": 2})
    with pytest.raises(ZooError, match="says k3 but the model has order=2"):
        check_name("hod-gnn-k3-zinc", "hod-gnn", {"order": 2})
    with pytest.raises(ZooError, match="says d8 but the model has base_layers=4"):
        check_name("hod-gnn-k1-d8-zinc", "hod-gnn", {"order": 1, "base_layers": 4})
    with pytest.raises(ZooError, match="for a gine model: use gine-"):
        check_name("dss-gnn-zinc", "gine", {})
    with pytest.raises(ZooError, match="HOD-GNN names are"):
        check_name("hod-gnn-zinc")


def test_package_refuses_to_replace_an_entry_and_to_escape(tmp_path, monkeypatch, capsys):
    from dgl_hod.zoo import package_run

    zoo, _ = _tiny_zoo(tmp_path)
    before = zoo.path.read_bytes(), (zoo.models_dir / "gine-tiny-zinc.safetensors").read_bytes()
    with pytest.raises(ZooError, match=r"already has gine-tiny-zinc \(gine on zinc12k.*pass --replace"):
        package_run(tmp_path / "any-run", "gine-tiny-zinc", zoo)
    with pytest.raises(ZooError, match="invalid zoo name"):
        package_run(tmp_path / "any-run", "../../escape", zoo)
    assert (zoo.path.read_bytes(), (zoo.models_dir / "gine-tiny-zinc.safetensors").read_bytes()) == before
    monkeypatch.setenv("DGL_HOD_ZOO", str(zoo.path))
    monkeypatch.setenv("DGL_HOD_MODELS", str(zoo.models_dir))
    run = tmp_path / "run"
    run.mkdir()
    (run / "record.json").write_text("{}")
    assert cli.main(["package", str(run), "--name", "gine-tiny-zinc"]) == 2
    err = capsys.readouterr().err
    assert "already has gine-tiny-zinc" in err and "--replace" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------ item 11.10: CLI errors
def _one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys):
    _one_line_error(capsys, cli.main(["package", str(tmp_path / "nope"), "--name", "gine-x-zinc"]), "does not exist")
    bad = tmp_path / "zoo.yaml"
    bad.write_text("models:\n  a: [1, 2\n")
    monkeypatch.setenv("DGL_HOD_ZOO", str(bad))
    _one_line_error(capsys, cli.main(["list"]), str(bad), "invalid YAML")
    monkeypatch.setenv("DGL_HOD_ZOO", str(tmp_path))
    _one_line_error(capsys, cli.main(["list"]), "is a folder", "DGL_HOD_ZOO")
    monkeypatch.delenv("DGL_HOD_ZOO")
    _one_line_error(capsys, cli.main(["eval", "gine-zinc", "--batch-size", "-5"]), "--batch-size -5")
    _one_line_error(capsys, cli.main(["info", "gine-zink"]), "Did you mean 'gine-zinc'")


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_train_and_finetune_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    assert "--dataset" in capsys.readouterr().out


def test_bench_finds_its_helpers():
    """`dgl-hod bench` crashed with ModuleNotFoundError: No module named '_isolated'."""
    out = subprocess.run(
        [sys.executable, "-m", "dgl_hod.cli", "bench", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "_isolated" not in out.stderr and "usage" in out.stdout


# ------------------------------------------------------------------------------------------ item 10.6: API edges
def test_public_api_edges():
    for fn in (dgl_hod.load_model, Zoo.load_model):
        params = inspect.signature(fn).parameters
        assert all(p.kind is p.KEYWORD_ONLY for n, p in params.items() if n not in ("self", "name")), fn
    with pytest.raises(TypeError):
        dgl_hod.load_model("gine-zinc", True)  # type: ignore[misc]
    assert inspect.signature(create_model).return_annotation in ("GraphModel", dgl_hod.GraphModel)
    assert isinstance(create_model("gine", **TINY), dgl_hod.GraphModel)
    assert dgl_hod.load_dataset("zinc12k", "test")[0] is not None
    from dgl_hod.archs import get_arch
    from dgl_hod.datasets import get_info

    assert get_arch is dgl_hod.arch_info and get_info is dgl_hod.dataset_info
    assert dgl_hod.model_info("gine-zinc").arch == dgl_hod.arch_info("gine").name == "gine"


def test_no_one_letter_module_aliases():
    pattern = re.compile(r"^\s*(?:from\s+\S+\s+)?import\s+\S+\s+as\s+[A-Za-z]\b", flags=re.M)
    found = [str(p.relative_to(ROOT)) for p in (ROOT / "dgl_hod").rglob("*.py") if pattern.search(p.read_text())]
    assert not found, found


# ------------------------------------------------------------------------------------------ item 10.7: torch.hub
def test_torch_hub_gives_the_zoo_model():
    model = torch.hub.load(str(ROOT), "hod_gnn_k2_zinc", source="local")
    ref = dgl_hod.load_model("hod-gnn-k2-zinc")
    assert type(model) is type(ref) and not model.training
    a, b = model.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    head3 = torch.hub.load(str(ROOT), "gine_zinc", source="local", num_tasks=3)
    assert head3.config.num_tasks == 3
    spec = importlib.util.spec_from_file_location("_hubconf_test", ROOT / "hubconf.py")
    assert spec is not None and spec.loader is not None
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    points = {n for n in dir(hub) if not n.startswith("_") and callable(getattr(hub, n))}
    assert {n.replace("-", "_") for n in default_zoo().list_models()} <= points
