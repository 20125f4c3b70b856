"""Adapt a pretrained first convolution to any number of input channels.

Rule (as in timm's ``adapt_input_conv`` and segmentation_models_pytorch):

- ``in_channels == 1``: the kernel is the **sum** of the RGB kernels. A grayscale image ``g``
  fed as one channel then gives exactly what ``(g, g, g)`` gives through the original RGB stem,
  so every pretrained feature is preserved for X-ray, CT and MRI slices.
- ``in_channels == C`` otherwise: channel ``i`` takes RGB kernel ``i % 3`` and all kernels are
  scaled by ``3 / C``. If the ``C`` channels carry similar intensities (neighbouring slices in 2.5D,
  MR sequences after normalisation), the first activation keeps the magnitude it had on RGB
  images, so the batch-norm statistics downstream stay valid.

The rule is written for 3 pretrained channels but works for any ``C0``: kernel ``i % C0``, scaled
by ``C0 / C``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from medtransfer.errors import EncoderError

__all__ = ["adapt_first_conv", "adapt_input_kernel"]


def adapt_input_kernel(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Return a first-conv kernel ``(out, in_channels, *k)`` made from a pretrained one.

    Args:
        weight: pretrained kernel ``(out, C0, *k)``, usually ``C0 = 3`` (RGB).
        in_channels: number of input channels wanted (>= 1).

    Raises:
        EncoderError: ``in_channels`` is not a positive integer.

    Example:
        >>> import torch
        >>> w = torch.ones(8, 3, 3, 3)
        >>> adapt_input_kernel(w, 1)[0, 0, 0, 0].item()  # sum of 3 RGB kernels
        3.0
        >>> adapt_input_kernel(w, 5)[0, :, 0, 0].tolist()  # i % 3, scaled by 3/5
        [0.6000000238418579, 0.6000000238418579, 0.6000000238418579, 0.6000000238418579, 0.6000000238418579]
    """
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise EncoderError(f"in_channels must be a positive integer, got {in_channels!r}.")
    pretrained = weight.shape[1]
    if in_channels == pretrained:
        return weight.clone()
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    index = torch.arange(in_channels, device=weight.device) % pretrained
    return weight[:, index] * (pretrained / in_channels)


def adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` that takes ``in_channels`` inputs, kernel adapted by the rule above.

    Args:
        conv: the pretrained first convolution (any ``nn.Conv2d`` subclass, ``groups == 1``).
        in_channels: number of input channels wanted.

    Raises:
        EncoderError: ``conv`` is grouped (its channels cannot be re-mapped this way).

    Example:
        >>> import torch
        >>> rgb = torch.nn.Conv2d(3, 4, 3, padding=1)
        >>> gray = adapt_first_conv(rgb, 1)
        >>> x = torch.rand(1, 1, 8, 8)
        >>> torch.allclose(gray(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-6)
        True
    """
    if conv.groups != 1:
        raise EncoderError(
            f"The first convolution has groups={conv.groups}; only ungrouped stems can be "
            "adapted to another in_channels. Use in_channels=3 for this encoder."
        )
    new = copy.deepcopy(conv)  # keeps the subclass (e.g. timm's Conv2dSame) and its settings
    new.weight = nn.Parameter(adapt_input_kernel(conv.weight.detach(), in_channels))
    new.in_channels = in_channels
    return new
