"""OGB-style evaluators: ``Evaluator(name).eval({"y_true": ..., "y_pred": ...}) -> {metric: value}``.

A drop-in for ``ogb.graphproppred.Evaluator``: same interface, and bad input raises :class:`EvaluatorInputError`,
which is both a ``ValueError`` and a ``RuntimeError`` (OGB raises ``RuntimeError``; code written for OGB catches
that). Whether a larger value is better is :attr:`Evaluator.higher_is_better`, the one place the trainer, the zoo
and the CLI read it from.

Example:
    >>> import numpy as np
    >>> ev = Evaluator("zinc12k")
    >>> ev.eval({"y_true": np.array([[1.0], [2.0]]), "y_pred": np.array([[0.5], [3.0]])})
    {'mae': 0.75}
    >>> ev.higher_is_better
    False
"""

from __future__ import annotations

import numpy as np

from .registry import get_info

__all__ = ["HIGHER_IS_BETTER", "Evaluator", "EvaluatorInputError", "accuracy", "ap", "mae", "rmse", "rocauc"]


class EvaluatorInputError(ValueError, RuntimeError):
    """Input an :class:`Evaluator` cannot score (wrong type, shape, number of tasks, a missing key).

    Both a ``ValueError`` (this project's convention) and a ``RuntimeError`` (what OGB's evaluator raises).
    """


def _to_numpy(a, what: str) -> np.ndarray:
    try:
        import torch

        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(a, np.ndarray):
        raise EvaluatorInputError(f"{what} must be a numpy array or torch tensor, got {type(a).__name__}")
    return a


def _mean_over_binary_tasks(y_true: np.ndarray, y_pred: np.ndarray, score, what: str) -> float:
    """Mean of ``score`` over tasks; NaN labels ignored; tasks without both classes skipped (as OGB / LRGB)."""
    scores = []
    for t in range(y_true.shape[1]):
        labeled = ~np.isnan(y_true[:, t])
        yt = y_true[labeled, t]
        if np.any(yt == 1) and np.any(yt == 0):
            scores.append(score(yt, y_pred[labeled, t]))
    if not scores:
        raise EvaluatorInputError(f"No task has both positive and negative labels; {what} is undefined.")
    return float(np.mean(scores))


def rocauc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean ROC-AUC over tasks (columns), as OGB's evaluator."""
    from sklearn.metrics import roc_auc_score

    return _mean_over_binary_tasks(y_true, y_pred, roc_auc_score, "ROC-AUC")


def ap(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean average precision over tasks, as LRGB's Peptides-func evaluation."""
    from sklearn.metrics import average_precision_score

    return _mean_over_binary_tasks(y_true, y_pred, average_precision_score, "average precision")


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over tasks of the RMSE on labelled (non-NaN) entries (as OGB)."""
    out = []
    for t in range(y_true.shape[1]):
        labeled = ~np.isnan(y_true[:, t])
        out.append(np.sqrt(np.mean((y_true[labeled, t] - y_pred[labeled, t]) ** 2)))
    return float(np.mean(out))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over all labelled entries."""
    labeled = ~np.isnan(y_true)
    return float(np.mean(np.abs(y_true[labeled] - y_pred[labeled])))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of rows whose predicted class equals the true class (y_pred: class ids, shape (n, 1))."""
    return float(np.mean(y_true == y_pred))


_METRICS = {"rocauc": rocauc, "ap": ap, "rmse": rmse, "mae": mae, "accuracy": accuracy}

#: metric -> whether a larger value is better (read it through :attr:`Evaluator.higher_is_better`)
HIGHER_IS_BETTER = {"rocauc": True, "ap": True, "accuracy": True, "rmse": False, "mae": False}


class Evaluator:
    """Evaluator for a registered dataset, with OGB's interface and shape checks.

    ``y_true`` and ``y_pred`` are numpy arrays or torch tensors of shape ``(n, num_tasks)`` (for accuracy:
    ``(n, 1)`` class ids).
    Returns ``{"rocauc": …}``, ``{"ap": …}``, ``{"rmse": …}``, ``{"mae": …}`` or ``{"accuracy": …}``.
    """

    def __init__(self, name: str):
        self.info = get_info(name)
        self.name = self.info.name
        self.eval_metric = self.info.metric
        if self.eval_metric not in _METRICS:
            raise ValueError(f"{self.name} is judged by pair distinction ({self.eval_metric!r}), not by an Evaluator")
        self.num_tasks = 1 if self.eval_metric == "accuracy" else self.info.num_tasks
        self.higher_is_better: bool = HIGHER_IS_BETTER[self.eval_metric]

    def is_better(self, value: float, than: float | None) -> bool:
        """Whether ``value`` improves on ``than`` (``None``: nothing yet, so any value does) for this metric."""
        if than is None:
            return True
        return value > than if self.higher_is_better else value < than

    @property
    def expected_input_format(self) -> str:
        return (
            f"{{'y_true': y_true, 'y_pred': y_pred}} with numpy arrays or torch tensors of shape "
            f"(num_graphs, {self.num_tasks}); metric {self.eval_metric}"
        )

    def _check(self, input_dict) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(input_dict, dict) or "y_true" not in input_dict or "y_pred" not in input_dict:
            raise EvaluatorInputError(f"Evaluator({self.name!r}).eval expects {self.expected_input_format}")
        y_true = _to_numpy(input_dict["y_true"], "y_true")
        y_pred = _to_numpy(input_dict["y_pred"], "y_pred")
        for what, a in (("y_true", y_true), ("y_pred", y_pred)):
            if a.ndim != 2:
                raise EvaluatorInputError(
                    f"{what} must be 2-dimensional (num_graphs, {self.num_tasks}); got shape "
                    f"{a.shape}. For one task use .reshape(-1, 1)."
                )
        if y_true.shape != y_pred.shape:
            raise EvaluatorInputError(
                f"y_true and y_pred must have the same shape; got {y_true.shape} and {y_pred.shape}"
                + (
                    " (y_pred for accuracy is the predicted class id per graph, e.g. logits.argmax(1, keepdim=True); "
                    "dgl_hod.evaluation.evaluate does this for you)"
                    if self.eval_metric == "accuracy"
                    else ""
                )
            )
        if y_true.shape[1] != self.num_tasks:
            raise EvaluatorInputError(f"{self.name} has {self.num_tasks} task(s); got {y_true.shape[1]} columns")
        return y_true.astype(np.float64), y_pred.astype(np.float64)

    def eval(self, input_dict) -> dict[str, float]:
        y_true, y_pred = self._check(input_dict)
        return {self.eval_metric: _METRICS[self.eval_metric](y_true, y_pred)}
