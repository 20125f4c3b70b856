"""Label values against the model's classes, checked once before training starts.

A class list that misses a label value (``class_names: [lesion]`` for label maps holding 1 and 2,
or a binary classifier fed labels 0, 1 and 2) otherwise shows up minutes into training as an
index error, or not at all. :func:`check_label_values` reads the labels once and names the cases
whose values do not fit.

What is read, so that the check stays cheap:

- classification: the label value of every record (already in memory);
- segmentation: the label maps in record order, with ``mt.io.load``, until
  :data:`MAX_VOXELS` voxels have been read (the size of each file is taken from its header
  first; the first map is always read). That is every map of a dataset of 2D or small 3D labels,
  and the first few of large CTs (a 512 x 512 x 300 map has 79 million voxels); a wrong class
  count shows in any of them. The values found are the distinct values of each map.

Example:
    >>> import numpy as np
    >>> records = [{"case_id": "a", "label": np.array([[0, 1], [2, 0]])}]
    >>> scan_label_values(records, task="segmentation").values
    {'a': [0, 1, 2]}
    >>> check_label_values(records, 3, task="segmentation")
    1
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.wording import count

__all__ = ["MAX_VOXELS", "LabelScan", "check_label_values", "scan_label_values"]

MAX_VOXELS = 500_000_000  # label voxels read at most (about 0.5 GB of uint8 maps)
_LISTED = 10  # cases named in one message


@dataclass(frozen=True)
class LabelScan:
    """The distinct label values found per case, and how many label maps were (not) read."""

    values: dict[str, list[float]] = field(default_factory=dict)
    checked: int = 0
    skipped: int = 0


def _distinct(array: np.ndarray) -> list[float]:
    flat = np.asarray(array).ravel()
    if flat.size == 0:
        return []
    if np.issubdtype(flat.dtype, np.integer) and flat.min() >= 0 and flat.max() < 65536:
        return [int(v) for v in np.flatnonzero(np.bincount(flat))]  # O(n), no sort
    values = np.unique(flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat)
    return [int(v) if float(v).is_integer() else float(v) for v in values]


def _header_voxels(path: str) -> int | None:
    """Voxels of a label file from its header (None when it has none to read cheaply)."""
    if os.path.isdir(path):
        return None
    from medtransfer.io import image_info

    return int(np.prod(image_info(path).shape))


def scan_label_values(
    records: Sequence[Mapping[str, Any]],
    *,
    task: str,
    label_key: str = "label",
    max_voxels: int = MAX_VOXELS,
) -> LabelScan:
    """The distinct label values of each case (segmentation: within the voxel budget).

    Args:
        records: dicts with ``case_id`` and the label under ``label_key`` (a class value for
            classification; a label map path or in-memory map for segmentation).
        task: ``"segmentation"`` or ``"classification"``.
        label_key: record key of the label.
        max_voxels: segmentation: stop reading label maps once this many voxels were read.
    """
    values: dict[str, list[float]] = {}
    used = checked = 0
    for index, record in enumerate(records):
        case = str(record.get("case_id", f"record {index}"))
        label = record.get(label_key)
        if label is None or (task == "classification" and isinstance(label, (list, tuple))):
            continue  # unlabelled, or multi-label 0/1 indicators
        if task == "classification":
            values[case] = _distinct(np.asarray([label]))
            checked += 1
            continue
        if isinstance(label, (str, os.PathLike)):
            path = os.fspath(label)
            size = _header_voxels(path)
            if checked and size is not None and used + size > max_voxels:
                return LabelScan(values, checked, len(records) - index)
            from medtransfer.io import load

            label = load(path, dtype=None)
        array = label.detach().cpu().numpy() if hasattr(label, "detach") else np.asarray(label)
        values[case] = _distinct(array)
        used += array.size
        checked += 1
        if used > max_voxels and index + 1 < len(records):
            return LabelScan(values, checked, len(records) - index - 1)
    return LabelScan(values, checked, 0)


def check_label_values(
    records: Sequence[Mapping[str, Any]],
    num_classes: int,
    *,
    task: str,
    source: str = "num_classes",
    label_key: str = "label",
    max_voxels: int = MAX_VOXELS,
) -> int:
    """Check that every label value lies in ``0..K-1``; returns the number of cases checked.

    Args:
        records: as :func:`scan_label_values`.
        num_classes: the model's outputs (segmentation: classes incl. background; one output
            means a binary task, labels 0 and 1).
        task: ``"segmentation"`` or ``"classification"``.
        source: where the number of classes comes from, for the message (e.g. a config field).
        label_key, max_voxels: as :func:`scan_label_values`.

    Raises:
        ConfigError: naming the cases whose labels hold other values, and what to change.
    """
    top = max(int(num_classes), 2) - 1
    scan = scan_label_values(records, task=task, label_key=label_key, max_voxels=max_voxels)
    bad = {
        case: found
        for case, found in scan.values.items()
        if any(v < 0 or v > top or not float(v).is_integer() for v in found)
    }
    if not bad:
        return scan.checked
    word = "value" if task == "classification" else "values"
    listed = [
        f"{case} ({word} {', '.join(f'{v:g}' for v in found)})"
        for case, found in list(bad.items())[:_LISTED]
    ]
    more = f" and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
    found_max = max(v for found in bad.values() for v in found)
    fix = (
        "list every foreground class in label order (label 1, 2, ...)"
        if task == "segmentation"
        else "list every class in label order (class 0, 1, ...)"
    )
    raise ConfigError(
        f"The labels do not fit the {count(top + 1, 'class', 'classes')} of {source}: label "
        f"values must lie in 0..{top}, but {len(bad)} of {count(scan.checked, 'checked case')} hold others: "
        f"{'; '.join(listed)}{more}. Values up to {found_max:g} need {int(found_max) + 1} "
        f"classes: {fix}, or fix the labels."
    )
