"""``image_info``: the grid of one image file (shape, spacing, origin, direction) from its header.

``medtransfer inspect`` of a file shows where the image lies in space without decoding its voxels
or importing MONAI and torch (which ``load`` needs for its ``MetaTensor``): a label map that
does not sit on its image shows up as a different origin or direction at a glance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medtransfer.errors import DicomError, InputPathError

__all__ = ["ImageInfo", "image_info"]


@dataclass(frozen=True)
class ImageInfo:
    """Where an image's voxels lie: the same grid ``mt.io.load`` returns, from the header only.

    Attributes:
        path: the file.
        format: ``"nifti"``, ``"dicom"``, ``"png"``, ``"jpeg"`` or ``"tiff"``.
        modality: DICOM Modality (``None`` for NIfTI).
        shape: spatial shape as ``load`` returns it (channels last for colour).
        affine: 4x4 voxel-to-RAS+ millimetres, equal to ``load(path).affine``.
        dtype: the stored voxel type (``load`` returns float32 by default).
    """

    path: Path
    format: str
    modality: str | None
    shape: tuple[int, ...]
    affine: np.ndarray
    dtype: str

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial axis."""
        n = min(len(self.shape), 3)
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :n], axis=0))

    @property
    def origin(self) -> tuple[float, float, float]:
        """RAS+ position (mm) of the centre of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """3x3 direction cosines (columns: voxel axes in RAS+)."""
        return self.affine[:3, :3] / np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def orientation(self) -> str:
        """Axis codes such as ``"RAS"`` or ``"LPS"`` (nearest axes for oblique images)."""
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))


def image_info(path: str | os.PathLike[str]) -> ImageInfo:
    """Read the grid of a NIfTI (or MGH) file, a single DICOM file or a PNG/JPEG/TIFF image.

    Multi-frame DICOM (whose geometry needs every frame's position) is loaded in full, and so
    is a colour PNG/JPEG/TIFF (one whose three channels are equal loads as grayscale). A raster
    image has the identity affine (1 mm pixels assumed; see :mod:`medtransfer.io.raster`).

    Example:
        >>> import medtransfer as mt, numpy as np, tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "label.nii.gz"
        >>> affine = np.diag([2.0, 2.0, 3.0, 1.0]); affine[:3, 3] = (10, -5, 30)
        >>> _ = mt.io.save(np.zeros((4, 5, 6), np.uint8), out, affine=affine)
        >>> info = image_info(out)
        >>> info.shape, info.spacing, info.origin, info.orientation, info.dtype
        ((4, 5, 6), (2.0, 2.0, 3.0), (10.0, -5.0, 30.0), 'RAS', 'uint8')
    """
    from medtransfer.io.nifti import is_nifti_path

    path = Path(path)
    if not path.is_file():
        raise InputPathError(
            f"Not found or not a file: {path}. Pass a NIfTI, DICOM, PNG, JPEG or TIFF file."
        )
    if is_nifti_path(path):
        return _nifti_info(path)
    from medtransfer.io.raster import raster_format, raster_header

    if raster_format(path) is not None:
        fmt, shape, stored = raster_header(path)
        return ImageInfo(path, fmt, None, shape, np.eye(4), stored)
    return _dicom_info(path)


def _nifti_info(path: Path) -> ImageInfo:
    import nibabel as nib

    from medtransfer.errors import NiftiError
    from medtransfer.io.nifti import checked_affine, slope_inter

    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
        slope, inter = slope_inter(img.header)
        stored = np.dtype(img.get_data_dtype()).name
    except Exception as err:  # nibabel raises many types for damaged headers
        raise NiftiError(
            f"Cannot read the header of NIfTI file {path}: {type(err).__name__}. The file is "
            "damaged or not NIfTI; re-export it."
        ) from err
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    scaled = slope not in (None, 1.0) or inter not in (None, 0.0)
    return ImageInfo(
        path, "nifti", None, shape, checked_affine(img, path), "float32" if scaled else stored
    )


def _dicom_info(path: Path) -> ImageInfo:
    from medtransfer.io.dicom_file import _flat_affine as flat_affine  # renamed when io settles
    from medtransfer.io.dicom_header import read_header

    header = read_header(path, force=True)
    if header is None:
        raise DicomError(
            f"{path} is neither NIfTI (.nii/.nii.gz) nor DICOM (no DICOM header found); pass a "
            "NIfTI file, a DICOM file or a DICOM folder."
        )
    if header.frames > 1 or header.is_enhanced or not header.has_pixels:
        from medtransfer.io.load import load

        image = load(path)  # geometry from every frame, and the usual errors
        shape = tuple(int(s) for s in image.shape)
        return ImageInfo(
            path, "dicom", header.modality, shape, image.affine.numpy(), _stored_type(header)
        )
    step = header.spacing_between_slices or header.slice_thickness or 1.0
    shape = (header.columns, header.rows) + ((3,) if header.samples_per_pixel == 3 else ())
    affine = flat_affine(header, abs(step))
    return ImageInfo(path, "dicom", header.modality, shape, affine, _stored_type(header))


def _stored_type(header) -> str:
    if header.bits_allocated not in (8, 16, 32):
        return f"{header.bits_allocated}-bit"
    kind = "int" if header.pixel_representation == 1 else "uint"
    return f"{kind}{header.bits_allocated}"
