"""A synthetic saliency task: a bright blob whose presence is the label, and a model that sees it.

``brightness_classifier`` is a real medtransfer Classifier (resnet18 encoder, 2D or inflated 3D)
whose weights make every stage pass a blurred copy of the input's brightness on channel 0, and
whose head scores the maximum of that channel: its decision is provably the brightest spot, so
a correct saliency map peaks inside the blob. Use a preset with a fixed CT window (absolute
brightness), not percentile scaling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

import medtransfer as mt

__all__ = ["blob_case", "blob_records", "brightness_classifier", "calibrate_head"]


def blob_case(
    rng: np.random.Generator, shape: Sequence[int], radius: float, present: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Soft tissue (40 HU, noise 10 HU) with (or without) a ball of +150 HU at a random
    position, and the ball's mask."""
    image = rng.normal(40.0, 10.0, size=tuple(shape)).astype(np.float32)
    margin = [min(int(radius) + 2, (s - 1) // 2) for s in shape]
    centre = [rng.integers(m, s - m) if s > 2 * m else s // 2 for s, m in zip(shape, margin)]
    grid = np.indices(tuple(shape), dtype=np.float32)
    mask = sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2
    if present:
        image[mask] += 150.0
    return image, mask


@torch.no_grad()
def brightness_classifier(
    spatial_dims: int = 2, num_classes: int = 1, in_channels: int = 1
) -> nn.Module:
    """Every conv blurs channel 0 into channel 0 (others zero), norms are identities, the head
    reads channel 0: logit = max of a blurred brightness map (class 0 of two: its negative).
    With several input channels (2.5D) the stem reads the centre one."""
    model = mt.models.create_classifier(
        "resnet18",
        num_classes,
        weights=None,
        in_channels=in_channels,
        spatial_dims=spatial_dims,
        seed=0,
        dropout=0.0,
        pooling="max",
    )
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Conv3d):
            module.weight.zero_()
            module.weight[0, 0] = 1.0 / module.weight[0, 0].numel()
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm3d):
            module.weight.fill_(1.0)
            module.bias.zero_()
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
    stem = model.encoder.body.conv1.weight
    stem[0, in_channels // 2] = stem[0, 0].clone()
    if in_channels > 1:
        stem[0, 0] = 0.0
    head = model.head[-1]
    head.weight.zero_()
    head.weight[-1, 0] = 1.0
    if num_classes == 2:
        head.weight[0, 0] = -1.0
    head.bias.zero_()
    return model.eval()


def blob_records(
    n: int, shape: Sequence[int], radius: float, seed: int = 0
) -> tuple[list[dict], list[np.ndarray]]:
    """``n`` records alternating without/with a blob (label 0/1), and the blobs' masks."""
    rng = np.random.default_rng(seed)
    records, masks = [], []
    for i in range(n):
        image, mask = blob_case(rng, shape, radius, present=bool(i % 2))
        records.append(
            {"image": torch.as_tensor(image), "label": i % 2, "case_id": f"blob-{i:02d}"}
        )
        masks.append(mask)
    return records, masks


@torch.no_grad()
def calibrate_head(model: nn.Module, preset, shape: Sequence[int], radius: float) -> nn.Module:
    """Put the positive logit's zero midway between blob-free and blob cases' brightest slice
    (or volume), scaled so that they are 8 apart (2 classes: class 0 gets the opposite)."""
    records, _ = blob_records(8, shape, radius, seed=99)
    highest: dict[int, list[float]] = {0: [], 1: []}
    for record in records:
        out = preset[1]({"image": record["image"]})["image"]
        x = out.as_tensor().float()
        x = x if "slice_stack" in out.meta else x[None]
        highest[record["label"]].append(float(model(x)[:, -1].max()))
    low, high = max(highest[0]), min(highest[1])
    assert high > low, "the brightness model does not separate blob cases"
    gain, middle = 8.0 / (high - low), (low + high) / 2
    head = model.head[-1]
    head.weight.mul_(gain)
    head.bias.fill_(-gain * middle)
    if head.bias.numel() == 2:
        head.bias[0] = gain * middle
    return model
