"""medtransfer.transforms: CT windows, MR/X-ray intensity scaling, 2.5D slices, dataset plans, presets.

``presets.ct/mri/xray`` return ``(train_transform, eval_transform)`` MONAI dictionary pipelines;
the building blocks are public too, for pipelines of your own.

Example:
    >>> import medtransfer as mt
    >>> train, evaluate = mt.transforms.presets.ct("segmentation", window="liver", roi_size=(16, 16, 8))
    >>> mt.transforms.CT_WINDOWS["liver"].bounds
    (-45.0, 105.0)
"""

from __future__ import annotations

from medtransfer.transforms import presets
from medtransfer.transforms.fingerprint import (
    fingerprint_dataset,
    plan_preprocessing,
    propose_roi_size,
    propose_spacing,
    propose_window,
)
from medtransfer.transforms.histogram import (
    HistogramStandardized,
    histogram_standardize,
    learn_histogram_landmarks,
    load_landmarks,
    save_landmarks,
)
from medtransfer.transforms.intensity import EncoderNormalized, RobustScaled, robust_scale
from medtransfer.transforms.loading import LoadVolumed
from medtransfer.transforms.pipeline_errors import medtransfer_errors, run_pipeline
from medtransfer.transforms.slices import (
    SlabToChannelsd,
    SliceStackd,
    SliceUnstackd,
    slab_to_channels,
    stack_slices,
    unstack_slices,
)
from medtransfer.transforms.windows import CT_WINDOWS, CTWindow, CTWindowd, resolve_windows

__all__ = [
    "CT_WINDOWS",
    "CTWindow",
    "CTWindowd",
    "EncoderNormalized",
    "HistogramStandardized",
    "LoadVolumed",
    "RobustScaled",
    "SlabToChannelsd",
    "SliceStackd",
    "SliceUnstackd",
    "fingerprint_dataset",
    "histogram_standardize",
    "learn_histogram_landmarks",
    "load_landmarks",
    "plan_preprocessing",
    "presets",
    "propose_roi_size",
    "propose_spacing",
    "propose_window",
    "resolve_windows",
    "robust_scale",
    "save_landmarks",
    "slab_to_channels",
    "stack_slices",
    "unstack_slices",
    "medtransfer_errors",
    "run_pipeline",
]
