"""Values a DICOM-SEG copies from its source, checked without ever echoing them.

A SEG must copy the patient and study attributes of its source images (PatientName, PatientID,
PatientBirthDate, StudyDate...). pydicom and highdicom quote an invalid value in their errors and
warnings (``Invalid value for VR DA: '19XX0101'``), which would put patient data on a terminal
or in a log. The helpers here name the attribute keyword and its VR, never the value:

- :func:`check_copied_values` refuses, before highdicom runs, a source whose patient/study
  attributes are not valid DICOM (:class:`~medtransfer.errors.DicomError`);
- :func:`invalid_keywords` lists every invalid root attribute, to explain a later failure;
- :func:`check_arguments` checks the caller's own SEG attributes (a
  :class:`~medtransfer.errors.ConfigError` that may show them: they are the caller's values);
- :func:`hidden_pydicom_chatter` keeps pydicom/highdicom warnings and ``pydicom`` log records
  made while building the SEG off the terminal.

Example:
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset()
    >>> ds.PatientBirthDate = "19XX0101"
    >>> invalid_keywords(ds)
    [('PatientBirthDate', 'DA')]
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from medtransfer.errors import ConfigError, DicomError

__all__ = ["check_arguments", "check_copied_values", "hidden_pydicom_chatter", "invalid_keywords"]

# Root attributes of the Patient, General Study, Patient Study and Clinical Trial modules that
# are not in groups 0x0010 (patient) or 0x0012 (clinical trial): highdicom copies these too.
_STUDY_KEYWORDS = frozenset(
    {
        "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID",
        "StudyDescription", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
        "AdmittingDiagnosesDescription", "IssuerOfAccessionNumberSequence", "Occupation",
        "AdditionalPatientHistory", "ReasonForPerformedProcedureCodeSequence", "StudyInstanceUID",
    }
)  # fmt: skip
_HINTS = {
    "DA": "a date YYYYMMDD",
    "TM": "a time HHMMSS",
    "DT": "a date-time YYYYMMDDHHMMSS",
    "AS": "an age such as 045Y",
    "PN": "a person name Family^Given, at most 64 characters per component",
    "LO": "at most 64 characters, no backslash",
    "SH": "at most 16 characters, no backslash",
    "CS": "at most 16 upper-case letters, digits, spaces or underscores",
    "UI": "a UID of digits and dots, at most 64 characters",
}


def _is_copied(element: Any) -> bool:
    return element.tag.group in (0x0010, 0x0012) or element.keyword in _STUDY_KEYWORDS


def _is_valid(vr: str, value: Any) -> bool:
    from pydicom import config
    from pydicom.valuerep import validate_value

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                validate_value(vr, item, config.RAISE)
    except Exception:  # pydicom raises ValueError (and others for odd types)
        return False
    return True


def invalid_keywords(dataset: Any, only_copied: bool = False) -> list[tuple[str, str]]:
    """``(keyword, VR)`` of root data elements whose value is not valid DICOM; values never read out.

    Args:
        dataset: a pydicom Dataset.
        only_copied: only the patient/study attributes a SEG copies.
    """
    found = []
    for element in dataset:
        if element.tag.is_private or element.VR == "SQ" or not element.keyword:
            continue
        if only_copied and not _is_copied(element):
            continue
        if not _is_valid(element.VR, element.value):
            found.append((element.keyword, element.VR))
    return found


def describe(found: list[tuple[str, str]]) -> str:
    """``PatientBirthDate (VR DA: a date YYYYMMDD)``, ... for a message."""
    return ", ".join(
        f"{keyword} (VR {vr}{': ' + _HINTS[vr] if vr in _HINTS else ''})" for keyword, vr in found
    )


def check_copied_values(dataset: Any, path: Path, series: str) -> None:
    """Raise DicomError naming the invalid patient/study attributes of ``dataset`` (no values).

    Example:
        >>> from pathlib import Path
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset()
        >>> ds.PatientBirthDate = "19XX0101"
        >>> try:
        ...     check_copied_values(ds, Path("ct/1.dcm"), "1.2.3")
        ... except DicomError as err:
        ...     print(str(err)[:60])
        Cannot write a DICOM-SEG for series 1.2.3: in 1.dcm, Patient
    """
    found = invalid_keywords(dataset, only_copied=True)
    if found:
        raise DicomError(
            f"Cannot write a DICOM-SEG for series {series}: in {path.name}, {describe(found)} "
            "is not valid DICOM, and a SEG must copy it from its source. Correct or empty that "
            "attribute in the source files (e.g. with pydicom or your de-identification tool), "
            "then retry. The value is not shown because it may identify the patient."
        )


def check_arguments(values: Mapping[str, tuple[str, Any]]) -> None:
    """Raise ConfigError for the caller's SEG attributes that are not valid for their VR.

    Args:
        values: ``{argument name: (VR, value)}``; ``None`` values are skipped.

    Example:
        >>> try:
        ...     check_arguments({"content_label": ("CS", "my label")})
        ... except ConfigError as err:
        ...     print(str(err)[:39])
        content_label='my label' is not a valid
    """
    for name, (vr, value) in values.items():
        if value is not None and not _is_valid(vr, value):
            raise ConfigError(
                f"{name}={value!r} is not a valid DICOM {vr} value ({_HINTS.get(vr, 'see PS3.5')})"
                "; pass another value."
            )


class _DropRecords(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += 1
        return False


@contextlib.contextmanager
def hidden_pydicom_chatter() -> Iterator[list[str]]:
    """Keep pydicom/highdicom warnings and ``pydicom`` log records off the terminal.

    They may quote header values. Warnings are dropped; pydicom logs every invalid value it
    meets, so the yielded list receives a count of those records (never their text), for a
    summary the caller may show.
    """
    hidden: list[str] = []
    drop = _DropRecords()
    logger = logging.getLogger("pydicom")
    logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield hidden
    finally:
        logger.removeFilter(drop)
    if drop.count:  # pydicom logs every invalid value it meets
        hidden.append(f"{drop.count} problem(s)")
