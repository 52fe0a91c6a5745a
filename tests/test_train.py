"""dgl_hod.train: ZINC smoke run where the loss falls, resumable checkpoints, outputs."""

import json

import numpy as np
import pytest
import torch
from conftest import TINY_HOD_GNN
from safetensors.torch import load_file

import dgl_hod.train as train_mod
from dgl_hod.train import CHECKPOINT, CheckpointError, Recipe, epoch_batches, lr_factor, peak_rss_mib, train

KW = dict(batch_size=32, lr=3e-3, max_train_graphs=192, max_eval_graphs=64, progress=False, log=False, seed=0)


def test_zinc_smoke_loss_falls_and_outputs_are_complete(tmp_path):
    rec = train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path, epochs=4, **KW)
    losses = [h["train_loss"] for h in rec["history"]]
    assert losses[-1] < losses[0], losses
    saved = json.loads((tmp_path / "record.json").read_text())
    assert saved["arch"] == "hod-gnn" and saved["config"]["node_vocab"] == [28] and saved["config"]["max_order"] == 1
    assert saved["recipe"]["epochs_run"] == 4 and saved["recipe"]["optimizer"] == "AdamW"
    assert saved["recipe"]["loss"] == "L1" and saved["recipe"]["threads"] == 1
    m = saved["metrics"]
    best = min(saved["history"], key=lambda h: h["val"])
    assert m["best_val"] == best["val"] and m["test_at_best_val"] == best["test"]
    weights = load_file(str(tmp_path / "best.safetensors"))
    assert saved["num_params"] == sum(
        v.numel() for k, v in weights.items() if "running" not in k and "num_batches" not in k
    )
    from dgl_hod import create_model

    model = create_model("hod-gnn", **saved["config"])
    model.load_state_dict(weights)


def _killed_after_first_epoch(monkeypatch, *args, **kw):
    """Run ``train`` and stop it (as a kill would) after its first epoch's checkpoint is written."""
    monkeypatch.setattr(train_mod, "_STOP_AFTER_EPOCHS", 1)
    with pytest.raises(train_mod._SimulatedKill):
        train(*args, **kw)
    monkeypatch.setattr(train_mod, "_STOP_AFTER_EPOCHS", None)


def test_resume_after_kill_continues_exactly(tmp_path, monkeypatch):
    straight = train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "a", epochs=2, **KW)
    _killed_after_first_epoch(monkeypatch, "hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "b", epochs=2, **KW)
    assert (tmp_path / "b" / CHECKPOINT).exists() and not (tmp_path / "b" / "record.json").exists()
    with pytest.raises(FileExistsError, match="resume"):
        train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "b", epochs=2, **KW)
    resumed = train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path / "b", epochs=2, resume=True, **KW)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    for h1, h2 in zip(straight["history"], resumed["history"]):  # bit for bit: same losses, metrics and weights
        assert (h1["train_loss"], h1["val"], h1["test"]) == (h2["train_loss"], h2["val"], h2["test"])
    wa, wb = load_file(str(tmp_path / "a" / "best.safetensors")), load_file(str(tmp_path / "b" / "best.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert len(resumed["recipe"]["sessions"]) == 2


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path, monkeypatch):
    _killed_after_first_epoch(monkeypatch, "hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path, epochs=2, **KW)
    ckpt = tmp_path / CHECKPOINT
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path, epochs=2, resume=True, **KW)


def test_resume_refuses_a_different_run(tmp_path, monkeypatch):
    _killed_after_first_epoch(monkeypatch, "hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path, epochs=2, **KW)
    with pytest.raises(CheckpointError, match="different run"):
        train("hod-gnn", "zinc12k", {**TINY_HOD_GNN, "order": 2}, tmp_path, epochs=2, resume=True, **KW)


def test_lr_schedule_and_argument_errors(tmp_path):
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="epochs"):
        train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path)
    with pytest.raises(ValueError, match="not a training metric"):
        train("hod-gnn", "sr25", TINY_HOD_GNN, tmp_path, epochs=1)


