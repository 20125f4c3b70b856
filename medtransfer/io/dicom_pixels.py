"""Pixel data of DICOM files: a lean read for uncompressed data, pydicom's decoders otherwise.

The lean path reads the stored integers straight from the file offset recorded by the header
parse (no second parse, no ``pixel_array`` overhead); compressed transfer syntaxes (JPEG
baseline/lossless, JPEG-LS, JPEG 2000, RLE, deflate) go through pydicom and its pylibjpeg /
pyjpegls plugins. Either way the caller gets stored values shaped (frames, rows, columns[, 3]).

The header must agree with the pixel bytes, or nothing is returned: uncompressed data must
hold exactly Rows x Columns x frames x samples x BitsAllocated bits (plus one pad byte for odd
lengths), and decoded frames must have the declared shape. Sizes are checked against the file
and the memory budget (:mod:`medtransfer.io.limits`) before anything is allocated.

Example:
    >>> import numpy as np, tempfile
    >>> from medtransfer.io.dicom_header import read_header
    >>> from medtransfer.io.dicom_write import write_dicom_series
    >>> files = write_dicom_series(np.zeros((8, 6, 1)), tempfile.mkdtemp(), affine=np.eye(4))
    >>> read_stored_frames(read_header(files[0])).shape
    (1, 6, 8)
"""

from __future__ import annotations

import numpy as np

from medtransfer.errors import DicomError
from medtransfer.io.dicom_guard import FATAL_EXCEPTIONS, describe_exception, reading
from medtransfer.io.dicom_header import SliceHeader, file_size
from medtransfer.io.limits import check_declared_bytes, check_memory_budget

__all__ = [
    "check_pixel_header",
    "decode_dataset_frames",
    "read_stored_frames",
    "transfer_syntax_name",
]

_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": "<",  # implicit VR little endian
    "1.2.840.10008.1.2.1": "<",  # explicit VR little endian
    "1.2.840.10008.1.2.2": ">",  # explicit VR big endian (retired, still found in archives)
}

_LEAN_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB"}


def transfer_syntax_name(uid: str) -> str:
    """Human name of a transfer syntax UID, e.g. 'JPEG 2000 Image Compression'."""
    from pydicom.uid import UID

    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def _lean_dtype(header: SliceHeader) -> np.dtype | None:
    byteorder = _NATIVE_SYNTAXES.get(header.transfer_syntax)
    if byteorder is None or header.bits_allocated not in (8, 16, 32) or header.pixel_offset is None:
        return None
    if header.is_enhanced or header.pixel_length is None:
        return None
    if header.photometric not in _LEAN_PHOTOMETRIC:  # subsampled YBR, palette: pydicom converts
        return None
    kind = "i" if header.pixel_representation == 1 else "u"
    return np.dtype(f"{byteorder}{kind}{header.bits_allocated // 8}")


def _mask_bits(stored: np.ndarray, header: SliceHeader) -> np.ndarray:
    """Keep only BitsStored bits (sign-extending signed data), as the standard requires."""
    extra = header.bits_allocated - header.bits_stored
    if extra <= 0 or header.bits_stored <= 0:
        return stored
    if header.pixel_representation == 1:
        return (stored << extra) >> extra
    return stored & np.asarray((1 << header.bits_stored) - 1, dtype=stored.dtype)


def _shape(header: SliceHeader) -> tuple[int, ...]:
    shape: tuple[int, ...] = (header.frames, header.rows, header.columns)
    return (*shape, header.samples_per_pixel) if header.samples_per_pixel > 1 else shape


def _layout(rows: int, columns: int, frames: int, samples: int, bits: int) -> str:
    return (
        f"Rows {rows} x Columns {columns} x {frames} frame(s) x SamplesPerPixel {samples} x "
        f"BitsAllocated {bits}"
    )


def _native_bytes(header: SliceHeader) -> int | None:
    """Bytes of uncompressed pixel data the header declares (None: compressed, or a layout such
    as YBR_FULL_422 that pydicom sizes and checks itself)."""
    if header.transfer_syntax not in _NATIVE_SYNTAXES or "422" in header.photometric:
        return None
    bits = header.rows * header.columns * header.frames * header.samples_per_pixel
    return (bits * header.bits_allocated + 7) // 8


