"""Turn a 2D timm CNN into a 3D one, layer by layer, with a pluggable rule for convolutions.

Convolutions are converted by the rule of the chosen method (:mod:`.inflate` or :mod:`.acs`);
everything else has one 3D twin, listed in ``_LAYER_RULES`` (most specific type first):
batch norms become ``BatchNorm3d``, pools become their 3D versions with a cubic window, layer
norms normalise channels of 5D tensors. Blocks whose ``forward`` hard-codes 4D tensors get an
N-d ``forward`` from ``_FORWARD_PATCHES``. A 2D layer left without a rule, or a block known to
be 2D-only (``_KNOWN_2D_ONLY``), is an error at conversion, not a model that fails later.

Depth handling (``depth_stride``): ``"same"`` copies the in-plane stride to depth (isotropic
voxels); ``1`` keeps the depth resolution everywhere, for thick-slice CT, where a layer that
downsamples in-plane keeps its odd kernel along depth (padded to keep the size) and an even
kernel becomes 1 deep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from timm.layers import BatchNormAct2d, LayerNorm2d, SEModule
from timm.layers.conv2d_same import Conv2dSame
from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models.convnext import ConvNeXtBlock
from torch import nn
from torch.nn.modules.utils import _pair

from medtransfer.encoders.layers3d import (
    AvgPool3dSame,
    BatchNormAct3d,
    LayerNorm3d,
    MaxPool3dSame,
    convnext_block_forward_nd,
    copy_batchnorm_state,
    squeeze_excite_forward_nd,
)
from medtransfer.errors import EncoderError

__all__ = ["DEPTH_STRIDES", "DepthAxis", "convert_to_3d"]

DEPTH_STRIDES = ("same", 1)


@dataclass(frozen=True)
class DepthAxis:
    """Kernel, stride, padding and dilation along depth for one layer."""

    kernel: int
    stride: int
    padding: int
    dilation: int

    @staticmethod
    def for_layer(
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        depth_stride: str | int,
    ) -> DepthAxis:
        """Depth parameters of a 2D layer's 3D twin (first in-plane axis is the model)."""
        k = kernel[0] if kernel[0] == kernel[1] else 1  # non-square kernels stay planar
        if depth_stride == "same":
            return DepthAxis(k, stride[0], padding[0] if k > 1 else 0, dilation[0])
        if k % 2 == 1:  # odd kernel, stride 1, centred: depth size is kept
            return DepthAxis(k, 1, dilation[0] * (k - 1) // 2, dilation[0])
        return DepthAxis(1, 1, 0, 1)


ConvRule = Callable[[nn.Conv2d, str | int, bool], nn.Module]


def _padding_pair(module: nn.Module) -> tuple[int, int]:
    padding = module.padding
    if isinstance(padding, str):  # "same"/"valid" string padding: stride 1 by construction
        k = _pair(module.kernel_size)
        d = _pair(getattr(module, "dilation", 1))
        return (0, 0) if padding == "valid" else (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
    return _pair(padding)


def _pool3d(pool: nn.Module, depth_stride: str | int, same: bool) -> nn.Module:
    kernel, stride = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
    padding = _padding_pair(pool)
    is_max = isinstance(pool, nn.MaxPool2d)
    dilation = _pair(pool.dilation) if is_max else (1, 1)
    depth = DepthAxis.for_layer(kernel, stride, padding, dilation, depth_stride)
    args = {
        "kernel_size": (depth.kernel, *kernel),
        "stride": (depth.stride, *stride),
        "padding": 0 if same else (depth.padding, *padding),
        "ceil_mode": pool.ceil_mode,
    }
    if is_max:
        cls = MaxPool3dSame if same else nn.MaxPool3d
        return cls(dilation=(depth.dilation, *dilation), **args)
    cls = AvgPool3dSame if same else nn.AvgPool3d
    return cls(count_include_pad=pool.count_include_pad, **args)


def _batchnorm3d(norm: nn.BatchNorm2d) -> nn.Module:
    if isinstance(norm, BatchNormAct2d):
        return BatchNormAct3d(norm)
    new = nn.BatchNorm3d(
        norm.num_features, norm.eps, norm.momentum, norm.affine, norm.track_running_stats
    )
    copy_batchnorm_state(new, norm)
    return new


def _layernorm3d(norm: nn.LayerNorm) -> nn.Module:
    new = LayerNorm3d(norm.normalized_shape, eps=norm.eps, elementwise_affine=True)
    new.weight, new.bias = norm.weight, norm.bias
    return new


def _adaptive3d(pool: nn.Module) -> nn.Module:
    size = pool.output_size
    size3 = (size, size, size) if isinstance(size, int) or size is None else (size[0], *size)
    cls = nn.AdaptiveAvgPool3d if isinstance(pool, nn.AdaptiveAvgPool2d) else nn.AdaptiveMaxPool3d
    return cls(size3)


LayerRule = Callable[[nn.Module, ConvRule, str | int], nn.Module]

# Most specific type first: timm's "same" variants subclass the torch layers.
_LAYER_RULES: tuple[tuple[type[nn.Module], LayerRule], ...] = (
    (Conv2dSame, lambda m, conv, ds: conv(m, ds, True)),
    (nn.Conv2d, lambda m, conv, ds: conv(m, ds, False)),
    (nn.BatchNorm2d, lambda m, conv, ds: _batchnorm3d(m)),
    (LayerNorm2d, lambda m, conv, ds: _layernorm3d(m)),
    (MaxPool2dSame, lambda m, conv, ds: _pool3d(m, ds, True)),
    (AvgPool2dSame, lambda m, conv, ds: _pool3d(m, ds, True)),
    (nn.MaxPool2d, lambda m, conv, ds: _pool3d(m, ds, False)),
    (nn.AvgPool2d, lambda m, conv, ds: _pool3d(m, ds, False)),
    (nn.AdaptiveAvgPool2d, lambda m, conv, ds: _adaptive3d(m)),
    (nn.AdaptiveMaxPool2d, lambda m, conv, ds: _adaptive3d(m)),
    (nn.Dropout2d, lambda m, conv, ds: nn.Dropout3d(m.p, m.inplace)),
)

# Blocks whose forward hard-codes 4D tensors, and their N-d replacement.
_FORWARD_PATCHES: tuple[tuple[type[nn.Module], Callable[..., torch.Tensor]], ...] = (
    (SqueezeExcite, squeeze_excite_forward_nd),
    (SEModule, squeeze_excite_forward_nd),
    (ConvNeXtBlock, convnext_block_forward_nd),
)


# Blocks whose forward calls 2D-only code (shape unpacking, F.*2d): found by name, refused early.
_KNOWN_2D_ONLY = frozenset(
    {"SplitAttn", "SelectiveKernel", "InceptionA", "InceptionB", "InceptionC", "InceptionD",
     "InceptionE", "InceptionAux"}
)  # fmt: skip


def _convert_layer(module: nn.Module, conv_rule: ConvRule, depth_stride: str | int) -> nn.Module:
    for layer_type, rule in _LAYER_RULES:
        if isinstance(module, layer_type):
            return rule(module, conv_rule, depth_stride)
    return module


def _convert_children(module: nn.Module, conv_rule: ConvRule, depth_stride: str | int) -> None:
    for name, child in list(module.named_children()):
        new = _convert_layer(child, conv_rule, depth_stride)
        if new is child:
            _convert_children(child, conv_rule, depth_stride)
        else:
            setattr(module, name, new)


def convert_to_3d(
    model: nn.Module, conv_rule: ConvRule, depth_stride: str | int = "same"
) -> nn.Module:
    """Convert every 2D layer of ``model`` in place to 3D and return it.

    Args:
        model: a 2D timm CNN (or its ``features_only`` wrapper).
        conv_rule: ``(conv2d, depth_stride, same_padding) -> 3D module`` (inflate or ACS).
        depth_stride: ``"same"`` (depth strided like the plane) or ``1`` (depth kept).

    Raises:
        EncoderError: a 2D layer type has no 3D rule, or ``depth_stride`` is invalid.

    Example:
        >>> import torch
        >>> from medtransfer.encoders.inflate import inflate_conv
        >>> net = convert_to_3d(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1)), inflate_conv)
        >>> net(torch.rand(1, 1, 4, 8, 8)).shape
        torch.Size([1, 2, 4, 8, 8])
    """
    if depth_stride not in DEPTH_STRIDES or isinstance(depth_stride, bool):
        raise EncoderError(f"depth_stride must be 'same' or 1, got {depth_stride!r}.")
    _convert_children(model, conv_rule, depth_stride)
    for module in model.modules():
        for block_type, forward in _FORWARD_PATCHES:
            if isinstance(module, block_type):
                module.forward = forward.__get__(module)
                break
    leftovers = sorted(
        {
            type(m).__name__
            for m in model.modules()
            if (type(m).__name__.endswith("2d") and not list(m.children()))
            or type(m).__name__ in _KNOWN_2D_ONLY
        }
    )
    if leftovers:
        raise EncoderError(
            f"Cannot convert this encoder to 3D: no 3D rule for layer type(s) {leftovers}. Use "
            "spatial_dims=2 (2.5D: neighbouring slices as channels) or another encoder family."
        )
    return model
