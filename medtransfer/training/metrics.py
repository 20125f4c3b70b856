"""Validation metrics behind one small interface, so the task metric can be swapped.

A :class:`TaskMetric` turns a batch's logits and targets into per-case scores (``per_case=True``,
e.g. Dice, with the evaluation's empty-mask policy: averaged over cases, NaN ignored) or, for
ranking metrics such as AUROC, is computed once on the logits of the whole validation set. Any callable ``(logits, target) -> (N,) or (N, C)``
scores can be passed as ``metric=`` and is treated as a per-case metric to maximise. Multi-label
findings are selected on :func:`multilabel_auroc` (macro mean over findings, unknown labels
skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from medtransfer.errors import ConfigError

__all__ = [
    "TaskMetric",
    "accuracy",
    "auroc",
    "dice_per_case",
    "multilabel_auroc",
    "resolve_metric",
]


def dice_per_case(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice of the argmax prediction per case and foreground class, ``(N, C-1)``.

    The evaluation's definition (:func:`medtransfer.evaluation.dice`) with its empty-mask policy:
    NaN where a class is absent from both prediction and reference, 0 where it is absent from
    exactly one, so validation Dice and the evaluation report agree on the same cases. Only the
    label maps leave the device (one integer per voxel). One-channel logits are read as sigmoid
    outputs (class 1 where the logit is > 0).

    Example:
        >>> import torch
        >>> logits = torch.zeros(2, 2, 4, 4); logits[:, 1, :2] = 1.0
        >>> target = torch.zeros(2, 1, 4, 4); target[0, 0, :2] = 1  # case 2: empty reference
        >>> dice_per_case(logits, target).tolist()
        [[1.0], [0.0]]
    """
    from medtransfer.evaluation import dice

    if target.ndim == logits.ndim - 1:
        target = target.unsqueeze(1)
    if logits.shape[1] == 1:
        pred, classes = (logits > 0).to(torch.uint8), 2
    else:
        pred, classes = logits.argmax(dim=1, keepdim=True), int(logits.shape[1])
        if classes <= 256:  # a quarter of the bytes to copy off the device
            pred = pred.to(torch.uint8)
    return torch.from_numpy(dice(pred, target, num_classes=classes))


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    if logits.ndim == 1 or logits.shape[1] == 1:
        return torch.sigmoid(logits.reshape(-1))
    return torch.softmax(logits, dim=1)


def auroc(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Area under the ROC curve (binary, or macro one-vs-rest); NaN with a single class present.

    Example:
        >>> import torch
        >>> auroc(torch.tensor([[0.1], [0.9], [0.4]]), torch.tensor([0, 1, 1]))
        1.0
    """
    from monai.metrics import compute_roc_auc

    target = target.reshape(-1).long()
    if target.numel() == 0 or target.unique().numel() < 2:
        return float("nan")
    probs = _probabilities(logits)
    if probs.ndim == 2 and probs.shape[1] == 2:
        probs = probs[:, 1]
    if probs.ndim == 2:
        onehot = torch.nn.functional.one_hot(target, probs.shape[1])
        return float(compute_roc_auc(probs, onehot, average="macro"))
    return float(compute_roc_auc(probs, target))


def multilabel_auroc(
    logits: torch.Tensor, target: torch.Tensor, average: str | None = "macro"
) -> float | list[float]:
    """AUROC of each finding on its known cases (target NaN or -1: skipped), or their mean.

    Args:
        logits: (N, K) logits (or probabilities: the ranking is the same).
        target: (N, K) 1, 0, or NaN / -1.
        average: ``"macro"`` (mean over findings with both outcomes; NaN when none has) or
            None (a list, NaN where a finding lacks positives or negatives).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.1], [-1.0, 0.9], [0.5, 0.3], [-2.0, 0.2]])
        >>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, float("nan")], [0.0, 0.0]])
        >>> multilabel_auroc(logits, target, average=None), multilabel_auroc(logits, target)
        ([1.0, 1.0], 1.0)
    """
    from medtransfer.evaluation.metrics.ranking import binary_auroc

    scores = logits.detach().float().cpu().reshape(logits.shape[0], -1).numpy()
    labels = target.detach().float().cpu().reshape(scores.shape).numpy()
    values = []
    for k in range(scores.shape[1]):
        known = labels[:, k] >= 0  # NaN compares False
        values.append(binary_auroc(scores[known, k], labels[known, k]))
    if average is None:
        return values
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else float("nan")


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-case correctness (1.0 / 0.0) of the predicted class.

    Example:
        >>> import torch
        >>> accuracy(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])).tolist()
        [1.0, 0.0]
    """
    target = target.reshape(-1).long()
    if logits.ndim == 1 or logits.shape[1] == 1:
        pred = (logits.reshape(-1) > 0).long()
    else:
        pred = logits.argmax(dim=1)
    return (pred == target).float()


@dataclass(frozen=True)
class TaskMetric:
    """A validation metric: ``name``, ``fn``, whether it is per case, and whether higher is better."""

    name: str
    fn: Callable
    per_case: bool = True
    higher_is_better: bool = True


_NAMED = {
    "dice": TaskMetric("dice", dice_per_case),
    "accuracy": TaskMetric("accuracy", accuracy),
    "auroc": TaskMetric("auroc", auroc, per_case=False),
}
_MULTILABEL = {"auroc": TaskMetric("auroc", multilabel_auroc, per_case=False)}


def resolve_metric(
    metric: str | Callable | TaskMetric,
    task: str,
    num_outputs: int | None,
    multilabel: bool = False,
):
    """The selection metric for ``metric=`` ("auto", a name, a callable or a TaskMetric).

    "auto" is Dice for segmentation, AUROC for binary classification (one or two logits) and
    accuracy for more classes; macro AUROC over the findings of a multi-label model.

    Example:
        >>> resolve_metric("auto", "classification", 2).name
        'auroc'
        >>> resolve_metric("auto", "classification", 3, multilabel=True).fn.__name__
        'multilabel_auroc'
    """
    if isinstance(metric, TaskMetric):
        return metric
    if callable(metric):
        return TaskMetric(getattr(metric, "__name__", "metric"), metric)
    named = _MULTILABEL if multilabel and task == "classification" else _NAMED
    if metric == "auto":
        if task == "segmentation":
            metric = "dice"
        else:
            metric = "auroc" if num_outputs in (1, 2) or multilabel else "accuracy"
    if metric not in named:
        raise ConfigError(f"metric={metric!r} is not one of {('auto', *named)} or a callable.")
    return named[metric]
