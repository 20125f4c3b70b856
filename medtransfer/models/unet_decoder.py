"""U-Net decoder over an encoder's feature pyramid (2D and 3D), with optional deep supervision.

The decoder walks the pyramid from deepest to shallowest: upsample to the next skip's exact size,
concatenate the skip, two conv-norm-ReLU units. A last block brings the shallowest level (stride
2 or 4) back to input resolution without a skip, as segmentation_models_pytorch's U-Net does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medtransfer.errors import ModelError
from medtransfer.models.blocks import conv_norm_act

__all__ = ["UNetDecoder", "default_decoder_channels"]


def default_decoder_channels(levels: int, spatial_dims: int) -> tuple[int, ...]:
    """(256, 128, 64, 32, 16) in 2D (smp's default), halved in 3D to fit CPU/GPU memory.

    Example:
        >>> default_decoder_channels(5, 2), default_decoder_channels(4, 3)
        ((256, 128, 64, 32, 16), (128, 64, 32, 16))
    """
    base = (256, 128, 64, 32, 16, 8) if spatial_dims == 2 else (128, 64, 32, 16, 8, 8)
    return base[:levels]


class _UpBlock(nn.Module):
    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, spatial_dims: int, norm: str
    ):
        super().__init__()
        self.conv1 = conv_norm_act(in_channels + skip_channels, out_channels, spatial_dims, norm)
        self.conv2 = conv_norm_act(out_channels, out_channels, spatial_dims, norm)

    def forward(
        self, x: torch.Tensor, size: Sequence[int], skip: torch.Tensor | None
    ) -> torch.Tensor:
        x = F.interpolate(x, size=tuple(size), mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    """Decode ``features`` (shallow to deep) to ``decoder_channels[-1]`` maps at input size.

    Args:
        encoder_channels: channels of each pyramid level, shallow to deep.
        decoder_channels: output channels of each decoder block, deep to shallow; one per level
            (the last block outputs at input resolution).
        spatial_dims: 2 or 3.
        norm: "batch", "instance" or "group".

    Example:
        >>> import torch
        >>> dec = UNetDecoder((8, 16, 32), (32, 16, 8), spatial_dims=2)
        >>> feats = [torch.rand(1, 8, 16, 16), torch.rand(1, 16, 8, 8), torch.rand(1, 32, 4, 4)]
        >>> [t.shape[-1] for t in dec(feats, input_size=(32, 32))]
        [8, 16, 32]
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int],
        spatial_dims: int,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if len(decoder_channels) != len(encoder_channels):
            raise ModelError(
                f"decoder_channels has {len(decoder_channels)} entries for {len(encoder_channels)} "
                "encoder levels; give one per level, deepest first."
            )
        skips = list(encoder_channels[-2::-1]) + [0]  # deep to shallow; the last block has no skip
        in_channels = [encoder_channels[-1], *decoder_channels[:-1]]
        self.blocks = nn.ModuleList(
            _UpBlock(i, s, o, spatial_dims, norm)
            for i, s, o in zip(in_channels, skips, decoder_channels)
        )
        self.out_channels = tuple(decoder_channels)

    def forward(
        self, features: list[torch.Tensor], input_size: Sequence[int]
    ) -> list[torch.Tensor]:
        """Every block's output, deepest first; the last one is at ``input_size``."""
        x = features[-1]
        skips = features[-2::-1]
        outputs = []
        for index, block in enumerate(self.blocks):
            skip = skips[index] if index < len(skips) else None
            size = skip.shape[2:] if skip is not None else input_size
            x = block(x, size, skip)
            outputs.append(x)
        return outputs
