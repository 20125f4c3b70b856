"""YAML run configs for the ``medtransfer`` command: pydantic models and loading.

A config has six sections (``data``, ``preprocessing``, ``model``, ``training``, ``evaluation``,
``output``); every field has a default except ``data.manifest`` and ``data.task``. Unknown keys,
wrong types and impossible combinations are collected and raised as one
:class:`~medtransfer.errors.ConfigError` listing each bad field, with the allowed values and the
closest known key. Relative paths are resolved against the config file's folder. Only the entry
points (``medtransfer.cli``, ``medtransfer.demo``) import this module.

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

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medtransfer.config_messages import shorten, validation_message
from medtransfer.config_yaml import load_yaml, read_config_text
from medtransfer.errors import ConfigError

__all__ = [
    "STRATEGY_ARGS",
    "DataConfig",
    "EvaluationConfig",
    "ModelConfig",
    "OutputConfig",
    "PreprocessingConfig",
    "RunConfig",
    "SplitConfig",
    "TrainingConfig",
    "load_config",
]

Number = int | float
Window = str | tuple[float, float] | dict[str, float]
StrategyName = Literal[
    "full", "linear_probe", "bitfit", "gradual_unfreeze", "discriminative", "lora"
]
# Keyword arguments each strategy accepts (``mt.training`` class of the same name).
STRATEGY_ARGS: dict[str, tuple[str, ...]] = {
    "full": (),
    "linear_probe": (),
    "bitfit": (),
    "gradual_unfreeze": ("head_epochs", "epochs_per_stage", "train_norms"),
    "discriminative": ("decay",),
    "lora": ("rank", "alpha"),
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
    split: SplitConfig = Field(default_factory=SplitConfig, description="patient-level split")


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
    spatial_dims: Literal[2, 3] = Field(2, description="2 (slices, 2.5D) or 3 (volumes)")
    context: int = Field(0, ge=0, description="2.5D: neighbouring slices on each side")
    num_samples: int = Field(2, ge=1, description="training crops/slices per case and epoch")
    augment: bool = Field(True, description="random flips, affine and intensity augmentation")
    mean: list[float] | None = Field(None, description="encoder normalisation (default: weights')")
    std: list[float] | None = Field(None, description="encoder normalisation (default: weights')")
    value_range: tuple[float, float] | None = Field(None, description="encoder input range")

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
    epochs: int | None = Field(20, gt=0, description="epochs (or give steps and epochs: null)")
    steps: int | None = Field(None, gt=0, description="optimizer steps instead of epochs")
    batch_size: int = Field(8, gt=0, description="samples per step")
    loss: Literal["auto", "ce", "bce", "focal", "dice", "dice_ce"] = Field(
        "auto", description="auto: dice_ce (segmentation), bce/ce (classification)"
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

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if (self.epochs is None) == (self.steps is None):
            _fail(epochs="give exactly one of epochs and steps (set the other to null)")
        names = [self.strategy] if isinstance(self.strategy, str) else self.strategy
        allowed = sorted({arg for name in names for arg in STRATEGY_ARGS[name]})
        unknown = sorted(set(self.strategy_args) - set(allowed))
        if unknown:
            _fail(
                strategy_args=f"{shorten(unknown)} are not arguments of {names}; allowed: "
                f"{allowed or 'none'}"
            )
        return self


class EvaluationConfig(_Section):
    """Arguments of ``mt.evaluation.evaluate_segmentation`` / ``evaluate_classification``."""

    subset: Literal["test", "val"] = Field("test", description="held-out split to evaluate")
    tolerance_mm: float = Field(2.0, gt=0, description="surface Dice tolerance")
    postprocess: bool | dict[str, Any] | None = Field(
        None, description="null: largest component; false: none; or postprocess options"
    )
    tta: bool = Field(False, description="flip test-time augmentation (segmentation)")
    threshold: float | None = Field(None, ge=0, le=1, description="binary decision threshold")
    n_resamples: int = Field(2000, ge=10, description="bootstrap resamples for the 95% CIs")


class OutputConfig(_Section):
    """Where results go."""

    run_dir: Path = Field(Path("runs/run"), description="run folder (relative: config dir)")


class RunConfig(_Section):
    """A whole ``medtransfer train/evaluate/predict`` config."""

    data: DataConfig
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
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
        _fail(**problems)
        return self

    def derived_in_channels(self) -> int:
        """``model.in_channels``, or the channels preprocessing makes."""
        return self.model.in_channels or self.preprocessing.channels()

    def num_classes(self, default_names: list[str] | None = None) -> int:
        """Model outputs: explicit, else from the class names (segmentation adds background)."""
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
        return {k: v for k, v in kwargs.items() if v is not None}

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
        return kwargs

    def finetuner_kwargs(self) -> dict[str, Any]:
        """Arguments of ``mt.training.FineTuner`` (all but the model and strategy)."""
        t = self.training
        names = ("lr", "loss", "optimizer", "weight_decay", "schedule", "amp", "device",
                 "num_workers", "cache", "cache_dir", "val_every", "checkpoint_every", "seed",
                 "deterministic", "batch_size")  # fmt: skip
        kwargs = {name: getattr(t, name) for name in names}
        roi = self.preprocessing.roi_size if self.preprocessing.spatial_dims == 3 else None
        return {**kwargs, "task": self.data.task, "run_dir": self.output.run_dir, "roi_size": roi}

    def fit_kwargs(self) -> dict[str, Any]:
        """``{"epochs": n}`` or ``{"steps": n}`` for ``FineTuner.fit``."""
        t = self.training
        return {"epochs": t.epochs} if t.epochs is not None else {"steps": t.steps}

    def postprocess_options(self) -> dict[str, Any] | None:
        """Options of ``mt.evaluation.postprocess`` (None: no post-processing)."""
        option = self.evaluation.postprocess
        if option is False:
            return None
        return {"largest_component": True} if option in (None, True) else dict(option)

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
        cache_dir = self.training.cache_dir
        training = self.training.model_copy(
            update={"cache_dir": None if cache_dir is None else resolve(cache_dir)}
        )
        update = {"data": data, "output": output, "model": model, "training": training}
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
            that expand too far (see :mod:`medtransfer.config_yaml`), or invalid fields (all
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