def _check_exact_length(declared: int, actual: int, path: object, layout: str) -> None:
    if actual not in (declared, declared + declared % 2):  # odd lengths carry one pad byte
        raise DicomError(
            f"{path}: the header declares {layout} = {declared} bytes of pixel data, but "
            f"PixelData holds {actual} bytes. The header disagrees with the pixel data (damaged, "
            "or edited by a tool); re-export the file from the source."
        )


def check_pixel_header(header: SliceHeader, itemsize: int = 4) -> None:
    """Refuse a header whose pixel description is impossible, before anything is allocated.

    Checks NumberOfFrames, BitsStored and PixelRepresentation; the exact length of
    uncompressed pixel data and that it fits in the file; and that the decoded image
    (``itemsize`` bytes per value) fits the memory budget.

    Raises:
        DicomError: naming the file, the declared and the actual sizes.
    """
    path = header.path
    if header.frames < 1:
        raise DicomError(
            f"{path}: NumberOfFrames is not a positive number; the header is damaged. "
            "Re-export the file."
        )
    if not 0 < header.bits_stored <= header.bits_allocated or header.pixel_representation > 1:
        raise DicomError(
            f"{path}: BitsStored {header.bits_stored}, BitsAllocated {header.bits_allocated} "
            f"and PixelRepresentation {header.pixel_representation} do not describe pixel data "
            "(BitsStored must be 1..BitsAllocated, PixelRepresentation 0 or 1); the header is "
            "damaged. Re-export the file."
        )
    layout = _layout(
        header.rows,
        header.columns,
        header.frames,
        header.samples_per_pixel,
        header.bits_allocated,
    )
    declared = _native_bytes(header)
    if declared is not None and header.pixel_length is not None:
        _check_exact_length(declared, header.pixel_length, path, layout)
        if header.pixel_offset is not None and header.file_size:
            check_declared_bytes(
                header.pixel_length,
                header.file_size - header.pixel_offset,
                path=path,
                what="PixelData",
                error=DicomError,
            )
    values = header.rows * header.columns * header.frames * header.samples_per_pixel
    check_memory_budget(
        values * max(itemsize, header.bits_allocated // 8),
        path=path,
        what=f"the declared image ({layout})",
        error=DicomError,
    )


def read_stored_frames(header: SliceHeader) -> np.ndarray:
    """Stored pixel values of one file, shaped (frames, rows, columns[, samples]).

    Uses the lean read when the data is uncompressed and native-sized, pydicom otherwise.

    Raises:
        DicomError: the file is truncated, has no pixel data, its header disagrees with its
            pixel data, or its transfer syntax cannot be decoded here (the message names the
            syntax and the plugin to install). Every failure names the file.
    """
    check_pixel_header(header)
    with reading(header.path):
        return _read_stored_frames(header)


def _read_stored_frames(header: SliceHeader) -> np.ndarray:
    dtype = _lean_dtype(header)
    planar = header.samples_per_pixel > 1 and header.planar_configuration == 1
    if dtype is None:
        import pydicom

        ds = pydicom.dcmread(header.path)
        return decode_dataset_frames(ds, header.path)
    count = int(np.prod(_shape(header)))
    needed = count * dtype.itemsize
    size = header.file_size or file_size(header.path)
    if size < header.pixel_offset + needed:
        raise DicomError(
            f"{header.path} is truncated: its pixel data stops before the {needed} bytes it "
            "declares. Copy the file again from the source (PACS export or archive)."
        )
    stored = np.fromfile(header.path, dtype=dtype, count=count, offset=header.pixel_offset)
    if stored.size != count:  # the file changed since its header was read
        raise DicomError(
            f"{header.path} is truncated: it holds {stored.size} of the {count} pixel values "
            "its header declares. Copy the file again from the source."
        )
    if planar:  # R-plane, G-plane, B-plane per frame
        stored = stored.reshape(
            header.frames, header.samples_per_pixel, header.rows, header.columns
        )
        stored = np.moveaxis(stored, 1, -1)
    stored = stored.reshape(_shape(header))
    if dtype.byteorder == ">":
        stored = stored.astype(dtype.newbyteorder("="))
    return _mask_bits(stored, header)


def _declared_shape(ds, photometric: str) -> tuple[int, ...]:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = 3 if photometric == "PALETTE COLOR" else int(ds.get("SamplesPerPixel", 1) or 1)
    shape = (frames, int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
    return (*shape, samples) if samples > 1 else shape


def _decode_segment(src: bytes) -> bytes:
    try:
        from rle.rle import decode_segment  # pylibjpeg-rle: fast
    except ImportError:  # pragma: no cover - pydicom's pure Python decoder
        from pydicom.pixels.decoders.rle import _rle_decode_segment as decode_segment
    return decode_segment(src)


def _check_rle_frames(ds, path, frames: int) -> None:
    """RLE has no image size of its own: a decoder fills Rows x Columns from a longer segment
    without complaint. Decode the first segment of each frame and compare its length."""
    from pydicom.encaps import generate_frames

    rows, columns = int(ds.Rows), int(ds.Columns)
    for k, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames)):
        first, second = (int.from_bytes(frame[i : i + 4], "little") for i in (4, 8))
        decoded = len(_decode_segment(frame[first : second or len(frame)]))
        if decoded not in (rows * columns, rows * columns + 1):
            raise DicomError(
                f"{path}: frame {k + 1} of the RLE data holds {decoded} pixels per sample but "
                f"the header declares Rows {rows} x Columns {columns} = {rows * columns}. The "
                "header disagrees with the pixel data (damaged or edited); re-export the file."
            )


