"""CT windows: a table of named windows (level/width in HU) and a transform that applies them.

A window ``(level L, width W)`` maps HU ``L - W/2`` to 0 and ``L + W/2`` to 1, clipping outside.
Several windows give several channels (e.g. three windows feed an RGB encoder's three kernels).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, ScaleIntensityRange

from medtransfer.errors import ConfigError
from medtransfer.transforms._checks import check_choice

__all__ = ["CT_WINDOWS", "CTWindow", "CTWindowd", "WindowLike", "resolve_windows"]


@dataclass(frozen=True)
class CTWindow:
    """A CT display window in Hounsfield units.

    Attributes:
        level: centre of the window (HU).
        width: width of the window (HU, > 0).

    Example:
        >>> CTWindow(level=40, width=400).bounds
        (-160.0, 240.0)
    """

    level: float
    width: float

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)``: the HU mapped to 0 and to 1."""
        return (float(self.level - self.width / 2), float(self.level + self.width / 2))

    def to_dict(self) -> dict[str, float]:
        """Plain-JSON form, ``{"level": L, "width": W}`` (what a plan stores)."""
        return {"level": float(self.level), "width": float(self.width)}


#: Named windows (common radiology settings). Names are lower case with underscores;
#: ``"soft tissue"`` and ``"soft-tissue"`` are accepted for ``"soft_tissue"``.
CT_WINDOWS: dict[str, CTWindow] = {
    "abdomen": CTWindow(level=40, width=400),
    "liver": CTWindow(level=30, width=150),
    "lung": CTWindow(level=-600, width=1500),
    "bone": CTWindow(level=400, width=1800),
    "brain": CTWindow(level=40, width=80),
    "soft_tissue": CTWindow(level=50, width=350),
}

WindowLike = str | CTWindow | Sequence[float] | Mapping[str, float]


def _one_window(window: Any) -> CTWindow:
    if isinstance(window, CTWindow):
        result = window
    elif isinstance(window, str):
        name = window.strip().lower().replace(" ", "_").replace("-", "_")
        result = CT_WINDOWS[check_choice("window", name, CT_WINDOWS)]
    elif isinstance(window, Mapping) and set(window) >= {"level", "width"}:
        result = CTWindow(float(window["level"]), float(window["width"]))
    elif (
        isinstance(window, Sequence)
        and len(window) == 2
        and all(isinstance(v, int | float) for v in window)
    ):
        result = CTWindow(float(window[0]), float(window[1]))
    else:
        raise ConfigError(
            f"window={window!r} is not a window; give a name ({', '.join(CT_WINDOWS)}), "
            "a (level, width) pair in HU, {'level': L, 'width': W}, or a list of these."
        )
    if not result.width > 0:
        raise ConfigError(f"window={window!r}: the width must be positive (HU).")
    return result


def resolve_windows(window: WindowLike | Sequence[WindowLike]) -> tuple[CTWindow, ...]:
    """Turn a window argument into a tuple of :class:`CTWindow` (one per output channel).

    Args:
        window: a name from :data:`CT_WINDOWS`, a ``(level, width)`` pair, a
            ``{"level": L, "width": W}`` dict (as in a plan), a :class:`CTWindow`, or a list of
            these for several channels.

    Raises:
        ConfigError: unknown name (with suggestions) or malformed window.

    Example:
        >>> resolve_windows("abdomen")
        (CTWindow(level=40, width=400),)
        >>> [w.bounds for w in resolve_windows(["lung", (50, 100)])]
        [(-1350.0, 150.0), (0.0, 100.0)]
    """
    is_pair = (
        isinstance(window, Sequence)
        and not isinstance(window, str)
        and len(window) == 2
        and all(isinstance(v, int | float) for v in window)
    )
    if isinstance(window, str | CTWindow | Mapping) or is_pair:
        return (_one_window(window),)
    if isinstance(window, Sequence) and len(window) > 0:
        return tuple(_one_window(w) for w in window)
    return (_one_window(window),)


class CTWindowd(MapTransform):
    """Window CT intensities (HU) into [0, 1]; several windows are stacked as channels.

    Each window uses MONAI's ``ScaleIntensityRange(low, high, 0, 1, clip=True)``. With ``n``
    windows and ``C`` input channels the output has ``n * C`` channels, window-major.

    Args:
        keys: image keys (never a label key: windowing changes values).
        window: see :func:`resolve_windows`.
        allow_missing_keys: skip absent keys.

    Example:
        >>> import torch
        >>> hu = torch.tensor([[-1000.0, -160.0, 40.0, 240.0, 1000.0]])
        >>> CTWindowd("image", "abdomen")({"image": hu})["image"].tolist()
        [[0.0, 0.0, 0.5, 1.0, 1.0]]
    """

    def __init__(
        self,
        keys: KeysCollection,
        window: WindowLike | Sequence[WindowLike] = "abdomen",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.windows = resolve_windows(window)
        self._scalers = [
            ScaleIntensityRange(*w.bounds, b_min=0.0, b_max=1.0, clip=True) for w in self.windows
        ]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        import torch

        d = dict(data)
        for key in self.key_iterator(d):
            channels = [scale(d[key]) for scale in self._scalers]
            d[key] = channels[0] if len(channels) == 1 else torch.cat(channels, dim=0)
        return d
