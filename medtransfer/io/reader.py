"""A MONAI ``ImageReader`` that uses medtransfer's loaders inside MONAI pipelines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.image_reader import ImageReader

from medtransfer.io.load import load
from medtransfer.io.nifti import is_nifti_path
from medtransfer.io.raster import RASTER_SUFFIXES

__all__ = ["MedTransferReader"]

_SUFFIXES = (".dcm", ".dicom", ".ima", *RASTER_SUFFIXES)


class MedTransferReader(ImageReader):
    """MONAI reader backed by :func:`medtransfer.io.load` (same ordering, checks and affine).

    Accepts NIfTI files, DICOM files and folders, and PNG/JPEG/TIFF images (a colour image keeps
    its channels last, ``original_channel_dim = -1``). A list of paths is stacked along a new
    first (channel) axis, as MONAI's own readers do; their geometry must agree.

    Args:
        **load_kwargs: passed to :func:`medtransfer.io.load` (``select``, ``nonuniform``,
            ``on_unreadable``, ``voi``, ``spacing``, ...). ``MedTransferReader(on_unreadable="warn")`` skips damaged
            slices with a :class:`~medtransfer.errors.DataWarning` instead of failing the case.

    Example:
        >>> from monai.transforms import LoadImaged
        >>> import medtransfer as mt
        >>> loader = LoadImaged(keys=["image"], reader=mt.io.MedTransferReader(), ensure_channel_first=True)
    """

    def __init__(self, **load_kwargs: Any) -> None:
        super().__init__()
        self.load_kwargs = load_kwargs

    def verify_suffix(
        self, filename: Sequence[os.PathLike[str] | str] | os.PathLike[str] | str
    ) -> bool:
        names = [filename] if isinstance(filename, str | os.PathLike) else list(filename)
        return all(
            is_nifti_path(n) or str(n).lower().endswith(_SUFFIXES) or Path(n).is_dir()
            for n in names
        )

    def read(self, data: Sequence[os.PathLike[str] | str] | os.PathLike[str] | str, **kwargs: Any):
        names = [data] if isinstance(data, str | os.PathLike) else list(data)
        images = [load(n, **{**self.load_kwargs, **kwargs}) for n in names]
        return images[0] if len(images) == 1 else images

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        images = img if isinstance(img, list | tuple) else [img]
        first = images[0]
        meta = {k: v for k, v in first.meta.items() if k not in ("affine",)}
        affine = first.affine.numpy().astype(np.float64)
        meta["affine"] = affine
        meta["original_affine"] = affine.copy()
        arrays = [np.asarray(i.as_tensor().numpy()) for i in images]
        if len(arrays) == 1:
            meta["original_channel_dim"] = (
                float("nan") if first.meta.get("original_channel_dim") == "no_channel" else -1
            )
            return arrays[0], meta
        for other in images[1:]:
            if tuple(other.shape) != tuple(first.shape) or not np.allclose(
                other.affine.numpy(), affine, atol=1e-4
            ):
                from medtransfer.errors import SeriesError

                raise SeriesError(
                    f"Cannot stack {other.meta.get('filename_or_obj')} with {first.meta.get('filename_or_obj')}: "
                    "shapes or affines differ. Resample them to one grid first."
                )
        meta["original_channel_dim"] = 0
        return np.stack(arrays, axis=0), meta
