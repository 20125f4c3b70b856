"""The sections of a run config (``data``, ``preprocessing``, ``model``, ``training``,
``diagnostics``, ``output``): one pydantic model each, with per-section checks; the
``evaluation`` section is in :mod:`medtransfer.cli.config_evaluation`.

:mod:`medtransfer.cli.config` assembles them into :class:`~medtransfer.cli.config.RunConfig`
(cross-section checks, keyword arguments of the public API, loading) and re-exports every name
defined here.

Example:
    >>> TrainingConfig(steps=30).epochs is None  # steps given: epochs no longer defaults to 20
    True
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from medtransfer.cli.config_messages import shorten
from medtransfer.training import STRATEGIES

__all__ = [
    "STRATEGY_ARGS",
    "DataConfig",
    "DiagnosticsConfig",
    "ModelConfig",
    "OutputConfig",
    "PreprocessingConfig",
    "SegmentCodeConfig",
    "SplitConfig",
    "TrainingConfig",
]

Number = int | float
Window = str | tuple[float, float] | dict[str, float]
# Strategy names and their keyword arguments, read from ``mt.training.STRATEGIES`` (one table).
StrategyName = Literal[tuple(STRATEGIES)]  # type: ignore[valid-type]
STRATEGY_ARGS: dict[str, tuple[str, ...]] = {
    name: tuple(inspect.signature(cls).parameters) for name, cls in STRATEGIES.items()
}


def _fail(**problems: str) -> None:
    """Raise the problems of a cross-field check, one ``@field: message`` line each."""
    if problems:
        raise ValueError("\n".join(f"@{field}: {text}" for field, text in problems.items()))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Section):
    """How labelled records are split into train / val / test, by patient."""

    by: str = Field("patient_id", description="record key that identifies a patient")
    stratify: str | None = Field(None, description="categorical key to stratify on, e.g. label")
    fractions: tuple[float, float, float] = Field(
        (0.7, 0.15, 0.15), description="train, val, test fractions of the patients (sum 1)"
    )
    folds: int | None = Field(
        None, ge=2, description="k-fold cross-validation on train+val instead of one val split"
    )
    fold: int = Field(0, ge=0, description="which fold validates (with folds)")
    seed: int = Field(0, description="seed of the split")

    @model_validator(mode="after")
    def _check(self) -> SplitConfig:
        if any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1) > 1e-6:
            _fail(fractions=f"must be >= 0 and sum to 1 (got {list(self.fractions)})")
        if self.folds is not None and self.fold >= self.folds:
            _fail(fold=f"must be < folds={self.folds} (got {self.fold})")
        return self


class DataConfig(_Section):
    """Where the cases are and what to learn from them."""

    manifest: Path = Field(description="CSV, JSON list or MSD dataset.json (relative: config dir)")
    task: Literal["segmentation", "classification"] = Field(description="what the model predicts")
    label_key: str = Field("label", description="record key holding the label map or class")
    class_names: list[str] | None = Field(
        None,
        description="segmentation: foreground classes (label 1, 2, ...); classification: "
        "all classes in label order (default: from dataset.json labels, or class_1...)",
    )
    findings: list[str] | None = Field(
        None,
        min_length=1,
        description="classification, multi-label: the manifest columns of the findings (1, 0, "
        "-1 uncertain, empty), one sigmoid output each; instead of label_key/class_names",
    )
    uncertain: Literal["ignore", "positive", "negative"] = Field(
        "ignore", description="findings: -1 is ignored (masked), or read as 1 or 0"
    )
    missing: Literal["ignore", "negative"] = Field(
        "ignore", description="findings: an empty cell is ignored (masked), or read as 0"
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="patient-level split")

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.findings is None:
            return self
        problems: dict[str, str] = {}
        if self.task != "classification":
            problems["findings"] = "is for task 'classification' (multi-label findings)"
        if self.class_names is not None:
            problems["class_names"] = "is not used with findings (the findings name the outputs)"
        if self.label_key != "label":
            problems["label_key"] = "is not used with findings (each finding is a column)"
        reserved = sorted({"macro", "micro", "all", "label"} & set(self.findings))
        if reserved or len(set(self.findings)) < len(self.findings):
            problems["findings"] = (
                f"must be distinct column names other than macro, micro, all and label (got "
                f"{shorten(self.findings)})"
            )
        _fail(**problems)
        return self


class PreprocessingConfig(_Section):
    """Arguments of ``mt.transforms.presets.<preset>`` (see docs/transforms.md)."""

    preset: Literal["ct", "mri", "xray"] = Field("ct", description="intensity/geometry preset")
    window: Window | list[Window] | None = Field(
        None, description="ct only: window name, (level, width) or a list (one channel each)"
    )
    percentiles: tuple[float, float] | None = Field(
        None, description="mri/xray only: intensity percentiles mapped to [0, 1]"
    )
    spacing: list[float] | None = Field(None, description="target voxel size in mm")
    roi_size: list[int] | None = Field(
        None, description="crop size: 3 values in 3D, 2 (in-plane) in 2D/2.5D"
    )
    spatial_dims: Literal[2, 3] = Field(
        2,
        description="2 (slices, 2.5D) or 3 (volumes); default: the number of roi_size values, "
        "else 2 (as the presets and models)",
    )
    context: int = Field(0, ge=0, description="2.5D: neighbouring slices on each side")
    num_samples: int = Field(2, ge=1, description="training crops/slices per case and epoch")
    augment: bool = Field(True, description="random flips, affine and intensity augmentation")
    mean: list[float] | None = Field(None, description="encoder normalisation (default: weights')")
    std: list[float] | None = Field(None, description="encoder normalisation (default: weights')")
    value_range: tuple[float, float] | None = Field(None, description="encoder input range")
    histogram: str | None = Field(
        None,
        description="mri only: Nyul-Udupa histogram standardisation (sites differ in contrast): "
        "'learn' (landmarks of the training split, saved in the run folder by train) or a "
        "landmarks JSON",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_spatial_dims(cls, data: Any) -> Any:
        """The presets' rule, so a config and its preset agree: roi_size's length, else 2."""
        if isinstance(data, dict) and data.get("spatial_dims") is None:
            roi = data.get("roi_size")
            sized = isinstance(roi, list | tuple) and len(roi) in (2, 3)
            data = {**data, "spatial_dims": len(roi) if sized else 2}
        return data

    @model_validator(mode="after")
    def _check(self) -> PreprocessingConfig:
        problems: dict[str, str] = {}
        if self.spatial_dims == 3 and self.context > 0:
            problems["context"] = (
                f"must be 0 with spatial_dims=3 (got {self.context}); 2.5D needs spatial_dims=2"
            )
        if self.preset != "ct" and self.window is not None:
            problems["window"] = f"is for preset 'ct', not {self.preset!r}; use percentiles"
        if self.preset == "ct" and self.percentiles is not None:
            problems["percentiles"] = "is for presets 'mri' and 'xray'; use window for 'ct'"
        if self.histogram is not None and self.preset != "mri":
            problems["histogram"] = f"is for preset 'mri', not {self.preset!r}"
        if self.preset == "xray" and (self.spatial_dims != 2 or self.context):
            problems["preset"] = "'xray' is 2D: spatial_dims must be 2 and context 0"
        if self.roi_size is not None and len(self.roi_size) != self.spatial_dims:
            problems["roi_size"] = (
                f"needs {self.spatial_dims} values for spatial_dims="
                f"{self.spatial_dims} (got {shorten(self.roi_size)})"
            )
        _fail(**problems)
        return self

    def channels(self) -> int:
        """Image channels the preset makes: windows x (2 * context + 1)."""
        windows = len(self.window) if isinstance(self.window, list) else 1
        return windows * (2 * self.context + 1)


class ModelConfig(_Section):
    """Arguments of ``mt.models.create_segmenter`` / ``create_classifier``."""

    encoder: str = Field("tf_efficientnet_lite0", description="timm CNN name")
    weights: str | None = Field(
        "imagenet", description="'imagenet', a weight file (relative: config dir) or null"
    )
    in_channels: int | None = Field(
        None, ge=1, description="default: derived from preprocessing (windows x (2k+1))"
    )
    conversion: Literal["inflate", "acs"] | None = Field(
        None, description="3D only: 2D->3D conversion (default inflate)"
    )
    num_classes: int | None = Field(
        None,
        ge=1,
        description="outputs; default: segmentation len(class_names)+1, binary classification 1",
    )
    decoder_channels: list[int] | None = Field(None, description="segmenter: U-Net widths")
    deep_supervision: bool = Field(False, description="segmenter: auxiliary outputs")
    dropout: float = Field(0.2, ge=0, lt=1, description="classifier: dropout before the head")
    pooling: Literal["avg", "max", "avgmax"] = Field("avg", description="classifier pooling")


class TrainingConfig(_Section):
    """Arguments of ``mt.training.FineTuner`` and ``fit`` (see docs/training.md)."""

    strategy: StrategyName | list[StrategyName] = Field(
        "full", description="fine-tuning strategy, or a list composed in order"
    )
    strategy_args: dict[str, Number | bool | None] = Field(
        default_factory=dict, description="keyword arguments of the strategies"
    )
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    epochs: int | None = Field(20, gt=0, description="epochs (default 20 unless steps is given)")
    steps: int | None = Field(None, gt=0, description="optimizer steps instead of epochs")
    batch_size: int = Field(8, gt=0, description="samples per step")
    loss: Literal["auto", "ce", "bce", "focal", "dice", "dice_ce"] = Field(
        "auto", description="auto: dice_ce (segmentation), bce/ce (classification)"
    )
    pos_weight: Literal["auto"] | list[Annotated[float, Field(gt=0)]] | None = Field(
        "auto",
        description="findings: positive weight per finding in the BCE; auto: negatives / "
        "positives in the training split, capped to [0.1, 10]; null: 1 each",
    )
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="optimizer")
    weight_decay: float = Field(1e-4, ge=0, description="not applied to biases and norms")
    schedule: Literal["warmup_cosine", "one_cycle", "constant"] = Field(
        "warmup_cosine", description="learning-rate schedule, stepped per optimizer step"
    )
    amp: Literal["auto", "bf16", "fp16"] | bool = Field("auto", description="mixed precision")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1 ...")
    num_workers: int = Field(0, ge=0, description="data loader workers")
    cache: Literal["memory", "disk", "none"] = Field("memory", description="dataset cache")
    cache_dir: Path | None = Field(
        None,
        description="folder of cache: disk (relative: config dir; default: output.run_dir/cache)",
    )
    val_every: int = Field(1, gt=0, description="validate every N epochs")
    checkpoint_every: int | None = Field(None, gt=0, description="mid-epoch checkpoints (steps)")
    early_stopping: int | None = Field(None, gt=0, description="patience in validations")
    seed: int = Field(0, description="weights of new layers, data order, augmentation")
    deterministic: bool = Field(False, description="deterministic algorithms (exact resume)")

    @model_validator(mode="before")
    @classmethod
    def _steps_replace_epochs(cls, data: Any) -> Any:
        # ``steps: 30`` alone means a run of 30 steps: the default of epochs does not apply
        if isinstance(data, dict) and data.get("steps") is not None and "epochs" not in data:
            return {**data, "epochs": None}
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if (self.epochs is None) == (self.steps is None):
            _fail(epochs="give exactly one of epochs and steps (remove one, or set it to null)")
        names = [self.strategy] if isinstance(self.strategy, str) else self.strategy
        allowed = sorted({arg for name in names for arg in STRATEGY_ARGS[name]})
        unknown = sorted(set(self.strategy_args) - set(allowed))
        if unknown:
            _fail(
                strategy_args=f"{shorten(unknown)} are not arguments of {names}; allowed: "
                f"{allowed or 'none'}"
            )
        return self


# a code value read from YAML may be a number (91723000): kept as its text
CodeText = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]
Code = tuple[CodeText, CodeText, CodeText]


class SegmentCodeConfig(_Section):
    """SNOMED CT codes of one class in the DICOM-SEG of ``predict`` (``[value, scheme, meaning]``)."""

    type: Code = Field(description="segmented property type, e.g. [389080008, SCT, White Matter]")
    category: Code | None = Field(
        None, description="property category (default: the type's, from pydicom's dictionary)"
    )

    def as_label(self, name: str) -> dict[str, Any]:
        """The entry of ``mt.io.save_dicom_seg(labels=...)`` for the class ``name``."""
        label: dict[str, Any] = {"name": name, "type": self.type}
        if self.category is not None:
            label["category"] = self.category
        return label


def _class_value(key: int | str, names: list[str]) -> int | None:
    """Label value (1, 2, ...) of a class given by name (any case) or value; None if unknown."""
    text = str(key).strip()
    if text.isdigit():
        return int(text) if 1 <= int(text) <= len(names) else None
    folded = [n.casefold() for n in names]
    return folded.index(text.casefold()) + 1 if text.casefold() in folded else None


def _segment_code_problems(codes: dict[Any, Any], names: list[str]) -> dict[str, str]:
    """``output.segment_codes`` keys that are not foreground classes."""
    for key in codes:
        if _class_value(key, names) is None:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = (
                f"Classes: {', '.join(names)} (or label values 1..{len(names)})"
                if names
                else "the model has no class names (set data.class_names)"
            )
            return {"output.segment_codes": f"{shorten(key)} is not a class; {hint}{known}"}
    return {}


class OutputConfig(_Section):
    """Where results go."""

    run_dir: Path = Field(Path("runs/run"), description="run folder (relative: config dir)")
    segment_codes: dict[int | str, SegmentCodeConfig] = Field(
        default_factory=dict,
        description="predict --format dicom-seg: SNOMED CT codes per class (name or label "
        "value), {class: {type: [value, SCT, meaning], category: [...]}}; classes not listed "
        "are looked up by name (docs/io.md)",
    )


class DiagnosticsConfig(_Section):
    """``medtransfer diagnose rank`` and ``train --compare-to-scratch`` (``mt.diagnostics``)."""

    candidates: list[str] = Field(
        default_factory=list,
        description="encoders to rank besides model.encoder (ImageNet and random init), e.g. "
        "[tf_efficientnet_lite1, 'tf_efficientnet_lite0:2.5d', 'resnet18:random']",
    )
    method: Literal["logme", "h_score", "leep", "linear_probe"] = Field(
        "logme", description="transferability score of diagnose rank"
    )
    max_samples: int = Field(
        4000, ge=2, description="cases (classification) or class-balanced pixels scored"
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2], min_length=1, description="compare-to-scratch seeds"
    )
    label_fractions: list[float] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        description="compare-to-scratch training-set fractions, each in (0, 1]",
    )

    @field_validator("label_fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        bad = [f for f in value if not 0 < f <= 1]
        if bad:
            raise ValueError(f"fractions must be in (0, 1]; got {bad}")
        return value
