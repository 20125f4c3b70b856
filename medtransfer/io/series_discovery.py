"""Find the DICOM series in a folder tree from headers only: ``list_series`` and grouping."""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medtransfer.errors import DataWarning, DicomError, InputPathError, MedTransferError
from medtransfer.io.dicom_geometry import FrameGeometry, plan_volume
from medtransfer.io.dicom_guard import UnreadableFileError
from medtransfer.io.dicom_header import SliceHeader, read_header
from medtransfer.io.series_info import SeriesInfo

__all__ = [
    "ScanResult",
    "UnreadableFile",
    "describe_series",
    "list_series",
    "name_files",
    "scan_folder",
    "unreadable_members",
]


class UnreadableFile(NamedTuple):
    """A file of a scan that looks like DICOM but cannot be read.

    ``series_uid``: the SeriesInstanceUID a damaged header still holds ("" when unknown).
    ``claims_dicom``: the file says it is DICOM (marker or partial header); when False only its
    name and first bytes suggest it (e.g. an empty ``.dcm`` file), so only a series in the same
    folder should care.
    """

    path: Path
    reason: str
    series_uid: str = ""
    claims_dicom: bool = True


@dataclass
class ScanResult:
    """Headers of a folder tree grouped by SeriesInstanceUID, plus what could not be read."""

    series: dict[str, list[SliceHeader]]
    unreadable: list[UnreadableFile]
    n_files: int


def _walk_files(root: Path) -> list[Path]:
    """Regular files under ``root`` in sorted, top-down order; hidden entries are skipped.

    FIFOs, sockets and devices (also through symlinks) are skipped: reading them would block or
    never end. ``DirEntry`` knows the type of most entries without a system call; only symlinks
    cost a stat. Symlinked folders are not followed (as ``os.walk``), symlinked files are.
    """
    files: list[Path] = []
    folders = [str(root)]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(
                    (e for e in it if not e.name.startswith(".")), key=lambda e: e.name
                )
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
                elif entry.is_file():
                    files.append(Path(entry.path))
            except OSError:
                continue
        folders.extend(reversed(subfolders))
    return files


_MAYBE_DICOM_SUFFIXES = {"", ".dcm", ".dicom", ".ima"}


def _read(path: Path) -> tuple[SliceHeader | None, UnreadableFile | None]:
    # Part 10 files carry 'DICM'; older exports without it are tried when named like DICOM.
    force = path.suffix.lower() in _MAYBE_DICOM_SUFFIXES or path.suffix[1:].isdigit()
    try:
        return read_header(path, force=force), None
    except UnreadableFileError as err:
        return None, UnreadableFile(path, str(err), err.series_uid, err.claims_dicom)
    except DicomError as err:
        return None, UnreadableFile(path, str(err))


def name_files(paths: list[Path], root: Path, limit: int = 5) -> str:
    """'a.dcm, sub/b.dcm and 3 more': paths relative to ``root`` for messages."""

    def relative(path: Path) -> str:
        try:
            return str(path.relative_to(root))
        except ValueError:
            return str(path)

    names = ", ".join(relative(p) for p in paths[:limit])
    return names + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def scan_folder(root: str | os.PathLike[str], *, workers: int | None = None) -> ScanResult:
    """Parse the header of every regular file under ``root`` (threads; pixels are skipped).

    Files without the DICOM 'DICM' marker are ignored unless named like DICOM (``.dcm``,
    ``.ima``, no suffix, or a numeric suffix) and parse with a SeriesInstanceUID; DICOMDIR,
    FIFOs and devices are ignored. Files that cannot be read are listed in ``unreadable`` when
    they carry the marker, or are named like DICOM and are empty or start like DICOM.
    """
    root = Path(root)
    if not root.exists():
        raise InputPathError(f"Folder not found: {root}. Check the path.")
    if not root.is_dir():
        raise InputPathError(f"{root} is a file; list_series scans folders. Use mt.io.load(file).")
    files = _walk_files(root)
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    series: dict[str, list[SliceHeader]] = defaultdict(list)
    unreadable: list[UnreadableFile] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for header, error in pool.map(_read, files, chunksize=16):
            if error is not None:
                unreadable.append(error)
            elif header is not None:
                series[header.series_uid or "(no SeriesInstanceUID)"].append(header)
    return ScanResult(dict(series), unreadable, len(files))


def _axcodes(affine: np.ndarray) -> str:
    import nibabel as nib

    return "".join(nib.aff2axcodes(affine))


