"""The model zoo: registry-wide checks against zoo.yaml, and loading behaviour on a temporary zoo."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from dgl_hod import create_model
from dgl_hod.datasets import load_dataset
from dgl_hod.zoo import (
    WeightsError,
    Zoo,
    ZooEntry,
    config_sha256,
    default_zoo,
    reference_output,
    save_weights,
    sha256_file,
)

TINY = dict(node_vocab=(28,), edge_vocab=(4,), num_tasks=1, hidden_dim=8, num_layers=2)


def _entry(name, weights, sha, model, **kw):
    base = dict(
        name=name,
        arch="gine",
        config=dict(TINY),
        dataset="zinc12k",
        task="regression",
        weights=weights,
        sha256=sha,
        num_params=sum(p.numel() for p in model.parameters()),
        metrics={},
        recipe={},
    )
    base.update(kw)
    return ZooEntry(**base)


@pytest.fixture()
def tiny_zoo(tmp_path):
    torch.manual_seed(0)
    model = create_model("gine", **TINY).eval()
    sha = save_weights(model, tmp_path / "models" / "tiny-zinc.safetensors")
    zoo = Zoo(tmp_path / "zoo.yaml", tmp_path / "models")
    zoo.write_entry(_entry("tiny-zinc", "models/tiny-zinc.safetensors", sha, model))
    return zoo, model


def test_list_info_and_unknown_names(tiny_zoo):
    zoo, _ = tiny_zoo
    assert zoo.list_models() == ["tiny-zinc"]
    assert zoo.list_models("hod-*") == []
    assert zoo.list_models(pretrained=True) == ["tiny-zinc"]
    assert zoo.model_info("tiny-zinc").arch == "gine"
    with pytest.raises(KeyError, match="Did you mean 'tiny-zinc'"):
        zoo.model_info("tiny-zink")


def test_load_is_strict_and_exact(tiny_zoo):
    zoo, model = tiny_zoo
    loaded = zoo.load_model("tiny-zinc")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not loaded.training


def test_corrupt_weights_are_refused_with_the_file_named(tiny_zoo):
    zoo, _ = tiny_zoo
    path = zoo.models_dir / "tiny-zinc.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"sha256 mismatch for .*tiny-zinc\.safetensors"):
        zoo.load_model("tiny-zinc")


def test_missing_weights_file(tiny_zoo):
    zoo, _ = tiny_zoo
    (zoo.models_dir / "tiny-zinc.safetensors").unlink()
    with pytest.raises(WeightsError, match="is missing"):
        zoo.load_model("tiny-zinc")
    assert zoo.list_models(pretrained=True) == []
    assert zoo.load_model("tiny-zinc", pretrained=False) is not None


def test_wrong_shape_and_unexpected_keys(tiny_zoo, tmp_path):
    zoo, _ = tiny_zoo
    other = create_model("gine", **{**TINY, "hidden_dim": 16})
    save_weights(other, tmp_path / "wide.safetensors")
    with pytest.raises(WeightsError, match="shape mismatch"):
        zoo.load_model("tiny-zinc", weights=tmp_path / "wide.safetensors")
    deeper = create_model("gine", **{**TINY, "num_layers": 3})
    save_weights(deeper, tmp_path / "deeper.safetensors")
    with pytest.raises(WeightsError, match="unexpected keys"):
        zoo.load_model("tiny-zinc", weights=tmp_path / "deeper.safetensors")
    with pytest.raises(WeightsError, match="only .safetensors"):
        zoo.load_model("tiny-zinc", weights=tmp_path / "zoo.yaml")


def test_new_head_drops_exactly_the_head(tiny_zoo):
    zoo, model = tiny_zoo
    torch.manual_seed(1)
    loaded = zoo.load_model("tiny-zinc", num_tasks=3)
    g, _ = load_dataset("zinc12k", "test").batch(range(4))
    assert loaded(g, g.ndata["feat"], g.edata["feat"]).shape == (4, 3)
    old = model.state_dict()
    for k, v in loaded.state_dict().items():
        if k.startswith("head."):
            continue
        assert torch.equal(v, old[k]), k
    assert any(k.startswith("head.") for k in old)
    # a new task with the same number of outputs: new_head=True re-initialises exactly the head
    fresh = zoo.load_model("tiny-zinc", new_head=True).state_dict()
    assert all(torch.equal(v, old[k]) for k, v in fresh.items() if not k.startswith("head."))
    assert not torch.equal(fresh["head.0.weight"], old["head.0.weight"])


def test_freeze_groups(tiny_zoo):
    zoo, _ = tiny_zoo
    m = zoo.load_model("tiny-zinc", freeze="all-but-head")
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("head.") for n in trainable)
    m = zoo.load_model("tiny-zinc", freeze="encoder")
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("node_encoder.", "edge_encoder.")) for n in frozen)
    with pytest.raises(ValueError, match="unknown freeze group 'bones'"):
        zoo.load_model("tiny-zinc", freeze="bones")
    with pytest.raises(ValueError, match="matches no parameter"):
        zoo.load_model("tiny-zinc", freeze=["nothing."])


def test_bad_registry_entries(tmp_path):
    (tmp_path / "zoo.yaml").write_text("models:\n  x:\n    arch: gine\n    colour: red\n")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        _ = Zoo(tmp_path / "zoo.yaml").entries
    with pytest.raises(FileNotFoundError, match="DGL_HOD_ZOO"):
        _ = Zoo(tmp_path / "nope.yaml").entries


# ---------------------------------------------------------------------------------------------------------------------
# every entry of the real zoo.yaml (torchvision's test_extended_models pattern)
# ---------------------------------------------------------------------------------------------------------------------
ZOO = default_zoo()
NAMES = ZOO.list_models() if ZOO.path.exists() else []


def test_zoo_has_entries():
    if not ZOO.path.exists():
        pytest.skip("no zoo.yaml yet")
    assert NAMES, "zoo.yaml lists no model"


@pytest.mark.parametrize("name", NAMES)
def test_zoo_entry(name):
    entry = ZOO.model_info(name)
    for f in ("metrics", "recipe", "license", "paper"):
        assert getattr(entry, f), f"{name}: empty {f}"
    assert entry.weights.startswith("models/") and entry.weights.endswith(".safetensors")
    path = ZOO.weights_path(entry)
    assert sha256_file(path) == entry.sha256
    model = ZOO.load_model(name)
    assert sum(p.numel() for p in model.parameters()) == entry.num_params
    assert dataclasses.asdict(model.config)["num_tasks"] == entry.num_tasks
    ref = entry.reference
    assert ref, f"{name}: no reference output"
    got = reference_output(model, entry.dataset, ref["split"], ref["indices"])
    assert torch.allclose(got, torch.tensor(ref["output"]), atol=1e-5, rtol=1e-5)
    assert entry.config_sha256 == config_sha256(entry.config), f"{name}: config_sha256 missing or stale"


def test_package_run_and_cli_eval(tmp_path, monkeypatch, capsys):
    """train (tiny, 1 epoch) -> package (re-evaluated from the written file) -> load -> CLI eval reproduces it."""
    from dgl_hod import cli
    from dgl_hod.train import train
    from dgl_hod.zoo import package_run

    run = tmp_path / "run"
    train(
        "gine",
        "zinc12k",
        {"hidden_dim": 8, "num_layers": 2},
        run,
        epochs=1,
        max_train_graphs=64,
        max_eval_graphs=None,
        progress=False,
    )
    zoo = Zoo(tmp_path / "zoo.yaml", tmp_path / "models")
    with pytest.raises(ValueError, match="not the full train split"):
        package_run(run, "gine-tiny-zinc", zoo)
    entry = package_run(run, "gine-tiny-zinc", zoo, require_full_train=False)
    assert entry.sha256 == sha256_file(tmp_path / "models" / "gine-tiny-zinc.safetensors")
    assert entry.metrics["test"]["num_seeds"] == 1 and entry.recipe["epochs_run"] == 1
    monkeypatch.setenv("DGL_HOD_ZOO", str(tmp_path / "zoo.yaml"))
    monkeypatch.setenv("DGL_HOD_MODELS", str(tmp_path / "models"))
    assert cli.main(["eval", "gine-tiny-zinc", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["abs_diff"] < 1e-4
    assert cli.main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "gine-tiny-zinc"
    assert cli.main(["info", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err

    # several seeds of one recipe: mean ± std over seeds, the best-validation seed's weights shipped and reproduced
    # by eval; --ship first ships the first run given
    kw = dict(epochs=1, max_train_graphs=64, progress=False, log=False)
    train("gine", "zinc12k", {"hidden_dim": 8, "num_layers": 2}, tmp_path / "run-s1", seed=1, **kw)
    train("gine", "zinc12k", {"hidden_dim": 16, "num_layers": 2}, tmp_path / "other", **kw)
    two = package_run([run, tmp_path / "run-s1"], "gine-tiny2-zinc", zoo, require_full_train=False)
    m, val = two.metrics["test"], two.metrics["val"]
    assert m["num_seeds"] == 2 and m["seeds"] == [0, 1] and val["per_seed"][0] != val["per_seed"][1]
    best = min(range(2), key=val["per_seed"].__getitem__)  # MAE: lower is better
    assert m["weights_seed"] == val["weights_seed"] == best
    assert m["weights_value"] == m["per_seed"][best] and val["weights_value"] == val["per_seed"][best]
    assert m["per_seed"][0] == entry.metrics["test"]["mean"]
    assert m["mean"] == pytest.approx(sum(m["per_seed"]) / 2, abs=1e-6) and m["std"] > 0
    assert f"SEED in [0, 1]; seed {best}'s weights are shipped" in two.recipe["command"]
    assert two.recipe["seed"] == best
    assert cli.main(["eval", "gine-tiny2-zinc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["abs_diff"] < 1e-4
    other = 1 - best
    runs = [run, tmp_path / "run-s1"]
    first = package_run(runs[::-1] if other else runs, "gine-tiny3-zinc", zoo, require_full_train=False, ship="first")
    assert first.metrics["test"]["weights_seed"] == other and first.recipe["seed"] == other
    with pytest.raises(ValueError, match="ship='last': choose one of best-val, first"):
        package_run(runs, "gine-tiny4-zinc", zoo, require_full_train=False, ship="last")
    with pytest.raises(ValueError, match="repeat a seed"):
        package_run([run, run], "gine-bad-zinc", zoo, require_full_train=False)
    with pytest.raises(ValueError, match="is not a seed of .* config differ"):
        package_run([run, tmp_path / "other"], "gine-bad-zinc", zoo, require_full_train=False)


def test_finetune_body_lr_scale_and_freeze(tiny_zoo, tmp_path, monkeypatch):
    """Fine-tuning: the frozen encoder does not move, the body learns at lr * body_lr_scale, the head at lr."""
    from dgl_hod.train import CHECKPOINT, _load_checkpoint, train

    zoo, pretrained = tiny_zoo
    monkeypatch.setenv("DGL_HOD_ZOO", str(zoo.path))
    monkeypatch.setenv("DGL_HOD_MODELS", str(zoo.models_dir))
    run = tmp_path / "ft"
    train(
        None,
        "zinc12k",
        None,
        run,
        epochs=1,
        max_train_graphs=64,
        max_eval_graphs=32,
        progress=False,
        log=False,
        finetune="tiny-zinc",
        freeze="encoder",
        body_lr_scale=0.1,
    )
    ckpt = _load_checkpoint(run / CHECKPOINT)
    groups = ckpt["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    assert groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"]) and groups[0]["lr"] > 0
    names = [n for n, _ in pretrained.named_parameters()]
    assert len(groups[0]["params"]) == sum(n.startswith("head.") for n in names)
    assert len(groups[1]["params"]) == sum(
        not n.startswith(("head.", "node_encoder.", "edge_encoder.")) for n in names
    )  # frozen encoders are not in the optimizer
    after, before = ckpt["model"], pretrained.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith(("node_encoder.", "edge_encoder.")))
    assert not all(torch.equal(after[k], before[k]) for k in before if k.startswith("layers."))
    assert ckpt["run_args"]["finetuned_from"] == {"zoo_model": "tiny-zinc", "freeze": "encoder", "body_lr_scale": 0.1}
    # a finished fine-tuning run packages with the command that reproduces it from the zoo model
    from dgl_hod.zoo import package_run

    train(
        None,
        "zinc12k",
        None,
        tmp_path / "ft2",
        epochs=1,
        max_train_graphs=64,
        progress=False,
        log=False,
        finetune="tiny-zinc",
        freeze="encoder",
        body_lr_scale=0.1,
    )
    ft = package_run(tmp_path / "ft2", "gine-ft-zinc", zoo, require_full_train=False)
    assert ft.recipe["command"].startswith(
        "python -m dgl_hod.train --finetune tiny-zinc --freeze encoder --body-lr-scale 0.1 --dataset zinc12k"
    )
    assert ft.recipe["finetuned_from"]["zoo_model"] == "tiny-zinc"
    with pytest.raises(ValueError, match=r"zoo model tiny-zinc has node_vocab=\(28,\) but ogbg-molbace has"):
        train(None, "ogbg-molbace", None, tmp_path / "z", epochs=1, finetune="tiny-zinc")
    with pytest.raises(ValueError, match=r"the config has node_vocab=\(5,\) but zinc12k"):
        train("gine", "zinc12k", {**TINY, "node_vocab": (5,)}, tmp_path / "w", epochs=1)
    with pytest.raises(ValueError, match="only applies when fine-tuning"):
        train("gine", "zinc12k", TINY, tmp_path / "x", epochs=1, body_lr_scale=0.1)
    with pytest.raises(ValueError, match=r"body_lr_scale.* must be in \(0, 1\]"):
        train(None, "zinc12k", None, tmp_path / "y", epochs=1, finetune="tiny-zinc", body_lr_scale=0.0)


def test_shipped_index_follows_the_metric_direction():
    """The shipped seed is the best validation value: lowest MAE, highest ROC-AUC; the first on ties."""
    from dgl_hod.zoo import _shipped_index

    runs = [{"val": 0.3, "test": 0.1}, {"val": 0.2, "test": 0.9}, {"val": 0.2, "test": 0.0}, {"val": 0.5}]
    assert _shipped_index(runs, "mae", "best-val") == 1
    assert _shipped_index(runs, "rocauc", "best-val") == 3
    assert _shipped_index(runs, "mae", "first") == 0
