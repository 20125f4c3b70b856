"""Where each cell of a feature map sits on the input, and upsampling that respects it.

Upsampling a class activation map with ``interpolate(align_corners=False)`` (MONAI's default)
places feature cell ``i`` on input coordinate ``s * i + (s - 1) / 2``. That holds for
patchifying layers (ConvNeXt's stem) but not for symmetrically padded convolutions and pools
(ResNet, DenseNet's stem: ``s * i``) nor for TensorFlow "SAME" padding (EfficientNet-Lite): at
stride 16 the peak of the map would move by 7.5 voxels along each axis, off a small lesion.

So the geometry is traced instead: one forward pass records every layer that downsamples
(kernel, stride, padding before, dilation; "SAME" padding computed from the input size as timm
and medtransfer's 3D layers do) and chains them into ``cell i -> stride * i + offset`` for each
map size. Parallel branches (a residual block's shortcut) agree on it in every timm CNN; the
first layer reaching a size defines it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["Grid", "trace_grids", "upsample_aligned"]

Frame = tuple[tuple[float, ...], tuple[float, ...]]  # (stride, offset) per spatial axis


@dataclass
class Grid:
    """What one traced forward pass saw: the frame of every map size, the size of named outputs.

    Attributes:
        frames: ``{map size: (stride, offset)}``: cell ``i`` is centred on input coordinate
            ``stride * i + offset`` along each axis.
        sizes: ``{module name: spatial size of its output}`` for the modules asked for.
    """

    frames: dict[tuple[int, ...], Frame] = field(default_factory=dict)
    sizes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def frame(self, name: str, input_size: Sequence[int]) -> Frame:
        """The frame of module ``name``'s output; MONAI's convention when it was not traced."""
        size = self.sizes[name]
        if size in self.frames:
            return self.frames[size]
        strides = tuple(n / m for n, m in zip(input_size, size))
        return strides, tuple((s - 1) / 2 for s in strides)


def _per_axis(value: Any, dims: int) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, int) else tuple(int(v) for v in value)
    return values if len(values) == dims else (values[0],) * (dims - len(values)) + values


def _window(module: nn.Module, size: Sequence[int]) -> list[tuple[float, float]] | None:
    """``(stride, centre of cell 0)`` per axis of a conv or pool on an input of ``size``."""
    kernel, stride = getattr(module, "kernel_size", None), getattr(module, "stride", None)
    padding = getattr(module, "padding", 0)
    if kernel is None or isinstance(padding, str):
        return None
    dims = len(size)
    k = _per_axis(kernel, dims)
    s = _per_axis(stride or kernel, dims)
    d = _per_axis(getattr(module, "dilation", 1), dims)
    same = getattr(module, "same", False) or type(module).__name__.endswith("Same")
    axes = []
    for i in range(dims):
        if same:  # TensorFlow "SAME": the total padding depends on the input size
            total = max((math.ceil(size[i] / s[i]) - 1) * s[i] + (k[i] - 1) * d[i] + 1 - size[i], 0)
            before = total // 2
        else:
            before = _per_axis(padding, dims)[i]
        axes.append((float(s[i]), -before + d[i] * (k[i] - 1) / 2))
    return axes


def trace_grids(model: nn.Module, sample: torch.Tensor, names: Iterable[str]) -> Grid:
    """Run ``model`` once on ``sample`` (no gradient) and trace its sampling grids.

    Example:
        >>> import torch, medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 1, weights=None).eval()
        >>> grid = trace_grids(model, torch.zeros(1, 1, 64, 64), ["encoder.body.layer3"])
        >>> grid.sizes["encoder.body.layer3"], grid.frame("encoder.body.layer3", (64, 64))
        ((4, 4), ((16.0, 16.0), (0.0, 0.0)))
    """
    spatial = tuple(int(s) for s in sample.shape[2:])
    grid = Grid(frames={spatial: ((1.0,) * len(spatial), (0.0,) * len(spatial))})
    wanted = set(names)

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        if not (inputs and torch.is_tensor(inputs[0]) and torch.is_tensor(output)):
            return
        before, after = tuple(inputs[0].shape[2:]), tuple(output.shape[2:])
        if before == after or before not in grid.frames or after in grid.frames:
            return
        if len(before) != len(after) or (window := _window(module, before)) is None:
            return
        strides, offsets = grid.frames[before]
        grid.frames[after] = (
            tuple(total * s for total, (s, _) in zip(strides, window)),
            tuple(o + total * c for total, o, (_, c) in zip(strides, offsets, window)),
        )

    def size_of(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if torch.is_tensor(output):
                grid.sizes.setdefault(name, tuple(int(s) for s in output.shape[2:]))

        return hook

    handles = []
    for name, module in model.named_modules():
        if hasattr(module, "kernel_size") and hasattr(module, "stride"):
            handles.append(module.register_forward_hook(record))
        if name in wanted:
            handles.append(module.register_forward_hook(size_of(name)))
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    return grid


def upsample_aligned(
    maps: torch.Tensor, size: Sequence[int], stride: Sequence[float], offset: Sequence[float]
) -> torch.Tensor:
    """Linear interpolation of ``(N, C, *cells)`` maps to ``(N, C, *size)``, cell ``i`` placed
    at ``stride * i + offset`` (values beyond the first and last cell centres are held).

    Example:
        >>> upsample_aligned(torch.tensor([[[0.0, 1.0]]]), [4], [2.0], [0.0]).tolist()
        [[[0.0, 0.5, 1.0, 1.0]]]
    """
    out = maps
    for axis, (n_out, s, o) in enumerate(zip(size, stride, offset)):
        dim = axis + 2
        cells = out.shape[dim]
        u = ((torch.arange(n_out, dtype=torch.float64) - o) / s).clamp(0, cells - 1)
        low = u.floor().long()
        high = (low + 1).clamp(max=cells - 1)
        shape = [1] * out.ndim
        shape[dim] = n_out
        w = (u - low).to(out.dtype).to(out.device).view(shape)
        low, high = low.to(out.device), high.to(out.device)
        out = out.index_select(dim, low) * (1 - w) + out.index_select(dim, high) * w
    return out
