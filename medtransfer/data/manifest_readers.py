"""Manifest readers: a CSV/TSV file, a JSON list of records or an MSD ``dataset.json`` -> entries.

An entry is ``(where, raw record)``, or ``(where, what is wrong)`` for a row that cannot be a
record, with ``where`` such as ``"row 3"`` or ``"training[4]"``;
:func:`~medtransfer.data.manifest.load_manifest` normalises the records and collects the problems.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from medtransfer.errors import ManifestError

__all__ = ["Entry", "read_csv_entries", "read_json_entries"]

Entry = tuple[str, dict[str, Any] | str]  # (where, raw record) or (where, what is wrong)

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def read_csv_entries(manifest: Path, delimiter: str) -> list[Entry]:
    """The rows of a CSV/TSV manifest with an ``image`` column (``label`` numbers as numbers).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "m.csv"
        >>> _ = path.write_text("image,label\\na.nii.gz,1\\nb.nii.gz\\n")
        >>> read_csv_entries(path, ",")[0]
        ('row 2', {'image': 'a.nii.gz', 'label': 1})
        >>> read_csv_entries(path, ",")[1][1]
        'has 1 fields but the header has 2; check quoting and commas'
    """
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ManifestError(f"Manifest {manifest} cannot be read as CSV: {err}.") from err
    if not rows:
        raise ManifestError(f"Manifest {manifest} is empty; it needs a header row with 'image'.")
    header = [name.strip() for name in rows[0]]
    if "image" not in header:
        raise ManifestError(
            f"Manifest {manifest} has no 'image' column (columns: {', '.join(header) or 'none'}). "
            "Name the image path column 'image' (and the label column 'label')."
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ManifestError(f"Manifest {manifest}: duplicate columns {duplicated}; rename them.")
    entries: list[Entry] = []
    for line_number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are harmless
        if len(row) != len(header):
            entries.append((f"row {line_number}", _width_error(row, header)))
            continue
        raw = {name: (cell.strip() or None) for name, cell in zip(header, row)}
        if isinstance(raw.get("label"), str) and _NUMBER.match(raw["label"]):
            raw["label"] = _to_number(raw["label"])
        entries.append((f"row {line_number}", raw))
    return entries


def _width_error(row: list[str], header: list[str]) -> str:
    return f"has {len(row)} fields but the header has {len(header)}; check quoting and commas"


def _to_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_json_entries(manifest: Path) -> list[Entry]:
    """The entries of a JSON list of records or of an MSD ``dataset.json`` (its ``subset``)."""
    try:
        content = json.loads(manifest.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise ManifestError(
            f"Manifest {manifest} is not valid JSON (line {err.lineno}, column {err.colno}: "
            f"{err.msg}). Fix the syntax."
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"Manifest {manifest} cannot be read: {err}.") from err
    if isinstance(content, dict) and ("training" in content or "test" in content):
        return _read_msd(manifest, content)
    if not isinstance(content, list):
        raise ManifestError(
            f"Manifest {manifest}: expected a JSON list of records or an MSD dataset.json with a "
            f"'training' list, got a JSON {type(content).__name__}."
        )
    entries: list[Entry] = []
    for index, item in enumerate(content):
        where = f"entry {index}"
        if isinstance(item, dict):
            entries.append((where, dict(item)))
        else:
            message = f"is a JSON {type(item).__name__}, expected an object with an 'image' key"
            entries.append((where, message))
    return entries


def _read_msd(manifest: Path, content: dict[str, Any]) -> list[Entry]:
    entries: list[Entry] = []
    for section in ("training", "test"):
        items = content.get(section, [])
        if not isinstance(items, list):
            raise ManifestError(
                f"MSD manifest {manifest}: '{section}' must be a list, "
                f"got a JSON {type(items).__name__}."
            )
        for index, item in enumerate(items):
            where = f"{section}[{index}]"
            if isinstance(item, str):  # MSD test entries are plain image paths
                raw: dict[str, Any] = {"image": item, "label": None}
            elif isinstance(item, dict):
                raw = dict(item)
                raw.setdefault("label", None)
            else:
                entries.append(
                    (where, f"is a JSON {type(item).__name__}, expected a path or an object")
                )
                continue
            raw.setdefault("subset", section)
            entries.append((where, raw))
    return entries
