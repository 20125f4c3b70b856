"""Training losses: CE / BCE / focal with class weights for classification, Dice+CE for segmentation.

Every loss takes the model's raw logits and the batch's target as the data loaders produce it:
class indices ``(N,)`` (or ``(N, 1)`` floats for a single-logit binary model) for classification,
``(N, K)`` floats for multi-label findings (1, 0, or NaN / -1: not known, masked), a label map
``(N, 1, *spatial)`` or ``(N, *spatial)`` for segmentation. Deep-supervision outputs (a list,
full resolution first) are weighted 1, 1/2, 1/4...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medtransfer.errors import ConfigError

__all__ = [
    "LOSSES",
    "MAX_POS_WEIGHT",
    "DeepSupervision",
    "FocalLoss",
    "MaskedBCEWithLogits",
    "make_loss",
    "positive_weights",
]

#: Cap of the automatic positive weight (a finding in 1 of 100 cases gets 10, not 99).
MAX_POS_WEIGHT = 10.0

LOSSES = {"classification": ("ce", "bce", "focal"), "segmentation": ("dice_ce", "dice", "ce")}


def _class_weights(weights: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    return None if weights is None else torch.as_tensor(weights, dtype=torch.float32)


class _CrossEntropy(nn.Module):
    def __init__(self, weight: torch.Tensor | None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.reshape(-1).long() if logits.ndim == 2 else target.long()
        return F.cross_entropy(logits, target, self.weight, label_smoothing=self.label_smoothing)


class _BinaryCrossEntropy(nn.Module):
    """BCE on logits; ``weight`` is ``(w_negative, w_positive)`` for a single logit."""

    def __init__(self, weight: torch.Tensor | None) -> None:
        super().__init__()
        pos = None if weight is None else weight[-1:] / weight[0]
        self.register_buffer("pos_weight", pos)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.reshape(logits.shape).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight)


class MaskedBCEWithLogits(nn.Module):
    """Multi-label BCE on logits, averaged over the known (case, finding) entries only.

    A target entry that is NaN or negative (-1: uncertain, under the ``"ignore"`` policy) adds
    nothing to the loss nor to its gradient; the mean is over the known entries of the batch
    (0 when none is known). ``pos_weight`` multiplies the positive term of each finding,
    ``-[w_k y log s(x) + (1 - y) log(1 - s(x))]``, as in ``torch.nn.BCEWithLogitsLoss``.

    Args:
        pos_weight: one weight per finding, or None (1 each).

    Example:
        >>> import torch
        >>> loss = MaskedBCEWithLogits()
        >>> logits, target = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, float("nan")]])
        >>> torch.allclose(loss(logits, target), torch.nn.functional.softplus(torch.tensor(-2.0)))
        True
    """

    def __init__(self, pos_weight: Sequence[float] | torch.Tensor | None = None) -> None:
        super().__init__()
        weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        self.register_buffer("pos_weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        target = target.reshape(logits.shape).to(logits.dtype)
        known = torch.isfinite(target) & (target >= 0)
        safe = torch.where(known, target, torch.zeros_like(target))  # no NaN into the graph
        loss = F.binary_cross_entropy_with_logits(
            logits, safe, pos_weight=self.pos_weight, reduction="none"
        )
        return (loss * known).sum() / known.sum().clamp_min(1)


def positive_weights(labels: Any, cap: float = MAX_POS_WEIGHT) -> list[float]:
    """``pos_weight`` per finding from training labels: negatives / positives, in [1/cap, cap].

    Balances each finding's positive and negative terms in the loss. Unknown entries (NaN or
    -1) are not counted; a finding without positives or without negatives gets 1.

    Args:
        labels: (N, K) training labels (1, 0, NaN / -1), or records with such ``"label"`` lists.
        cap: largest weight (and 1/cap the smallest).

    Example:
        >>> positive_weights([[1, 0], [0, 0], [0, float("nan")], [0, 1]])
        [3.0, 2.0]
    """
    if isinstance(labels, Sequence) and labels and isinstance(labels[0], Mapping):
        labels = [record.get("label") for record in labels]
    y = np.asarray(
        [np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, float) for v in labels]
    )
    if y.ndim != 2:
        raise ConfigError(
            f"positive_weights needs (cases, findings) labels; got shape {y.shape}. Give the "
            "training records of a multi-label task, or pos_weight=[...]."
        )
    positives, negatives = np.sum(y == 1, axis=0), np.sum(y == 0, axis=0)
    ratio = np.where((positives > 0) & (negatives > 0), negatives / np.maximum(positives, 1), 1.0)
    return np.clip(ratio, 1.0 / cap, cap).astype(float).tolist()


class FocalLoss(nn.Module):
    """Multi-class focal loss ``-(1 - p_t)**gamma * log(p_t)``, optionally class-weighted.

    Down-weights easy examples: for rare findings among many easy negatives.

    Args:
        gamma: focusing parameter (0 gives cross-entropy).
        weight: per-class weights.

    Example:
        >>> import torch
        >>> loss = FocalLoss(gamma=0.0)
        >>> logits, target = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
        >>> torch.allclose(loss(logits, target), torch.nn.functional.cross_entropy(logits, target))
        True
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.reshape(-1).long()
        if logits.shape[1] == 1:  # single logit: binary focal on [negative, positive] logits
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None])[:, 0]
        loss = -((1.0 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is not None:
            w = self.weight.to(loss.device)[target]
            return (loss * w).sum() / w.sum()
        return loss.mean()


class _DiceCE(nn.Module):
    def __init__(self, weight: torch.Tensor | None, lambda_dice: float, lambda_ce: float) -> None:
        super().__init__()
        from monai.losses import DiceCELoss

        self.loss = DiceCELoss(
            to_onehot_y=True,
            softmax=True,
            weight=weight,
            lambda_dice=lambda_dice,
            lambda_ce=lambda_ce,
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == logits.ndim - 1:
            target = target.unsqueeze(1)
        return self.loss(logits.float(), target.long())


class DeepSupervision(nn.Module):
    """Apply ``loss`` to each output of a deep-supervised model, weights 1, 1/2, 1/4... normalised.

    Example:
        >>> import torch
        >>> ds = DeepSupervision(torch.nn.MSELoss())
        >>> float(ds([torch.ones(2), torch.zeros(2)], torch.ones(2)))
        0.3333333432674408
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, outputs: torch.Tensor | list[torch.Tensor], target: torch.Tensor):
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target)
        weights = [0.5**i for i in range(len(outputs))]
        total = sum(w * self.loss(o, target) for w, o in zip(weights, outputs))
        return total / sum(weights)


def make_loss(
    task: str,
    name: str = "auto",
    *,
    num_outputs: int | None = None,
    class_weights: Sequence[float] | None = None,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    multilabel: bool = False,
    pos_weight: Sequence[float] | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Build a loss by name.

    Args:
        task: "classification" or "segmentation".
        name: "auto" (classification: "bce" for one logit or multi-label, else "ce";
            segmentation: "dice_ce"), or one of :data:`LOSSES` for the task.
        num_outputs: the model's number of logits / output channels (for "auto").
        class_weights: one weight per class (for "bce" with one logit: ``(neg, pos)``).
        gamma: focal loss focusing parameter.
        label_smoothing: for "ce".
        multilabel: K independent findings: "bce" is :class:`MaskedBCEWithLogits` (unknown
            labels masked); "ce" and "focal" are refused.
        pos_weight: multi-label: one positive weight per finding (see
            :func:`positive_weights`), or None.

    Returns:
        A module ``loss(logits_or_list, target) -> scalar`` (deep supervision handled).

    Example:
        >>> import torch
        >>> loss = make_loss("segmentation")
        >>> float(loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))) > 0
        True
    """
    if task not in LOSSES:
        raise ConfigError(f"task={task!r} is not one of {tuple(LOSSES)}.")
    if name == "auto":
        single = num_outputs == 1 or multilabel
        name = "dice_ce" if task == "segmentation" else ("bce" if single else "ce")
    if name not in LOSSES[task]:
        raise ConfigError(f"loss={name!r} is not available for {task}; use one of {LOSSES[task]}.")
    if multilabel and task == "classification":
        if name != "bce":
            raise ConfigError(
                f"loss={name!r} treats the outputs as exclusive classes; multi-label findings "
                "train with 'bce' (or 'auto')."
            )
        return DeepSupervision(MaskedBCEWithLogits(pos_weight))
    weight = _class_weights(class_weights)
    if name == "ce":
        loss: nn.Module = _CrossEntropy(weight, label_smoothing)
    elif name == "bce":
        loss = _BinaryCrossEntropy(weight)
    elif name == "focal":
        loss = FocalLoss(gamma, weight)
    else:
        loss = _DiceCE(weight, 1.0, 0.0 if name == "dice" else 1.0)
    return DeepSupervision(loss)
