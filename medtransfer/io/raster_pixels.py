"""Decoding of PNG, JPEG and TIFF pixels for :mod:`medtransfer.io.raster` (Pillow and tifffile).

PNG and JPEG go through Pillow, TIFF through tifffile (16-bit RGB, MinIsWhite, axes); a
compressed TIFF that tifffile cannot decode without the optional imagecodecs package falls back
to Pillow where Pillow reads it faithfully (gray, 8-bit RGB). Every decoder failure becomes a
:class:`~medtransfer.errors.RasterError` naming the file and the fix.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rgb.png"
    >>> Image.fromarray(np.full((2, 3, 3), 7, np.uint8)).save(path)
    >>> pixels = read_pixels(path, "png")
    >>> pixels.array.shape, pixels.notes
    ((2, 3), ['RGB with three equal channels: read as grayscale'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.errors import MedTransferError, RasterError
from medtransfer.io.limits import check_memory_budget

__all__ = ["FORMAT_NAMES", "RasterPixels", "decoding", "pillow_format", "read_pixels"]

FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}
_FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit)
_CONVERT_HINT = "save it as a grayscale or RGB PNG or TIFF (8 or 16 bits) and load that"


@dataclass
class RasterPixels:
    """Decoded pixels (rows, columns[, 3]) and what was done to them."""

    array: np.ndarray
    fmt: str
    notes: list[str] = field(default_factory=list)
    resolution: str = ""


def read_pixels(path: Path, fmt: str) -> RasterPixels:
    """Decoded pixels ``(rows, columns[, 3])`` of a ``"png"``, ``"jpeg"`` or ``"tiff"`` file."""
    return _read_tiff(path) if fmt == "tiff" else _read_pillow(path, fmt)


# --- Pillow: PNG, JPEG (and compressed TIFF when imagecodecs is missing) ---


@contextlib.contextmanager
def decoding(path: Path, fmt: str) -> Iterator[None]:
    """Turn any failure of a decoder into a RasterError naming the file (ours pass through)."""
    try:
        yield
    except MedTransferError:
        raise
    except BaseException as err:  # decoders raise anything (OSError, SyntaxError, struct.error)
        if isinstance(err, _FATAL):
            raise
        raise _damaged(path, fmt, err) from err


def _damaged(path: Path, fmt: str, err: BaseException) -> RasterError:
    name = FORMAT_NAMES.get(fmt, fmt.upper())
    text = str(err).strip()[:160]
    detail = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if type(err).__name__ == "UnidentifiedImageError" or "cannot identify" in text:
        dicom = _has_dicom_marker(path)
        hint = (
            "It is a DICOM file: rename it to .dcm."
            if dicom
            else f"It is not a {name} image (wrong suffix, or not an image at all)."
        )
        return RasterError(f"Cannot read {path} as {name}: {hint}")
    if "truncated" in text or isinstance(err, EOFError):
        return RasterError(
            f"{path} is truncated ({detail}): its {name} data stops early. Copy or export the "
            "file again."
        )
    return RasterError(
        f"Cannot read {path} as {name} ({detail}). The file is damaged or uses a variant "
        f"medtransfer cannot read (e.g. 12-bit JPEG): {_CONVERT_HINT}."
    )


def _has_dicom_marker(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def pillow_format(im: Any, fmt: str) -> str:
    return {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff"}.get(im.format, fmt)


def _check_png_depth(path: Path) -> None:
    """Pillow silently reduces 16-bit colour PNG to 8 bits: refuse it instead."""
    with open(path, "rb") as handle:
        head = handle.read(33)
    if len(head) < 26 or head[12:16] != b"IHDR":
        return  # Pillow reports the damage
    depth, colour_type = head[24], head[25]
    if depth == 16 and colour_type in (2, 4, 6):
        kind = {2: "RGB", 4: "grayscale with alpha", 6: "RGB with alpha"}[colour_type]
        raise RasterError(
            f"{path} is a 16-bit {kind} PNG, which Pillow can only read reduced to 8 bits. Save "
            "it as a 16-bit grayscale PNG (drop alpha) or as a 16-bit TIFF (tifffile keeps "
            "16-bit RGB), and load that."
        )


def _read_pillow(path: Path, fmt: str) -> RasterPixels:
    from PIL import Image

    with decoding(path, fmt):
        if fmt == "png":
            _check_png_depth(path)
        with Image.open(path) as im:
            fmt = pillow_format(im, fmt)
            columns, rows = im.size
            channels = len(im.getbands())
            check_memory_budget(
                rows * columns * channels * 4,
                path=path,
                what=f"the {columns} x {rows} image ({im.mode})",
                error=RasterError,
            )
            if fmt == "png" and getattr(im, "n_frames", 1) > 1:
                raise RasterError(
                    f"{path} is an animated PNG ({im.n_frames} frames); medtransfer reads one "
                    "2D image per file. Save the frame you need as its own PNG."
                )
            im.load()
            notes: list[str] = []
            array = _pillow_array(im, path, notes)
            resolution = _resolution_note(im.info.get("dpi"), "dpi")
    return RasterPixels(_gray_if_equal(array, notes), fmt, notes, resolution)


def _pillow_array(im: Any, path: Path, notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode == "1":
        notes.append("1-bit image: values 0 and 1")
        return np.asarray(im, dtype=np.uint8)
    if mode in ("L", "I", "F"):
        return np.asarray(im)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.int16 if mode.endswith("S") else np.uint16)
    if mode in ("P", "PA"):
        return _palette_values(im, notes)
    if mode in ("LA", "La"):
        notes.append("alpha channel dropped")
        return np.asarray(im)[..., 0]
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("RGBA", "RGBa", "RGBX"):
        if mode != "RGBX":
            notes.append("alpha channel dropped")
        return np.asarray(im)[..., :3]
    if mode in ("CMYK", "YCbCr"):
        notes.append(f"{mode} converted to RGB")
        return np.asarray(im.convert("RGB"))
    raise RasterError(
        f"{path} holds {mode} pixels, which medtransfer does not read as gray or RGB: "
        f"{_CONVERT_HINT}."
    )


def _palette_values(im: Any, notes: list[str]) -> np.ndarray:
    indices = np.asarray(im.convert("P") if im.mode == "PA" else im)
    if im.mode == "PA":
        notes.append("alpha channel dropped")
    palette = np.asarray(im.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    used = np.unique(indices)
    if used.size and used.max() < len(palette):
        entries = palette[used]
        if (entries == entries[:, :1]).all():
            notes.append("palette of grays: each index replaced by its gray value")
            return palette[:, 0][indices]
    notes.append(
        "palette colours are not gray: the palette indices are kept (as for a label map); "
        "convert the file to RGB to load its colours"
    )
    return indices


def _gray_if_equal(array: np.ndarray, notes: list[str]) -> np.ndarray:
    """An RGB array whose three channels are equal is a grayscale image saved as RGB."""
    if array.ndim == 3 and array.shape[-1] == 3:
        first = array[..., 0]
        if np.array_equal(first, array[..., 1]) and np.array_equal(first, array[..., 2]):
            notes.append("RGB with three equal channels: read as grayscale")
            return np.ascontiguousarray(first)
    return array


def _resolution_note(value: Any, unit: str) -> str:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        return ""
    if not (x > 0 and y > 0) or (unit == "dpi" and round(x) == round(y) == 72):
        return ""  # 72 dpi is the writers' default, not a measurement
    per_mm = (x / 25.4, y / 25.4) if unit == "dpi" else (x / 10.0, y / 10.0)
    size = tuple(round(1 / v, 4) for v in per_mm)
    return (
        f"the file's resolution tag ({x:g} x {y:g} pixels per {'inch' if unit == 'dpi' else 'cm'}"
        f", {size[0]} x {size[1]} mm per pixel) is not used: it usually describes printing; "
        "pass spacing=... if it is the real pixel size"
    )


# --- tifffile: TIFF, 8/16/32-bit, gray or RGB ---


def _read_tiff(path: Path) -> RasterPixels:
    import tifffile

    with decoding(path, "tiff"), tifffile.TiffFile(path) as tif:
        pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
        if len(pages) != 1:
            raise RasterError(
                f"{path} holds {len(pages)} pages (a stack or several images); medtransfer reads "
                "one 2D image per file. Save each page as its own TIFF (e.g. with tifffile)."
            )
        page = pages[0]
        dtype = np.dtype(page.dtype) if page.dtype is not None else None
        if dtype is None or dtype.kind not in "biuf":
            raise RasterError(f"{path} holds pixels of type {dtype}: {_CONVERT_HINT}.")
        check_memory_budget(
            int(np.prod(page.shape)) * max(4, dtype.itemsize),
            path=path,
            what=f"the image {page.shape} ({dtype.name})",
            error=RasterError,
        )
        photometric = int(page.photometric)
        if photometric not in (0, 1, 2):
            raise RasterError(
                f"{path} is a TIFF with photometric interpretation {photometric} (not MinIsWhite "
                f"0, MinIsBlack 1 or RGB 2), which medtransfer does not read: "
                f"{_CONVERT_HINT}."
            )
        try:
            array = page.asarray()
        except ValueError as err:
            if "imagecodecs" not in str(err):
                raise
            return _tiff_without_codecs(path, page, err)
        resolution = _tiff_resolution(page)
        notes: list[str] = []
        array = _yx_samples(array, page.axes, path)
    if array.ndim == 3:
        if array.shape[-1] in (2, 4):
            notes.append("alpha channel dropped")
            array = array[..., : array.shape[-1] - 1]
        array = array[..., 0] if array.shape[-1] == 1 else array
    if dtype.kind == "b":
        notes.append("1-bit image: values 0 and 1")
        array = array.astype(np.uint8)
    if photometric == 0:
        array = _invert_min_is_white(array, page, path)
        notes.append("MinIsWhite TIFF inverted (high values are bright), like DICOM MONOCHROME1")
    return RasterPixels(_gray_if_equal(array, notes), "tiff", notes, resolution)


def _yx_samples(array: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Rows, columns, then samples, from tifffile's axes (e.g. "YX", "YXS", "SYX")."""
    extra = [i for i, a in enumerate(axes) if a not in "YXS" and array.shape[i] != 1]
    if extra or "Y" not in axes or "X" not in axes:
        raise RasterError(
            f"{path} is a TIFF with axes {axes} {array.shape}; medtransfer reads one 2D gray or "
            "RGB image per file. Save each image as its own TIFF."
        )
    keep = [a for a in axes if a in "YXS"]
    array = array.reshape([s for a, s in zip(axes, array.shape) if a in "YXS"])
    order = [keep.index(a) for a in "YXS" if a in keep]
    return np.moveaxis(array, order, range(len(order)))


