"""Dataset manifests: CSV, JSON list or MSD ``dataset.json`` -> a list of plain dict records.

A record is a plain ``dict`` with at least:

- ``"image"``: absolute path (``str``) of a NIfTI file, DICOM file or DICOM series folder;
- ``"label"``: absolute path of a label map, a class value (``int``/``float``/``str``) or ``None``
  (a label is a path when it contains ``/`` or ends with an image suffix such as ``.nii.gz``;
  an optional ``"mask"`` key is treated the same way);
- ``"case_id"``: unique identifier of the case (derived from the image file name when absent);
- ``"patient_id"``: identifier used for patient-level splits (defaults to ``case_id``);

plus any extra column or key of the manifest, unchanged (CSV values stay strings, empty -> None).

Relative paths are resolved against the folder that holds the manifest. Every problem found
(missing or unreadable file, empty image field, duplicate case_id) is collected first and reported
together in one :class:`~medtransfer.errors.ManifestError`, so one edit fixes the whole manifest.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medtransfer.data import manifest_findings as mf
from medtransfer.data.manifest_labels import map_labels
from medtransfer.data.manifest_readers import Entry, read_csv_entries, read_json_entries
from medtransfer.errors import InputPathError, ManifestError

__all__ = ["PATH_KEYS", "case_id_from_path", "load_manifest"]

#: Keys whose values are file paths (checked, resolved); ``label``/``mask`` only when path-like.
PATH_KEYS: tuple[str, ...] = ("image", "label", "mask")

_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".mha", ".mhd", ".nrrd", ".nhdr", ".png", ".jpg")
_MAX_LISTED = 50  # problems listed in one message; the count of the rest is given


def case_id_from_path(path: str | os.PathLike[str]) -> str:
    """Derive a case identifier from an image path: the file name without its image suffix.

    A DICOM series folder gives its folder name.

    Args:
        path: image file or folder.

    Returns:
        The file name without ``.nii.gz``, ``.nii``, ``.dcm``, ... (case kept).

    Example:
        >>> case_id_from_path("/data/imagesTr/liver_007.nii.gz")
        'liver_007'
        >>> case_id_from_path("series/phantom-001/")
        'phantom-001'
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def load_manifest(
    path: str | os.PathLike[str],
    *,
    subset: str | None = None,
    check_files: bool = True,
    label_key: str | None = None,
    class_names: Sequence[str] | None = None,
    findings: Sequence[str] | None = None,
    uncertain: str = "ignore",
    missing: str = "ignore",
) -> list[dict[str, Any]]:
    """Read a dataset manifest into a list of dict records with absolute, checked paths.

    Three formats are recognised:

    - **CSV** (``.csv``/``.tsv``): a header row with an ``image`` column; ``label``, ``case_id``,
      ``patient_id`` and any other columns are optional. A numeric ``label`` (``0``, ``1``, ``2.5``)
      is a class value and becomes ``int``/``float``; a label that contains ``/`` or ends with an
      image suffix (``.nii.gz``, ``.nii``, ``.dcm``, ...) is a path; any other text is a class name.
    - **JSON list** (``.json``): ``[{"image": ..., "label": ..., ...}, ...]``, types kept.
    - **MSD** ``dataset.json`` (a JSON object with ``"training"`` and/or ``"test"``): training
      entries give ``image`` and ``label``, test entries (plain paths) give ``image`` with
      ``label=None``; every record gets ``"subset": "training"`` or ``"test"``.

    ``case_id`` defaults to the image file name without suffix and ``patient_id`` to ``case_id``
    (one patient per case: add a ``patient_id`` column when a patient has several cases, or
    patient-level splits cannot keep them together).

    Args:
        path: the manifest file.
        subset: keep only records whose ``"subset"`` equals this (e.g. ``"training"`` for MSD).
        check_files: check that every path exists and is readable (default). Turn off only to read
            a manifest whose data live elsewhere.
        label_key: the column (key) that holds the label, e.g. ``"diagnosis"``; its value is
            copied to ``"label"`` (the column itself is kept). Given this or ``class_names``, class
            labels become integer indices and a row whose label is empty or not a class is an
            error naming the row; label paths (segmentation) stay paths.
        class_names: names of classes 0, 1, ... (e.g. ``["benign", "malignant"]``): a label
            equal to a name becomes its index; integer labels must lie in ``0..K-1``.
        findings: multi-label columns, e.g. ``["opacity", "effusion"]``, each holding 1, 0,
            -1 (uncertain) or nothing: ``"label"`` becomes a list of floats in this order, NaN
            where not known (see :mod:`~medtransfer.data.manifest_findings`). Not with
            ``label_key``/``class_names``.
        uncertain: what -1 becomes: ``"ignore"`` (NaN, skipped by loss and metrics),
            ``"positive"`` (1) or ``"negative"`` (0).
        missing: what an empty cell becomes: ``"ignore"`` (NaN) or ``"negative"`` (0).

    Returns:
        The records, in manifest order (MSD: training then test).

    Raises:
        InputPathError: the manifest itself does not exist.
        ManifestError: malformed manifest, or one or more bad rows; the message lists every bad
            row, field and file at once.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "ct_1.nii.gz").write_bytes(b"")
        >>> _ = (folder / "manifest.csv").write_text("image,label,patient_id\\nct_1.nii.gz,1,p1\\n")
        >>> records = load_manifest(folder / "manifest.csv")
        >>> records[0]["case_id"], records[0]["label"], records[0]["image"] == str(folder / "ct_1.nii.gz")
        ('ct_1', 1, True)
        >>> _ = (folder / "findings.csv").write_text("image,finding\\nct_1.nii.gz,malignant\\n")
        >>> load_manifest(folder / "findings.csv", label_key="finding", class_names=["benign", "malignant"])[0]["label"]
        1
        >>> _ = (folder / "cxr.csv").write_text("image,opacity,effusion\\nct_1.nii.gz,1,-1\\n")
        >>> load_manifest(folder / "cxr.csv", findings=["opacity", "effusion"])[0]["label"]
        [1.0, nan]
    """
    manifest = Path(path).expanduser()
    if not manifest.exists():
        raise InputPathError(f"Manifest not found: {manifest}. Check the path.")
    if not manifest.is_file():
        raise InputPathError(
            f"Manifest {manifest} is a folder; give the CSV or JSON file inside it."
        )
    suffix = manifest.suffix.lower()
    if suffix in (".csv", ".tsv"):
        entries = read_csv_entries(manifest, delimiter="\t" if suffix == ".tsv" else ",")
    elif suffix == ".json":
        entries = read_json_entries(manifest)
    else:
        raise ManifestError(
            f"Manifest {manifest}: unknown format {suffix or '(no suffix)'!r}; "
            "use a .csv/.tsv file, a .json list of records or an MSD dataset.json."
        )
    label_problems: list[str] = []
    if findings is not None:
        entries, label_problems = mf.findings_labels(
            manifest, entries, findings, uncertain, missing
        )
        if label_key is not None or class_names is not None:
            raise ManifestError(
                "findings= replaces label_key=/class_names=; give one or the other."
            )
    elif label_key is not None or class_names is not None:
        key = _label_column(manifest, entries, label_key or "label")
        names = _class_names(manifest, class_names)
        entries, label_problems = map_labels(entries, key, names, _looks_like_path)
    records, problems = _normalise(entries, _manifest_folder(manifest), check_files)
    problems = label_problems + problems
    if problems:
        raise ManifestError(_problem_message(manifest, problems))
    if subset is not None:
        kept = [record for record in records if record.get("subset") == subset]
        if not kept:
            found = sorted({str(record.get("subset")) for record in records})
            raise ManifestError(
                f"Manifest {manifest}: no record has subset {subset!r} (found: {', '.join(found)}). "
                "Use one of those or subset=None."
            )
        records = kept
    return records


