"""benchmarks/finetune_transfer.py's paired verdict: seed-by-seed differences against scratch, hand-computed."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from finetune_transfer import paired_difference  # noqa: E402


def runs(pairs):
    return [{"seed": s, "val": v, "test": t} for s, (v, t) in enumerate(pairs)]


def test_every_seed_better_on_both_splits_helps():
    scratch = runs([(0.70, 0.75), (0.72, 0.74), (0.71, 0.80)])
    tuned = runs([(0.73, 0.78), (0.74, 0.75), (0.72, 0.82)])
    d = paired_difference(scratch, tuned, higher_is_better=True)
    assert d["verdict"] == "helps" and d["val_better"] == d["test_better"] == 3
    assert d["test_diffs"] == pytest.approx([0.03, 0.01, 0.02])
    assert d["test_mean"] == pytest.approx(0.02) and d["test_std"] == pytest.approx((2 / 3) ** 0.5 * 0.01)


def test_direction_and_mixed_results():
    scratch = runs([(0.30, 0.30), (0.20, 0.20)])
    better_mae = runs([(0.25, 0.28), (0.15, 0.19)])  # lower MAE on both splits, both seeds
    assert paired_difference(scratch, better_mae, higher_is_better=False)["verdict"] == "helps"
    assert paired_difference(scratch, better_mae, higher_is_better=True)["verdict"] == "hurts"
    mixed = runs([(0.25, 0.35), (0.15, 0.10)])  # better on val, test split 1/1
    d = paired_difference(scratch, mixed, higher_is_better=False)
    assert d["verdict"] == "no consistent effect" and (d["val_better"], d["test_better"]) == (2, 1)
    tie = runs([(0.30, 0.30), (0.15, 0.10)])  # a tie is not "better"
    assert paired_difference(scratch, tie, higher_is_better=False)["verdict"] == "no consistent effect"


def test_only_common_seeds_are_paired():
    scratch = runs([(0.7, 0.7)])
    tuned = [{"seed": 5, "val": 0.8, "test": 0.8}]
    with pytest.raises(ValueError, match="no seed was run both"):
        paired_difference(scratch, tuned, higher_is_better=True)
    tuned.append({"seed": 0, "val": 0.8, "test": 0.8})
    assert paired_difference(scratch, tuned, higher_is_better=True)["seed_list"] == [0]


def test_the_results_page_states_the_verdict(tmp_path, monkeypatch):
    """The sweep's page, from finished runs' records (no training): the summary table, the paired table, the verdict."""
    import json

    import finetune_transfer

    from dgl_hod.zoo import default_zoo

    pretrained = default_zoo().list_models("*-molhiv", pretrained=True)[0]
    out = tmp_path / "runs"
    for variant, base in (("scratch", 0.70), ("finetune", 0.75), ("finetune-frozen-base", 0.69)):
        for seed in (0, 1):
            run = out / f"{pretrained}-to-ogbg-molbace" / f"{variant}-s{seed}"
            run.mkdir(parents=True)
            value = base + 0.01 * seed + (0.03 if variant == "finetune-frozen-base" and seed else 0.0)
            record = {
                "metrics": {"best_val": value, "test_at_best_val": value + 0.05},
                "recipe": {"epochs_run": 3},
                "timing": {"time_per_epoch_s_mean": 1.0, "wall_time_s": 3.0, "machine": "test"},
            }
            (run / "record.json").write_text(json.dumps(record))
    monkeypatch.setattr(finetune_transfer, "RESULTS", tmp_path / "results")
    argv = ["--pretrained", pretrained, "--dataset", "ogbg-molbace", "--epochs", "3", "--seeds", "0", "1"]
    assert finetune_transfer.main([*argv, "--out", str(out), "--tag", "t"]) == 0
    page = (tmp_path / "results" / "t.md").read_text()
    assert "| finetune | +0.0500 ± 0.0000 | +0.0500 ± 0.0000 | 2/2 / 2/2 | helps |" in page
    assert "| finetune-frozen-base | +0.0050 ± 0.0150 | +0.0050 ± 0.0150 | 1/2 / 1/2 |" in page
    assert "`finetune`: helps. `finetune-frozen-base`: no consistent effect." in page
    assert json.loads((tmp_path / "results" / "t.json").read_text())["paired"]["finetune"]["verdict"] == "helps"


def test_the_transfer_protocol_script_runs_the_documented_schedule():
    """benchmarks/transfer_protocol.sh (PY=echo prints the command it would run): 100 epochs on molbace and molbbbp,
    50 on moltox21 (the documented cut), all seeds unless given, from a model that is in the zoo."""
    import subprocess

    from dgl_hod.zoo import model_info

    def sweep(*args):  # the sweep's command line (the script then writes the summary: a second line)
        lines = run(*args).stdout.splitlines()
        assert lines[-1].split()[-4:] == [
            "benchmarks/finetune_transfer.py",
            "--summary",
            "--pretrained",
            "hod-gnn-k1-m2-molhiv",
        ]
        return next(line for line in lines if "--tag" in line).split()

    def run(*args):
        return subprocess.run(
            ["bash", str(ROOT / "benchmarks" / "transfer_protocol.sh"), *args],
            env={"PATH": "/usr/bin:/bin", "PY": "echo"},
            capture_output=True,
            text=True,
        )

    out = sweep("moltox21", "1", "2")
    assert out[out.index("--epochs") + 1] == "50" and out[out.index("--seeds") + 1 : out.index("--tag")] == ["1", "2"]
    assert out[out.index("--dataset") + 1] == "ogbg-moltox21" and out[-1] == "transfer-moltox21"
    model_info(out[out.index("--pretrained") + 1])  # raises if the pretrained model left the zoo
    for ds in ("molbace", "ogbg-molbbbp"):
        out = sweep(ds)
        assert out[out.index("--epochs") + 1] == "100" and out[out.index("--seeds") + 1 : out.index("--tag")] == [
            "0",
            "1",
            "2",
        ]
    bad = run("zinc12k")
    assert bad.returncode == 2 and "unknown dataset zinc12k" in bad.stderr


def test_the_summary_has_one_row_per_fixed_epoch_target_of_the_model():
    """--summary's table, from hand-made pages: each target's scratch/finetune/frozen test values, Δ and verdict;
    a budget-based page (another experiment) and another model's page are left out."""
    from finetune_transfer import summarize

    def page(dataset, pretrained="m", epochs=100, shift=0.0):
        rows = [
            {"variant": v, "seeds": 3, "test_mean": t, "test_std": 0.01}
            for v, t in (("scratch", 0.70), ("finetune", 0.75 + shift), ("finetune-frozen-base", 0.69))
        ]
        paired = {
            "finetune": {"test_mean": 0.05 + shift, "test_better": 3, "seeds": 3, "verdict": "helps"},
            "finetune-frozen-base": {
                "test_mean": -0.01,
                "test_better": 1,
                "seeds": 3,
                "verdict": "no consistent effect",
            },
        }
        return {
            "pretrained": pretrained,
            "pretrained_dataset": "ogbg-molhiv",
            "dataset": dataset,
            "metric": "rocauc",
            "epochs": epochs,
            "rows": rows,
            "paired": paired,
        }

    pages = [
        page("ogbg-molbbbp", shift=0.01),
        page("ogbg-molbace"),
        page("ogbg-molbace", epochs=None),
        page("ogbg-moltox21", pretrained="other"),
    ]
    text = summarize(pages, "m", "ogbg-molhiv")
    rows = [line for line in text.splitlines() if line.startswith("| `ogbg")]
    frozen = "0.6900 ± 0.0100 | -0.0100 | no consistent effect (1/3 seeds better on test) |"
    assert rows == [
        "| `ogbg-molbace` | rocauc | 100 | 3 | 0.7000 ± 0.0100 | 0.7500 ± 0.0100 | +0.0500 | helps (3/3 seeds "
        "better on test) | " + frozen,
        "| `ogbg-molbbbp` | rocauc | 100 | 3 | 0.7000 ± 0.0100 | 0.7600 ± 0.0100 | +0.0600 | helps (3/3 seeds "
        "better on test) | " + frozen,
    ]
    assert "**Answer, per target:** ogbg-molbace: finetune helps, finetune-frozen-base no consistent effect;" in text
    assert "No finished fixed-epoch transfer page of `nobody`" in summarize(pages, "nobody", "ogbg-molhiv")