def _invert_min_is_white(array: np.ndarray, page: Any, path: Path) -> np.ndarray:
    if array.dtype.kind != "u":
        raise RasterError(
            f"{path} is a MinIsWhite TIFF of {array.dtype} values, which have no fixed range to "
            f"invert: {_CONVERT_HINT}."
        )
    bits = int(getattr(page, "bitspersample", array.dtype.itemsize * 8))
    return np.asarray((1 << bits) - 1 - array.astype(np.int64), dtype=array.dtype)


def _tiff_resolution(page: Any) -> str:
    unit = int(getattr(page, "resolutionunit", 1) or 1)
    if unit not in (2, 3):  # NONE: no physical meaning
        return ""
    return _resolution_note(page.resolution, "dpi" if unit == 2 else "dpcm")


def _tiff_without_codecs(path: Path, page: Any, err: Exception) -> RasterPixels:
    """Compressed TIFF (LZW, JPEG) without imagecodecs: Pillow reads gray and 8-bit RGB right."""
    samples, bits = int(page.samplesperpixel), int(page.bitspersample)
    if int(page.photometric) == 1 and samples == 1 or int(page.photometric) == 2 and bits == 8:
        pixels = _read_pillow(path, "tiff")
        pixels.fmt = "tiff"
        return pixels
    raise RasterError(
        f"{path} is a compressed TIFF ({page.compression.name}) that needs the imagecodecs "
        f"package for its layout: `pip install imagecodecs`, or re-save it uncompressed or "
        f"with deflate. ({err})"
    )
