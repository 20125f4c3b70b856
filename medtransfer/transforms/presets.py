"""Named MONAI dictionary pipelines for CT, MRI and X-ray: ``(train_transform, eval_transform)``.

Every preset returns two plain ``monai.transforms.Compose`` objects working on records
``{"image": path or tensor, "label": path/tensor (segmentation) or class value, ...}``:

- **3D** (``spatial_dims=3``): volumes ``(C, X, Y, Z)``. Segmentation training yields a list of
  ``num_samples`` label-balanced crops of ``roi_size``; evaluation yields the whole volume padded
  to at least ``roi_size`` (for sliding-window inference). Classification pads/crops the volume
  symmetrically to ``roi_size``.
- **2D / 2.5D** (``spatial_dims=2``, ``context=k``): axial slices with ``2k+1`` channels (the
  slice and ``k`` neighbours each side; ``k=0`` is plain 2D). Training yields 2D samples
  ``(C*(2k+1), X, Y)`` (segmentation: a list of ``num_samples`` label-balanced slices with their
  centre label ``(1, X, Y)``); evaluation yields every slice of the volume as a batch
  ``(Z, C*(2k+1), X, Y)``, to be put back with :func:`~medtransfer.transforms.unstack_slices`.

Train pipelines are seeded (``seed``, via ``Compose.set_random_state``); eval pipelines contain no
random transform. The last step maps the [0, 1] intensities to the encoder's expected
distribution (``mean``/``std``/``value_range``, or ``input_spec=encoder.input_spec``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from monai.transforms import Compose, MapTransform, Resized, Spacingd

from medtransfer.errors import ConfigError
from medtransfer.transforms import steps
from medtransfer.transforms._checks import (
    check_choice,
    check_pair,
    check_plan,
    check_positive_ints,
    check_spacing,
    checked_arguments,
)
from medtransfer.transforms.histogram import HistogramStandardized
from medtransfer.transforms.intensity import RobustScaled, encoder_normaliser
from medtransfer.transforms.loading import LoadVolumed
from medtransfer.transforms.slices import SlabToChannelsd, SliceStackd
from medtransfer.transforms.windows import CTWindowd, WindowLike, resolve_windows

__all__ = ["DEFAULT_ROI_SIZE", "DEFAULT_SPATIAL_DIMS", "TASKS", "ct", "mri", "xray"]

TASKS = ("segmentation", "classification")
#: spatial_dims when neither the argument nor roi_size says (the models' and config's default).
DEFAULT_SPATIAL_DIMS = 2
#: roi_size used when neither the argument nor a plan gives one, by spatial_dims.
DEFAULT_ROI_SIZE = {3: (96, 96, 96), 2: (256, 256)}


_NO_WINDOW = (
    "MR and radiograph intensities have no HU scale, so there is no window: this preset maps "
    "intensity percentiles to 0..1 (percentiles=(low, high)); windows are for presets.ct."
)


@checked_arguments({"percentiles": "CT is scaled by HU windows: pass window=... instead."})
def ct(
    task: str = "segmentation",
    *,
    window: WindowLike | Sequence[WindowLike] | None = None,
    spacing: Sequence[float] | None = None,
    roi_size: Sequence[int] | None = None,
    spatial_dims: int | None = None,
    context: int = 0,
    num_samples: int = 2,
    num_classes: int | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    value_range: Sequence[float] | None = None,
    input_spec: Any = None,
    plan: Mapping[str, Any] | None = None,
    augment: bool = True,
    flip_axes: Sequence[int] | None = None,
    foreground_threshold: float | None = -500.0,
    seed: int = 0,
    keys: Sequence[str] = ("image", "label"),
) -> tuple[Compose, Compose]:
    """CT pipelines: load, RAS, foreground crop, resample, window, crop/slice, augment, normalise.

    Args:
        task: ``"segmentation"`` (label maps under ``keys[1]``) or ``"classification"`` (the
            label is a class value and is left alone).
        window: a name from :data:`~medtransfer.transforms.CT_WINDOWS`, ``(level, width)`` in HU,
            or a list of windows (one channel each). Default: the plan's, else ``"abdomen"``.
        spacing: target voxel size in mm ``(x, y, z)``; ``None`` keeps the image's (or the plan's).
        roi_size: crop size, 3 values for 3D, 2 (in-plane) for 2D/2.5D; default the plan's, else
            :data:`DEFAULT_ROI_SIZE`.
        spatial_dims: 3 (volumes) or 2 (axial slices). Default: the number of values of
            ``roi_size`` when given, else 2 (2D/2.5D, as ``mt.models.create_*`` and the CLI
            config default to).
        context: 2.5D neighbours ``k`` on each side (``2k+1`` channels per window); needs
            ``spatial_dims=2``.
        num_samples: crops (3D) or slices (2D) drawn per volume in segmentation training.
        num_classes: when given, crops are balanced over the classes ``0..num_classes-1``
            (``RandCropByLabelClassesd``), otherwise over foreground/background.
        mean: encoder normalisation mean, one number or one per channel (default 0).
        std: encoder normalisation std (default 1).
        value_range: the encoder's input range before normalisation (default (0, 1)).
        input_spec: any object with ``mean``, ``std``, ``value_range`` (e.g.
            ``encoder.input_spec``); explicit ``mean``/``std``/``value_range`` win.
        plan: a plan from :func:`~medtransfer.transforms.plan_preprocessing`; fills ``spacing``,
            ``window`` and ``roi_size`` when those are not given.
        augment: add random flips, small affine and intensity scale/shift to the train pipeline.
        flip_axes: axes to flip at random (default: every spatial axis).
        foreground_threshold: HU above which a voxel is body (crop box); ``None`` disables it.
        seed: seed of the train pipeline's random state.
        keys: the image and label keys.

    Returns:
        ``(train_transform, eval_transform)``.

    Raises:
        ConfigError: an argument is invalid (the message names it and the allowed values).

    Example:
        >>> import medtransfer as mt
        >>> case = mt.data.synthetic.phantoms(1, shape=(32, 32, 8))[0]
        >>> train, evaluate = mt.transforms.presets.ct("segmentation", roi_size=(16, 16, 8))
        >>> [tuple(s["image"].shape) for s in train(case)]
        [(1, 16, 16, 8), (1, 16, 16, 8)]
        >>> tuple(evaluate(case)["label"].shape)  # the whole volume, cropped to the body
        (1, 32, 23, 8)
    """
    plan = check_plan(plan)
    windows = resolve_windows(window if window is not None else plan.get("window", "abdomen"))
    intensity = [CTWindowd(keys[0], windows)]
    return _volume_presets(
        task, intensity, len(windows), spacing, roi_size, spatial_dims, context, num_samples,
        num_classes, (mean, std, value_range, input_spec), plan, augment, flip_axes,
        foreground_threshold, seed, keys,
    )  # fmt: skip


@checked_arguments({"window": _NO_WINDOW, "windows": _NO_WINDOW})
def mri(
    task: str = "segmentation",
    *,
    percentiles: Sequence[float] = (0.5, 99.5),
    histogram: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    spacing: Sequence[float] | None = None,
    roi_size: Sequence[int] | None = None,
    spatial_dims: int | None = None,
    context: int = 0,
    num_samples: int = 2,
    num_classes: int | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    value_range: Sequence[float] | None = None,
    input_spec: Any = None,
    plan: Mapping[str, Any] | None = None,
    augment: bool = True,
    flip_axes: Sequence[int] | None = None,
    foreground_threshold: float | None = 0.0,
    seed: int = 0,
    keys: Sequence[str] = ("image", "label"),
) -> tuple[Compose, Compose]:
    """MRI pipelines: as :func:`ct`, with robust normalisation instead of a window.

    Each channel's ``percentiles`` over its non-zero voxels map to 0 and 1 (clipped), which
    removes the arbitrary scale of MR intensities and the influence of a few bright voxels.
    With ``histogram=`` (images from several sites or scanners), Nyul-Udupa histogram
    standardisation (:class:`~medtransfer.transforms.HistogramStandardized`) replaces that
    step: each channel's landmark percentiles map piecewise-linearly onto landmarks learned
    from reference images, then the standard range maps to [0, 1] (not clipped).

    Args:
        task: ``"segmentation"`` or ``"classification"``.
        percentiles: ``(lower, upper)`` percentiles of the foreground mapped to 0 and 1.
        histogram: landmarks from :func:`~medtransfer.transforms.learn_histogram_landmarks`, or
            the path of a JSON file from :func:`~medtransfer.transforms.save_landmarks`; when
            given, histogram standardisation replaces the percentile scaling (``percentiles``
            is then unused).
        spacing, roi_size, spatial_dims, context, num_samples, num_classes, mean, std,
            value_range, input_spec, plan, augment, flip_axes, seed, keys: as in :func:`ct`.
        foreground_threshold: intensity above which a voxel is foreground (crop box; MR
            background is 0); ``None`` disables the crop.

    Returns:
        ``(train_transform, eval_transform)``.

    Example:
        >>> import torch, medtransfer as mt
        >>> train, evaluate = mt.transforms.presets.mri("classification", roi_size=(16, 16), spatial_dims=2)
        >>> out = evaluate({"image": torch.rand(20, 20, 6) + 1, "label": 1})
        >>> tuple(out["image"].shape), out["label"]
        ((6, 1, 16, 16), 1)
    """
    plan = check_plan(plan)
    low, high = check_pair("percentiles", percentiles)
    intensity: list[Any] = [RobustScaled(keys[0], low, high, nonzero=True)]
    if histogram is not None:
        intensity = [HistogramStandardized(keys[0], histogram)]
    return _volume_presets(
        task, intensity, None, spacing, roi_size, spatial_dims, context, num_samples,
        num_classes, (mean, std, value_range, input_spec), plan, augment, flip_axes,
        foreground_threshold, seed, keys,
    )  # fmt: skip


@checked_arguments(
    {
        "window": _NO_WINDOW,
        "windows": _NO_WINDOW,
        "spatial_dims": "Radiographs are 2D: xray() always gives (C, X, Y) images.",
    }
)
def xray(
    task: str = "classification",
    *,
    roi_size: Sequence[int] | None = (224, 224),
    percentiles: Sequence[float] = (0.5, 99.5),
    spacing: Sequence[float] | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    value_range: Sequence[float] | None = None,
    input_spec: Any = None,
    augment: bool = True,
    flip_axes: Sequence[int] = (),
    seed: int = 0,
    keys: Sequence[str] = ("image", "label"),
) -> tuple[Compose, Compose]:
    """Radiograph pipelines: load, (resample), percentile scaling, resize to ``roi_size``, normalise.

    No orientation change (a radiograph's pixel array is already in display orientation) and no
    flips by default (laterality matters on chest films).

    Args:
        task: ``"classification"`` or ``"segmentation"`` (a 2D mask under ``keys[1]``).
        roi_size: output size ``(X, Y)``; the image is resized (masks with nearest).
        percentiles: ``(lower, upper)`` percentiles of all pixels mapped to 0 and 1.
        spacing: optional pixel size in mm ``(x, y)`` to resample to first.
        mean, std, value_range, input_spec, augment, seed, keys: as in :func:`ct`.
        flip_axes: axes to flip at random in training (default none).

    Returns:
        ``(train_transform, eval_transform)``.

    Example:
        >>> import torch, medtransfer as mt
        >>> train, evaluate = mt.transforms.presets.xray(roi_size=(32, 32), mean=0.449, std=0.226)
        >>> tuple(train({"image": torch.rand(50, 40), "label": 0})["image"].shape)
        (1, 32, 32)
    """
    task = check_choice("task", task, TASKS)
    roi = check_positive_ints("roi_size", roi_size, 2)
    low, high = check_pair("percentiles", percentiles)
    image_key, label_keys = keys[0], ([keys[1]] if task == "segmentation" else [])
    all_keys = [image_key, *label_keys]
    normalise = encoder_normaliser(image_key, (mean, std, value_range, input_spec), 1, 0)
    common: list[Any] = []
    if spacing is not None:
        pixdim = check_spacing(spacing, 2)
        modes = ["bilinear"] + ["nearest"] * len(label_keys)
        common.append(Spacingd(all_keys, pixdim=pixdim, mode=modes))
    common.append(RobustScaled(image_key, low, high, nonzero=False))
    common.append(
        Resized(
            all_keys,
            spatial_size=roi,
            mode=["bilinear"] + ["nearest"] * len(label_keys),
            anti_aliasing=[True] + [False] * len(label_keys),
        )
    )
    train = [LoadVolumed(all_keys), *common]
    if augment:
        train += steps.augmentation([image_key], label_keys, 2, tuple(flip_axes))
    evaluate = [LoadVolumed(all_keys, optional_keys=label_keys), *common]
    return _compose(train + [normalise], seed), _eval_compose(evaluate + [normalise])


def _volume_presets(
    task: str,
    intensity: list[Any],
    channels_in: int | None,
    spacing: Sequence[float] | None,
    roi_size: Sequence[int] | None,
    spatial_dims: int | None,
    context: int,
    num_samples: int,
    num_classes: int | None,
    normalisation: tuple[Any, Any, Any, Any],
    plan: Mapping[str, Any],
    augment: bool,
    flip_axes: Sequence[int] | None,
    foreground_threshold: float | None,
    seed: int,
    keys: Sequence[str],
) -> tuple[Compose, Compose]:
    task = check_choice("task", task, TASKS)
    if spatial_dims is None:
        sized = isinstance(roi_size, Sequence) and len(roi_size) in (2, 3)
        spatial_dims = len(roi_size) if sized else DEFAULT_SPATIAL_DIMS  # type: ignore[arg-type]
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims={spatial_dims!r} is not supported; allowed values: 2, 3.")
    if not isinstance(context, int) or isinstance(context, bool) or context < 0:
        raise ConfigError(f"context={context!r} must be an integer >= 0.")
    if context and spatial_dims != 2:
        raise ConfigError(f"context={context} (2.5D) needs spatial_dims=2; got spatial_dims=3.")
    check_positive_ints("num_samples", num_samples, 1)
    if num_classes is not None:
        check_positive_ints("num_classes", num_classes, 1)
    if len(keys) != 2:
        raise ConfigError(f"keys={keys!r} must be two names: the image key and the label key.")
    plan_roi = plan.get("roi_size" if spatial_dims == 3 else "roi_size_2d")
    roi = check_positive_ints(
        "roi_size", roi_size or plan_roi or DEFAULT_ROI_SIZE[spatial_dims], spatial_dims
    )
    spacing = spacing if spacing is not None else plan.get("spacing")
    pixdim = check_spacing(spacing, 3) if spacing is not None else None
    image_key = keys[0]
    label_keys = [keys[1]] if task == "segmentation" else []
    all_keys = [image_key, *label_keys]
    depth = 2 * context + 1
    channels = None if channels_in is None else channels_in * depth
    if flip_axes is None:
        flip_axes = tuple(range(spatial_dims))

    common = [
        *steps.orientation(all_keys),
        *steps.foreground_crop([image_key], label_keys, foreground_threshold),
        *steps.resampling([image_key], label_keys, pixdim),
        *intensity,
    ]
    if spatial_dims == 3:
        if label_keys:
            train = steps.label_balanced_crop([image_key], keys[1], roi, num_samples, num_classes)
            evaluate = steps.pad_to(all_keys, roi)
        else:
            train = evaluate = steps.centre_fit(all_keys, roi)
    else:
        plane, slab = (*roi, -1), (*roi, depth)
        if label_keys:
            train = [
                *steps.pad_to(all_keys, plane),
                *steps.slab_padding(all_keys, context),
                *steps.label_balanced_crop([image_key], keys[1], slab, num_samples, num_classes),
                SlabToChannelsd(image_key),
                SlabToChannelsd(keys[1], centre_only=True),
            ]
            evaluate = [
                *steps.pad_to(all_keys, plane),
                SliceStackd(image_key, context),
                SliceStackd(keys[1], 0),
            ]
        else:
            train = [
                *steps.centre_fit(all_keys, plane),
                *steps.slab_padding(all_keys, context),
                *steps.random_crop(all_keys, slab),
                SlabToChannelsd(image_key),
            ]
            evaluate = [*steps.centre_fit(all_keys, plane), SliceStackd(image_key, context)]
    if augment:
        train = train + steps.augmentation([image_key], label_keys, spatial_dims, flip_axes)
    train_norm = encoder_normaliser(image_key, normalisation, channels, channel_dim=0)
    eval_norm = encoder_normaliser(
        image_key, normalisation, channels, channel_dim=0 if spatial_dims == 3 else 1
    )
    train_load = LoadVolumed(all_keys, volumetric=True)
    eval_load = LoadVolumed(all_keys, volumetric=True, optional_keys=label_keys)
    return (
        _compose([train_load, *common, *train, train_norm], seed),
        _eval_compose([eval_load, *common, *evaluate, eval_norm]),
    )


def _compose(transforms: list[Any], seed: int) -> Compose:
    pipeline = Compose(transforms)
    pipeline.set_random_state(seed=seed)
    return pipeline


def _eval_compose(transforms: list[Any]) -> Compose:
    """The eval pipeline runs on records without a label too (inference): label steps skip them.

    The loader decides which keys may be missing (``optional_keys``); later steps only follow.
    """
    for transform in transforms:
        if isinstance(transform, MapTransform) and not isinstance(transform, LoadVolumed):
            transform.allow_missing_keys = True
    return Compose(transforms)
