"""Classifier: encoder + global pooling + dropout + linear head (2D, 2.5D and 3D)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from medtransfer.errors import ModelError
from medtransfer.models.parameter_groups import encoder_level_groups

__all__ = ["Classifier", "POOLINGS"]

POOLINGS = ("avg", "max", "avgmax")


class Classifier(nn.Module):
    """Tumour/finding classifier on top of any medtransfer encoder.

    Outputs logits ``(N, num_classes)``: use ``num_classes=1`` with a sigmoid for binary tasks,
    ``num_classes=K`` with softmax for multi-class, or ``multilabel=True`` for K independent
    findings (one sigmoid each); the architecture is the same. ``multilabel`` tells the
    FineTuner (masked BCE, macro AUROC) and ``predict``/``evaluate`` (sigmoids) which it is.

    Args:
        encoder: a :class:`medtransfer.encoders.Encoder` (2D, 2.5D or 3D).
        num_classes: number of logits (multi-label: the number of findings).
        dropout: dropout before the linear layer.
        pooling: "avg", "max" or "avgmax" (concatenation; doubles the head's input).
        multilabel: K independent findings instead of K exclusive classes.
        class_names: names of the outputs (multi-label: one per finding, e.g.
            ``["opacity", "effusion"]``), used by reports and predictions; optional.

    Attributes:
        encoder, pool, head: the three parts; ``head`` is ``Dropout -> Linear``.
        multilabel, class_names: as given.

    Example:
        >>> import torch, medtransfer as mt
        >>> enc = mt.encoders.create("resnet18", weights=None, in_channels=1)
        >>> Classifier(enc, num_classes=3)(torch.rand(2, 1, 64, 64)).shape
        torch.Size([2, 3])
        >>> Classifier(enc, 2, multilabel=True, class_names=["opacity", "effusion"]).multilabel
        True
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        dropout: float = 0.2,
        pooling: str = "avg",
        *,
        multilabel: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelError(f"num_classes must be >= 1, got {num_classes}.")
        if pooling not in POOLINGS:
            raise ModelError(f"pooling={pooling!r} is not one of {POOLINGS}.")
        names = None if class_names is None else [str(n) for n in class_names]
        fits = names is None or len(names) == num_classes
        fits = fits or (not multilabel and num_classes == 1 and len(names) == 2)
        if not fits:
            what = "finding" if multilabel else "class"
            raise ModelError(
                f"class_names has {len(names)} names for {num_classes} outputs; give one per "
                f"{what} (or num_classes={len(names)})."
            )
        self.encoder = encoder
        self.num_classes = num_classes
        self.pooling = pooling
        self.multilabel = bool(multilabel)
        self.class_names = names
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
