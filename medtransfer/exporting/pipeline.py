"""A preset's eval pipeline as data: what an exported model's metadata says and what a bundle runs.

:func:`read_pipeline` walks the eval ``Compose`` of a preset once and returns a
:class:`PipelineInfo`: every step as a MONAI-config dict (``{"_target_": ..., **arguments}``),
plus what the exporters need to know (image key, 2.5D context, the size it pads to, the encoder
normalisation). Steps come in two spellings:

- ``description``: medtransfer's own steps as themselves (``medtransfer.transforms.CTWindowd``),
  MONAI's as MONAI's: the exact pipeline ``mt.evaluation.predict`` runs, for the metadata;
- ``bundle``: MONAI-native equivalents for a MONAI bundle's ``inference.json`` (``LoadImaged``,
  ``ScaleIntensityRanged`` for a CT window...), image key only, ending with intensities in [0, 1]:
  the slicing (2D/2.5D) and the encoder normalisation belong to the bundle's network
  (:mod:`medtransfer.exporting.wrappers`). A step without a MONAI equivalent that medtransfer
  can still run (MR percentile scaling over the foreground, histogram standardisation) is kept
  as a ``medtransfer.transforms`` target; one it cannot express raises :class:`ExportError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monai.transforms import (
    Compose,
    CropForegroundd,
    Orientationd,
    Resized,
    ResizeWithPadOrCropd,
    Spacingd,
    SpatialPadd,
)

from medtransfer.errors import ExportError
from medtransfer.transforms import (
    CTWindowd,
    EncoderNormalized,
    HistogramStandardized,
    LoadVolumed,
    RobustScaled,
    SliceStackd,
)
from medtransfer.transforms import steps as preset_steps

__all__ = ["PipelineInfo", "read_pipeline"]

BUNDLE_KEY = "image"  # the image key of a bundle's inference.json (MONAI's convention)


@dataclass
class PipelineInfo:
    """What an eval pipeline does, as data (see the module docstring).

    Attributes:
        image_key: the image key of the preset.
        description: every step, medtransfer's spelling.
        bundle: the MONAI-native steps up to [0, 1] intensities (empty when one has no
            equivalent; then ``bundle_problem`` says which).
        bundle_problem: why the pipeline cannot become a bundle, or None.
        needs_medtransfer: a bundle step is a ``medtransfer.transforms`` target.
        volumetric: the loader makes volumes (CT/MRI presets) rather than 2D images (X-ray).
        context: 2.5D neighbours ``k`` (slice stack), or None when the model sees whole volumes
            (3D) or whole 2D images.
        roi_size: the spatial size the pipeline pads/resizes the image to (``()`` if none).
        mean, std, value_range: the encoder normalisation (0, 1, (0, 1) when there is none).
    """

    image_key: str
    description: list[dict[str, Any]] = field(default_factory=list)
    bundle: list[dict[str, Any]] = field(default_factory=list)
    bundle_problem: str | None = None
    needs_medtransfer: bool = False
    volumetric: bool = True
    context: int | None = None
    roi_size: tuple[int, ...] = ()
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    value_range: tuple[float, float] = (0.0, 1.0)


def _plain(value: Any) -> Any:
    """JSON types: tuples/arrays to lists, numpy scalars and enums to Python values."""
    if isinstance(value, type):  # a dtype such as numpy.float64: a config expression
        module = "" if value.__module__ == "builtins" else f"{value.__module__}."
        return f"${module}{value.__name__}"
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value  # MONAI's StrEnum (padding modes...)
    if hasattr(value, "is_floating_point"):  # a torch dtype
        return f"${value}"
    return value


def _index(transform: Any, key: str) -> int:
    return list(transform.keys).index(key)


def _per_key(values: Any, index: int) -> Any:
    return _plain(values[index] if isinstance(values, tuple | list) else values)


def _target(transform: Any) -> str:
    cls = type(transform)
    module = (
        "medtransfer.transforms"
        if cls.__module__.startswith("medtransfer.")
        else "monai.transforms"
    )
    return f"{module}.{cls.__name__}"


# ----------------------------------------------------------------------------- the steps
def _orientation(t: Orientationd, key: str) -> dict[str, Any]:
    inner = t.ornt_transform
    return {"axcodes": inner.axcodes, "labels": _plain(inner.labels)}


def _crop_foreground(t: CropForegroundd, key: str) -> dict[str, Any]:
    cropper = t.cropper
    select = cropper.select_fn
    is_threshold = isinstance(select, functools.partial) and select.func is preset_steps._above
    if not is_threshold:
        raise _Untranslatable(
            f"CropForegroundd with select_fn={select!r} (only the presets' HU/intensity "
            "threshold can be written into a config)"
        )
    threshold = float(select.keywords["threshold"])
    return {
        "source_key": key,
        "select_fn": f"$lambda x: x > {threshold!r}",
        "margin": _plain(cropper.margin),
        "allow_smaller": bool(cropper.allow_smaller),
        "k_divisible": _plain(cropper.k_divisible),
    }


def _spacing(t: Spacingd, key: str) -> dict[str, Any]:
    i = _index(t, key)
    return {
        "pixdim": _plain(t.spacing_transform.pixdim),
        "mode": _per_key(t.mode, i),
        "padding_mode": _per_key(t.padding_mode, i),
        "align_corners": _per_key(t.align_corners, i),
        "dtype": _per_key(t.dtype, i),
    }


def _spatial_pad(t: SpatialPadd, key: str) -> dict[str, Any]:
    return {
        "spatial_size": _plain(t.padder.spatial_size),
        "method": _plain(t.padder.method),
        "mode": _per_key(t.mode, _index(t, key)),
    }


def _resize_with_pad_or_crop(t: ResizeWithPadOrCropd, key: str) -> dict[str, Any]:
    pad = t.padder.padder  # ResizeWithPadOrCrop's SpatialPad (its crop is centred)
    return {
        "spatial_size": _plain(pad.spatial_size),
        "method": _plain(pad.method),
        "mode": _per_key(t.mode, _index(t, key)),
    }


def _resized(t: Resized, key: str) -> dict[str, Any]:
    i = _index(t, key)
    return {
        "spatial_size": _plain(t.resizer.spatial_size),
        "size_mode": t.resizer.size_mode,
        "mode": _per_key(t.mode, i),
        "align_corners": _per_key(t.align_corners, i),
        "anti_aliasing": _per_key(t.anti_aliasing, i),
        "anti_aliasing_sigma": _per_key(t.anti_aliasing_sigma, i),
    }


class _Untranslatable(Exception):
    """A step with no config spelling (turned into ExportError or a bundle_problem)."""


_MONAI_STEPS: dict[type, Callable[[Any, str], dict[str, Any]]] = {
    Orientationd: _orientation,
    CropForegroundd: _crop_foreground,
    Spacingd: _spacing,
    SpatialPadd: _spatial_pad,
    ResizeWithPadOrCropd: _resize_with_pad_or_crop,
    Resized: _resized,
}


def _window_steps(t: CTWindowd, key: str) -> list[dict[str, Any]]:
    """One window: ``ScaleIntensityRanged``; several: one copy per window, scaled, concatenated."""

    def scale(k: str, bounds: tuple[float, float]) -> dict[str, Any]:
        low, high = bounds
        return {
            "_target_": "ScaleIntensityRanged",
            "keys": k,
            "a_min": low,
            "a_max": high,
            "b_min": 0.0,
            "b_max": 1.0,
            "clip": True,
        }

    if len(t.windows) == 1:
        return [scale(key, t.windows[0].bounds)]
    names = [f"{key}_window{i}" for i in range(len(t.windows))]
    return [
        {"_target_": "CopyItemsd", "keys": key, "times": len(names), "names": names},
        *(scale(name, w.bounds) for name, w in zip(names, t.windows)),
        {"_target_": "ConcatItemsd", "keys": names, "name": key, "dim": 0},
        {"_target_": "DeleteItemsd", "keys": names},
    ]


def _robust_scaled(t: RobustScaled, key: str, native: bool) -> list[dict[str, Any]]:
    if native and not t.nonzero:  # over every voxel: MONAI's percentile scaling is the same
        return [
            {
                "_target_": "ScaleIntensityRangePercentilesd",
                "keys": key,
                "lower": t.lower,
                "upper": t.upper,
                "b_min": 0.0,
                "b_max": 1.0,
                "clip": t.clip,
                "relative": False,
                "channel_wise": True,
            }
        ]
    return [
        {
            "_target_": "medtransfer.transforms.RobustScaled",
            "keys": key,
            "lower": t.lower,
            "upper": t.upper,
            "nonzero": t.nonzero,
            "clip": t.clip,
        }
    ]


# ----------------------------------------------------------------------------- the walk
def _eval_transforms(preset: Any) -> list[Any]:
    if isinstance(preset, tuple | list) and len(preset) == 2:
        preset = preset[1]
    if not isinstance(preset, Compose):
        raise ExportError(
            "preset must be the (train_transform, eval_transform) pair of "
            f"mt.transforms.presets.ct/mri/xray, or its eval Compose; got {type(preset).__name__}."
        )
    transforms = list(preset.flatten().transforms)
    if not transforms or not isinstance(transforms[0], LoadVolumed):
        raise ExportError(
            "The preset's eval pipeline must start with mt.transforms.LoadVolumed (every preset "
            "does); pass the pair returned by mt.transforms.presets.*."
        )
    return transforms


def read_pipeline(preset: Any) -> PipelineInfo:
    """Describe a preset's eval pipeline (see :class:`PipelineInfo`).

    Example:
        >>> import medtransfer as mt
        >>> info = read_pipeline(mt.transforms.presets.ct(spatial_dims=3, roi_size=(32, 32, 16)))
        >>> [step["_target_"] for step in info.bundle][:3], info.roi_size
        (['LoadImaged', 'EnsureChannelFirstd', 'Orientationd'], (32, 32, 16))
    """
    transforms = _eval_transforms(preset)
    loader = transforms[0]
    key = str(loader.keys[0])
    info = PipelineInfo(image_key=key, volumetric=bool(loader.volumetric))
    info.description.append(
        {"_target_": _target(loader), "keys": _plain(loader.keys), "volumetric": loader.volumetric}
    )
    info.bundle += [
        {"_target_": "LoadImaged", "keys": BUNDLE_KEY, "image_only": True},
        {"_target_": "EnsureChannelFirstd", "keys": BUNDLE_KEY},
    ]
    for t in transforms[1:]:
        if key not in list(getattr(t, "keys", ())):
            continue  # label-only steps (SliceStackd of the label): nothing to do at inference
        _read_step(t, key, info)
    return info


def _read_step(t: Any, key: str, info: PipelineInfo) -> None:
    if isinstance(t, EncoderNormalized):
        info.mean, info.std = tuple(t.mean), tuple(t.std)
        info.value_range = tuple(t.value_range)  # type: ignore[assignment]
        info.description.append(
            {
                "_target_": _target(t),
                "keys": key,
                "mean": list(t.mean),
                "std": list(t.std),
                "value_range": list(t.value_range),
                "channel_dim": t.channel_dim,
            }
        )
        return
    if isinstance(t, SliceStackd):
        info.context = int(t.context)
        info.description.append(
            {"_target_": _target(t), "keys": key, "context": t.context, "padding": t.padding}
        )
        if t.padding != "edge":
            _refuse(info, "SliceStackd(padding='zero') (the bundle network repeats edge slices)")
        return
    if isinstance(t, CTWindowd):
        windows = [w.to_dict() for w in t.windows]
        info.description.append({"_target_": _target(t), "keys": key, "window": windows})
        info.bundle += _window_steps(t, BUNDLE_KEY)
        return
    if isinstance(t, RobustScaled):
        info.description += _robust_scaled(t, key, native=False)
        steps = _robust_scaled(t, BUNDLE_KEY, native=True)
        info.needs_medtransfer |= steps[0]["_target_"].startswith("medtransfer.")
        info.bundle += steps
        return
    if isinstance(t, HistogramStandardized):
        step = {"_target_": _target(t), "landmarks": _plain(t.landmarks), "clip": t.clip}
        info.description.append({**step, "keys": key})
        info.bundle.append({**step, "keys": BUNDLE_KEY})
        info.needs_medtransfer = True
        return
    translate = next((f for cls, f in _MONAI_STEPS.items() if type(t) is cls), None)
    if translate is None:
        info.description.append({"_target_": f"{type(t).__module__}.{type(t).__name__}"})
        _refuse(info, f"{type(t).__name__} (no MONAI config equivalent is known)")
        return
    try:
        arguments = translate(t, key)
    except _Untranslatable as why:
        info.description.append({"_target_": _target(t)})
        _refuse(info, str(why))
        return
    info.description.append({"_target_": _target(t), "keys": key, **arguments})
    if "source_key" in arguments:
        arguments = {**arguments, "source_key": BUNDLE_KEY}
    info.bundle.append({"_target_": type(t).__name__, "keys": BUNDLE_KEY, **arguments})
    if isinstance(t, SpatialPadd | ResizeWithPadOrCropd | Resized):
        size = tuple(int(s) for s in arguments["spatial_size"])
        info.roi_size = info.roi_size or size


def _refuse(info: PipelineInfo, what: str) -> None:
    info.bundle_problem = info.bundle_problem or what
