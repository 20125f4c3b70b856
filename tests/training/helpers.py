"""Tiny models and data for the training tests (fast on 2 busy CPU cores)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class TinyClassifier(nn.Module):
    """encoder (2 conv stages with BatchNorm) + dropout/linear head, with parameter_groups()."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(dim=(2, 3)))

    def parameter_groups(self) -> OrderedDict[str, list[nn.Parameter]]:
        return OrderedDict(
            stem=list(self.encoder[:3].parameters()),
            stage1=list(self.encoder[3:].parameters()),
            head=list(self.head.parameters()),
        )


class TinySegmenter(nn.Module):
    """Fully convolutional: output at input resolution, any input size."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def classification_records(n: int = 16, size: int = 16, seed: int = 0) -> list[dict]:
    """Bright square = class 1, dark = class 0, with noise; learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    records = []
    for i in range(n):
        label = i % 2
        image = torch.randn(1, size, size, generator=g) * 0.5
        if label:
            image[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] += 2.0
        records.append({"image": image, "label": label, "case_id": f"case-{i:03d}"})
    return records


def segmentation_records(n: int = 8, size: int = 16, seed: int = 0) -> list[dict]:
    """A bright disc is the foreground class."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    records = []
    for i in range(n):
        cy, cx = torch.randint(4, size - 4, (2,), generator=g).tolist()
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= 9).to(torch.uint8)[None]
        image = mask.float() * 2.0 + torch.randn(1, size, size, generator=g) * 0.3
        records.append({"image": image, "label": mask, "case_id": f"seg-{i:03d}"})
    return records


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
