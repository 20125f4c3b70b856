"""Small dimension-agnostic building blocks shared by decoders and heads (2D and 3D)."""

from __future__ import annotations

from torch import nn

from medtransfer.errors import ModelError

__all__ = ["conv_norm_act", "conv_layer", "NORMS"]

NORMS = ("batch", "instance", "group")


def conv_layer(spatial_dims: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    if spatial_dims not in (2, 3):
        raise ModelError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    return nn.Conv2d if spatial_dims == 2 else nn.Conv3d


def _norm(kind: str, channels: int, spatial_dims: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(
            channels, affine=True
        )
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ModelError(f"norm={kind!r} is not one of {NORMS}.")


def conv_norm_act(
    in_channels: int, out_channels: int, spatial_dims: int, norm: str = "batch"
) -> nn.Sequential:
    """3x3(x3) convolution, normalisation, ReLU (the U-Net unit).

    Example:
        >>> import torch
        >>> conv_norm_act(4, 8, spatial_dims=3)(torch.rand(1, 4, 6, 6, 6)).shape
        torch.Size([1, 8, 6, 6, 6])
    """
    conv = conv_layer(spatial_dims)
    return nn.Sequential(
        conv(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        _norm(norm, out_channels, spatial_dims),
        nn.ReLU(inplace=True),
    )
