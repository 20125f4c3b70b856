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
        **load_kwargs: passed to :func:`medtransfer.io.load` (``select=``, ``nonuniform=``, ...).

    Example:
        >>> import torch
        >>> d = LoadVolumed("image")({"image": torch.zeros(4, 4, 2)})
        >>> tuple(d["image"].shape)
        (1, 4, 4, 2)
    """

    def __init__(
        self, keys: KeysCollection, allow_missing_keys: bool = False, **load_kwargs: Any
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.load_kwargs = load_kwargs

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
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
        return d


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
