"""Seeded fuzzing of NIfTI headers: a damaged file gives the original volume or a MedTransferError.

Byte flips land in the 348-byte NIfTI-1 header (of a ``.nii``, or of a ``.nii.gz`` before it
is recompressed), in the compressed stream of a ``.nii.gz``, or the file is cut. The oracle
depends on which header fields were hit:

- *neutral* fields cannot change the volume of the fixture (descriptions, calibration, slice
  timing, intent, units; the qform while the sform is in use; ``sizeof_hdr``/``magic``, which
  nibabel either repairs or refuses): the result must equal the original exactly (array and
  affine), or be a MedTransferError;
- *geometry/data* fields (dim, datatype, vox_offset, scaling, sform, form codes) can legitimately
  describe another volume, so any volume is accepted, as long as its affine is finite and
  invertible and NaN/inf voxels come with a DataWarning; anything else must be a MedTransferError.

Cuts and flips in the compressed stream follow the neutral oracle. Nothing else (no raw
ValueError, MemoryError, struct.error...) may escape. The run is bounded to a few seconds.
"""

from __future__ import annotations

import gzip
import struct
import time
import warnings

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import DataWarning, MedTransferError

SEED = 20240610
TIME_BUDGET_S = 4.0
MAX_CASES = 600

# Byte ranges (start, stop) of NIfTI-1 header fields that may legitimately change the volume.
_DATA_FIELDS = (
    (40, 56),  # dim[8]
    (70, 72),  # datatype
    (108, 112),  # vox_offset
    (112, 120),  # scl_slope, scl_inter
    (252, 256),  # qform_code, sform_code
    (280, 328),  # srow_x, srow_y, srow_z
)


# Numeric header fields (offset, struct format) and values that damaged headers typically hold.
_NUMERIC_FIELDS = (
    *((40 + 2 * i, "<h") for i in range(8)),  # dim
    (68, "<h"), (70, "<h"), (72, "<h"),  # intent_code, datatype, bitpix
    *((76 + 4 * i, "<f") for i in range(8)),  # pixdim
    (108, "<f"), (112, "<f"), (116, "<f"),  # vox_offset, scl_slope, scl_inter
    (252, "<h"), (254, "<h"),  # qform_code, sform_code
    *((256 + 4 * i, "<f") for i in range(18)),  # quaternion, qoffset, srow_x/y/z
    (0, "<i"),  # sizeof_hdr
)  # fmt: skip
_SPECIAL = {
    "<h": (0, 1, -1, 2, 3, 4, 7, 8, 16, 64, 32767, -32768, 20000),
    "<i": (0, 348, 540, -1, 2**31 - 1),
    "<f": (0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, 3e38, 348.0, 352.0, 353.0, *[float(x) for x in
           ("nan", "inf", "-inf")]),
}  # fmt: skip


def _touches_data_fields(offsets) -> bool:
    return any(start <= o < stop for o in offsets for start, stop in _DATA_FIELDS)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_nifti")
    rng = np.random.default_rng(SEED)
    data = rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16)
    affine = np.array(
        [[0.0, -0.8, 0.1, 10.0], [0.9, 0.0, 0.0, -20.0], [0.0, 0.05, 2.5, 5.0], [0, 0, 0, 1]]
    )
    files = {}
    for suffix in (".nii", ".nii.gz"):
        path = mt.io.save(data, folder / f"original{suffix}", affine=affine)
        files[suffix] = (path, mt.io.load(path))
    return folder, files


def _check(path, original, neutral: bool, label: str) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image = mt.io.load(path)
        except MedTransferError as err:
            assert path.name in str(err) or str(path) in str(err), f"{label}: {err}"
            return "error"
        except BaseException as err:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"{label}: raw {type(err).__name__}: {err}") from err
    same = (
        tuple(image.shape) == tuple(original.shape)
        and np.array_equal(image.affine.numpy(), original.affine.numpy())
        and np.array_equal(image.numpy(), original.numpy(), equal_nan=True)
    )
    if neutral:
        assert same, f"{label}: a neutral change returned a different volume"
        return "same"
    affine = image.affine.numpy()
    assert np.all(np.isfinite(affine)), f"{label}: non-finite affine {affine}"
    assert abs(np.linalg.det(affine[:3, :3])) > 0, f"{label}: singular affine {affine}"
    if not np.all(np.isfinite(image.numpy())):
        assert any(issubclass(w.category, DataWarning) for w in caught), f"{label}: no warning"
    return "same" if same else "other"


def _mutants(rng, raw: bytes, gz: bytes | None):
    """Yield (label, file bytes, neutral) for one random mutation of the raw (and gzip) file."""
    kinds = ["flip", "flip", "field", "field", "cut"] + (["zflip"] if gz else [])
    kind = rng.choice(kinds)
    if kind == "field":  # one numeric field set to a special value
        offset, fmt = _NUMERIC_FIELDS[int(rng.integers(len(_NUMERIC_FIELDS)))]
        values = _SPECIAL[fmt]
        value = values[int(rng.integers(len(values)))]
        mutated = bytearray(raw)
        struct.pack_into(fmt, mutated, offset, value)
        body = bytes(mutated)
        yield (
            f"field@{offset}={value}",
            gzip.compress(body, mtime=0) if gz else body,
            not _touches_data_fields(range(offset, offset + struct.calcsize(fmt))),
        )
    elif kind == "flip":
        mutated = bytearray(raw)
        offsets = rng.choice(348, size=int(rng.integers(1, 4)), replace=False)
        for offset in offsets:
            mutated[offset] ^= int(rng.integers(1, 256))
        body = bytes(mutated)
        yield (
            f"flip@{sorted(int(o) for o in offsets)}",
            gzip.compress(body, mtime=0) if gz else body,
            not _touches_data_fields(offsets),
        )
    elif kind == "cut":
        source = gz if gz and rng.random() < 0.5 else raw
        cut = int(rng.integers(0, len(source)))
        body = source[:cut]
        if source is raw and gz:
            body = gzip.compress(body, mtime=0)
        yield f"cut@{cut}{'z' if source is gz else ''}", body, True
    else:  # a flip inside the compressed stream (past the 10-byte gzip header)
        mutated = bytearray(gz)
        offset = int(rng.integers(10, len(gz)))
        mutated[offset] ^= int(rng.integers(1, 256))
        yield f"zflip@{offset}", bytes(mutated), True


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_fuzzed_headers_give_the_original_volume_or_a_medtransfer_error(
    originals, monkeypatch, suffix
):
    monkeypatch.setenv("MEDTRANSFER_MAX_VOLUME_BYTES", "4M")  # no test allocates much
    folder, files = originals
    path, original = files[suffix]
    stored = path.read_bytes()
    gz = stored if suffix == ".nii.gz" else None
    raw = gzip.decompress(stored) if gz else stored
    rng = np.random.default_rng(SEED + len(suffix))
    target = folder / f"mutant{suffix}"
    outcomes: dict[str, int] = {}
    start = time.monotonic()
    cases = 0
    while cases < MAX_CASES and time.monotonic() - start < TIME_BUDGET_S:
        for label, body, neutral in _mutants(rng, raw, gz):
            target.write_bytes(body)
            outcome = _check(target, original, neutral, f"{suffix} case {cases} {label}")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        cases += 1
    assert cases >= 50, f"only {cases} cases ran in {TIME_BUDGET_S} s"
    assert outcomes.get("error", 0) > 0 and outcomes.get("same", 0) > 0, outcomes
