"""medtransfer.io: DICOM, NIfTI and PNG/JPEG/TIFF reading and writing that never returns a wrong volume.

Names are imported on first use, so header-only work (``list_series``, ``medtransfer inspect``)
does not pay for importing MONAI and torch, which ``load`` needs for its ``MetaTensor``.

Example:
    >>> import medtransfer as mt, numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "ct.nii.gz"
    >>> _ = mt.io.save(np.zeros((4, 4, 4), np.float32), out, affine=np.eye(4))
    >>> tuple(mt.io.load(out).shape)
    (4, 4, 4)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager: the submodule ``load`` shares its name with the function, and importing the submodule
# later would rebind ``medtransfer.io.load`` to the module. It imports neither MONAI nor torch.
from medtransfer.io.load import load

if TYPE_CHECKING:  # pragma: no cover - static analysers and the API docs see the real names
    from medtransfer.io.atomic import atomic_path
    from medtransfer.io.dicom_seg import save_dicom_seg
    from medtransfer.io.dicom_write import write_dicom_series
    from medtransfer.io.image import make_image
    from medtransfer.io.image_header import ImageInfo, image_info
    from medtransfer.io.nifti import save_nifti as save
    from medtransfer.io.reader import MedTransferReader
    from medtransfer.io.series_discovery import list_series
    from medtransfer.io.series_info import SeriesInfo

#: public name -> (module, attribute)
_LAZY = {
    "ImageInfo": ("image_header", "ImageInfo"),
    "image_info": ("image_header", "image_info"),
    "MedTransferReader": ("reader", "MedTransferReader"),
    "SeriesInfo": ("series_info", "SeriesInfo"),
    "atomic_path": ("atomic", "atomic_path"),
    "list_series": ("series_discovery", "list_series"),
    "make_image": ("image", "make_image"),
    "save": ("nifti", "save_nifti"),
    "save_dicom_seg": ("dicom_seg", "save_dicom_seg"),
    "write_dicom_series": ("dicom_write", "write_dicom_series"),
}

__all__ = [
    "ImageInfo",
    "image_info",
    "MedTransferReader",
    "SeriesInfo",
    "atomic_path",
    "list_series",
    "load",
    "make_image",
    "save",
    "save_dicom_seg",
    "write_dicom_series",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(f"medtransfer.io.{module}"), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medtransfer.io' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
