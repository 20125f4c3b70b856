"""I3D inflation (Carreira & Zisserman, CVPR 2017): a 2D kernel becomes a 3D one.

Each ``k x k`` kernel becomes ``k_d x k x k`` by repeating it ``k_d`` times along depth and
dividing by ``k_d``. Why: on a volume that is constant along depth (one slice repeated), each
inflated convolution sums ``k_d`` identical copies of the 2D response divided by ``k_d``, i.e.
exactly the 2D response; batch norms, activations and pools commute with that, so every feature
map of the inflated encoder equals the 2D encoder's on that slice, away from the depth borders
where zero padding enters. The ImageNet features are therefore where 3D fine-tuning starts.

Normally ``k_d = k`` and the depth stride equals the in-plane one; with ``depth_stride=1``
(thick CT slices) depth is never downsampled (see :mod:`.convert3d`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from medtransfer.encoders.convert3d import DepthAxis, _padding_pair, convert_to_3d
from medtransfer.encoders.layers3d import Conv3dSame

__all__ = ["inflate_conv", "inflate_conv_weights", "inflate_model"]


def inflate_conv_weights(weight: torch.Tensor, depth: int) -> torch.Tensor:
    """Inflate a 2D kernel ``(out, in, kh, kw)`` to ``(out, in, depth, kh, kw)``.

    Args:
        weight: the 2D kernel.
        depth: kernel size along depth, ``k_d``.

    Example:
        >>> import torch
        >>> w3 = inflate_conv_weights(torch.ones(1, 1, 3, 3), 3)
        >>> tuple(w3.shape), w3.sum().item()
        ((1, 1, 3, 3, 3), 9.0)
    """
    shape = (weight.shape[0], weight.shape[1], depth, *weight.shape[2:])
    return (weight.unsqueeze(2) / depth).expand(shape).contiguous()


def inflate_conv(
    conv: nn.Conv2d, depth_stride: str | int = "same", same: bool = False
) -> nn.Conv3d:
    """The inflated 3D twin of a 2D convolution (weights copied, see module docstring).

    Args:
        conv: the 2D convolution.
        depth_stride: ``"same"`` or ``1`` (see :mod:`.convert3d`).
        same: the convolution uses TensorFlow "SAME" padding computed at run time.

    Example:
        >>> import torch
        >>> conv3 = inflate_conv(torch.nn.Conv2d(2, 4, 3, stride=2, padding=1))
        >>> conv3.kernel_size, conv3.stride, conv3.padding
        ((3, 3, 3), (2, 2, 2), (1, 1, 1))
    """
    kernel, stride, dilation = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
    padding = (0, 0) if same else _padding_pair(conv)
    depth = DepthAxis.for_layer(kernel, stride, padding, dilation, depth_stride)
    cls = Conv3dSame if same else nn.Conv3d
    # skip_init: the weights are overwritten below, so don't spend time initialising them.
    new = torch.nn.utils.skip_init(
        cls,
        conv.in_channels,
        conv.out_channels,
        kernel_size=(depth.kernel, *kernel),
        stride=(depth.stride, *stride),
        padding=0 if same else (depth.padding, *padding),
        dilation=(depth.dilation, *dilation),
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(inflate_conv_weights(conv.weight, depth.kernel))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def inflate_model(model: nn.Module, depth_stride: str | int = "same") -> nn.Module:
    """Inflate every layer of a 2D timm CNN in place (I3D) and return it.

    Args:
        model: the 2D model (weights already loaded).
        depth_stride: ``"same"`` (isotropic) or ``1`` (keep depth resolution).

    Example:
        >>> import timm, torch
        >>> net = inflate_model(timm.create_model("resnet18", features_only=True)).eval()
        >>> [f.shape[2] for f in net(torch.rand(1, 3, 32, 32, 32))]
        [16, 8, 4, 2, 1]
    """
    return convert_to_3d(model, inflate_conv, depth_stride)
