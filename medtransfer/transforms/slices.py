"""2D and 2.5D: axial slices with their 2k neighbours as channels, and the inverse.

Volumes are channel-first ``(C, X, Y, Z)`` (RAS after ``Orientationd``: Z is the axial axis).
With ``context=k`` slice ``z`` gets the ``2k + 1`` slices ``z - k .. z + k``: channel
``ch * (2k + 1) + c`` of slice ``z`` is channel ``ch`` of the volume at ``z - k + c``
(channel-major; with one input channel, channel ``c`` is the volume at ``z - k + c``). Beyond the
first and last slice, ``padding="edge"`` (default) repeats the edge slice and ``padding="zero"``
uses zeros. ``context=0`` is plain 2D.

- :func:`stack_slices` / :class:`SliceStackd`: a whole volume -> ``(Z, C*(2k+1), X, Y)``, the
  slices as a batch (evaluation: predict every slice, then put them back).
- :func:`unstack_slices` / :class:`SliceUnstackd`: ``(Z, C', X, Y)`` per-slice predictions ->
  ``(C', X, Y, Z)`` with the volume's affine and metadata (the exact inverse with ``context=0``).
- :class:`SlabToChannelsd`: a ``(C, X, Y, 2k+1)`` slab cropped from a volume (training crops)
  -> one 2D sample ``(C*(2k+1), X, Y)``; a label slab keeps its centre slice ``(1, X, Y)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from medtransfer.errors import ConfigError
from medtransfer.transforms._checks import check_choice

__all__ = [
    "PADDING_MODES",
    "SlabToChannelsd",
    "SliceStackd",
    "SliceUnstackd",
    "slab_to_channels",
    "stack_slices",
    "unstack_slices",
]

PADDING_MODES = ("edge", "zero")
_META_KEY = "slice_stack"  # recorded by stack_slices so the inverse knows what was done


def _check_context(context: Any) -> int:
    if not isinstance(context, int) or isinstance(context, bool) or context < 0:
        raise ConfigError(f"context={context!r} must be an integer >= 0 (0 = plain 2D slices).")
    return context


def _with_meta(array: torch.Tensor, source: Any, affine: torch.Tensor | None = None) -> Any:
    if not isinstance(source, MetaTensor):
        return array
    out = MetaTensor(array, meta=dict(source.meta), applied_operations=source.applied_operations)
    out.affine = source.affine.clone() if affine is None else affine
    return out


def stack_slices(volume: torch.Tensor, context: int = 0, padding: str = "edge") -> torch.Tensor:
    """Turn a volume ``(C, X, Y, Z)`` into its axial slices with neighbours, ``(Z, C*(2k+1), X, Y)``.

    Args:
        volume: channel-first volume; the last axis is the slice axis.
        context: ``k``, the neighbours on each side (0: plain 2D).
        padding: ``"edge"`` repeats the first/last slice beyond the volume, ``"zero"`` uses 0.

    Returns:
        The stack; a MetaTensor keeps the volume's affine and metadata, plus
        ``meta["slice_stack"] = {"context": k, "padding": ...}``.

    Example:
        >>> import torch
        >>> v = torch.arange(4.0).reshape(1, 1, 1, 4)          # slices hold 0, 1, 2, 3
        >>> stack_slices(v, context=1)[:, :, 0, 0].tolist()   # edges repeated
        [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 3.0]]
    """
    k = _check_context(context)
    check_choice("padding", padding, PADDING_MODES)
    if volume.ndim != 4:
        raise ConfigError(
            f"stack_slices needs a channel-first volume (C, X, Y, Z); got shape {tuple(volume.shape)}."
        )
    data = torch.as_tensor(volume).as_subclass(torch.Tensor)
    depth = data.shape[-1]
    index = torch.arange(depth)[:, None] + torch.arange(-k, k + 1)[None, :]  # (Z, 2k+1)
    inside = (index >= 0) & (index < depth)
    gathered = data[..., index.clamp(0, depth - 1)]  # (C, X, Y, Z, 2k+1)
    if padding == "zero":
        gathered = gathered * inside.to(gathered.dtype)
    channels, nx, ny = data.shape[:3]
    stacked = gathered.permute(3, 0, 4, 1, 2).reshape(depth, channels * (2 * k + 1), nx, ny)
    out = _with_meta(stacked.contiguous(), volume)
    if isinstance(out, MetaTensor):
        out.meta[_META_KEY] = {"context": k, "padding": padding}
    return out


def unstack_slices(
    slices: torch.Tensor | Sequence[torch.Tensor],
    reference: torch.Tensor | None = None,
    context: int = 0,
) -> torch.Tensor:
    """Put per-slice results ``(Z, C, X, Y)`` back into a volume ``(C, X, Y, Z)``.

    Args:
        slices: a ``(Z, C, X, Y)`` tensor (e.g. a model's output on :func:`stack_slices`), or a
            sequence of ``Z`` tensors ``(C, X, Y)``.
        reference: a MetaTensor whose affine and metadata the volume gets (default: those of
            ``slices`` when it is a MetaTensor, i.e. the stacked volume's).
        context: give ``k`` when ``slices`` still holds the ``2k+1`` neighbours per channel (the
            stack itself, not a prediction): only the centre slices are kept, so
            ``unstack_slices(stack_slices(v, k), context=k)`` equals ``v`` exactly.

    Example:
        >>> import torch
        >>> v = torch.rand(2, 3, 4, 5)
        >>> bool((unstack_slices(stack_slices(v, context=1), context=1) == v).all())
        True
    """
    k = _check_context(context)
    if not isinstance(slices, torch.Tensor):
        slices = torch.stack([torch.as_tensor(s) for s in slices])
    if slices.ndim != 4:
        raise ConfigError(f"unstack_slices needs (Z, C, X, Y) slices; got {tuple(slices.shape)}.")
    data = slices.as_subclass(torch.Tensor)
    if k:
        if data.shape[1] % (2 * k + 1):
            raise ConfigError(
                f"context={k}: {data.shape[1]} channels is not a multiple of 2k+1={2 * k + 1}."
            )
        data = data[:, k :: 2 * k + 1]
    volume = data.permute(1, 2, 3, 0).contiguous()
    source = reference if reference is not None else slices
    out = _with_meta(volume, source)
    if isinstance(out, MetaTensor):
        out.meta.pop(_META_KEY, None)
    return out


def slab_to_channels(slab: torch.Tensor, centre_only: bool = False) -> torch.Tensor:
    """Turn a slab ``(C, X, Y, 2k+1)`` into one 2D sample ``(C*(2k+1), X, Y)``.

    The channel order matches :func:`stack_slices`, so a slab cropped around slice ``z`` gives
    exactly ``stack_slices(volume, k)[z]``. With ``centre_only`` (labels) only the centre slice is
    kept, ``(C, X, Y)``. A MetaTensor's affine moves to the centre slice.

    Example:
        >>> import torch
        >>> slab = torch.arange(3.0).reshape(1, 1, 1, 3)
        >>> slab_to_channels(slab).flatten().tolist(), slab_to_channels(slab, True).flatten().tolist()
        ([0.0, 1.0, 2.0], [1.0])
    """
    if slab.ndim != 4 or slab.shape[-1] % 2 == 0:
        raise ConfigError(
            f"A slab must be (C, X, Y, 2k+1) with an odd depth; got shape {tuple(slab.shape)}."
        )
    data = slab.as_subclass(torch.Tensor)
    k = data.shape[-1] // 2
    if centre_only:
        sample = data[..., k]
    else:
        sample = data.permute(0, 3, 1, 2).reshape(-1, data.shape[1], data.shape[2])
    affine = None
    if isinstance(slab, MetaTensor):
        shift = torch.eye(4, dtype=slab.affine.dtype)
        shift[2, 3] = float(k)
        affine = slab.affine @ shift
    return _with_meta(sample.contiguous(), slab, affine)


class SliceStackd(MapTransform):
    """Dictionary :func:`stack_slices`: each key's volume becomes ``(Z, C*(2k+1), X, Y)``.

    Use ``context=0`` for label keys (a label slice has no neighbours).

    Args:
        keys: keys to stack.
        context: neighbours on each side.
        padding: ``"edge"`` or ``"zero"``.
        allow_missing_keys: skip absent keys.

    Example:
        >>> import torch
        >>> d = SliceStackd("image", context=2)({"image": torch.zeros(1, 8, 8, 6)})
        >>> tuple(d["image"].shape)
        (6, 5, 8, 8)
    """

    def __init__(
        self,
        keys: KeysCollection,
        context: int = 0,
        padding: str = "edge",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.context = _check_context(context)
        self.padding = check_choice("padding", padding, PADDING_MODES)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = stack_slices(d[key], self.context, self.padding)
        return d


class SliceUnstackd(MapTransform):
    """Dictionary :func:`unstack_slices`: ``(Z, C, X, Y)`` -> ``(C, X, Y, Z)`` with the volume's geometry.

    Args:
        keys: keys holding per-slice results.
        reference_key: key of a MetaTensor whose affine/metadata to copy (default: each key's own).
        context: see :func:`unstack_slices`.
        allow_missing_keys: skip absent keys.

    Example:
        >>> import torch
        >>> d = SliceUnstackd("pred")({"pred": torch.zeros(6, 3, 8, 8)})
        >>> tuple(d["pred"].shape)
        (3, 8, 8, 6)
    """

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str | None = None,
        context: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = reference_key
        self.context = _check_context(context)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        reference = d.get(self.reference_key) if self.reference_key else None
        for key in self.key_iterator(d):
            d[key] = unstack_slices(d[key], reference, self.context)
        return d


class SlabToChannelsd(MapTransform):
    """Dictionary :func:`slab_to_channels`: a ``(C, X, Y, 2k+1)`` slab -> a 2D sample.

    Args:
        keys: keys to convert.
        centre_only: keep only the centre slice (for label keys).
        allow_missing_keys: skip absent keys.

    Example:
        >>> import torch
        >>> d = {"image": torch.zeros(1, 8, 8, 3), "label": torch.zeros(1, 8, 8, 3)}
        >>> d = SlabToChannelsd("label", centre_only=True)(SlabToChannelsd("image")(d))
        >>> tuple(d["image"].shape), tuple(d["label"].shape)
        ((3, 8, 8), (1, 8, 8))
    """

    def __init__(
        self, keys: KeysCollection, centre_only: bool = False, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.centre_only = centre_only

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = slab_to_channels(d[key], self.centre_only)
        return d
