"""Overlap metrics per case and class: Dice and IoU (Jaccard), with an explicit empty-mask policy.

Empty-mask policy (the same for every segmentation metric of medtransfer):

================================  ========================  ==================================
case (one class of one case)      Dice / IoU / surface Dice  HD95 / ASSD
================================  ========================  ==================================
both prediction and reference     NaN (excluded from means,  NaN
empty                             counted separately)
prediction empty, reference not   0                          ``empty_distance`` (image diagonal)
reference empty, prediction not   0                          ``empty_distance`` (image diagonal)
================================  ========================  ==================================

Spacing does not change Dice or IoU on a regular grid (every voxel has the same volume); the
argument is accepted so that every metric has the same signature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medtransfer.evaluation.metrics.mask_inputs import SegmentationPair, prepare_segmentation

__all__ = ["dice", "iou", "overlap_from_pair"]


def overlap_from_pair(pair: SegmentationPair, metric: str) -> np.ndarray:
    """Dice or IoU of a prepared pair, (B, C) float64, with the empty-mask policy applied.

    MONAI computes the values (``compute_dice`` / ``compute_iou`` with ``ignore_empty=False``);
    the empty cases are then set explicitly, whatever MONAI returns for them.
    """
    from monai.metrics import compute_dice, compute_iou

    if pair.pred.shape[1] == 0:
        return np.zeros((pair.pred.shape[0], 0))
    compute = {"dice": compute_dice, "iou": compute_iou}[metric]
    values = compute(
        pair.pred.double(), pair.target.double(), include_background=True, ignore_empty=False
    )
    out = torch.as_tensor(values).double().numpy().reshape(pair.pred.shape[:2]).copy()
    p, t = pair.pred_present, pair.target_present
    out[p != t] = 0.0
    out[~p & ~t] = np.nan
    return out


def dice(
    pred: Any,
    target: Any,
    spacing: Any = None,
    *,
    num_classes: int | None = None,
    include_background: bool = False,
) -> np.ndarray:
    """Dice coefficient ``2|P∩R| / (|P|+|R|)`` per case and class.

    Args:
        pred: prediction, an integer label map ``(B, 1, *spatial)`` or a one-hot mask
            ``(B, C, *spatial)``; numpy, torch or MetaTensor; 2D or 3D.
        target: reference, same layouts (may differ from ``pred``'s layout).
        spacing: voxel size in mm (unused by Dice, checked for a uniform API); see
            :func:`medtransfer.evaluation.hausdorff95`.
        num_classes: classes including background; inferred when None (see docs/evaluation.md).
        include_background: keep class 0 as the first column.

    Returns:
        float64 array ``(B, classes)``; column ``j`` is class ``j + 1`` without background.
        NaN where the class is absent from both; 0 where it is absent from exactly one.

    Example:
        >>> import numpy as np
        >>> pred = np.zeros((1, 1, 4, 4), dtype=np.int64); pred[0, 0, :2] = 1
        >>> ref = np.zeros((1, 1, 4, 4), dtype=np.int64); ref[0, 0, :1] = 1
        >>> dice(pred, ref).round(4).tolist()
        [[0.6667]]
        >>> dice(pred, ref, num_classes=3).tolist()  # class 2 absent from both
        [[0.6666666666666666, nan]]
    """
    pair = prepare_segmentation(pred, target, spacing, num_classes, include_background)
    return overlap_from_pair(pair, "dice")


def iou(
    pred: Any,
    target: Any,
    spacing: Any = None,
    *,
    num_classes: int | None = None,
    include_background: bool = False,
) -> np.ndarray:
    """Intersection over union (Jaccard) ``|P∩R| / |P∪R|`` per case and class.

    Args:
        pred: prediction label map ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        target: reference, same layouts.
        spacing: voxel size in mm (unused, checked for a uniform API).
        num_classes: classes including background; inferred when None.
        include_background: keep class 0 as the first column.

    Returns:
        float64 array ``(B, classes)`` with the empty-mask policy of :func:`dice`.

    Example:
        >>> import numpy as np
        >>> pred = np.zeros((1, 1, 4, 4), dtype=np.int64); pred[0, 0, :2] = 1
        >>> ref = np.zeros((1, 1, 4, 4), dtype=np.int64); ref[0, 0, :1] = 1
        >>> iou(pred, ref).tolist()
        [[0.5]]
    """
    pair = prepare_segmentation(pred, target, spacing, num_classes, include_background)
    return overlap_from_pair(pair, "iou")
