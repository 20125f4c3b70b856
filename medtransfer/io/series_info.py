"""SeriesInfo: what ``list_series`` reports about one DICOM series (no PHI in its repr).

SeriesDescription, StudyDate and the file paths stay out of the repr and out of ``summary()``,
which error messages use: the description is free text that often holds names (DICOM's basic
de-identification profile, PS3.15 E.1, removes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SeriesInfo"]


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found on disk, from headers only.

    Attributes:
        uid: SeriesInstanceUID; pass it to ``mt.io.load(folder, series_uid=uid)``.
        modality: e.g. "CT", "MR", "RTSTRUCT".
        description: SeriesDescription (free text that may identify the patient: not in the repr,
            ``summary()`` or error messages; ``medtransfer inspect --show-phi`` shows it).
        series_number: SeriesNumber, when present.
        n_files: number of files of the series.
        n_frames: number of 2D frames (files x frames per file).
        shape: (columns, rows, slices) of the volume ``load`` would return; ``None`` for
            series without pixel data.
        spacing: voxel size (mm) from PixelSpacing and slice positions; ``None`` when unknown.
        orientation: axis codes of the volume, e.g. "LPS" (nibabel's ``aff2axcodes``).
        problems: what would stop (or change) ``load``: missing slices, mixed sizes, tilt...
        study_date: StudyDate (YYYYMMDD); a date is identifying, so it stays out of the repr.
        study_uid: StudyInstanceUID (not in the repr).
        files: paths of the series' files (not in the repr).
        origin: RAS+ position (mm) of voxel (0, 0, 0) of the volume ``load`` would return, when
            the slices form one stack (not in the repr).

    Example:
        >>> SeriesInfo(uid="1.2.3", modality="CT", description="abdomen", series_number=2,
        ...            n_files=3, n_frames=3, shape=(4, 4, 3), spacing=(0.7, 0.7, 2.5),
        ...            orientation="LPS")
        SeriesInfo(uid='1.2.3', modality='CT', series_number=2, n_files=3, n_frames=3, shape=(4, 4, 3), spacing=(0.7, 0.7, 2.5), orientation='LPS', problems=())
    """

    uid: str
    modality: str
    description: str = field(repr=False)
    series_number: int | None
    n_files: int
    n_frames: int
    shape: tuple[int, ...] | None
    spacing: tuple[float, ...] | None
    orientation: str | None
    problems: tuple[str, ...] = ()
    study_date: str = field(default="", repr=False)
    study_uid: str = field(default="", repr=False)
    files: tuple[Path, ...] = field(default=(), repr=False, compare=False)
    origin: tuple[float, float, float] | None = field(default=None, repr=False)

    @property
    def has_pixels(self) -> bool:
        """True when the series holds images (not a structure set, report, ...)."""
        return self.shape is not None

    def summary(self) -> str:
        """One line for tables and error messages (series number, never the description)."""
        shape = "x".join(str(s) for s in self.shape) if self.shape else "no pixels"
        number = f" #{self.series_number}" if self.series_number is not None else ""
        frames = f"{self.n_frames} frame{'s' if self.n_frames != 1 else ''}"
        return f"{self.uid}{number} {self.modality}: {frames}, {shape}"
