"""medtransfer.io: DICOM and NIfTI reading and writing that never returns a wrong volume.

Example:
    >>> import medtransfer as mt, numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "ct.nii.gz"
    >>> _ = mt.io.save(np.zeros((4, 4, 4), np.float32), out, affine=np.eye(4))
    >>> tuple(mt.io.load(out).shape)
    (4, 4, 4)
"""

from medtransfer.io.atomic import atomic_path
from medtransfer.io.dicom_seg import save_dicom_seg
from medtransfer.io.dicom_write import write_dicom_series
from medtransfer.io.image import make_image
from medtransfer.io.load import load
from medtransfer.io.nifti import save_nifti as save
from medtransfer.io.reader import MedTransferReader
from medtransfer.io.series_discovery import list_series
from medtransfer.io.series_info import SeriesInfo

__all__ = [
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
