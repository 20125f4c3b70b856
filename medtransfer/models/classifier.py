"""Classifier: encoder + global pooling + dropout + linear head (2D, 2.5D and 3D)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from medtransfer.errors import ModelError
from medtransfer.models.parameter_groups import encoder_level_groups

__all__ = ["Classifier", "POOLINGS"]

POOLINGS = ("avg", "max", "avgmax")


class Classifier(nn.Module):
    """Tumour/finding classifier on top of any medtransfer encoder.

    Outputs logits ``(N, num_classes)``: use ``num_classes=1`` with a sigmoid for binary tasks,
    ``num_classes=K`` with softmax for multi-class, or with sigmoids for multi-label; the loss
    chosen at training time decides, the architecture is the same.

    Args:
        encoder: a :class:`medtransfer.encoders.Encoder` (2D, 2.5D or 3D).
        num_classes: number of logits.
        dropout: dropout before the linear layer.
        pooling: "avg", "max" or "avgmax" (concatenation; doubles the head's input).

    Attributes:
        encoder, pool, head: the three parts; ``head`` is ``Dropout -> Linear``.

    Example:
        >>> import torch, medtransfer as mt
        >>> enc = mt.encoders.create("resnet18", weights=None, in_channels=1)
        >>> Classifier(enc, num_classes=3)(torch.rand(2, 1, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self, encoder: nn.Module, num_classes: int, dropout: float = 0.2, pooling: str = "avg"
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelError(f"num_classes must be >= 1, got {num_classes}.")
        if pooling not in POOLINGS:
            raise ModelError(f"pooling={pooling!r} is not one of {POOLINGS}.")
        self.encoder = encoder
        self.num_classes = num_classes
        self.pooling = pooling
        features = encoder.out_channels[-1] * (2 if pooling == "avgmax" else 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))

    def pool(self, feature: torch.Tensor) -> torch.Tensor:
        """Global pooling of the deepest feature map to (N, C) (or (N, 2C) for avgmax)."""
        flat = feature.flatten(2)
        if self.pooling == "avg":
            return flat.mean(dim=2)
        if self.pooling == "max":
            return flat.amax(dim=2)
        return torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features (N, C): the embedding used for transferability scores."""
        return self.pool(self.encoder(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def parameter_groups(self) -> OrderedDict[str, list[nn.Parameter]]:
        """``stem``, ``stage1``..., ``head``: for freezing and per-group learning rates."""
        groups = encoder_level_groups(self.encoder)
        groups["head"] = list(self.head.parameters())
        return groups
