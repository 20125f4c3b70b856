"""PNG, JPEG and TIFF images (exported radiographs and their masks) as MetaTensors.

Radiographs often reach a project as PNG or JPEG exports (public chest X-ray sets, a viewer's
"save as") or as TIFF from film digitisers. Such files carry no patient geometry, so:

- **axes**: the file's pixel array (rows x columns) is transposed as a single-frame DICOM file is
  here, so ``image[x, y]`` is column ``x`` (left to right) of row ``y`` (top to bottom). A PNG
  export of a DICOM radiograph's pixel array loads to the same array as the DICOM file.
- **spacing**: unknown. The affine is the identity (1 pixel = 1 mm) and ``meta["spacing_known"]``
  is False, unless ``spacing=`` gives the pixel size in mm. Resolution tags (dpi) are reported in
  a note but not used: they usually describe printing, not the detector.
- **values**: as stored, as float32 by default: 0..255 for 8-bit, 0..65535 for 16-bit, never
  rescaled. RGB keeps its channels last (``meta["original_channel_dim"] = -1``), as colour DICOM
  does, except that an RGB file whose three channels are equal (a grayscale image saved as RGB)
  loads as grayscale. Alpha is dropped. A palette of grays gives those grays, any other palette
  its indices (a label map, as ``numpy.asarray(PIL.Image.open(...))`` gives). A 1-bit image gives
  0 and 1. TIFF MinIsWhite is inverted, like DICOM MONOCHROME1.
- **refused** with a :class:`~medtransfer.errors.RasterError` naming the file: damaged or
  truncated files, several pages (TIFF) or frames (PNG), 16-bit colour PNG (Pillow would reduce
  it to 8 bits), and colour spaces with no gray or RGB meaning.

Every adjustment is a line of ``meta["geometry_notes"]`` (axes, spacing) or
``meta["intensity_notes"]`` (alpha, palette, equal channels, inversion).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "chest.png"
    >>> pixels = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000  # 3 rows, 4 columns
    >>> Image.fromarray(pixels).save(path)
    >>> image = load_raster(path)
    >>> tuple(image.shape), image.dtype, float(image[3, 2]), image.meta["spacing_known"]
    ((4, 3), torch.float32, 11000.0, False)
    >>> load_raster(path, spacing=0.14).meta["spacing"]
    (0.14, 0.14)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.io.image import make_image
from medtransfer.io.raster_pixels import FORMAT_NAMES, decoding, pillow_format, read_pixels

__all__ = ["RASTER_SUFFIXES", "load_raster", "raster_format", "raster_header"]

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_BY_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)
# Pillow modes whose type the header tells (colour modes need the pixels: see raster_header)
_PILLOW_TYPES = {"L": "uint8", "I": "int32", "F": "float32", "I;16S": "int16"}
_PILLOW_TYPES.update({mode: "uint16" for mode in ("I;16", "I;16B", "I;16L", "I;16N")})


def raster_format(path: str | os.PathLike[str]) -> str | None:
    """``"png"``, ``"jpeg"`` or ``"tiff"`` from the suffix, else from the first bytes; else None.

    Files without one of :data:`RASTER_SUFFIXES` are sniffed (a PACS export named ``IMG0001``),
    and a file with DICOM's 'DICM' marker is never a raster image, whatever its name.

    Example:
        >>> raster_format("chest.PNG"), raster_format("scan.tif"), raster_format("ct.nii.gz")
        ('png', 'tiff', None)
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:  # missing (a name only): the suffix tells
        head = b""
    if head[128:132] == b"DICM":
        return None
    by_suffix = _BY_SUFFIX.get(path.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    return next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)


