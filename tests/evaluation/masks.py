"""Small synthetic masks shared by the evaluation tests (imported as tests.evaluation.masks)."""

from __future__ import annotations

import numpy as np


def ball(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    """Boolean disc (2D) or sphere (3D) of ``radius`` voxels around ``centre``."""
    grid = np.indices(shape, dtype=np.float64)
    dist2 = sum((g - c) ** 2 for g, c in zip(grid, centre))
    return dist2 <= radius**2


def random_label_maps(
    rng: np.random.Generator, batch: int, shape: tuple[int, ...], num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Label maps (B, 1, *shape): a random box per class; the prediction jitters each box edge.

    Later classes may cover earlier ones; tests comparing with MONAI skip (case, class) pairs
    where a mask is empty (MONAI's inf/NaN there is not our policy).
    """
    pred = np.zeros((batch, 1, *shape), dtype=np.int64)
    ref = np.zeros_like(pred)
    for b in range(batch):
        for c in range(1, num_classes):
            lo = [int(rng.integers(0, s // 2)) for s in shape]
            hi = [lo_i + int(rng.integers(3, s // 2)) for lo_i, s in zip(lo, shape)]
            box = tuple(slice(a, z) for a, z in zip(lo, hi))
            ref[(b, 0, *box)] = c
            starts = [max(0, a + int(rng.integers(-2, 3))) for a in lo]
            jit = tuple(
                slice(s, max(s + 2, z + int(rng.integers(-2, 3)))) for s, z in zip(starts, hi)
            )
            pred[(b, 0, *jit)] = c
    return pred, ref


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(B, 1, *spatial) label map -> (B, C, *spatial) float32 one-hot."""
    classes = np.arange(num_classes).reshape(1, -1, *([1] * (labels.ndim - 2)))
    return (labels == classes).astype(np.float32)
