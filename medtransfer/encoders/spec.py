"""Small frozen dataclasses that describe encoders as data: weight sources and input conventions.

Nothing here imports torch, so the tables can be read (and tested) without building a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EncoderInfo", "InputSpec", "ResolvedWeights", "WeightSource"]

# Where a set of weights may come from, in the order `create` looks for them.
SOURCE_KINDS = ("file", "cache", "package", "hub")


@dataclass(frozen=True)
class InputSpec:
    """How inputs must look for an encoder's pretrained features to be meaningful.

    Transform presets consume this: scale intensities into ``value_range`` (e.g. a CT window mapped
    to [0, 1]), then subtract ``mean`` and divide by ``std`` channel by channel.

    Attributes:
        mean: per-input-channel mean, one value per input channel (after channel adaptation).
        std: per-input-channel standard deviation, same length as ``mean``.
        value_range: range the intensities are expected in *before* normalisation.
        input_size: in-plane size (height, width) the weights were trained at; features are
            calibrated to objects of about that scale in pixels.
        interpolation: resampling the weights' authors used ("bilinear" or "bicubic").
        size_divisor: per spatial dimension, the size an input must be a multiple of for every
            pyramid level to tile it exactly (depth first for 3D).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    value_range: tuple[float, float] = (0.0, 1.0)
    input_size: tuple[int, int] = (224, 224)
    interpolation: str = "bicubic"
    size_divisor: tuple[int, ...] = (32, 32)

    def normalize(self, image: Any) -> Any:
        """Normalise a channel-first tensor or array (``(C, ...)`` or ``(N, C, ...)``).

        Args:
            image: intensities already scaled into ``value_range``.

        Example:
            >>> import torch
            >>> spec = InputSpec(mean=(0.5,), std=(0.25,), size_divisor=(32, 32))
            >>> spec.normalize(torch.ones(1, 2, 2)).unique().tolist()
            [2.0]
        """
        channel_axis = image.ndim - len(self.size_divisor) - 1
        shape = [1] * image.ndim
        shape[channel_axis] = len(self.mean)
        mean = image.new_tensor(self.mean) if hasattr(image, "new_tensor") else None
        if mean is None:  # numpy
            import numpy as np

            mean = np.asarray(self.mean, dtype=image.dtype)
            std = np.asarray(self.std, dtype=image.dtype)
        else:
            std = image.new_tensor(self.std)
        return (image - mean.reshape(shape)) / std.reshape(shape)


@dataclass(frozen=True)
class WeightSource:
    """One place pretrained weights for an architecture can come from (a registry row).

    Attributes:
        architecture: timm architecture name the weights fit, e.g. ``"tf_efficientnet_lite0"``.
        kind: ``"file"`` (explicit path), ``"cache"`` (``MEDTRANSFER_HOME``), ``"package"``
            (an installed weight package) or ``"hub"`` (Hugging Face Hub, online only).
        location: file path for file/cache/package, ``"repo_id/filename"`` for the hub.
        sha256: checksum of the file when known in advance; verified before loading.
        key_layout: ``"timm"`` (keys are timm's) or ``"in_order"`` (another project's names, mapped
            by position onto timm's state dict with shapes checked one by one).
        mean, std, input_size, interpolation: input conventions of these weights; ``None`` means
            "use timm's pretrained config for the architecture".
        pip_name: package to install on a connected machine, for ``kind="package"``.
    """

    architecture: str
    kind: str
    location: str
    sha256: str | None = None
    key_layout: str = "timm"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_size: tuple[int, int] | None = None
    interpolation: str | None = None
    pip_name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"WeightSource.kind must be one of {SOURCE_KINDS}, not {self.kind!r}")
        if self.key_layout not in ("timm", "in_order"):
            raise ValueError("WeightSource.key_layout must be 'timm' or 'in_order'")


@dataclass(frozen=True)
class ResolvedWeights:
    """The weights actually used: where they came from and the SHA-256 of the file that was read.

    Attributes:
        source: the registry row that matched.
        path: the file that was loaded.
        sha256: checksum measured on ``path`` (equal to ``source.sha256`` when that was known).
        verified: True when ``sha256`` matched a checksum known before reading (``sha256=``, a
            ``.sha256`` sidecar, a registered weight package) or the file was just imported
            from the hub; False means nobody recorded what the file should be.
    """

    source: WeightSource
    path: Path
    sha256: str
    verified: bool = False


@dataclass(frozen=True)
class EncoderInfo:
    """One row of :func:`medtransfer.encoders.list_encoders`.

    Attributes:
        name: timm architecture name, accepted by :func:`medtransfer.encoders.create`.
        family: family (timm module) the architecture belongs to, e.g. ``"resnet"``.
        tested: whether the family is covered by medtransfer's contract tests.
        weights_offline: whether ImageNet weights for it are on this machine (cache or package).
        weights_source: where those weights are (``"cache: ..."``/``"package: ..."``), else None.
    """

    name: str
    family: str
    tested: bool
    weights_offline: bool
    weights_source: str | None = None
