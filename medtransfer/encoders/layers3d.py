"""3D twins of the 2D layers timm CNNs use that torch has no 3D version of.

- ``Conv3dSame``/``MaxPool3dSame``/``AvgPool3dSame``: TensorFlow "SAME" padding computed from the
  input size (timm's ``Conv2dSame`` family, used by the ``tf_*`` EfficientNets).
- ``BatchNormAct3d``: batch norm followed by timm's fused activation (``BatchNormAct2d``).
- ``LayerNorm3d``: layer norm over channels of ``(N, C, D, H, W)`` (ConvNeXt's ``LayerNorm2d``).
- ``forward_nd`` functions replace the ``forward`` of timm blocks whose code hard-codes 4D tensors
  (``mean((2, 3))``, ``reshape(1, -1, 1, 1)``, ``permute(0, 2, 3, 1)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AvgPool3dSame",
    "BatchNormAct3d",
    "Conv3dSame",
    "LayerNorm3d",
    "MaxPool3dSame",
    "convnext_block_forward_nd",
    "copy_batchnorm_state",
    "pad_same_nd",
    "squeeze_excite_forward_nd",
]


def pad_same_nd(
    x: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    value: float = 0.0,
) -> torch.Tensor:
    """Pad the last ``len(kernel_size)`` dims of ``x`` like TensorFlow's ``padding="SAME"``."""
    pads: list[int] = []
    for size, k, s, d in zip(x.shape[-len(kernel_size) :], kernel_size, stride, dilation):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append(total // 2)
        pads.append(total - total // 2)
    # F.pad lists the last dimension first.
    flipped = [p for i in range(len(pads) // 2 - 1, -1, -1) for p in pads[2 * i : 2 * i + 2]]
    return F.pad(x, flipped, value=value) if any(flipped) else x


class Conv3dSame(nn.Conv3d):
    """``nn.Conv3d`` with TensorFlow "SAME" padding computed at run time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same_nd(x, self.kernel_size, self.stride, self.dilation)
        return F.conv3d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MaxPool3dSame(nn.MaxPool3d):
    """``nn.MaxPool3d`` with TensorFlow "SAME" padding (padded with -inf)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same_nd(x, self.kernel_size, self.stride, self.dilation, value=-float("inf"))
        return F.max_pool3d(x, self.kernel_size, self.stride, 0, self.dilation, self.ceil_mode)


class AvgPool3dSame(nn.AvgPool3d):
    """``nn.AvgPool3d`` with TensorFlow "SAME" padding (zeros, counted like TF does not)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same_nd(x, self.kernel_size, self.stride, (1, 1, 1))
        return F.avg_pool3d(
            x, self.kernel_size, self.stride, 0, self.ceil_mode, self.count_include_pad
        )


class BatchNormAct3d(nn.BatchNorm3d):
    """Batch norm over ``(N, C, D, H, W)`` followed by the dropout and activation of timm's
    ``BatchNormAct2d`` it was made from (their modules are reused, so names stay the same)."""

    def __init__(self, source: nn.BatchNorm2d) -> None:
        super().__init__(
            source.num_features,
            eps=source.eps,
            momentum=source.momentum,
            affine=source.affine,
            track_running_stats=source.track_running_stats,
        )
        copy_batchnorm_state(self, source)
        self.drop = getattr(source, "drop", nn.Identity())
        self.act = getattr(source, "act", nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


def copy_batchnorm_state(target: nn.modules.batchnorm._BatchNorm, source: nn.Module) -> None:
    """Make ``target`` share the affine parameters and running statistics of ``source``."""
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        value = getattr(source, name, None)
        if value is not None:
            setattr(target, name, value)


class LayerNorm3d(nn.LayerNorm):
    """Layer norm over the channel dimension of channel-first tensors of any rank."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(1, -1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


def _channel_view(vector: torch.Tensor, ndim: int) -> torch.Tensor:
    return vector.reshape(1, -1, *([1] * (ndim - 2)))


def squeeze_excite_forward_nd(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward of timm's ``SqueezeExcite``/``SEModule`` pooling over every spatial dim."""
    x_se = x.mean(tuple(range(2, x.ndim)), keepdim=True)
    if hasattr(self, "conv_reduce"):  # efficientnet blocks' SqueezeExcite
        x_se = self.conv_expand(self.act1(self.conv_reduce(x_se)))
    else:  # timm.layers.SEModule
        if getattr(self, "add_maxpool", False):
            x_se = 0.5 * x_se + 0.5 * x.amax(tuple(range(2, x.ndim)), keepdim=True)
        x_se = self.fc2(self.act(self.bn(self.fc1(x_se))))
    return x * self.gate(x_se)


def convnext_block_forward_nd(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward of timm's ``ConvNeXtBlock`` for channel-first tensors of any rank."""
    shortcut = x
    x = self.conv_dw(x)
    if self.use_conv_mlp:
        x = self.mlp(self.norm(x))
    else:
        x = self.mlp(self.norm(x.movedim(1, -1))).movedim(-1, 1)
    if self.gamma is not None:
        x = x.mul(_channel_view(self.gamma, x.ndim))
    return self.drop_path(x) + self.shortcut(shortcut)
