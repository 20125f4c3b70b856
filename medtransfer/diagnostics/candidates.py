"""What the diagnostics compare: a :class:`Candidate` is an encoder, its weights and its input form.

One candidate is everything that decides the features a task model starts from: the timm encoder,
its initial weights (ImageNet, a file, or random), and how a volume is shown to it (2D slices,
2.5D stacks of ``2 * context + 1`` neighbouring slices as channels, or 3D with the 2D kernels
inflated or turned into ACS convolutions). Strings are a short form for notebooks and the CLI::

    "tf_efficientnet_lite0"                  2D, ImageNet weights
    "tf_efficientnet_lite0:random"           2D, random initialisation
    "tf_efficientnet_lite0:2.5d"             2.5D, 3 slices (context 1); "2.5d-5": 5 slices
    "tf_efficientnet_lite0:3d-acs"           3D with ACS convolutions; "3d" is "3d-inflate"
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from medtransfer.errors import ConfigError

__all__ = ["Candidate", "as_candidate", "preset_identity"]

_CONVERSIONS = ("inflate", "acs")


@dataclass(frozen=True)
class Candidate:
    """An encoder with its initial weights and input form, as ranked or compared by diagnostics.

    Args:
        encoder: timm model name (``mt.encoders.list_encoders()``).
        weights: ``"imagenet"``, a weight file, or None (random initialisation).
        context: 2.5D: ``2 * context + 1`` neighbouring slices as channels (2D only).
        spatial_dims: 2 (slices) or 3 (volumes; the 2D encoder converted).
        conversion: 3D only: ``"inflate"`` (default) or ``"acs"``.
        channels: image channels per slice (CT windows, MR sequences); the encoder gets
            ``channels * (2 * context + 1)``.
        label: the name shown in tables and plots (default: built from the fields).

    Example:
        >>> c = Candidate("resnet18", weights=None, context=1)
        >>> c.name, c.in_channels
        ('resnet18 · 2.5D (3 slices) · random init', 3)
        >>> as_candidate("resnet18:3d-acs").conversion
        'acs'
    """

    encoder: str
    weights: str | os.PathLike[str] | None = "imagenet"
    context: int = 0
    spatial_dims: int = 2
    conversion: str | None = None
    channels: int = 1
    label: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.encoder, str) or not self.encoder:
            problems.append(f"encoder={self.encoder!r} must be a timm model name")
        if self.spatial_dims not in (2, 3) or isinstance(self.spatial_dims, bool):
            problems.append(f"spatial_dims={self.spatial_dims!r} must be 2 or 3")
        if not isinstance(self.context, int) or isinstance(self.context, bool) or self.context < 0:
            problems.append(f"context={self.context!r} must be an integer >= 0")
        elif self.context and self.spatial_dims == 3:
            problems.append("context (2.5D) needs spatial_dims=2")
        if (
            not isinstance(self.channels, int)
            or isinstance(self.channels, bool)
            or self.channels < 1
        ):
            problems.append(f"channels={self.channels!r} must be an integer >= 1")
        if self.conversion is not None and self.conversion not in _CONVERSIONS:
            problems.append(f"conversion={self.conversion!r} must be None, 'inflate' or 'acs'")
        elif self.conversion is not None and self.spatial_dims == 2:
            problems.append(f"conversion={self.conversion!r} needs spatial_dims=3")
        if problems:
            raise ConfigError("Invalid Candidate: " + "; ".join(problems) + ".")
        if self.spatial_dims == 3 and self.conversion is None:
            object.__setattr__(self, "conversion", "inflate")

    @property
    def in_channels(self) -> int:
        """Input channels of the encoder: ``channels * (2 * context + 1)``."""
        return self.channels * (2 * self.context + 1)

    @property
    def init(self) -> str:
        """``"ImageNet"``, ``"random init"`` or the weight file's name."""
        if self.weights is None:
            return "random init"
        if str(self.weights) == "imagenet":
            return "ImageNet"
        return os.path.basename(os.fspath(self.weights))

    @property
    def form(self) -> str:
        """``"2D"``, ``"2.5D (k slices)"``, ``"3D inflate"`` or ``"3D acs"``."""
        if self.spatial_dims == 3:
            return f"3D {self.conversion}"
        return f"2.5D ({2 * self.context + 1} slices)" if self.context else "2D"

    @property
    def name(self) -> str:
        """The label shown in tables and plots."""
        return self.label or f"{self.encoder} · {self.form} · {self.init}"

    def with_weights(self, weights: str | os.PathLike[str] | None) -> Candidate:
        """The same candidate with other initial weights (None: random), label recomputed."""
        return replace(self, weights=weights, label=None)

    def build_model(self, task: str, num_classes: int, *, seed: int | None = None, **kwargs: Any):
        """The task model (``create_segmenter`` / ``create_classifier``) for this candidate.

        Args:
            task: ``"segmentation"`` or ``"classification"``.
            num_classes: output channels (segmentation, background included) or logits.
            seed: seeds every randomly initialised weight (see ``mt.models``).
            **kwargs: passed on (``decoder_channels``, ``dropout``...).
        """
        from medtransfer import models

        factories = {"segmentation": models.create_segmenter, "classification": models.create_classifier}  # fmt: skip
        if task not in factories:
            raise ConfigError(f"task={task!r} must be 'segmentation' or 'classification'.")
        return factories[task](
            self.encoder, num_classes, self.weights, in_channels=self.in_channels,
            spatial_dims=self.spatial_dims, conversion=self.conversion, seed=seed, **kwargs,
        )  # fmt: skip

    def preset(self, preset: Any, model: Any) -> tuple[Any, Any]:
        """The ``(train, eval)`` pipelines for this candidate.

        Args:
            preset: a ``(train, eval)`` pair, used as given, or a callable such as
                ``functools.partial(mt.transforms.presets.mri, "segmentation", roi_size=(64, 64))``
                called with this candidate's ``input_spec`` (the encoder's normalisation),
                ``context`` and ``spatial_dims``; a partial's ``roi_size`` of another number of
                dimensions is left out (the preset's default), so one partial serves 2D and 3D.
            model: the model built by :meth:`build_model` (its ``encoder.input_spec`` is used).
        """
        if isinstance(preset, tuple) and len(preset) == 2:
            return preset
        if not callable(preset):
            raise ConfigError(
                f"preset must be a (train, eval) pair or a callable like functools.partial("
                f"mt.transforms.presets.ct, 'segmentation', ...); got {type(preset).__name__}."
            )
        spec = getattr(getattr(model, "encoder", None), "input_spec", None)
        return _call_preset(preset, spec, self.context, self.spatial_dims)


