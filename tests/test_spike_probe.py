"""benchmarks/spike_probe.py: the spike rule by hand, the watcher on crafted checkpoints, and the BatchNorm
statistics against independent formulations (train-mode forward, statistics that forget where they started)."""

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import spike_probe  # noqa: E402


def test_spike_ratio_by_hand():
    hist = [{"val": v} for v in (1.0, 0.4, 0.2, 0.5)]
    assert spike_probe.spike_ratio(hist, higher_is_better=False) == pytest.approx(2.5)
    assert spike_probe.spike_ratio(hist[:1], higher_is_better=False) is None
    roc = [{"val": v} for v in (0.6, 0.8, 0.5)]  # errors 0.4, 0.2, 0.5
    assert spike_probe.spike_ratio(roc, higher_is_better=True) == pytest.approx(2.5)


def _fake_checkpoint(path: Path, vals: list[float]) -> None:
    """A file with the checkpoint's metadata layout (the watcher reads nothing else)."""
    from safetensors.torch import save_file

    history = [{"epoch": i + 1, "val": v} for i, v in enumerate(vals)]
    meta = {"run_args": {"dataset": "zinc12k"}, "state": {"history": history}}
    save_file({"x": torch.zeros(1)}, str(path), metadata={"json": json.dumps(meta)})


def test_the_watcher_keeps_spikes_and_one_control(tmp_path, capsys):
    ckpt, dest = tmp_path / "checkpoint.safetensors", tmp_path / "spikes"
    dest.mkdir()
    seen, after = -1, False
    vals = [1.0, 0.5, 0.3, 0.7, 0.65, 0.28, 0.29]  # epoch 4 (2.33x) and 5 (2.17x) spike, 6 is the control
    for n in range(1, len(vals) + 1):
        _fake_checkpoint(ckpt, vals[:n])
        seen, after = spike_probe.keep_if_spiking(ckpt, dest, 2.0, seen, after)
        seen, after = spike_probe.keep_if_spiking(ckpt, dest, 2.0, seen, after)  # the same epoch twice: no-op
    assert sorted(p.name for p in dest.iterdir()) == [f"epoch-000{e}.safetensors" for e in (4, 5, 6)]
    assert spike_probe.checkpoint_history(dest / "epoch-0004.safetensors")[1][-1]["val"] == 0.7
    out = capsys.readouterr().out
    assert out.count("kept, spike") == 2 and out.count("kept, control") == 1


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from dgl_hod.train import train

    out = tmp_path_factory.mktemp("spike") / "run"
    train("gine", "zinc12k", {"hidden_dim": 8, "num_layers": 2}, out, epochs=2, max_train_graphs=64, progress=False)
    return out


def test_probe_reproduces_the_recorded_value_and_statistics_match_their_definitions(tiny_run):
    from dgl_hod.archs.registry import create_model
    from dgl_hod.checkpoint import load_checkpoint
    from dgl_hod.datasets import load_dataset
    from dgl_hod.evaluation import batchnorm_layers

    r = spike_probe.probe(tiny_run / "checkpoint.safetensors", graphs=64, splits=("val", "test"))
    assert r["epoch"] == 2 and r["batchnorm_layers"] > 0
    for split in ("val", "test"):  # with the running statistics: what the trainer saw
        assert r[split]["running"] == pytest.approx(r[split]["recorded"], abs=1e-4)
        assert all(torch.isfinite(torch.tensor([r[split]["precise"], r[split]["batch"]])))

    ckpt = load_checkpoint(tiny_run / "checkpoint.safetensors")
    model = create_model(ckpt["run_args"]["arch"], **ckpt["run_args"]["config"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    train_ds, val = load_dataset("zinc12k", "train"), load_dataset("zinc12k", "val")
    g, _ = val.batch(range(40))
    feats = (g.ndata["feat"], g.edata["feat"])

    # precise statistics do not depend on the running statistics they replace
    broken = copy.deepcopy(model)
    for bn in batchnorm_layers(broken):
        bn.running_mean.add_(5.0)
        bn.running_var.mul_(100.0)
    with torch.no_grad():
        assert not torch.allclose(broken(g, *feats), model(g, *feats))
        a = spike_probe.precise_statistics(model, train_ds, 64, 32)(g, *feats)
        b = spike_probe.precise_statistics(broken, train_ds, 64, 32)(g, *feats)
    torch.testing.assert_close(a, b)

    # per-batch statistics = BatchNorm in training mode on that batch (dropout is 0 in this config)
    reference = copy.deepcopy(model).train()
    with torch.no_grad():
        torch.testing.assert_close(spike_probe.batch_statistics(model)(g, *feats), reference(g, *feats))


def test_probe_command_writes_its_table(tiny_run, tmp_path, capsys):
    out = tmp_path / "spikes.md"
    ckpt = str(tiny_run / "checkpoint.safetensors")
    assert spike_probe.main(["probe", ckpt, "--train-graphs", "64", "--test", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.count("\n| `") == 2 and "| 2 | val |" in page and "| 2 | test |" in page
    assert page.rstrip().endswith(f"--out {out}`")
    assert "| checkpoint | epoch |" in capsys.readouterr().out


def test_probe_reads_a_finished_run_folder(tiny_run):
    """A finished run folder: its best weights reproduce the record's best values with the running statistics."""
    record = json.loads((tiny_run / "record.json").read_text())
    r = spike_probe.probe(tiny_run, graphs=64, splits=("val", "test"))
    assert r["epoch"] == record["metrics"]["best_epoch"] and r["best_before"] is None
    assert r["val"]["running"] == pytest.approx(record["metrics"]["best_val"], abs=1e-4)
    assert r["test"]["running"] == pytest.approx(record["metrics"]["test_at_best_val"], abs=1e-4)
