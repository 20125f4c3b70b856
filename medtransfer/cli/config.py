"""YAML run configs for the ``medtransfer`` command: pydantic models and loading.

A config has seven sections (``data``, ``preprocessing``, ``model``, ``training``,
``evaluation``, ``diagnostics``, ``output``); every field has a default except ``data.manifest``
and ``data.task``. Unknown keys, wrong types and impossible combinations are collected and raised
as one
:class:`~medtransfer.errors.ConfigError` listing each bad field, with the allowed values and the
closest known key. Relative paths are resolved against the config file's folder. Only the entry
points (the :mod:`medtransfer.cli` package) import this module. The section models are in
:mod:`medtransfer.cli.config_sections` and :mod:`medtransfer.cli.config_evaluation` (re-exported
here).

Example:
    >>> cfg = RunConfig.model_validate({"data": {"manifest": "dataset.json", "task": "segmentation"}})
    >>> cfg.preprocessing.preset, cfg.model.encoder, cfg.derived_in_channels()
    ('ct', 'tf_efficientnet_lite0', 1)
    >>> try:
    ...     RunConfig.model_validate({"data": {"manifest": "m.csv", "task": "segmentation"},
    ...                               "training": {"epoch": 3}})
    ... except ValidationError as err:
    ...     print(str(validation_message(err, RunConfig)).splitlines()[1][:55])
      - training.epoch: unknown key; did you mean 'epochs'?
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from medtransfer.cli.config_evaluation import EvaluationConfig, PostprocessConfig
from medtransfer.cli.config_messages import shorten, validation_message
from medtransfer.cli.config_sections import (
    STRATEGY_ARGS,
    DataConfig,
    DiagnosticsConfig,
    ModelConfig,
    OutputConfig,
    PreprocessingConfig,
    SegmentCodeConfig,
    SplitConfig,
    TrainingConfig,
    _class_value,
    _fail,
    _Section,
    _segment_code_problems,
)
from medtransfer.cli.config_yaml import load_yaml, read_config_text
from medtransfer.errors import ConfigError

#: Landmarks learned by ``train`` for ``preprocessing.histogram: learn``, in the run folder.
HISTOGRAM_FILE = "histogram_landmarks.json"

__all__ = [
    "HISTOGRAM_FILE",
    "STRATEGY_ARGS",
    "DataConfig",
    "DiagnosticsConfig",
    "EvaluationConfig",
    "ModelConfig",
    "OutputConfig",
    "PostprocessConfig",
    "PreprocessingConfig",
    "RunConfig",
    "SegmentCodeConfig",
    "SplitConfig",
    "TrainingConfig",
    "load_config",
]


class RunConfig(_Section):
    """A whole ``medtransfer train/evaluate/predict`` config."""

    data: DataConfig
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        problems: dict[str, str] = {}
        pre, model = self.preprocessing, self.model
        if model.conversion is not None and pre.spatial_dims == 2:
            problems["model.conversion"] = (
                "is for preprocessing.spatial_dims=3 (2D models need none)"
            )
        channels = pre.channels()
        if model.in_channels is not None and model.in_channels % channels:
            problems["model.in_channels"] = (
                f"{model.in_channels} must be a multiple of the {channels} "
                "channel(s) preprocessing makes (windows x (2 * context + 1))"
            )
        if self.data.task == "classification" and model.deep_supervision:
            problems["model.deep_supervision"] = "is for data.task='segmentation'"
        names = self.data.class_names
        if names is not None and model.num_classes is not None:
            expected = self.num_classes()
            if model.num_classes != expected and not (
                self.data.task == "classification" and len(names) == 2 and model.num_classes == 2
            ):
                problems["model.num_classes"] = (
                    f"{model.num_classes} does not fit data.class_names "
                    f"({len(names)} names): expected {expected}"
                )
        problems.update(self._findings_problems())
        if names is not None and self.data.task == "segmentation":
            problems.update(self._postprocess_class_problems(names))
            problems.update(_segment_code_problems(self.output.segment_codes, names))
        if self.output.segment_codes and self.data.task != "segmentation":
            problems["output.segment_codes"] = "is for data.task='segmentation' (DICOM-SEG)"
        _fail(**problems)
        return self

    def _findings_problems(self) -> dict[str, str]:
        """Fields whose size or keys must fit ``data.findings`` (or that need findings)."""
        findings, problems = self.data.findings, {}
        k = len(findings) if findings else None
        if k is not None and self.model.num_classes not in (None, k):
            problems["model.num_classes"] = (
                f"{self.model.num_classes} does not fit data.findings ({k} findings): expected {k}"
            )
        weights = self.training.pos_weight
        if isinstance(weights, list) and len(weights) != (k or -1):
            problems["training.pos_weight"] = (
                f"needs one weight per finding of data.findings ({k})"
                if k
                else "a list is for data.findings (multi-label); use auto or null"
            )
        cut = self.evaluation.threshold
        if isinstance(cut, dict):
            unknown = sorted(set(cut) - set(findings or []))
            if unknown:
                problems["evaluation.threshold"] = (
                    f"{shorten(unknown)} are not findings; findings: "
                    f"{', '.join(findings) if findings else 'none (set data.findings)'}"
                )
        elif isinstance(cut, str) and not findings and len(self.data.class_names or ()) > 2:
            problems["evaluation.threshold"] = (
                f"{cut} chooses a threshold for binary tasks or findings; several classes are "
                "decided by argmax"
            )
        return problems

    def _postprocess_class_problems(self, names: list[str]) -> dict[str, str]:
        """Classes named in ``evaluation.postprocess`` that are not foreground classes."""
        problems = {}
        for option, entries in self.evaluation.postprocess.class_entries().items():
            for entry in entries:
                text = str(entry)
                if text.isdigit() and 1 <= int(text) <= len(names):
                    continue
                if text in names or text.casefold() in (n.casefold() for n in names):
                    continue
                close = difflib.get_close_matches(text, names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problems[f"evaluation.postprocess.{option}"] = (
                    f"{shorten(entry)} is not a class; {hint}Classes: {', '.join(names)} (or "
                    f"label values 1..{len(names)})"
                )
        return problems

    def seg_labels(self, names: list[str] | None) -> dict[int, Any] | None:
        """``labels`` of ``mt.io.save_dicom_seg``: class names, with ``output.segment_codes``.

        Args:
            names: the foreground class names (label 1, 2, ...), or None (unnamed segments).

        Raises:
            ConfigError: ``output.segment_codes`` names a class that is not in ``names``.
        """
        codes = self.output.segment_codes
        for field, problem in _segment_code_problems(codes, names or []).items():
            raise ConfigError(f"{field}: {problem}.")
        if not names:
            return None
        by_value = {_class_value(key, names): entry for key, entry in codes.items()}
        return {
            value: by_value[value].as_label(name) if value in by_value else name
            for value, name in enumerate(names, start=1)
        }

    def derived_in_channels(self) -> int:
        """``model.in_channels``, or the channels preprocessing makes."""
        return self.model.in_channels or self.preprocessing.channels()

    def num_classes(self, default_names: list[str] | None = None) -> int:
        """Model outputs: explicit, else from the class names (segmentation adds background) or
        the findings (one output each)."""
        if self.data.findings is not None:
            return len(self.data.findings)
        if self.model.num_classes is not None and default_names is None:
            return self.model.num_classes
        names = self.data.class_names or default_names
        if names is None:
            raise ConfigError(
                "model.num_classes: give it, or data.class_names (the number of outputs "
                "cannot be read from this manifest)."
            )
        if self.data.task == "segmentation":
            return len(names) + 1
        return 1 if len(names) == 2 else len(names)

    def strategy_kwargs(self) -> list[tuple[str, dict[str, Any]]]:
        """``[(strategy name, its keyword arguments), ...]`` in composition order."""
        t = self.training
        names = [t.strategy] if isinstance(t.strategy, str) else list(t.strategy)
        return [(n, {k: t.strategy_args[k] for k in STRATEGY_ARGS[n] if k in t.strategy_args}) for n in names]  # fmt: skip

    # -- keyword arguments of the public API ------------------------------------------------
    def preset_kwargs(self, num_classes: int) -> dict[str, Any]:
        """Arguments of ``mt.transforms.presets.<preprocessing.preset>(...)``."""
        p = self.preprocessing
        kwargs: dict[str, Any] = {
            "task": self.data.task,
            "roi_size": p.roi_size,
            "seed": self.training.seed,
        }
        kwargs.update(
            spacing=p.spacing, augment=p.augment, mean=p.mean, std=p.std, value_range=p.value_range
        )
        if p.preset != "xray":
            kwargs.update(spatial_dims=p.spatial_dims, context=p.context, num_samples=p.num_samples)
            if self.data.task == "segmentation":
                kwargs["num_classes"] = num_classes  # crops balanced over the classes
        if p.preset == "ct":
            kwargs["window"] = p.window
        elif p.percentiles is not None:
            kwargs["percentiles"] = p.percentiles
        if p.histogram is not None:
            kwargs["histogram"] = self.histogram_path()
        return {k: v for k, v in kwargs.items() if v is not None}

    def histogram_path(self) -> Path | None:
        """The landmarks file of ``preprocessing.histogram`` ('learn': in the run folder)."""
        histogram = self.preprocessing.histogram
        if histogram is None:
            return None
        return self.output.run_dir / HISTOGRAM_FILE if histogram == "learn" else Path(histogram)

    def model_kwargs(self, num_classes: int, weights: str | None) -> dict[str, Any]:
        """Arguments of ``mt.models.create_segmenter`` / ``create_classifier``."""
        m = self.model
        kwargs: dict[str, Any] = {
            "encoder_name": m.encoder, "num_classes": num_classes, "weights": weights,
            "in_channels": self.derived_in_channels(),
            "spatial_dims": self.preprocessing.spatial_dims, "conversion": m.conversion,
            "seed": self.training.seed,  # the same new layers in every run of this config
        }  # fmt: skip
        if self.data.task == "segmentation":
            kwargs["deep_supervision"] = m.deep_supervision
            if m.decoder_channels is not None:
                kwargs["decoder_channels"] = m.decoder_channels
        else:
            kwargs.update(dropout=m.dropout, pooling=m.pooling)
            if self.data.findings is not None:
                kwargs.update(multilabel=True, class_names=list(self.data.findings))
        return kwargs

    def finetuner_kwargs(self) -> dict[str, Any]:
        """Arguments of ``mt.training.FineTuner`` (all but the model and strategy)."""
        t = self.training
        names = ("lr", "loss", "optimizer", "weight_decay", "schedule", "amp", "device",
                 "num_workers", "cache", "cache_dir", "val_every", "checkpoint_every", "seed",
                 "deterministic", "batch_size")  # fmt: skip
        kwargs = {name: getattr(t, name) for name in names}
        if self.data.findings is not None:
            kwargs["pos_weight"] = t.pos_weight
        roi = self.preprocessing.roi_size if self.preprocessing.spatial_dims == 3 else None
        return {**kwargs, "task": self.data.task, "run_dir": self.output.run_dir, "roi_size": roi}

    def fit_kwargs(self) -> dict[str, Any]:
        """``{"epochs": n}`` or ``{"steps": n}`` for ``FineTuner.fit``."""
        t = self.training
        return {"epochs": t.epochs} if t.epochs is not None else {"steps": t.steps}

    def postprocess_options(self) -> dict[str, Any] | None:
        """``evaluation.postprocess`` as options of ``evaluate_segmentation(postprocess=...)``.

        None when no step is asked for (post-processing is opt-in). Classes are still names or
        values: ``mt.evaluation.inference.postprocess_options.resolve_postprocess`` maps them.
        """
        post = self.evaluation.postprocess
        if not post.enabled():
            return None
        return {k: v for k, v in post.model_dump().items() if v not in (None, False)}

    def manifest_kwargs(self) -> dict[str, Any]:
        """Label arguments of ``mt.data.load_manifest`` (``label_key``, ``class_names``).

        Classification passes both (class names become indices 0, 1, ...; every row needs a
        label), or ``findings`` with the ``uncertain`` and ``missing`` policies (multi-label).
        Segmentation class names are foreground labels 1, 2, ..., not manifest values, so only
        a label column other than ``label`` is passed (its paths are then resolved).
        """
        d = self.data
        if d.findings is not None:
            return {"findings": list(d.findings), "uncertain": d.uncertain, "missing": d.missing}
        if d.task == "classification":
            kwargs: dict[str, Any] = {"label_key": d.label_key}
            if d.class_names is not None:
                kwargs["class_names"] = list(d.class_names)
            return kwargs
        return {"label_key": d.label_key} if d.label_key != "label" else {}

    def with_normalisation(self, input_spec: Any) -> RunConfig:
        """A copy with explicit ``preprocessing.mean/std/value_range`` (from an encoder's spec)."""
        p = self.preprocessing
        update = {
            "mean": p.mean or [float(v) for v in input_spec.mean],
            "std": p.std or [float(v) for v in input_spec.std],
            "value_range": p.value_range or tuple(float(v) for v in input_spec.value_range),
        }
        return self.model_copy(update={"preprocessing": p.model_copy(update=update)})

    def with_paths_under(self, folder: Path) -> RunConfig:
        """A copy whose relative paths are resolved against ``folder`` (absolute stay)."""

        def resolve(path: Path | str) -> Path:
            path = Path(path).expanduser()
            return path if path.is_absolute() else (folder / path).resolve()

        data = self.data.model_copy(update={"manifest": resolve(self.data.manifest)})
        output = self.output.model_copy(update={"run_dir": resolve(self.output.run_dir)})
        weights = self.model.weights
        if weights not in (None, "imagenet"):
            weights = str(resolve(weights))
        model = self.model.model_copy(update={"weights": weights})
        histogram = self.preprocessing.histogram
        if histogram not in (None, "learn"):
            histogram = str(resolve(histogram))
        preprocessing = self.preprocessing.model_copy(update={"histogram": histogram})
        cache_dir = self.training.cache_dir
        training = self.training.model_copy(
            update={"cache_dir": None if cache_dir is None else resolve(cache_dir)}
        )
        update = {"data": data, "output": output, "model": model, "training": training,
                  "preprocessing": preprocessing}  # fmt: skip
        return self.model_copy(update=update)

    def to_yaml(self) -> str:
        """The config as YAML text (loadable again by :func:`load_config`)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ------------------------------------------------------------------------------- loading
def load_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read and validate a YAML run config; relative paths resolve against its folder.

    Args:
        path: the ``.yaml`` file.
        overrides: dotted keys to set before validation, e.g. ``{"training.epochs": 1}``.

    Raises:
        ConfigError: missing, unreadable or too large (> 1 MB) file, invalid YAML, aliases
            that expand too far (see :mod:`medtransfer.cli.config_yaml`), or invalid fields (all
            listed).
    """
    path = Path(path).expanduser()
    raw = load_yaml(read_config_text(path), f"Config file {path}") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of sections, not a list.")
    for key, value in (overrides or {}).items():
        target = raw
        *parents, last = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {shorten(key)}: {shorten(part)} is not a section.")
        target[last] = value
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise validation_message(err, RunConfig, source=str(path)) from None
    return config.with_paths_under(path.resolve().parent)