def _call_preset(preset: Callable, spec: Any, context: int, spatial_dims: int) -> tuple[Any, Any]:
    roi = preset.keywords.get("roi_size") if isinstance(preset, functools.partial) else None
    if roi is not None and len(roi) != spatial_dims:  # a 2D roi_size given for 2D and 3D candidates
        keywords = {k: v for k, v in preset.keywords.items() if k != "roi_size"}
        preset = functools.partial(preset.func, *preset.args, **keywords)  # the preset's default
    pair = preset(input_spec=spec, context=context, spatial_dims=spatial_dims)
    if not (isinstance(pair, tuple) and len(pair) == 2):
        raise ConfigError(
            "preset(...) must return a (train, eval) pair like mt.transforms.presets."
        )
    return pair


_OPTIONS = "random, 2.5d, 2.5d-<slices>, 3d, 3d-inflate, 3d-acs"


def as_candidate(value: Any, **defaults: Any) -> Candidate:
    """A :class:`Candidate` from a candidate or a string ``"encoder[:option]..."``.

    Options: ``random`` (random initialisation), ``2.5d`` (3 slices) or ``2.5d-<k>`` (k slices,
    odd), ``3d`` / ``3d-inflate`` / ``3d-acs``. ``defaults`` fill the fields a string leaves
    open (e.g. a run config's ``weights``, ``context`` and ``channels``); an input-form option
    (``2.5d``, ``3d``) replaces the default form as a whole.

    Example:
        >>> as_candidate("tf_efficientnet_lite0:2.5d-5:random")
        Candidate(encoder='tf_efficientnet_lite0', weights=None, context=2, spatial_dims=2, conversion=None, channels=1, label=None)
    """
    if isinstance(value, Candidate):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"A candidate is a Candidate or a string like 'tf_efficientnet_lite0:2.5d'; "
            f"got {value!r}."
        )
    encoder, *options = (part.strip() for part in value.split(":"))
    fields: dict[str, Any] = dict(defaults)
    for option in (o.lower() for o in options):
        if option == "random":
            fields["weights"] = None
        elif option.startswith("2.5d"):
            slices = option[5:] if option.startswith("2.5d-") else "3"
            if not slices.isdigit() or int(slices) % 2 == 0 or int(slices) < 3:
                raise ConfigError(f"{value!r}: '{option}' needs an odd number of slices >= 3.")
            fields.update(context=(int(slices) - 1) // 2, spatial_dims=2, conversion=None)
        elif option in ("3d", "3d-inflate", "3d-acs"):
            fields["spatial_dims"], fields["context"] = 3, 0
            fields["conversion"] = "acs" if option == "3d-acs" else "inflate"
        else:
            raise ConfigError(f"{value!r}: unknown option {option!r}; known: {_OPTIONS}.")
    return Candidate(encoder, **fields)


def preset_identity(preset: Any) -> str | None:
    """A stable text naming a preset callable, for cache keys and resume checks.

    A ``functools.partial``: its function, arguments and keywords; any callable with an
    ``identity`` attribute: that. None when it cannot be known (a ready ``(train, eval)`` pair, a
    plain function or closure): then features are not cached and runs are not checked on it.

    Example:
        >>> import functools
        >>> preset_identity(functools.partial(sorted, reverse=True))
        '["builtins.sorted", [], [["reverse", true]]]'
    """
    if isinstance(preset, functools.partial):
        name = (
            f"{getattr(preset.func, '__module__', '')}.{getattr(preset.func, '__qualname__', '')}"
        )
        return json.dumps([name, list(preset.args), sorted(preset.keywords.items())], default=repr)
    identity = getattr(preset, "identity", None)
    return None if identity is None else str(identity)


def weights_identity(candidate: Candidate) -> list[Any]:
    """The candidate's weights: a name, or a file's path, size and modification time."""
    weights = candidate.weights
    if weights is None or str(weights) == "imagenet" or not os.path.exists(weights):
        return [None if weights is None else str(weights)]
    stat = os.stat(weights)
    return [os.fspath(weights), stat.st_size, stat.st_mtime_ns]
