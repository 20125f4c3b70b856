"""``medtransfer inspect PATH``: the series of a DICOM folder, or the header of an image file.

Headers only: no voxels are decoded and (for NIfTI files) MONAI and torch are not imported.
Free text and patient identifiers are shown only with ``--show-phi``; pydicom's complaints about
non-standard header values are counted, not dumped (``--debug`` shows them).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from medtransfer.cli.exit_codes import EXIT_OK
from medtransfer.cli.table import table
from medtransfer.errors import InputPathError

__all__ = ["inspect_command"]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def inspect_command(args: argparse.Namespace) -> int:
    """Print the table; pydicom's complaints about header values are counted, not dumped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = _inspect_table(args)
    hidden = 0
    for warning in caught:
        if _from_pydicom(warning) and not args.debug:
            hidden += 1
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if hidden:
        noun = "warning" if hidden == 1 else "warnings"
        print(
            f"({hidden} pydicom {noun} about non-standard header values hidden; --debug shows "
            "them)",
            file=sys.stderr,
        )
    return code


def _from_pydicom(warning: warnings.WarningMessage) -> bool:
    module = getattr(warning, "filename", "") or ""
    return f"{os.sep}pydicom{os.sep}" in module


def _inspect_table(args: argparse.Namespace) -> int:
    import medtransfer as mt

    path: Path = args.path.expanduser()
    if not path.exists():
        raise InputPathError(f"{path} does not exist; pass a DICOM folder, DICOM file or NIfTI.")
    if path.is_dir():
        series = mt.io.list_series(path)
        if series:
            rows = [_series_row(s, args.show_phi) for s in series]
            columns = ["uid", "modality", "files", "shape", "spacing", "origin", "orientation"]
            columns += ["problems"]
            if args.show_phi:  # free text and identifiers: only when asked (PS3.15 removes them)
                columns += ["description", "study_date", "patient_id", "patient_name"]
            print(table(rows, columns))
            print(f"\n{len(series)} series in {path.resolve()}")
            return EXIT_OK
        images = sorted(p for p in path.iterdir() if p.name.endswith(_NIFTI_SUFFIXES))
        if not images:
            raise InputPathError(f"{path} holds no DICOM series and no NIfTI files.")
        print(table([_image_row(p) for p in images], _IMAGE_COLUMNS))
        return EXIT_OK
    print(table([_image_row(path)], _IMAGE_COLUMNS))
    return EXIT_OK


_IMAGE_COLUMNS = (
    "file", "modality", "shape", "spacing", "origin", "orientation", "direction", "dtype"
)  # fmt: skip


def _fmt(values: Any, digits: int = 3) -> str:
    if values is None:
        return "?"
    return "x".join(f"{float(v):.{digits}g}" if digits else str(int(v)) for v in values)


def _series_row(info: Any, show_phi: bool) -> dict[str, Any]:
    """One table row; SeriesDescription, StudyDate and patient identifiers only with show_phi.

    SeriesDescription is free text that often holds names or other identifiers (DICOM's basic
    de-identification profile, PS3.15 E.1, removes it), so it is not shown by default.
    """
    row = {
        "uid": info.uid,
        "modality": info.modality,
        "files": info.n_files,
        "shape": _fmt(info.shape, 0) if info.shape else "no pixels",
        "spacing": _fmt(info.spacing),
        "origin": ", ".join(f"{v:.1f}" for v in info.origin) if info.origin else "?",
        "orientation": info.orientation or "?",
        "problems": "; ".join(info.problems) or "none",
    }
    if show_phi:
        row.update(description=info.description, study_date=info.study_date or "?")
        row.update(_patient(info))
    return row


def _patient(info: Any) -> dict[str, str]:
    """PatientID and PatientName of a series' first file (read only with --show-phi)."""
    import pydicom

    if not info.files:
        return {"patient_id": "?", "patient_name": "?"}
    ds = pydicom.dcmread(
        info.files[0], stop_before_pixels=True, specific_tags=["PatientID", "PatientName"]
    )
    return {
        "patient_id": str(ds.get("PatientID", "?")),
        "patient_name": str(ds.get("PatientName", "?")),
    }


def _image_row(path: Path) -> dict[str, Any]:
    """A file's grid from its header (no voxels decoded, no MONAI imported)."""
    import medtransfer as mt

    info = mt.io.image_info(path)
    direction = info.direction
    return {
        "file": path.name,
        "modality": info.modality or "?",
        "shape": _fmt(info.shape, 0),
        "spacing": _fmt(info.spacing),
        "origin": ", ".join(f"{v:.1f}" for v in info.origin),
        "orientation": info.orientation,
        "direction": " ".join(
            ",".join(f"{v:.3g}" if abs(v) > 5e-4 else "0" for v in column) for column in direction.T
        ),
        "dtype": info.dtype,
    }