def decode_dataset_frames(ds, path) -> np.ndarray:
    """Decode a fully read pydicom dataset into (frames, rows, columns[, samples]) stored values.

    YBR colour data comes back as RGB (pydicom converts it); palette colour is applied. The
    result has exactly the declared shape, or a :class:`DicomError` names the file.
    """
    with reading(path):
        return _decode_dataset_frames(ds, path)


def _decode_dataset_frames(ds, path) -> np.ndarray:
    from pydicom.pixels.utils import get_expected_length
    from pydicom.uid import UID

    syntax = UID(
        str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    )
    keyword = next(
        (k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds), None
    )
    if keyword is None:
        raise DicomError(
            f"{path} has no pixel data (modality {ds.get('Modality', '?')}, e.g. a structure set, "
            "report or presentation state); load the image series it refers to instead."
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    shape = _declared_shape(ds, photometric)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    layout = _layout(shape[1], shape[2], shape[0], shape[3] if len(shape) > 3 else 1, bits)
    check_memory_budget(
        int(np.prod(shape)) * max(4, bits // 8),
        path=path,
        what=f"the declared image ({layout})",
        error=DicomError,
    )
    if not syntax.is_compressed:
        _check_exact_length(get_expected_length(ds, "bytes"), len(ds[keyword].value), path, layout)
    elif syntax == "1.2.840.10008.1.2.5":  # RLE Lossless
        _check_rle_frames(ds, path, shape[0])
    try:
        array = ds.pixel_array
        if photometric == "PALETTE COLOR":  # pydicom converts YBR to RGB; palette is ours
            from pydicom.pixels import apply_color_lut

            array = apply_color_lut(array, ds)
    except BaseException as err:  # decoders raise anything, even pyo3 PanicException
        if isinstance(err, FATAL_EXCEPTIONS):
            raise
        hint = (
            "the data is damaged or does not match the header (Rows, Columns, BitsAllocated, "
            "SamplesPerPixel, NumberOfFrames), or no installed decoder handles it. Make sure the "
            "decoders are installed (`pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
            "pylibjpeg-rle pyjpegls`); if they are and the data uses a variant they lack (e.g. "
            "12-bit lossy JPEG), try `pip install python-gdcm`, convert the file with "
            "`gdcmconv --raw`, or re-export it"
        )
        raise DicomError(
            f"Cannot decode the pixel data of {path} (transfer syntax "
            f"{transfer_syntax_name(syntax)}): {describe_exception(err)}. Fix: {hint}."
        ) from err
    if shape[0] == 1:
        array = array[None]
    if tuple(array.shape) != shape:
        raise DicomError(
            f"{path}: the decoded pixel data has shape {tuple(array.shape)}, but the header "
            f"declares {shape} (frames, rows, columns[, samples]). The header disagrees with "
            "the pixel data; re-export the file."
        )
    return array
