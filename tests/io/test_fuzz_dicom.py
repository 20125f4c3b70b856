"""Seeded fuzz of DICOM headers: a damaged file gives the right volume or a MedTransferError.

One slice (first, middle or last, chosen at random) of a 3-slice series is replaced by a mutant:

- **cut**: the file is shortened at a random offset. Pixel data comes last, so every cut loses
  pixel bytes: ``load(folder)`` and ``load(file)`` must raise a ``MedTransferError``. Nothing
  may load, not even a volume one slice short.
- **flip**: 1 to 3 random bytes are XOR-ed with random values in the header region (preamble,
  'DICM' marker, file meta, data set, and the tag/VR/length of PixelData; never pixel values).
  ``load(folder)`` and ``load(file)`` must return exactly the original array and affine, or
  raise a ``MedTransferError``. A different result is accepted only when pydicom, reading the
  mutant on its own, finds a whole image (same Rows, Columns and pixel bytes) and another value
  in a field that defines the volume (a flipped digit of ImagePositionPatient, PixelRepresentation
  0 -> 1, a RescaleIntercept whose tag was hit and is now absent...): the mutant then really
  describes another image. A different volume from a mutant that pydicom reads with the same
  volume fields, reads only in part, or cannot read at all fails the test (e.g. a damaged slice
  silently left out of the series).
- for every mutant, ``list_series(folder)`` returns (warnings allowed) and never raises.

Any other exception (struct.error, ValueError, KeyError, a decoder panic...) fails the test.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.sequence import Sequence

import medtransfer as mt
from medtransfer.errors import MedTransferError
from tests.fixtures import ct_volume, make_affine, write_series

N_MUTANTS = 150
SEED = 20240610

_VOLUME_FIELDS = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "RescaleSlope",
    "RescaleIntercept",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SeriesInstanceUID",
    "DoseGridScaling",
    "GridFrameOffsetVector",
    "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence",
)
_UNREADABLE = "pydicom cannot read it"


def _volume_fields(path) -> dict[str, str] | str:
    """What pydicom (not medtransfer) reads from ``path`` for the fields that define a volume."""
    try:
        ds = pydicom.dcmread(path, force=True)
        fields = {"TransferSyntaxUID": str(ds.file_meta.get("TransferSyntaxUID", ""))}
        for keyword in _VOLUME_FIELDS:
            try:
                value = ds.get(keyword)
                fields[keyword] = str(value) if isinstance(value, Sequence) else repr(value)
            except Exception as err:  # a value pydicom cannot convert differs from any good one
                fields[keyword] = f"unconvertible ({type(err).__name__})"
        fields["PixelData"] = repr(ds.get("PixelData"))
        return fields
    except Exception:
        return _UNREADABLE


def _describes_another_image(mutant: dict[str, str] | str, original: dict[str, str]) -> bool:
    """pydicom reads the mutant as a whole image (its size and pixel data all there) and some
    field that defines the volume differs: the mutant is a valid description of another image."""
    if not isinstance(mutant, dict) or mutant == original:
        return False
    return all(mutant[k] == original[k] for k in ("Rows", "Columns", "PixelData"))


def _outcome(call):
    """'error' for a MedTransferError, else the (array, affine) returned; anything else fails."""
    try:
        image = call()
    except MedTransferError:
        return "error"
    return image.numpy(), image.affine.numpy()


def _same(result, expected) -> bool:
    return (
        result[0].shape == expected[0].shape
        and np.array_equal(result[0], expected[0])
        and np.allclose(result[1], expected[1], atol=1e-6)
    )


@pytest.mark.filterwarnings("ignore")
def test_damaged_headers_give_the_right_volume_or_a_medtransfer_error(tmp_path):
    folder = tmp_path / "series"
    files = write_series(folder, ct_volume((8, 6, 3)), make_affine(angles=(0.1, 0.0, 0.2)))
    originals = [path.read_bytes() for path in files]
    whole = _outcome(lambda: mt.io.load(folder))
    singles = [_outcome(lambda p=p: mt.io.load(p)) for p in files]
    fields = [_volume_fields(p) for p in files]
    rng = random.Random(SEED)
    failures, kinds = [], {"cut": 0, "flip": 0, "error": 0, "same": 0, "justified": 0}

    for n in range(N_MUTANTS):
        k = rng.randrange(len(files))
        data = bytearray(originals[k])
        pixel_offset = data.find(b"\xe0\x7f\x10\x00OW") + 12  # explicit VR LE: value offset
        if n % 2:
            kind, cut = "cut", rng.randrange(len(data))
            mutant = bytes(data[:cut])
            what = f"cut at {cut}"
        else:
            kind, offsets = "flip", sorted(rng.sample(range(pixel_offset), rng.randint(1, 3)))
            for offset in offsets:
                data[offset] ^= rng.randrange(1, 256)
            mutant = bytes(data)
            what = f"bytes {offsets} flipped"
        kinds[kind] += 1
        files[k].write_bytes(mutant)
        label = f"mutant {n} of {files[k].name}: {what}"
        try:
            mt.io.list_series(folder)
            justified = _describes_another_image(_volume_fields(files[k]), fields[k])
            for target, expected in ((folder, whole), (files[k], singles[k])):
                result = _outcome(lambda t=target: mt.io.load(t))
                if result == "error":
                    kinds["error"] += 1
                elif kind == "cut":
                    failures.append(f"{label}: load({target.name}) returned a volume")
                elif _same(result, expected):
                    kinds["same"] += 1
                elif justified:
                    kinds["justified"] += 1
                else:
                    failures.append(f"{label}: load({target.name}) returned a different volume")
        except Exception as err:  # raw exceptions are the bugs this test hunts
            failures.append(f"{label}: {type(err).__name__}: {str(err)[:120]}")
        finally:
            files[k].write_bytes(originals[k])

    assert not failures, f"{len(failures)} failures ({kinds}):\n" + "\n".join(failures[:20])
    assert kinds["error"] > N_MUTANTS // 2 and kinds["same"] > 10  # both outcomes exercised
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _same(_outcome(lambda: mt.io.load(folder)), whole)  # files restored intact
