"""ACS convolutions (Yang et al., "Reinventing 2D Convolutions for 3D Images", IEEE JBHI 2021).

An ACS convolution keeps the 2D kernel ``(out, in, k, k)`` and splits its output channels into
three parts: the first third is applied on axial planes (kernel ``1 x k x k``), the second on
coronal planes (``k x 1 x k``), the last on sagittal planes (``k x k x 1``); their outputs are
concatenated. Why: every pretrained kernel is used unchanged on real 2D planes of the volume, so
no pretrained weight is averaged or duplicated, the parameter count is exactly the 2D one, and
the three views mix in the next layer. Tensors are ``(N, C, D, H, W)`` with D the axial slice
index: axial planes are (H, W), coronal (D, W), sagittal (D, H).

Grouped and depthwise convolutions are split by groups instead of output channels, so each group
stays on one plane. Non-convolution layers are converted as for inflation, with the depth stride
equal to the in-plane one (ACS treats the three axes symmetrically).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from medtransfer.encoders.convert3d import _padding_pair, convert_to_3d
from medtransfer.encoders.layers3d import pad_same_nd
from medtransfer.errors import EncoderError

__all__ = ["ACSConv3d", "acs_conv", "acs_model", "acs_split"]

PLANES = ("axial", "coronal", "sagittal")


def acs_split(units: int) -> tuple[int, int, int]:
    """Split ``units`` (output channels, or groups) into axial/coronal/sagittal parts.

    The remainder goes to the first parts, as in the reference ACSConv implementation.

    Example:
        >>> acs_split(64), acs_split(32)
        ((22, 21, 21), (11, 11, 10))
    """
    base, rest = divmod(units, 3)
    return tuple(base + (1 if i < rest else 0) for i in range(3))  # type: ignore[return-value]


def _planar(values: tuple[int, int], neutral: int, plane: int) -> tuple[int, int, int]:
    """Insert ``neutral`` at the position (0=D, 1=H, 2=W) a plane's kernel is flat along."""
    out = list(values)
    out.insert(plane, neutral)
    return tuple(out)  # type: ignore[return-value]


class ACSConv3d(nn.Module):
    """A 2D convolution applied as ACS on 3D volumes; holds the 2D ``weight`` and ``bias``.

    Args:
        conv: the 2D convolution whose weights (shared, not copied) and settings are used.
        same: use TensorFlow "SAME" padding computed from the input (timm ``Conv2dSame``).
    """

    def __init__(self, conv: nn.Conv2d, same: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.groups = (
            conv.in_channels,
            conv.out_channels,
            conv.groups,
        )
        self.kernel_size = _pair(conv.kernel_size)
        stride = _pair(conv.stride)
        self.stride = (stride[0], *stride)
        self.padding = (0, 0) if same else _padding_pair(conv)
        self.dilation = _pair(conv.dilation)
        self.same = same
        self.weight = conv.weight
        self.bias = conv.bias
        units = self.groups if self.groups > 1 else self.out_channels
        self.split = acs_split(units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == (1, 1):  # the three planes coincide: one pointwise conv
            return self._conv(x, self.weight.unsqueeze(2), self.bias, 0, self.groups)
        outputs = []
        out_per_unit = self.out_channels // self.groups if self.groups > 1 else 1
        in_per_group = self.weight.shape[1]
        start = 0
        for plane, units in enumerate(self.split):
            if units == 0:
                continue
            stop = start + units * out_per_unit
            weight = self.weight[start:stop].unsqueeze(2 + plane)
            bias = None if self.bias is None else self.bias[start:stop]
            part = x
            groups = 1
            if self.groups > 1:  # each part reads only the input channels of its groups
                first = start // out_per_unit * in_per_group
                part = x[:, first : first + units * in_per_group]
                groups = units
            outputs.append(self._conv(part, weight, bias, plane, groups))
            start = stop
        return torch.cat(outputs, dim=1)

    def _conv(
        self,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        plane: int,
        groups: int,
    ) -> torch.Tensor:
        dilation = _planar(self.dilation, 1, plane)
        if self.same:
            x = pad_same_nd(x, weight.shape[2:], self.stride, dilation)
            padding: tuple[int, ...] | int = 0
        else:
            padding = _planar(self.padding, 0, plane)
        return F.conv3d(x, weight, bias, self.stride, padding, dilation, groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, split(axial, coronal, sagittal)={self.split}, "
            f"groups={self.groups}, same={self.same}"
        )


def acs_conv(conv: nn.Conv2d, depth_stride: str | int = "same", same: bool = False) -> ACSConv3d:
    """The ACS twin of a 2D convolution (same parameters, see module docstring).

    Args:
        conv: the 2D convolution.
        depth_stride: must be ``"same"``: ACS strides all three axes alike.
        same: the convolution uses TensorFlow "SAME" padding.

    Example:
        >>> import torch
        >>> conv = torch.nn.Conv2d(4, 6, 3, padding=1)
        >>> acs_conv(conv)(torch.rand(1, 4, 5, 6, 7)).shape
        torch.Size([1, 6, 5, 6, 7])
    """
    if depth_stride != "same":
        raise EncoderError(
            "conversion='acs' uses the same stride along depth as in-plane (depth_stride='same'); "
            "use conversion='inflate' with depth_stride=1 to keep the depth resolution."
        )
    if conv.padding_mode != "zeros":
        raise EncoderError(
            f"ACS supports zero padding only, not padding_mode={conv.padding_mode!r}."
        )
    return ACSConv3d(conv, same=same)


def acs_model(model: nn.Module) -> nn.Module:
    """Convert every layer of a 2D timm CNN in place to ACS (convs) and 3D (others).

    Args:
        model: the 2D model (weights already loaded).

    Example:
        >>> import timm, torch
        >>> net = acs_model(timm.create_model("resnet18", features_only=True)).eval()
        >>> [f.shape[2] for f in net(torch.rand(1, 3, 32, 32, 32))]
        [16, 8, 4, 2, 1]
    """
    return convert_to_3d(model, acs_conv, "same")
