"""Nyul-Udupa histogram standardisation: MR intensities of several sites/scanners on one scale.

MR intensities have no unit, and two scanners relate monotonically but not linearly, which a
linear percentile scaling (``RobustScaled``) cannot undo. Landmark percentiles of each image's
foreground are mapped piecewise-linearly onto landmarks learned from reference images (plain
JSON), then the standard range onto [0, 1]. Image-only: never apply it to label maps.

References: L. G. Nyul, J. K. Udupa, Magn. Reson. Med. 42(6), 1999; L. G. Nyul, J. K. Udupa,
X. Zhang, IEEE Trans. Med. Imaging 19(2), 2000; TorchIO's ``HistogramStandardization``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medtransfer.errors import ConfigError, InputPathError
from medtransfer.io.atomic import atomic_path
from medtransfer.transforms._checks import check_choice, check_pair
from medtransfer.transforms.loading import LoadVolumed

__all__ = [
    "DEFAULT_PERCENTILES",
    "HistogramStandardized",
    "LandmarksLike",
    "histogram_standardize",
    "learn_histogram_landmarks",
    "load_landmarks",
    "save_landmarks",
]

#: Landmark percentiles: the cutoffs 1 and 99 and the deciles (Nyul, Udupa & Zhang 2000).
DEFAULT_PERCENTILES = (1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0)
METHOD = "nyul-udupa"
FOREGROUNDS = ("nonzero", "mean")
#: Learned landmarks (a dict from :func:`learn_histogram_landmarks`) or a JSON file of them.
LandmarksLike = Mapping[str, Any] | str | os.PathLike[str]

_LEARN = "learn them with mt.transforms.learn_histogram_landmarks(reference_images)"
_NO_FOREGROUND = {"nonzero": "no non-zero voxel", "mean": "none above the mean", None: "no voxel"}


def learn_histogram_landmarks(
    images: Iterable[Any] | Any,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    standard_range: Sequence[float] = (0.0, 100.0),
    foreground: str | None = "nonzero",
    image_key: str = "image",
) -> dict[str, Any]:
    """Learn the standard intensity scale (landmarks) from reference-site MR images.

    Per image (per channel), the ``percentiles`` of the foreground are mapped linearly so that
    the first and last land on ``standard_range``; the result is their average over the images.

    Args:
        images: records (dicts with ``image_key``, e.g. from ``mt.data.load_manifest``), or
            images directly: paths (NIfTI file, DICOM file or series folder, read by
            :func:`medtransfer.io.load`), tensors or arrays (one volume each, no channel axis).
            Images are loaded one at a time. Each channel of a multi-channel image counts as one
            sample of the same contrast: learn one set per contrast (T1, T2, ...).
        percentiles: strictly increasing landmark percentiles in (0, 100); the first and last
            are the cutoffs.
        standard_range: ``(low, high)`` the cutoffs are mapped to.
        foreground: the voxels whose histogram counts: ``"nonzero"`` (MR background is 0, e.g.
            skull-stripped or registered images), ``"mean"`` (voxels above the image's mean, for
            a noisy background, as TorchIO's default) or ``None`` (every voxel). Stored in the
            result and used again when the landmarks are applied.
        image_key: the image key of records.

    Returns:
        Plain JSON data: ``{"method": "nyul-udupa", "percentiles": [...], "landmarks": [...],
        "standard_range": [low, high], "foreground": ..., "n_images": n}``.

    Raises:
        ConfigError: no images, an image without (or with a constant) foreground, invalid
            arguments, or learned landmarks that are not strictly increasing.

    Example:
        >>> import torch
        >>> a = torch.tensor([0.0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110])  # 0: background
        >>> b = torch.tensor([0.0, 10, 20, 25, 30, 35, 40, 55, 70, 85, 100, 110])
        >>> learn_histogram_landmarks([a, b], percentiles=(10, 50, 90))["landmarks"]
        [0.0, 37.5, 100.0]
    """
    percentiles = _check_percentiles(percentiles, "percentiles")
    low, high = check_pair("standard_range", standard_range)
    foreground = _check_foreground(foreground, "foreground")
    single = str | os.PathLike | torch.Tensor | np.ndarray | Mapping
    if isinstance(images, single) or not isinstance(images, Iterable):
        images = [images]  # one image, not an iterable of its slices or characters
    loader = LoadVolumed(image_key)
    mapped: list[np.ndarray] = []
    n_images = 0
    for index, item in enumerate(images):
        record = item if isinstance(item, Mapping) else {image_key: item}
        value = record.get(image_key)
        name = f"images[{index}]" + (f" ({value})" if isinstance(value, str | os.PathLike) else "")
        if not isinstance(value, str | os.PathLike | torch.Tensor | np.ndarray):
            raise ConfigError(
                f"{name} must be an image path, tensor or array, or a record with one under "
                f"image_key={image_key!r}; got {type(item).__name__} {str(item)[:80]}."
            )
        image = loader({image_key: value})[image_key]
        for channel in range(image.shape[0]):
            where = name if image.shape[0] == 1 else f"{name}, channel {channel}"
            values = _flat(image[channel])
            values = values[_foreground_mask(values, foreground)]
            if values.size == 0:
                raise ConfigError(
                    f"{where} has no foreground ({_NO_FOREGROUND[foreground]}) for "
                    f"foreground={foreground!r}. Remove the image, or choose foreground='mean' "
                    "or None if its background is not 0."
                )
            marks = np.percentile(values, percentiles)
            if not marks[-1] > marks[0]:
                raise ConfigError(
                    f"{where} has a constant foreground between the cutoff percentiles "
                    f"{percentiles[0]:g} and {percentiles[-1]:g} (value {marks[0]:g}); remove "
                    "it or check the file."
                )
            mapped.append(low + (marks - marks[0]) * (high - low) / (marks[-1] - marks[0]))
        n_images += 1
    if not n_images:
        raise ConfigError(
            "learn_histogram_landmarks() got no images; pass reference-site records "
            "(e.g. mt.data.load_manifest(...)) or a list of image paths or tensors."
        )
    landmarks = np.mean(mapped, axis=0)
    landmarks[0], landmarks[-1] = low, high  # exact, not a float average of equal values
    if not np.all(np.diff(landmarks) > 0):
        raise ConfigError(
            f"The learned landmarks {np.round(landmarks, 3).tolist()} are not strictly "
            f"increasing: several percentiles of {percentiles.tolist()} fall on the same "
            "intensity in every image (few distinct values, or a large background inside the "
            "foreground). Use fewer percentiles, or foreground='nonzero'/'mean'."
        )
    return {
        "method": METHOD,
        "percentiles": percentiles.tolist(),
        "landmarks": landmarks.tolist(),
        "standard_range": [low, high],
        "foreground": foreground,
        "n_images": n_images,
    }


def histogram_standardize(
    image: torch.Tensor | np.ndarray, landmarks: LandmarksLike, *, clip: bool = False
) -> torch.Tensor:
    """Map each channel's landmark percentiles onto the learned landmarks, then to about [0, 1].

    The map is piecewise linear between the image's own landmark percentiles (computed over its
    foreground, chosen as when the landmarks were learned) and extends the first and last
    segments beyond the cutoffs (TorchIO's choice; Nyul and Udupa likewise stretch the ends).
    It is applied to every voxel; with ``foreground="nonzero"`` zero voxels (background) stay 0.
    Finally ``standard_range`` is mapped to [0, 1]: the image's cutoff percentiles become 0 and
    1, the voxels beyond them fall a little outside (unless ``clip``).

    Args:
        image: channel-first tensor ``(C, ...)``; every channel is mapped with the same landmarks.
        landmarks: from :func:`learn_histogram_landmarks`, or the path of a JSON file written by
            :func:`save_landmarks`.
        clip: clip the result to [0, 1] (saturates the voxels beyond the cutoffs).

    Returns:
        A float32 tensor of the same shape (a MetaTensor stays a MetaTensor, metadata kept). A
        channel with no foreground or a constant foreground becomes 0 (as in ``robust_scale``).
        Malformed landmarks or an image without a channel axis are a ``ConfigError``.

    Example:
        >>> import torch
        >>> landmarks = {"percentiles": [10, 50, 90], "landmarks": [0, 37.5, 100],
        ...              "standard_range": [0, 100], "foreground": "nonzero"}
        >>> x = torch.tensor([[0.0, 10, 20, 25, 30, 35, 40, 55, 70, 85, 100, 110]])
        >>> [round(v, 4) for v in histogram_standardize(x, landmarks)[0].tolist()]
        [0.0, -0.1875, 0.0, 0.0938, 0.1875, 0.2812, 0.375, 0.5312, 0.6875, 0.8438, 1.0, 1.1042]
    """
    spec = _resolve(landmarks)
    image = torch.as_tensor(image).float()
    if image.ndim < 2:
        raise ConfigError(
            f"histogram_standardize() needs a channel-first image (C, ...); got shape "
            f"{tuple(image.shape)}. Add a channel axis (image[None])."
        )
    percentiles = np.asarray(spec["percentiles"])
    low, high = spec["standard_range"]
    target = (np.asarray(spec["landmarks"]) - low) / (high - low)
    out = torch.zeros_like(image)
    for channel in range(image.shape[0]):
        x = image[channel]
        x = x.as_tensor() if hasattr(x, "as_tensor") else x  # plain arithmetic, meta kept on out
        values = _flat(x)
        mask = _foreground_mask(values, spec["foreground"])
        if not mask.any():
            continue
        source = np.percentile(values[mask], percentiles)
        if not source[-1] > source[0]:
            continue
        mapped = _piecewise_linear(x, source, target)
        if spec["foreground"] == "nonzero":
            mapped = torch.where(x != 0, mapped, torch.zeros_like(mapped))
        out[channel] = mapped.clamp(0.0, 1.0) if clip else mapped
    return out


class HistogramStandardized(MapTransform):
    """Dictionary wrapper of :func:`histogram_standardize` (Nyul-Udupa MR standardisation).

    Image-only: never give it a label key (label values carry meaning and must not change).

    Args:
        keys: image keys.
        landmarks: from :func:`learn_histogram_landmarks`, or the path of a JSON file written by
            :func:`save_landmarks` (read and checked here, once).
        clip: clip the result to [0, 1].
        allow_missing_keys: skip absent keys.

    Example:
        >>> import torch
        >>> landmarks = {"percentiles": [25, 75], "landmarks": [0, 100],
        ...              "standard_range": [0, 100], "foreground": "nonzero"}
        >>> standardize = HistogramStandardized("image", landmarks)
        >>> standardize({"image": torch.tensor([[0.0, 1, 2, 3, 4, 5]])})["image"].tolist()
        [[0.0, -0.5, 0.0, 0.5, 1.0, 1.5]]
    """

    def __init__(
        self,
        keys: KeysCollection,
        landmarks: LandmarksLike,
        clip: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.landmarks = _resolve(landmarks)
        self.clip = clip

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = histogram_standardize(torch.as_tensor(d[key]), self.landmarks, clip=self.clip)
        return d


def save_landmarks(landmarks: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write landmarks as readable JSON, atomically (a killed run leaves the old file or the new).

    ``landmarks`` (from :func:`learn_histogram_landmarks`) are checked first (``ConfigError``);
    missing folders are created; an unwritable place is an ``OutputPathError``. Returns ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> landmarks = {"percentiles": [1, 50, 99], "landmarks": [0, 40, 100]}
        >>> path = save_landmarks(landmarks, pathlib.Path(tempfile.mkdtemp()) / "t1.json")
        >>> load_landmarks(path)["landmarks"]
        [0.0, 40.0, 100.0]
    """
    data = _validated(landmarks, "landmarks")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_landmarks(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read landmarks written by :func:`save_landmarks` (checked, as plain JSON data).

    Defaults of missing fields: ``standard_range`` the first and last landmark, ``foreground``
    ``"nonzero"``. A missing file is an ``InputPathError``; a file that is not JSON or not
    landmarks a ``ConfigError`` naming the file and the field.

    Example:
        >>> import json, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t1.json"
        >>> _ = path.write_text(json.dumps({"percentiles": [1, 99], "landmarks": [0, 1]}))
        >>> load_landmarks(path)["standard_range"]
        [0.0, 1.0]
    """
    path = Path(path)
    if not path.is_file():
        raise InputPathError(
            f"Histogram landmarks file {path} does not exist (or is a folder); {_LEARN} and "
            "mt.transforms.save_landmarks(landmarks, path)."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"Histogram landmarks file {path} is not valid JSON ({err}); write it with "
            "mt.transforms.save_landmarks, or fix the file."
        ) from None
    return _validated(data, f"Histogram landmarks file {path}")


def _resolve(landmarks: LandmarksLike) -> dict[str, Any]:
    if isinstance(landmarks, str | os.PathLike):
        return load_landmarks(landmarks)
    return _validated(landmarks, "landmarks")


def _validated(data: Any, source: str) -> dict[str, Any]:
    """``data`` as checked, normalised landmarks (plain JSON types), else a ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source} must be a dict with 'percentiles' and 'landmarks' (got "
            f"{type(data).__name__}); {_LEARN}."
        )
    method = data.get("method", METHOD)
    if method != METHOD:
        raise ConfigError(f"{source}: method={method!r} is not supported; only {METHOD!r}.")
    for field in ("percentiles", "landmarks"):
        if field not in data:
            raise ConfigError(
                f"{source} has no {field!r} (its keys: {', '.join(map(str, data))}); {_LEARN}."
            )
    percentiles = _check_percentiles(data["percentiles"], f"{source}: 'percentiles'")
    values = _numbers(data["landmarks"])
    if values is None or len(values) != len(percentiles) or not np.all(np.diff(values) > 0):
        raise ConfigError(
            f"{source}: 'landmarks'={data['landmarks']!r} must be {len(percentiles)} finite, "
            f"strictly increasing numbers (one per percentile); {_LEARN}."
        )
    given_range = data.get("standard_range", (values[0], values[-1]))
    standard_range = check_pair(f"{source}: 'standard_range'", given_range)
    foreground = _check_foreground(data.get("foreground", "nonzero"), f"{source}: 'foreground'")
    extra = {"n_images": data["n_images"]} if "n_images" in data else {}
    return {
        "method": METHOD,
        "percentiles": percentiles.tolist(),
        "landmarks": values.tolist(),
        "standard_range": list(standard_range),
        "foreground": foreground,
        **extra,
    }


def _check_percentiles(value: Any, argument: str) -> np.ndarray:
    percentiles = _numbers(value)
    ok = (
        percentiles is not None
        and len(percentiles) >= 2
        and np.all(np.diff(percentiles) > 0)
        and percentiles[0] > 0
        and percentiles[-1] < 100
    )
    if not ok:
        raise ConfigError(
            f"{argument}={value!r} must be at least 2 strictly increasing numbers in (0, 100) "
            f"(the first and last are the cutoffs), e.g. {DEFAULT_PERCENTILES}."
        )
    return percentiles  # type: ignore[return-value]


def _check_foreground(value: Any, argument: str) -> str | None:
    return None if value is None else check_choice(argument, value, FOREGROUNDS)


def _numbers(value: Any) -> np.ndarray | None:
    """A 1D array of finite floats, or None when ``value`` is not a sequence of numbers."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return None
    try:
        numbers = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return numbers if numbers.size and np.all(np.isfinite(numbers)) else None


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().ravel()


def _foreground_mask(values: np.ndarray, foreground: str | None) -> np.ndarray:
    finite = np.isfinite(values)
    if foreground == "nonzero":
        return finite & (values != 0)
    if foreground == "mean":
        return finite & (values > values[finite].mean()) if finite.any() else finite
    return finite


def _piecewise_linear(x: torch.Tensor, source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """Map ``source[i] -> target[i]`` linearly in between; the end segments extend beyond."""
    width = np.diff(source)
    flat = width <= 1e-9 * (source[-1] - source[0])  # tied percentiles: a segment of no width
    slopes = np.where(flat, 0.0, np.diff(target) / np.where(flat, 1.0, width))
    as_tensor = lambda a: torch.as_tensor(a, dtype=x.dtype, device=x.device)  # noqa: E731
    segment = torch.bucketize(x.contiguous(), as_tensor(source[1:-1]), right=True)  # 0..n-2
    start, start_value = as_tensor(source)[segment], as_tensor(target)[segment]
    return start_value + as_tensor(slopes)[segment] * (x - start)
