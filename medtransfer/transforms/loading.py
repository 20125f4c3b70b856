"""Loading inside pipelines: file paths through medtransfer's reader, in-memory images as they are."""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirst, MapTransform

from medtransfer.errors import ConfigError
from medtransfer.io import load

__all__ = ["LoadVolumed"]


class LoadVolumed(MapTransform):
    """Load each key channel-first: paths with :func:`medtransfer.io.load`, tensors kept.

    A path (NIfTI file, DICOM file or series folder) goes through :func:`medtransfer.io.load`
    (positions, not file names, order DICOM slices; errors stay ``MedTransferError``s). An in-memory
    ``MetaTensor`` or array (e.g. from ``mt.data.synthetic.phantoms``) is used as is, with a
    channel axis added when its metadata says it has none (or it has no metadata). The result
    is always a new ``MetaTensor``; the record's own tensors are never modified.

    Args:
        keys: keys of images/label maps to load.
        allow_missing_keys: skip absent keys.
        volumetric: give 2D images (one DICOM file, a 2D NIfTI, an ``(X, Y)`` array) a third
            spatial axis of length 1, so pipelines written for volumes (the CT/MRI presets,
            2D/2.5D included) accept them; ``meta["expanded_from_2d"]`` records it so results
            can be put back on the 2D grid (``predict`` does).
        optional_keys: keys a record may lack (the label of an eval pipeline: inference has
            none); any other missing key is a ``ConfigError`` naming it and the record's keys.
        **load_kwargs: passed to :func:`medtransfer.io.load` (``select=``, ``nonuniform=``, ...).

    Example:
        >>> import torch
        >>> d = LoadVolumed("image")({"image": torch.zeros(4, 4, 2)})
        >>> tuple(d["image"].shape)
        (1, 4, 4, 2)
    """

    def __init__(
        self,
        keys: KeysCollection,
        allow_missing_keys: bool = False,
        *,
        volumetric: bool = False,
        optional_keys: KeysCollection = (),
        **load_kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.volumetric = volumetric
        self.optional_keys = (
            {optional_keys} if isinstance(optional_keys, str) else set(optional_keys)
        )
        self.load_kwargs = load_kwargs

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        missing = [k for k in self.keys if k not in d and k not in self.optional_keys]
        if missing and not self.allow_missing_keys:
            raise ConfigError(
                f"The record has no {missing[0]!r} (its keys: {', '.join(map(str, d)) or 'none'}). "
                "Training and evaluation need an image and, for segmentation, a label per record; "
                "the eval pipeline and predict accept records without a label."
            )
        for key in (k for k in self.keys if k in d):
            value = d[key]
            if isinstance(value, str | os.PathLike):
                # mt.io.load directly: MONAI's LoadImage would turn our clear errors into a
                # generic "cannot find a suitable reader" RuntimeError
                d[key] = _channel_first(load(value, **self.load_kwargs))
            elif isinstance(value, torch.Tensor | np.ndarray):
                d[key] = _channel_first(value)
            else:
                raise ConfigError(
                    f"'{key}' must be an image path or an image tensor; got {type(value).__name__} "
                    f"({value!r}). For classification the class value belongs under another key."
                )
            if self.volumetric and d[key].ndim == 3:
                d[key] = _add_slice_axis(d[key])
        return d


def _add_slice_axis(image: MetaTensor) -> MetaTensor:
    """``(C, X, Y)`` -> ``(C, X, Y, 1)``; the 4x4 affine already places the one slice in space."""
    # a new MetaTensor rather than image.unsqueeze(): the latter keeps internal state with which
    # MONAI's padding no longer updates the affine along the new axis
    meta = {k: v for k, v in image.meta.items() if k != "affine"}  # passed as affine= below
    meta["expanded_from_2d"] = True
    meta["spatial_shape"] = np.asarray([*image.shape[1:], 1], dtype=np.int64)
    return MetaTensor(image.as_tensor().unsqueeze(-1), affine=image.affine.clone(), meta=meta)


def _channel_first(value: torch.Tensor | np.ndarray) -> MetaTensor:
    if isinstance(value, MetaTensor):
        image = value.clone()
    else:
        image = MetaTensor(
            torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value)
        )
    channel_dim = image.meta.get("original_channel_dim", float("nan"))
    if isinstance(channel_dim, float) and math.isnan(channel_dim) or channel_dim == "no_channel":
        return EnsureChannelFirst(channel_dim="no_channel")(image)
    return EnsureChannelFirst()(image)
