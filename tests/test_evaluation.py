"""dgl_hod.evaluation.evaluate: every task type against independent computations, folds, errors, MUTAG end to end."""

from __future__ import annotations

import json

import dgl
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dgl_hod.archs.build import build_model
from dgl_hod.datasets import Evaluator, load_dataset
from dgl_hod.datasets.evaluate import EvaluatorInputError
from dgl_hod.evaluation import evaluate

SMALL = {"hidden_dim": 8, "num_layers": 2}


def _model(dataset: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model("gine", dataset, SMALL)[0].eval()


@torch.no_grad()
def _outputs_one_by_one(model, ds) -> tuple[np.ndarray, np.ndarray]:
    """Labels and outputs from ``dgl.batch`` of the graphs taken one by one (``ds[i]``), in one forward pass.

    Independent of :func:`dgl_hod.evaluation.predict`'s batching (``ds.batch``) and of its class decoding.
    """
    graphs, ys = zip(*(ds[i] for i in range(len(ds))))
    g = dgl.batch(list(graphs))
    ef = g.edata["feat"] if "feat" in g.edata else None
    out = model(g, g.ndata["feat"], ef).numpy().astype(np.float64)
    return np.stack([np.atleast_1d(y.numpy()).astype(np.float64) for y in ys]), out


def test_exp_binary_accuracy_is_the_same_through_every_path():
    """EXP: one logit, accuracy = mean(logit > 0 == label); the old evaluation compared raw logits (gave 0.0)."""
    model = _model("exp")
    ds = load_dataset("exp")
    y, out = _outputs_one_by_one(model, ds)
    reference = float(np.mean((out[:, 0] > 0) == (y[:, 0] == 1)))
    by_name = evaluate(model, "exp", None)
    assert by_name["metric"] == "accuracy" and by_name["num_graphs"] == 1200
    assert by_name["accuracy"] == pytest.approx(reference, abs=1e-12)
    assert evaluate(model, ds, batch_size=1200)["accuracy"] == pytest.approx(reference, abs=1e-12)
    sub = ds.subset(np.arange(0, 300, 3))  # unbalanced labels: 1, 0, 1, 0 ... every third graph
    ys, outs = _outputs_one_by_one(model, sub)
    assert evaluate(model, sub, batch_size=7)["accuracy"] == pytest.approx(
        float(np.mean((outs[:, 0] > 0) == (ys[:, 0] == 1)))
    )


@pytest.mark.parametrize(
    ("dataset", "fold", "split"), [("csl", 2, "val"), ("mutag", 7, "test"), ("proteins", 0, "test")]
)
def test_multiclass_accuracy_is_the_argmax_on_the_right_fold(dataset, fold, split):
    model = _model(dataset)
    ds = load_dataset(dataset, split, fold=fold)
    y, out = _outputs_one_by_one(model, ds)
    assert out.shape[1] == Evaluator(dataset).info.num_classes
    reference = float(np.mean(out.argmax(1) == y[:, 0]))
    got = evaluate(model, dataset, split, fold=fold, batch_size=5)
    assert got["accuracy"] == pytest.approx(reference, abs=1e-12) and got["num_graphs"] == len(ds)


def test_multitask_rocauc_with_nan_labels_matches_sklearn():
    model = _model("ogbg-moltox21")
    ds = load_dataset("ogbg-moltox21", "test").subset(np.arange(300))
    y, out = _outputs_one_by_one(model, ds)
    assert np.isnan(y).any()
    scores = []
    for t in range(y.shape[1]):
        keep = ~np.isnan(y[:, t])
        if len(set(y[keep, t])) == 2:
            scores.append(roc_auc_score(y[keep, t], out[keep, t]))
    assert evaluate(model, ds)["rocauc"] == pytest.approx(float(np.mean(scores)), abs=1e-6)


def test_regression_mae_matches_a_plain_loop():
    model = _model("zinc12k")
    ds = load_dataset("zinc12k", "val").subset(np.arange(100))
    y, out = _outputs_one_by_one(model, ds)
    assert evaluate(model, ds, batch_size=32)["mae"] == pytest.approx(float(np.mean(np.abs(y - out))), abs=1e-6)


def test_model_mode_is_restored():
    model = _model("zinc12k").train()
    evaluate(model, load_dataset("zinc12k", "val").subset(np.arange(4)))
    assert model.training


def test_higher_is_better_lives_in_the_evaluator():
    assert not Evaluator("zinc12k").higher_is_better and not Evaluator("ogbg-molesol").higher_is_better
    assert Evaluator("ogbg-molhiv").higher_is_better and Evaluator("mutag").higher_is_better
    ev = Evaluator("zinc12k")
    assert ev.is_better(0.1, None) and ev.is_better(0.1, 0.2) and not ev.is_better(0.3, 0.2)
    assert Evaluator("csl").is_better(0.9, 0.5)


def test_evaluator_errors_are_value_and_runtime_errors_like_ogb():
    ev = Evaluator("ogbg-molhiv")
    bad = [
        {"y_true": np.zeros((4, 1)), "y_pred": np.zeros((3, 1))},  # shape mismatch
        {"y_true": np.zeros((4, 2)), "y_pred": np.zeros((4, 2))},  # wrong number of tasks
        {"y_pred": np.zeros((4, 1))},  # missing key
        {"y_true": [[0], [1]], "y_pred": [[0.1], [0.9]]},  # lists
        {"y_true": np.ones((4, 1)), "y_pred": np.zeros((4, 1))},  # one class only
    ]
    for d in bad:
        with pytest.raises(EvaluatorInputError) as info:
            ev.eval(d)
        assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    with pytest.raises(RuntimeError, match="class id"):  # MUTAG logits given to the Evaluator directly
        Evaluator("mutag").eval({"y_true": np.zeros((18, 1)), "y_pred": np.zeros((18, 2))})


def test_bad_batch_size_and_fold_are_one_line_errors():
    model = _model("mutag")
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer \(e.g. 128\), got -5"):
        evaluate(model, "mutag", "test", fold=0, batch_size=-5)
    with pytest.raises(ValueError, match=r"fold must be an integer 0..9 for mutag, got 1.7"):
        evaluate(model, "mutag", "test", fold=1.7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mutag has 10 folds: pass fold 0..9"):
        evaluate(model, "mutag", "test")
    with pytest.raises(ValueError, match="folds 0..9; fold 10 does not exist"):
        evaluate(model, "mutag", "test", fold=10)
    with pytest.raises(ValueError, match="zinc12k has fixed splits, no folds"):
        evaluate(_model("zinc12k"), "zinc12k", "test", fold=0)


@pytest.mark.parametrize(
    ("dataset", "fold", "sizes", "val_split", "classes"),
    [("mutag", 3, (170, 18, 18), "test", 2), ("csl", 1, (90, 30, 30), "val", 10)],
)
def test_fold_run_trained_packaged_and_evaluated_through_the_zoo(
    tmp_path, monkeypatch, capsys, dataset, fold, sizes, val_split, classes
):
    """A fold run: train (1 epoch) -> package into a temporary zoo -> `dgl-hod eval` reproduces it on that fold."""
    from dgl_hod import cli
    from dgl_hod.train import train
    from dgl_hod.zoo import Zoo, package_run

    run = tmp_path / "run"
    rec = train("gine", dataset, SMALL, run, epochs=1, fold=fold, progress=False, log=False)
    assert rec["data"] == {
        "train_graphs": sizes[0],
        "val_graphs": sizes[1],
        "test_graphs": sizes[2],
        "val_split": val_split,
        "fold": fold,
        "max_train_graphs": None,
        "max_eval_graphs": None,
    }
    assert rec["recipe"]["loss"] == "cross-entropy" and rec["config"]["num_tasks"] == classes
    zoo = Zoo(tmp_path / "zoo.yaml", tmp_path / "models")
    name = f"gine-{dataset}"
    entry = package_run(run, name, zoo)
    assert entry.recipe["fold"] == fold and f"--fold {fold}" in entry.recipe["command"]
    assert "--epochs 1" in entry.recipe["command"]
    assert entry.metrics["test"]["fold"] == fold and entry.metrics["val"]["split"] == val_split
    model = zoo.load_model(name)
    expected = evaluate(model, dataset, "test", fold=fold)["accuracy"]
    assert entry.metrics["test"]["mean"] == pytest.approx(rec["metrics"]["test_at_best_val"], abs=1e-6)
    assert expected == pytest.approx(entry.metrics["test"]["mean"], abs=1e-6)
    monkeypatch.setenv("DGL_HOD_ZOO", str(zoo.path))
    monkeypatch.setenv("DGL_HOD_MODELS", str(zoo.models_dir))
    assert cli.main(["eval", name, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_graphs"] == sizes[2] and out["abs_diff"] < 1e-6 and out["accuracy"] == pytest.approx(expected)


def test_recalibrate_batchnorm_is_a_plain_average_with_dropout_off():
    """Precise BatchNorm statistics: the mean over the batches seen (checked against the batch means by hand),
    reproducible with dropout in the model, the weights and the momentum untouched, the model left in eval mode."""
    import copy

    from dgl_hod.archs.build import build_model
    from dgl_hod.evaluation import batchnorm_layers, recalibrate_batchnorm

    model, _ = build_model("gine", "zinc12k", {"hidden_dim": 8, "num_layers": 2, "dropout": 0.5})
    ds = load_dataset("zinc12k", "train")
    weights = {k: v.clone() for k, v in model.named_parameters()}
    first = batchnorm_layers(model)[0]
    seen = []  # the inputs of the first BatchNorm layer, batch by batch
    hook = first.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    assert recalibrate_batchnorm(model, ds, num_graphs=70, batch_size=32) == 2
    hook.remove()
    assert len(seen) == 3 and not model.training and all(bn.momentum == 0.1 for bn in batchnorm_layers(model))
    torch.testing.assert_close(first.running_mean, torch.stack([x.mean(0) for x in seen]).mean(0))
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())
    again = copy.deepcopy(model)
    recalibrate_batchnorm(again, ds, num_graphs=70, batch_size=32)
    torch.testing.assert_close(batchnorm_layers(again)[1].running_var, batchnorm_layers(model)[1].running_var)
