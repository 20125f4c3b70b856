"""Checks the CLI's run commands make before the long steps, and the messages they give.

Each turns a mistake that would otherwise surface minutes later (or as a wall of state-dict
keys) into one :class:`~medtransfer.errors.ConfigError` that names the config field or option
to change: labels that do not fit ``data.class_names``, a label column that is not in the
manifest, a checkpoint trained with other model settings, ``--format dicom-seg`` on input that
is not a DICOM series. Used by :mod:`medtransfer.cli.runs` and :mod:`medtransfer.cli.predict`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from medtransfer.cli.config_messages import closest, shorten
from medtransfer.errors import ConfigError, DicomError, InputPathError, ManifestError

__all__ = [
    "check_label_values_fit",
    "check_predict_inputs",
    "checkpoint_mismatch",
    "manifest_label_error",
    "missing_label_key",
]


# ------------------------------------------------------------------------------- labels
def manifest_label_error(err: ManifestError, cfg: Any) -> Exception:
    """A manifest error about the label column or class names, as a ConfigError naming fields."""
    text, key = str(err), cfg.data.label_key
    if "for label_key" in text:
        return ConfigError(f"data.label_key={shorten(key)}: {text}")
    if f"field {key!r}" in text:
        return ConfigError(
            f"The labels in column {shorten(key)} (data.label_key) do not all fit "
            f"data.class_names={shorten(cfg.data.class_names)}: {text}\nList every class in "
            "label order (class 0, 1, ...), e.g. class_names: [benign, malignant], or fix the rows."
        )
    return err


def missing_label_key(cfg: Any, records: list[dict[str, Any]]) -> ConfigError:
    """No record has a value under ``data.label_key``: say so, with the closest record key."""
    key = cfg.data.label_key
    keys = sorted({k for r in records for k, v in r.items() if v is not None})
    close = closest(key, keys)
    hint = f" Did you mean {close!r}?" if close else ""
    return ConfigError(
        f"data.label_key: no record of {cfg.data.manifest} has a {shorten(key)} value.{hint} "
        f"Keys with values: {', '.join(keys) or 'none'}."
    )


def check_label_values_fit(
    cfg: Any, records: list[dict[str, Any]], num_classes: int, names: list[str] | None
) -> int:
    """Label values against the model's classes before training (see ``label_values``)."""
    from medtransfer.evaluation.label_values import check_label_values

    if cfg.model.num_classes is not None:
        source = f"model.num_classes ({cfg.model.num_classes})"
    elif cfg.data.class_names is not None:
        source = f"data.class_names ({shorten(cfg.data.class_names)})"
    elif names is not None:
        source = f"the manifest's class labels ({shorten(names)}; set data.class_names)"
    else:
        return 0  # classes counted from these very labels
    return check_label_values(records, num_classes, task=cfg.data.task, source=source)


# ------------------------------------------------------------------------------- checkpoints
_MODEL_FIELDS = (
    ("data.task", lambda c: c.data.task),
    ("model.encoder", lambda c: c.model.encoder),
    ("preprocessing.spatial_dims", lambda c: c.preprocessing.spatial_dims),
    ("model.in_channels", lambda c: c.derived_in_channels()),
    ("data.class_names", lambda c: c.data.class_names),
    ("data.findings", lambda c: c.data.findings),
    ("model.num_classes", lambda c: c.model.num_classes),
    ("model.conversion", lambda c: c.model.conversion),
    ("model.decoder_channels", lambda c: c.model.decoder_channels),
    ("model.deep_supervision", lambda c: c.model.deep_supervision),
    ("training.strategy", lambda c: c.training.strategy),
)


def _config_differences(cfg: Any, saved: Any) -> list[str]:
    out = []
    for name, get in _MODEL_FIELDS:
        here, there = get(cfg), get(saved)
        if here != there:
            out.append(f"{name} is {shorten(here, 40)} here, {shorten(there, 40)} in the run")
    return out


def checkpoint_mismatch(
    cfg: Any, checkpoint: Path, state: Any, model: Any, saved_path: Path, saved: Any = None
) -> ConfigError:
    """One sentence on why ``state`` does not fit ``model``, naming the config fields to fix.

    Args:
        cfg: the config the model was built from.
        checkpoint: the checkpoint file (for the message).
        state: its model state dict (or None when it has none).
        model: the model built from ``cfg``.
        saved_path: the run's ``run_config.yaml``; ``saved`` its loaded config, when it exists.
    """
    from medtransfer.evaluation.inference.checkpoint_fit import describe_mismatch

    what = (
        describe_mismatch(state, model)
        if isinstance(state, dict)
        else "the checkpoint holds no model weights"
    )
    fields = _config_differences(cfg, saved) if saved is not None else []
    because = f" ({'; '.join(fields)})" if fields else ""
    fix = (
        f"Use the config the run was trained with: {saved_path}"
        if saved is not None
        else "Use the config the run was trained with"
    )
    return ConfigError(
        f"Checkpoint {checkpoint} does not fit the model of this config: {what}{because}. {fix}."
    )


# ------------------------------------------------------------------------------- predict
def check_predict_inputs(inputs: list[Path], fmt: str) -> None:
    """Every input exists, and fits the output format (before any model is loaded)."""
    for image in inputs:
        if not image.exists():
            raise InputPathError(f"Input {image} does not exist.")
    if fmt != "dicom-seg":
        return
    if importlib.util.find_spec("highdicom") is None:
        raise DicomError(
            "--format dicom-seg needs highdicom: pip install 'medtransfer[seg]' (or use --format "
            "nifti)."
        )
    import medtransfer as mt

    for image in inputs:
        found = mt.io.list_series(image) if image.is_dir() else []
        if len(found) != 1:
            what = (
                "a file"
                if not image.is_dir()
                else f"a folder with {len(found)} DICOM series"
                if found
                else "a folder without a DICOM series"
            )
            raise ConfigError(
                f"--format dicom-seg needs a DICOM series as input (a folder holding one series, "
                f"which the SEG references), but {image} is {what}. Pass the series folder, or "
                "use --format nifti."
            )
