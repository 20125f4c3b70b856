"""Intensity transforms MONAI lacks: MR robust (foreground percentile) scaling and encoder normalisation.

Both are image-only: never give them a label key (label values carry meaning and must not change).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medtransfer.errors import ConfigError
from medtransfer.transforms._checks import check_pair, per_channel

__all__ = ["EncoderNormalized", "RobustScaled", "encoder_normaliser", "robust_scale"]


def robust_scale(
    image: torch.Tensor,
    lower: float = 0.5,
    upper: float = 99.5,
    nonzero: bool = True,
    clip: bool = True,
) -> torch.Tensor:
    """Map the ``lower``/``upper`` percentiles of each channel's foreground to 0 and 1.

    Args:
        image: channel-first tensor ``(C, ...)``.
        lower: lower percentile (0-100), mapped to 0.
        upper: upper percentile (0-100), mapped to 1.
        nonzero: compute percentiles over non-zero voxels only (MR background is 0).
        clip: clip the result to [0, 1].

    Returns:
        A float32 tensor of the same shape (a MetaTensor stays a MetaTensor). A channel with no
        foreground or a constant foreground becomes 0.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0, 0.0, 10.0, 20.0, 30.0, 40.0, 50.0]])
        >>> robust_scale(x, lower=0, upper=100).tolist()
        [[0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0]]
    """
    lower, upper = check_pair("percentiles", (lower, upper))
    if not 0.0 <= lower < upper <= 100.0:
        raise ConfigError(f"percentiles=({lower}, {upper}) must lie in [0, 100].")
    image = image.float()
    out = torch.zeros_like(image)
    for c in range(image.shape[0]):
        values = image[c].detach().cpu().numpy().ravel()
        if nonzero:
            values = values[values != 0]
        if values.size == 0:
            continue
        low, high = np.percentile(values, [lower, upper])
        if high <= low:
            continue
        scaled = (image[c] - float(low)) / float(high - low)
        out[c] = scaled.clamp(0.0, 1.0) if clip else scaled
    return out


class RobustScaled(MapTransform):
    """Dictionary wrapper of :func:`robust_scale` (MR robust normalisation to [0, 1]).

    Args:
        keys: image keys.
        lower: lower percentile, mapped to 0.
        upper: upper percentile, mapped to 1.
        nonzero: percentiles over non-zero voxels only.
        clip: clip to [0, 1].
        allow_missing_keys: skip absent keys.

    Example:
        >>> import torch
        >>> d = RobustScaled("image", lower=0, upper=100)({"image": torch.tensor([[0.0, 1.0, 3.0]])})
        >>> d["image"].tolist()
        [[0.0, 0.0, 1.0]]
    """

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 0.5,
        upper: float = 99.5,
        nonzero: bool = True,
        clip: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.lower, self.upper = check_pair("percentiles", (lower, upper))
        self.nonzero, self.clip = nonzero, clip

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = robust_scale(
                torch.as_tensor(d[key]), self.lower, self.upper, self.nonzero, self.clip
            )
        return d


class EncoderNormalized(MapTransform):
    """Map [0, 1] intensities to what a pretrained encoder expects: ``value_range``, then mean/std.

    ``x -> (low + x * (high - low) - mean[c]) / std[c]`` for channel ``c``. Pass the encoder's
    input spec values (``encoder.input_spec.mean``, ``.std``, ``.value_range``): ImageNet's
    per-channel statistics for RGB stems, their average for a grayscale (in_channels=1) stem.

    Args:
        keys: image keys.
        mean: one number, or one per channel.
        std: one number, or one per channel (all > 0).
        value_range: range the encoder's inputs had before normalisation (usually (0, 1)).
        channel_dim: the channel axis: 0 for one sample ``(C, ...)``, 1 for a slice stack
            ``(Z, C, X, Y)`` from :class:`~medtransfer.transforms.SliceStackd`.
        allow_missing_keys: skip absent keys.

    Raises:
        ConfigError: bad statistics, or (when called) a channel count that does not match.

    Example:
        >>> import torch
        >>> norm = EncoderNormalized("image", mean=0.5, std=0.25)
        >>> norm({"image": torch.tensor([[0.0, 0.5, 1.0]])})["image"].tolist()
        [[-2.0, 0.0, 2.0]]
    """

    def __init__(
        self,
        keys: KeysCollection,
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
        value_range: Sequence[float] = (0.0, 1.0),
        channel_dim: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.channel_dim = channel_dim
        self.mean = per_channel("mean", mean)
        self.std = per_channel("std", std)
        self.value_range = check_pair("value_range", value_range)
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std={std!r} must be positive.")
        if len(self.mean) != len(self.std):
            raise ConfigError(
                f"mean has {len(self.mean)} values but std has {len(self.std)}; give one per "
                "channel for both (or scalars)."
            )

    @classmethod
    def from_spec(cls, keys: KeysCollection, spec: Any, channel_dim: int = 0) -> EncoderNormalized:
        """Build from any object with ``mean``, ``std`` and ``value_range`` (an encoder's input spec)."""
        value_range = getattr(spec, "value_range", (0.0, 1.0))
        return cls(keys, spec.mean, spec.std, value_range, channel_dim)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        low, high = self.value_range
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key]).float()
            channels = image.shape[self.channel_dim]
            if len(self.mean) not in (1, channels):
                raise ConfigError(
                    f"Encoder normalisation has {len(self.mean)} mean/std values but '{key}' has "
                    f"{channels} channels; create the encoder with in_channels={channels} and pass "
                    "its input_spec, or give scalar mean/std."
                )
            shape = [1] * image.ndim
            shape[self.channel_dim] = -1
            mean = torch.tensor(self.mean, dtype=image.dtype).reshape(shape)
            std = torch.tensor(self.std, dtype=image.dtype).reshape(shape)
            d[key] = (image * (high - low) + low - mean) / std
        return d


def encoder_normaliser(
    image_key: str,
    normalisation: tuple[Any, Any, Any, Any],
    channels: int | None,
    channel_dim: int,
) -> EncoderNormalized:
    """The last step of a preset: :class:`EncoderNormalized` from ``(mean, std, value_range,
    input_spec)``, the spec filling what is not given (else 0, 1 and (0, 1)); checks that the
    statistics fit the pipeline's ``channels``."""
    mean, std, value_range, spec = normalisation
    if mean is None:
        mean = spec.mean if spec is not None else 0.0
    if std is None:
        std = spec.std if spec is not None else 1.0
    if value_range is None:
        value_range = getattr(spec, "value_range", (0.0, 1.0)) if spec is not None else (0.0, 1.0)
    norm = EncoderNormalized(image_key, mean, std, value_range, channel_dim=channel_dim)
    if channels is not None and len(norm.mean) not in (1, channels):
        raise ConfigError(
            f"mean/std have {len(norm.mean)} values but the pipeline makes {channels} channel(s) "
            "(windows x (2*context+1)); create the encoder with in_channels="
            f"{channels} and pass its input_spec, or give one value per channel."
        )
    return norm
