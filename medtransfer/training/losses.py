"""Training losses: CE / BCE / focal with class weights for classification, Dice+CE for segmentation.

Every loss takes the model's raw logits and the batch's target as the data loaders produce it:
class indices ``(N,)`` (or ``(N, 1)`` floats for a single-logit binary model) for classification,
a label map ``(N, 1, *spatial)`` or ``(N, *spatial)`` for segmentation. Deep-supervision outputs
(a list, full resolution first) are weighted 1, 1/2, 1/4...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medtransfer.errors import ConfigError

__all__ = ["LOSSES", "DeepSupervision", "FocalLoss", "make_loss"]

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
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Build a loss by name.

    Args:
        task: "classification" or "segmentation".
        name: "auto" (classification: "bce" for one logit, else "ce"; segmentation: "dice_ce"),
            or one of :data:`LOSSES` for the task.
        num_outputs: the model's number of logits / output channels (for "auto").
        class_weights: one weight per class (for "bce" with one logit: ``(neg, pos)``).
        gamma: focal loss focusing parameter.
        label_smoothing: for "ce".

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
        name = "dice_ce" if task == "segmentation" else ("bce" if num_outputs == 1 else "ce")
    if name not in LOSSES[task]:
        raise ConfigError(f"loss={name!r} is not available for {task}; use one of {LOSSES[task]}.")
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