def unreadable_members(
    scan: ScanResult, uid: str, headers: list[SliceHeader]
) -> list[UnreadableFile]:
    """The unreadable files of ``scan`` that may be slices of series ``uid``.

    Any of them in a folder that holds files of the series (its partial header could name
    another series only because the damage hit the UID); one whose damaged header still names
    the series; and one that claims to be DICOM (marker) with no readable series at all.
    Elsewhere, a file only named like DICOM (an empty ``x.dcm``) or naming another series is
    not a member.
    """
    folders = {h.path.parent for h in headers}
    return [
        u
        for u in scan.unreadable
        if u.path.parent in folders or u.series_uid == uid or (u.claims_dicom and not u.series_uid)
    ]


def describe_series(
    uid: str, headers: list[SliceHeader], unreadable: list[UnreadableFile] | None = None
) -> SeriesInfo:
    """Summarise one series; geometry problems are reported in ``problems``, never raised.

    ``unreadable``: files that may be slices of this series but cannot be read (they are
    reported as a problem: ``load`` refuses the series unless ``on_unreadable="warn"``).
    """
    first = headers[0]
    n_frames = sum(h.frames for h in headers)
    shape = spacing = orientation = origin = None
    problems: list[str] = []
    if first.has_pixels:
        shape = (
            (first.columns, first.rows, n_frames) if n_frames > 1 else (first.columns, first.rows)
        )
        located = [h for h in headers if h.position is not None and h.orientation is not None]
        if len(located) == len(headers) and len(headers) > 1:
            frames = [
                FrameGeometry(
                    h.path.name,
                    h.position,
                    h.orientation,
                    h.pixel_spacing or (1.0, 1.0),
                    h.rows,
                    h.columns,
                    h.sop_uid,
                )
                for h in headers
            ]
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    geometry = plan_volume(frames, name=uid)
                problems.extend(str(w.message) for w in caught)
                shape = (first.columns, first.rows, len(geometry.order))
                spacing = tuple(float(v) for v in np.linalg.norm(geometry.affine[:3, :3], axis=0))
                orientation = _axcodes(geometry.affine)
                origin = tuple(float(v) for v in geometry.affine[:3, 3])
            except MedTransferError as err:
                problems.append(str(err))
        elif first.pixel_spacing is not None:
            spacing = (first.pixel_spacing[1], first.pixel_spacing[0])
    if unreadable:
        names = ", ".join(u.path.name for u in unreadable[:3])
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        problems.append(
            f"{len(unreadable)} unreadable file{'s' if len(unreadable) != 1 else ''} may be "
            f"slices of this series ({names}{more}): load refuses it unless on_unreadable='warn'"
        )
    return SeriesInfo(
        uid=uid,
        modality=first.modality,
        description=first.description,
        series_number=first.series_number,
        n_files=len(headers),
        n_frames=n_frames,
        shape=shape,
        spacing=spacing,
        orientation=orientation,
        problems=tuple(problems),
        study_date=first.study_date,
        study_uid=first.study_uid,
        files=tuple(sorted(h.path for h in headers)),
        origin=origin,
    )


def list_series(path: str | os.PathLike[str], *, workers: int | None = None) -> list[SeriesInfo]:
    """List the DICOM series under ``path`` (a folder tree, scanned recursively), headers only.

    One entry per SeriesInstanceUID, sorted by series number then UID. Problems that would stop
    ``load`` (missing slices, mixed orientations, ...) are reported in ``SeriesInfo.problems``.
    Files that claim to be DICOM but cannot be parsed are reported in one warning.

    Args:
        path: folder to scan.
        workers: threads parsing headers (default: 2 per core, at most 8).

    Example:
        >>> import medtransfer as mt, numpy as np, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = mt.io.write_dicom_series(np.zeros((8, 8, 3)), folder, affine=np.eye(4))
        >>> [s.shape for s in mt.io.list_series(folder)]
        [(8, 8, 3)]
    """
    scan = scan_folder(path, workers=workers)
    if scan.unreadable:
        names = name_files([u.path for u in scan.unreadable], Path(path))
        warnings.warn(
            f"{len(scan.unreadable)} file(s) under {path} look like DICOM but cannot be read "
            f"and are left out: {names}. First problem: {scan.unreadable[0].reason}",
            DataWarning,
            stacklevel=2,
        )
    infos = [
        describe_series(uid, headers, unreadable_members(scan, uid, headers))
        for uid, headers in scan.series.items()
    ]
    return sorted(infos, key=lambda s: (s.series_number is None, s.series_number or 0, s.uid))
