"""Pad inputs to a multiple of the encoder's total stride and crop outputs back."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medtransfer.errors import ModelError

__all__ = ["pad_to_multiple", "crop_to", "check_multiple"]


def _padded(size: int, divisor: int) -> int:
    return -(-size // divisor) * divisor


def check_multiple(spatial: Sequence[int], divisors: Sequence[int]) -> None:
    """Raise :class:`ModelError` naming the nearest valid sizes when a size is not a multiple."""
    bad = [(s, d) for s, d in zip(spatial, divisors) if s % d]
    if bad:
        valid = tuple(_padded(s, d) for s, d in zip(spatial, divisors))
        raise ModelError(
            f"Input size {tuple(spatial)} is not a multiple of the encoder's stride {tuple(divisors)}; "
            f"use e.g. {valid} (crop or pad), or create the model with pad='auto'."
        )


def pad_to_multiple(
    x: torch.Tensor, divisors: Sequence[int]
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Zero-pad the spatial axes of ``x`` (N, C, *spatial) at the end up to multiples of ``divisors``.

    Zero is the normalised mean intensity, so padding adds no strong edge. Returns the padded
    tensor and the original spatial size.

    Example:
        >>> y, size = pad_to_multiple(torch.zeros(1, 1, 30, 33), (32, 32))
        >>> tuple(y.shape), size
        ((1, 1, 32, 64), (30, 33))
    """
    spatial = tuple(int(s) for s in x.shape[2:])
    target = tuple(_padded(s, d) for s, d in zip(spatial, divisors))
    if target == spatial:
        return x, spatial
    pad: list[int] = []
    for size, goal in zip(reversed(spatial), reversed(target)):
        pad.extend([0, goal - size])
    return F.pad(x, pad), spatial


def crop_to(x: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
    """Crop the spatial axes of ``x`` back to ``spatial`` (undoing :func:`pad_to_multiple`)."""
    index = (slice(None), slice(None), *(slice(0, s) for s in spatial))
    return x[index]