def test_time_budget_plans_epochs_after_the_first(tmp_path):
    budget = 4.0
    rec = train("hod-gnn", "zinc12k", TINY_HOD_GNN, tmp_path, time_budget_s=budget, **KW)
    r = rec["recipe"]
    assert r["planned_epochs"] >= 1 and "t1 =" in r["plan_rule"]
    assert r["epochs_run"] >= 1
    wall = rec["timing"]["wall_time_s"]
    times = [h["time_s"] for h in rec["history"]]
    assert sum(times) <= wall < sum(times) + 2.0  # elapsed time is counted once
    # peak memory: this process's ru_maxrss, at least the current resident set, the record's the epochs' maximum
    with open("/proc/self/status") as f:
        rss_now = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    peaks = [h["peak_rss_mib"] for h in rec["history"]]
    assert all(p is not None and rss_now * 0.5 <= p <= peak_rss_mib() for p in peaks)
    assert peaks == sorted(peaks) and rec["timing"]["peak_rss_mib"] == max(peaks)
    if r["stop_reason"].startswith("time budget"):  # a budget stop must be justified by the real elapsed time
        assert wall + sum(times) / len(times) > budget
    else:
        assert r["epochs_run"] == r["planned_epochs"]


def test_cli_prints_a_final_table_or_json(tmp_path, capsys):
    from dgl_hod.train import main

    args = [
        "gine",
        "--dataset",
        "zinc12k",
        "--config",
        '{"hidden_dim": 8, "num_layers": 2}',
        "--epochs",
        "1",
        "--max-train-graphs",
        "64",
        "--max-eval-graphs",
        "32",
        "--no-progress",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "finished gine on zinc12k" in out and "test_at_best_val" in out
    assert main([*args, "--out", str(tmp_path / "b"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 1 and summary["arch"] == "gine"


def test_recipe_validates_and_train_takes_a_recipe_or_its_fields(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size \(--batch-size\) must be a positive integer"):
        Recipe(epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="give epochs=..., time_budget_s=..., or both"):
        Recipe()
    with pytest.raises(ValueError, match="freeze .* only applies when fine-tuning"):
        Recipe(epochs=1, freeze="base")
    with pytest.raises(TypeError, match=r"unknown recipe setting\(s\) \['epoch'\]. Did you mean 'epochs'"):
        train("gine", "zinc12k", {}, tmp_path / "a", epoch=1)
    assert (
        Recipe(time_budget_s=10).warmup_epochs_used == 1 and Recipe(epochs=3, warmup_epochs=2).warmup_epochs_used == 2
    )
    small = {"hidden_dim": 8, "num_layers": 2}
    a = train(
        "gine", "zinc12k", small, tmp_path / "a", Recipe(epochs=1, max_train_graphs=32), progress=False, log=False
    )
    b = train("gine", "zinc12k", small, tmp_path / "b", epochs=1, max_train_graphs=32, progress=False, log=False)
    assert a.keys() == b.keys() and a["history"][0]["train_loss"] == b["history"][0]["train_loss"]


def test_epoch_batches_depend_on_seed_and_epoch_only_and_shard_by_rank():
    one = epoch_batches(100, 8, seed=3, epoch=2)
    assert [b.tolist() for b in one] == [b.tolist() for b in epoch_batches(100, 8, seed=3, epoch=2)]
    assert sorted(np.concatenate(one).tolist()) == list(range(100)) and all(len(b) == 8 for b in one[:-1])
    assert np.concatenate(one).tolist() != np.concatenate(epoch_batches(100, 8, seed=3, epoch=3)).tolist()
    shards = [np.concatenate(epoch_batches(100, 8, seed=3, epoch=2, rank=r, world_size=3)) for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(100))  # the ranks partition the epoch


def test_no_function_of_the_trainer_is_over_60_lines():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(train_mod))
    long = {
        n.name: n.end_lineno - n.lineno + 1
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno + 1 > 60
    }
    assert not long, long


def test_every_zoo_recipe_command_still_parses_and_builds(tmp_path):
    """Backward compatibility: each zoo.yaml ``recipe.command`` gives a valid Recipe and builds its model."""
    import shlex

    from dgl_hod.train import _parser, _recipe_from_args, build_or_load_model
    from dgl_hod.zoo import default_zoo

    zoo = default_zoo()
    for name in zoo.list_models():
        entry = zoo.model_info(name)
        seed = entry.recipe["seeds"][0] if "seeds" in entry.recipe else entry.recipe["seed"]
        command = entry.recipe["command"].replace("SEED", str(seed))  # several seeds: one command per seed
        argv = shlex.split(command, comments=True)
        assert argv[:3] == ["python", "-m", "dgl_hod.train"], name
        args = _parser().parse_args(argv[3:])
        recipe = _recipe_from_args(args)
        assert (recipe.time_budget_s, recipe.seed, recipe.lr) == (
            entry.recipe["time_budget_s"],
            seed,
            entry.recipe["lr"],
        ), name
        setup = build_or_load_model(args.arch, entry.dataset, json.loads(args.config), recipe)
        assert sum(p.numel() for p in setup.model.parameters()) == entry.num_params, name
