"""Checks and metadata shared by ``evaluate_segmentation`` and ``evaluate_classification``.

Records are the dicts of ``mt.data`` (``image``, ``label``, ``case_id``...). A report names
cases by ``case_id`` only: ``patient_id`` and header fields never reach it.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from medtransfer.data.case_ids import case_ids
from medtransfer.errors import ConfigError
from medtransfer.evaluation.wording import count

__all__ = [
    "case_ids",
    "check_records",
    "eval_pipeline",
    "model_metadata",
    "preset_summary",
    "resolve_class_names",
    "run_metadata",
]


def check_records(records: Any, keys: Sequence[str]) -> list[Mapping[str, Any]]:
    """The records as a list, each checked to hold ``keys`` (ConfigError naming case and key)."""
    if isinstance(records, Mapping) or not isinstance(records, Sequence) or not records:
        raise ConfigError(
            "records must be a non-empty list of dicts such as mt.data.load_manifest(...) or "
            f"mt.data.synthetic.phantoms(...) return; got {type(records).__name__}."
        )
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ConfigError(f"records[{i}] is a {type(record).__name__}, not a dict.")
        missing = [k for k in keys if k not in record]
        if missing:
            name = record.get("case_id", f"records[{i}]")
            raise ConfigError(
                f"record {name!r} has no {missing} (keys: {sorted(record)}); pass image_key= / "
                "label_key= if your manifest names them differently."
            )
    return list(records)


def resolve_class_names(class_names: Any, num_classes: int | None) -> dict[int, str]:
    """``{label value: name}`` for foreground classes 1..num_classes-1.

    Args:
        class_names: None (``class_1``...), a list of foreground names (label 1, 2, ...), or a
            dict ``{value: name}`` (a name for 0 is ignored).
        num_classes: classes including background, when known.

    Example:
        >>> resolve_class_names(["liver", "lesion"], None), resolve_class_names(None, 3)
        ({1: 'liver', 2: 'lesion'}, {1: 'class_1', 2: 'class_2'})
    """
    if class_names is None:
        if num_classes is None:
            return {}
        return {v: f"class_{v}" for v in range(1, num_classes)}
    if isinstance(class_names, Mapping):
        names = {int(k): str(v) for k, v in class_names.items() if int(k) != 0}
    elif isinstance(class_names, Sequence) and not isinstance(class_names, str):
        names = {i + 1: str(n) for i, n in enumerate(class_names)}
    else:
        raise ConfigError(
            f"class_names={class_names!r}: give a list of foreground names (label 1, 2, ...) or a "
            "dict {label value: name}, e.g. ['liver', 'lesion']."
        )
    if len(set(names.values())) != len(names):
        raise ConfigError(f"class_names={class_names!r} repeats a name; names must be unique.")
    if num_classes is not None and max(names, default=0) >= num_classes:
        raise ConfigError(
            f"class_names={class_names!r} names label {max(names)} but the model has "
            f"{count(num_classes, 'class', 'classes')} (0..{num_classes - 1}, 0 = background)."
        )
    return names


def eval_pipeline(preset: Any) -> Any:
    """The eval ``Compose`` of a ``(train, eval)`` preset pair (or the pipeline itself)."""
    if isinstance(preset, tuple) and len(preset) == 2:
        return preset[1]
    if callable(preset):
        return preset
    raise ConfigError(
        f"preset={type(preset).__name__}: pass the (train, eval) pair of "
        "mt.transforms.presets.ct/mri/xray(...), or its eval pipeline."
    )


def preset_summary(preset: Any) -> str:
    """The eval pipeline's steps by name, e.g. ``LoadVolumed > Orientationd > ...``.

    Consecutive steps of the same kind are named once with the keys they touch: a 2D pipeline
    that stacks the image and the label into slices reads ``SliceStackd(image, label)``.

    Example:
        >>> import medtransfer as mt
        >>> preset_summary(mt.transforms.presets.ct(roi_size=(16, 16, 16))).split(" > ")[:2]
        ['LoadVolumed', 'Orientationd']
        >>> preset_summary(mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))).split(" > ")[-2:]
        ['SliceStackd(image, label)', 'EncoderNormalized']
    """
    try:
        pipeline = eval_pipeline(preset)
    except ConfigError:
        return type(preset).__name__
    steps = getattr(pipeline, "transforms", None)
    if not steps:
        return type(pipeline).__name__
    runs: list[tuple[str, list[str], int]] = []  # (name, keys, number of steps)
    for step in steps:
        name = type(step).__name__
        keys = [str(k) for k in getattr(step, "keys", None) or ()]
        if runs and runs[-1][0] == name:
            runs[-1][1].extend(k for k in keys if k not in runs[-1][1])
            runs[-1] = (name, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((name, keys, 1))
    return " > ".join(
        f"{name}({', '.join(keys)})" if repeats > 1 and keys else name
        for name, keys, repeats in runs
    )


def model_metadata(model: Any) -> dict[str, Any]:
    """Model class, encoder name and where its weights came from (no file paths).

    Example:
        >>> import torch
        >>> model_metadata(torch.nn.Conv2d(1, 2, 1))["model"]
        'Conv2d'
    """
    encoder = getattr(model, "encoder", None)
    info: dict[str, Any] = {"model": type(model).__name__}
    if encoder is not None and getattr(encoder, "name", None):
        info["encoder"] = str(encoder.name)
        info["spatial_dims"] = getattr(encoder, "spatial_dims", None)
        weights = getattr(encoder, "weights", None)
        if weights is None:
            info["weights"] = "random initialisation (weights=None)"
        else:
            source = getattr(weights, "source", None)
            kind = getattr(source, "kind", "file")
            sha = str(getattr(weights, "sha256", ""))[:12]
            info["weights"] = f"pretrained ({kind}{', sha256 ' + sha if sha else ''})"
    if getattr(model, "num_classes", None) is not None:
        info["num_classes"] = int(model.num_classes)
    return info


def _version() -> str:
    # from the installed distribution: importing the root package would count as importing
    # every subpackage for import-linter (training included)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medtransfer")
    except PackageNotFoundError:
        return "unknown"


def run_metadata(model: Any, preset: Any, n_cases: int, **settings: Any) -> dict[str, Any]:
    """Model, preset, date, version and evaluation settings as one plain dict."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {
        **model_metadata(model),
        "preset": preset_summary(preset),
        "date": now.isoformat().replace("+00:00", "Z"),
        "medtransfer_version": _version(),
        "n_cases": n_cases,
        **settings,
    }