def _label_column(manifest: Path, entries: list[Entry], key: str) -> str:
    columns = {name for _, raw in entries if isinstance(raw, dict) for name in raw}
    if key in columns or not columns:
        return key
    close = difflib.get_close_matches(key, sorted(columns), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ManifestError(
        f"Manifest {manifest} has no column {key!r} for label_key.{hint} Columns: "
        f"{', '.join(sorted(columns))}."
    )


def _class_names(manifest: Path, class_names: Sequence[str] | None) -> list[str] | None:
    if class_names is None:
        return None
    names = [class_names] if isinstance(class_names, str) else list(class_names)
    if (
        not names
        or any(not isinstance(n, str) or not n for n in names)
        or len(set(names)) < len(names)
    ):
        raise ManifestError(
            f"class_names={names!r} for {manifest} must be distinct, non-empty names of classes "
            "0, 1, ... in order."
        )
    return names


# --- normalisation and checks ---


def _normalise(
    entries: Iterable[Entry], base: Path, check_files: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    for where, raw in entries:
        if isinstance(raw, str):  # the reader already found this entry unusable
            problems.append(f"{where} {raw}")
            continue
        record = dict(raw)
        case = record.get("case_id")
        image = record.get("image")
        if case is None and isinstance(image, str) and image.strip():
            case = case_id_from_path(image.strip())
        label = f"{where} (case {case!r})" if case is not None else where
        row_ok = True
        if not isinstance(image, str) or not image.strip():
            problems.append(
                f"{label}, field 'image': empty or not a path; give the image file or series folder"
            )
            row_ok = False
        for key in PATH_KEYS:
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                continue
            if key != "image" and not _looks_like_path(value):
                continue  # a class name such as "tumour", not a file
            resolved = _resolve(value.strip(), base)
            record[key] = str(resolved)
            if check_files:
                issue = _file_issue(resolved)
                if issue:
                    problems.append(f"{label}, field {key!r}: {issue}: {resolved}")
                    row_ok = False
        if case is not None:
            case = str(case)
            record["case_id"] = case
            if case in first_seen:
                problems.append(
                    f"{label}: duplicate case_id {case!r} (also {first_seen[case]}); give each "
                    "case a unique case_id column"
                )
                row_ok = False
            else:
                first_seen[case] = where
        if record.get("patient_id") is None and case is not None:
            record["patient_id"] = case
        elif record.get("patient_id") is not None:
            record["patient_id"] = str(record["patient_id"])
        record.setdefault("label", None)
        if row_ok:
            records.append(record)
    return records, problems


def _manifest_folder(manifest: Path) -> Path:
    # abspath, not resolve: paths are relative to where the manifest appears, even via a symlink
    return Path(os.path.abspath(manifest)).parent


def _looks_like_path(value: str) -> bool:
    text = value.strip()
    return "/" in text or "\\" in text or text.lower().endswith(_IMAGE_SUFFIXES)


def _resolve(value: str, base: Path) -> Path:
    candidate = Path(value).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    return Path(os.path.normpath(candidate))


def _file_issue(path: Path) -> str | None:
    if not path.exists():
        return "file not found"
    if not os.access(path, os.R_OK):
        return "not readable (check permissions)"
    if path.is_dir() and not os.access(path, os.X_OK):
        return "folder cannot be listed (check permissions)"
    return None


def _problem_message(manifest: Path, problems: list[str]) -> str:
    count = len(problems)
    lines = [f"Manifest {manifest} has {count} problem{'s' if count != 1 else ''}:"]
    lines += [f"  - {problem}" for problem in problems[:_MAX_LISTED]]
    if count > _MAX_LISTED:
        lines.append(f"  ... and {count - _MAX_LISTED} more")
    lines.append(
        f"Fix or remove these rows; relative paths are resolved against {_manifest_folder(manifest)}."
    )
    return "\n".join(lines)
