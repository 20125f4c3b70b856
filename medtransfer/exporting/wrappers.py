"""Modules a MONAI bundle's network is built from: the encoder normalisation and slice-wise 2D.

A bundle's pre-processing ends with intensities in [0, 1] (the CT window or the MR/X-ray
percentile scaling), as MONAI bundles usually do; the encoder's normalisation and, for 2D/2.5D
models, the slicing of the volume into axial slices with their neighbours belong to the network,
so ``inference.json`` stays a standard MONAI pipeline. Both modules are TorchScript-compatible
(``torch.jit.script``) around a traced task model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["NormalisedInput", "SliceWise"]


class NormalisedInput(nn.Module):
    """``net((low + x * (high - low) - mean[c]) / std[c])``: medtransfer's ``EncoderNormalized``.

    Args:
        net: the task model (any ``(N, C, *spatial)`` network).
        mean: one value, or one per input channel.
        std: as ``mean``.
        value_range: ``(low, high)``, the encoder's input range before normalisation.

    Example:
        >>> import torch
        >>> wrapped = NormalisedInput(torch.nn.Identity(), mean=(0.5,), std=(0.25,), value_range=(0.0, 1.0))
        >>> wrapped(torch.ones(1, 1, 2, 2)).unique().tolist()
        [2.0]
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        value_range: Sequence[float],
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor([float(v) for v in mean]))
        self.register_buffer("std", torch.tensor([float(v) for v in std]))
        self.low = float(value_range[0])
        self.high = float(value_range[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        scaled = x * (self.high - self.low) + self.low
        return self.net((scaled - self.mean.view(shape)) / self.std.view(shape))


class SliceWise(nn.Module):
    """Run a 2D/2.5D network on every axial slice of ``(B, C, X, Y, Z)`` volumes.

    Slice ``z`` gets the slices ``z - k .. z + k`` as channels (channel-major, edge slices
    repeated beyond the volume: :func:`medtransfer.transforms.stack_slices` with
    ``padding="edge"``), the network's ``(N, K, X, Y)`` outputs are put back as ``(B, K, X, Y, Z)``.

    Args:
        net: a 2D network taking ``C * (2k + 1)`` channels.
        context: ``k``, the neighbours on each side (0: plain 2D).
        slices_per_batch: slices per forward pass of ``net`` (memory vs speed).

    Example:
        >>> import torch
        >>> out = SliceWise(torch.nn.Conv2d(3, 2, 1), context=1)(torch.rand(1, 1, 8, 8, 5))
        >>> tuple(out.shape)
        (1, 2, 8, 8, 5)
    """

    def __init__(self, net: nn.Module, context: int = 0, slices_per_batch: int = 8) -> None:
        super().__init__()
        self.net = net
        self.context = int(context)
        self.slices_per_batch = int(slices_per_batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, nx, ny, nz = x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]
        k = self.context
        offsets = torch.arange(-k, k + 1, device=x.device)
        index = (torch.arange(nz, device=x.device).unsqueeze(1) + offsets.unsqueeze(0)).clamp(
            0, nz - 1
        )
        gathered = torch.index_select(x, 4, index.reshape(-1)).reshape(b, c, nx, ny, nz, 2 * k + 1)
        slices = gathered.permute(0, 4, 1, 5, 2, 3).reshape(b * nz, c * (2 * k + 1), nx, ny)
        outputs: list[torch.Tensor] = []
        for start in range(0, b * nz, self.slices_per_batch):
            outputs.append(self.net(slices[start : start + self.slices_per_batch]))
        y = torch.cat(outputs, 0)
        return y.reshape(b, nz, y.shape[1], nx, ny).permute(0, 2, 3, 4, 1)
