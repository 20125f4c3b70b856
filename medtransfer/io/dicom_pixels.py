"""Pixel data of DICOM files: a lean read for uncompressed data, pydicom's decoders otherwise.

The lean path reads the stored integers straight from the file offset recorded by the header
parse (no second parse, no ``pixel_array`` overhead); compressed transfer syntaxes (JPEG
baseline/lossless, JPEG-LS, JPEG 2000, RLE, deflate) go through pydicom and its pylibjpeg /
pyjpegls plugins. Either way the caller gets stored values shaped (frames, rows, columns[, 3]).
"""

from __future__ import annotations

import numpy as np

from medtransfer.errors import DicomError
from medtransfer.io.dicom_header import SliceHeader, file_size

__all__ = ["read_stored_frames", "decode_dataset_frames", "transfer_syntax_name"]

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


def read_stored_frames(header: SliceHeader) -> np.ndarray:
    """Stored pixel values of one file, shaped (frames, rows, columns[, samples]).

    Uses the lean read when the data is uncompressed and native-sized, pydicom otherwise.

    Raises:
        DicomError: the file is truncated, has no pixel data, or its transfer syntax cannot be
            decoded here (the message names the syntax and the plugin to install).
    """
    dtype = _lean_dtype(header)
    planar = header.samples_per_pixel > 1 and header.planar_configuration == 1
    if dtype is None:
        import pydicom

        try:
            ds = pydicom.dcmread(header.path)
        except Exception as err:  # pydicom raises many types for corrupt files
            raise DicomError(f"Cannot read {header.path}: {type(err).__name__}: {err}") from err
        return decode_dataset_frames(ds, header.path)
    count = int(np.prod(_shape(header)))
    needed = count * dtype.itemsize
    if header.pixel_length is not None and header.pixel_length < needed:
        raise DicomError(
            f"{header.path}: PixelData holds {header.pixel_length} bytes but Rows x Columns x "
            f"frames x samples needs {needed}. The file is corrupt; re-export it."
        )
    if file_size(header.path) < header.pixel_offset + needed:
        raise DicomError(
            f"{header.path} is truncated: its pixel data stops before the {needed} bytes it "
            "declares. Copy the file again from the source (PACS export or archive)."
        )
    stored = np.fromfile(header.path, dtype=dtype, count=count, offset=header.pixel_offset)
    if planar:  # R-plane, G-plane, B-plane per frame
        stored = stored.reshape(
            header.frames, header.samples_per_pixel, header.rows, header.columns
        )
        stored = np.moveaxis(stored, 1, -1)
    stored = stored.reshape(_shape(header))
    if dtype.byteorder == ">":
        stored = stored.astype(dtype.newbyteorder("="))
    return _mask_bits(stored, header)


def decode_dataset_frames(ds, path) -> np.ndarray:
    """Decode a fully read pydicom dataset into (frames, rows, columns[, samples]) stored values.

    YBR colour data comes back as RGB (pydicom converts it); palette colour is applied.
    """
    syntax = str(
        getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "1.2.840.10008.1.2"
    )
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomError(
            f"{path} has no pixel data (modality {ds.get('Modality', '?')}, e.g. a structure set, "
            "report or presentation state); load the image series it refers to instead."
        )
    try:
        array = ds.pixel_array
    except Exception as err:  # decoders raise RuntimeError/ValueError/NotImplementedError/...
        hint = (
            "no installed decoder could decode it. Make sure the decoders are installed "
            "(`pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle pyjpegls`); "
            "if they are, the data is corrupt or uses a variant they lack (e.g. 12-bit lossy JPEG): "
            "try `pip install python-gdcm`, convert the file with `gdcmconv --raw`, or re-export it"
        )
        raise DicomError(
            f"Cannot decode the pixel data of {path} (transfer syntax {transfer_syntax_name(syntax)}): "
            f"{type(err).__name__}: {err}. Fix: {hint}."
        ) from err
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    # pydicom's pixel_array already converts YBR colour to RGB; palette colour is ours to apply.
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        array = apply_color_lut(array, ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if photometric == "PALETTE COLOR":
        samples = 3
    if frames == 1:
        array = array[None]
    expected_ndim = 4 if samples > 1 else 3
    if array.ndim != expected_ndim:
        raise DicomError(
            f"{path}: decoded pixel array has shape {array.shape}, not the declared layout."
        )
    return array