def load_raster(
    path: str | os.PathLike[str],
    spacing: float | Sequence[float] | None = None,
    *,
    dtype: Any = np.float32,
):
    """Load a PNG, JPEG or TIFF file as a 2D MetaTensor ``(x, y)``, or ``(x, y, 3)`` for colour.

    Args:
        path: the image file (format from the suffix, else from the first bytes).
        spacing: pixel size in mm, one number or ``(x, y)`` (along columns, along rows); without
            it 1 mm is assumed and ``meta["spacing_known"]`` is False.
        dtype: type of the result (default float32); ``None`` keeps the stored integers
            (uint16 as int32: torch has no full uint16 support), e.g. for label maps.

    Raises:
        RasterError: the file is damaged, truncated, not an image, or a layout refused above.
        ConfigError: ``spacing`` is not one or two positive numbers.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> from PIL import Image
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "mask.png"
        >>> Image.fromarray(np.eye(3, dtype=np.uint8)).save(path)
        >>> load_raster(path, dtype=None).dtype
        torch.uint8
    """
    path = Path(path)
    pixel_size = check_raster_spacing(spacing)
    fmt = raster_format(path) or "png"
    pixels = read_pixels(path, fmt)
    array = _to_dtype(pixels.array, dtype)
    stored = np.dtype(pixels.array.dtype).name
    colour = array.ndim == 3
    name = FORMAT_NAMES[pixels.fmt]
    geometry = [
        "axes: x = columns (left to right), y = rows (top to bottom), as a single-frame DICOM "
        "file loads; not a patient (RAS) frame"
    ]
    if pixel_size is None:
        geometry.append(
            f"{name} has no physical pixel spacing: 1 pixel = 1 mm assumed (identity affine); "
            "pass spacing=... (mm) when the pixel size is known"
        )
    else:
        geometry.append(f"pixel spacing {pixel_size} mm given by the caller")
    if pixels.resolution:
        geometry.append(pixels.resolution)
    affine = np.diag([*(pixel_size or (1.0, 1.0)), 1.0, 1.0])
    return make_image(
        np.ascontiguousarray(array.transpose((1, 0, 2) if colour else (1, 0))),
        affine,
        source=str(path),
        channel_last=colour,
        extra={
            "format": pixels.fmt,
            "stored_dtype": stored,
            "spacing_known": pixel_size is not None,
            "geometry_notes": geometry,
            "intensity_notes": pixels.notes,
        },
    )


def check_raster_spacing(spacing: Any) -> tuple[float, float] | None:
    """``(x, y)`` pixel size in mm from one number or a pair; None stays None.

    Example:
        >>> check_raster_spacing(0.2), check_raster_spacing((0.1, 0.2)), check_raster_spacing(None)
        ((0.2, 0.2), (0.1, 0.2), None)
    """
    if spacing is None:
        return None
    values = [spacing] if isinstance(spacing, int | float) else spacing
    try:
        pair = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) == 1:
        pair = pair * 2
    if len(pair) != 2 or not all(math.isfinite(v) and v > 0 for v in pair):
        raise ConfigError(
            f"spacing={spacing!r:.60} must be the pixel size in mm: one positive number, or two "
            "(x along columns, y along rows), e.g. spacing=0.143."
        )
    return pair  # type: ignore[return-value]


def raster_header(path: str | os.PathLike[str]) -> tuple[str, tuple[int, ...], str]:
    """``(format, shape as load_raster returns it, stored dtype)`` from the header when it can.

    Colour files are decoded (an RGB file with three equal channels loads as grayscale, which
    only the pixels tell).

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> from PIL import Image
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> Image.fromarray(np.zeros((3, 5), np.uint16)).save(path)
        >>> raster_header(path)
        ('png', (5, 3), 'uint16')
    """
    path = Path(path)
    fmt = raster_format(path) or "png"
    with decoding(path, fmt):
        if fmt == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
                page = pages[0] if len(pages) == 1 else None
                simple = (
                    page is not None
                    and len(page.shape) == 2
                    and getattr(page, "samplesperpixel", 1) == 1
                    and int(page.photometric) == 1
                    and page.dtype is not None
                    and page.dtype.kind in "uif"
                )
                if simple:
                    rows, columns = page.shape[-2:]  # type: ignore[union-attr]
                    return fmt, (columns, rows), np.dtype(page.dtype).name  # type: ignore[union-attr]
        else:
            from PIL import Image

            with Image.open(path) as im:
                kind = _PILLOW_TYPES.get(im.mode)
                if kind is not None and getattr(im, "n_frames", 1) == 1:
                    columns, rows = im.size
                    return pillow_format(im, fmt), (columns, rows), kind
    image = load_raster(path, dtype=None)
    return image.meta["format"], tuple(int(s) for s in image.shape), image.meta["stored_dtype"]


def _to_dtype(array: np.ndarray, dtype: Any) -> np.ndarray:
    if dtype is not None:
        return array.astype(dtype)
    if array.dtype == np.uint16:
        return array.astype(np.int32)
    if array.dtype == np.uint32:
        return array.astype(np.int64)
    return array
