"""medtransfer.evaluation: segmentation and classification metrics with bootstrap intervals.

Segmentation metrics take batched label maps ``(B, 1, *spatial)`` or one-hot masks
``(B, C, *spatial)`` (2D or 3D) and return ``(B, classes)`` arrays in physical units; the
empty-mask policy, spacing rules and the bootstrap method are in ``docs/evaluation.md``.

Example:
    >>> import numpy as np, medtransfer as mt
    >>> ref = np.zeros((1, 1, 16, 16), dtype=np.int64); ref[0, 0, 4:10, 4:10] = 1
    >>> pred = np.roll(ref, 3, axis=3)  # shifted by 3 voxels of 2 mm
    >>> mt.evaluation.dice(pred, ref).tolist(), mt.evaluation.hausdorff95(pred, ref, spacing=2.0).tolist()
    ([[0.5]], [[6.0]])
    >>> mt.evaluation.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
"""

from __future__ import annotations

from medtransfer.evaluation.accumulators.classification import (
    ClassificationAccumulator,
    classification_metrics,
)
from medtransfer.evaluation.accumulators.segmentation import (
    SEGMENTATION_METRICS,
    SegmentationAccumulator,
)
from medtransfer.evaluation.bootstrap import (
    Estimate,
    bootstrap_ci,
    bootstrap_columns,
    bootstrap_summary,
)
from medtransfer.evaluation.evaluate.classification import evaluate_classification
from medtransfer.evaluation.evaluate.segmentation import evaluate_segmentation
from medtransfer.evaluation.explain.saliency import saliency
from medtransfer.evaluation.inference.classify import classify
from medtransfer.evaluation.inference.embedding import case_embedding, embed_records
from medtransfer.evaluation.inference.ood import OODDetector, OutOfDistributionWarning
from medtransfer.evaluation.inference.postprocess import (
    fill_holes,
    keep_largest_component,
    postprocess,
    remove_small_islands,
)
from medtransfer.evaluation.inference.predict import predict, resolve_device
from medtransfer.evaluation.metrics.calibration import (
    CalibrationBins,
    calibration_bins,
    expected_calibration_error,
)
from medtransfer.evaluation.metrics.multilabel import choose_thresholds, multilabel_metrics
from medtransfer.evaluation.metrics.overlap import dice, iou
from medtransfer.evaluation.metrics.ranking import auprc, auroc, roc_curve
from medtransfer.evaluation.metrics.surface import (
    average_surface_distance,
    hausdorff95,
    surface_dice,
    surface_metrics,
)
from medtransfer.evaluation.metrics.thresholds import (
    accuracy,
    balanced_accuracy,
    confusion_matrix,
    sensitivity_specificity,
    youden_threshold,
)
from medtransfer.evaluation.report.report import OverlaySlice, Report
from medtransfer.evaluation.report.saliency_view import SaliencySlice

__all__ = [
    "SEGMENTATION_METRICS",
    "CalibrationBins",
    "ClassificationAccumulator",
    "Estimate",
    "OODDetector",
    "OutOfDistributionWarning",
    "OverlaySlice",
    "Report",
    "SaliencySlice",
    "SegmentationAccumulator",
    "accuracy",
    "auprc",
    "auroc",
    "average_surface_distance",
    "balanced_accuracy",
    "bootstrap_ci",
    "bootstrap_columns",
    "bootstrap_summary",
    "calibration_bins",
    "case_embedding",
    "choose_thresholds",
    "classify",
    "classification_metrics",
    "confusion_matrix",
    "dice",
    "embed_records",
    "evaluate_classification",
    "evaluate_segmentation",
    "expected_calibration_error",
    "fill_holes",
    "hausdorff95",
    "iou",
    "keep_largest_component",
    "multilabel_metrics",
    "postprocess",
    "predict",
    "resolve_device",
    "remove_small_islands",
    "roc_curve",
    "saliency",
    "sensitivity_specificity",
    "surface_dice",
    "surface_metrics",
    "youden_threshold",
]
