"""Segmenter: encoder + U-Net decoder + 1x1 head, output at input resolution (2D and 3D)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medtransfer.errors import ModelError
from medtransfer.models.blocks import conv_layer
from medtransfer.models.padding import check_multiple, crop_to, pad_to_multiple
from medtransfer.models.parameter_groups import encoder_level_groups
from medtransfer.models.unet_decoder import UNetDecoder, default_decoder_channels

__all__ = ["Segmenter", "DECODERS"]

DECODERS = ("unet",)
PAD_MODES = ("auto", "error")


class Segmenter(nn.Module):
    """Organ/lesion segmentation model: ``encoder + decoder + head`` (smp's structure).

    Inputs whose spatial size is not a multiple of the encoder's total stride are zero-padded at
    the end and the output is cropped back (``pad="auto"``), or refused with a message naming the
    valid sizes (``pad="error"``).

    Args:
        encoder: a :class:`medtransfer.encoders.Encoder` (2D, 2.5D or 3D).
        num_classes: output channels (background included for softmax segmentation).
        decoder: "unet".
        decoder_channels: one per encoder level, deepest first (default: smp's, halved in 3D).
        deep_supervision: in training mode, also return lower-resolution predictions of the
            decoder's intermediate blocks, upsampled to input size (``[full, *coarser]``).
        norm: decoder normalisation: "batch", "instance" (small 3D batches) or "group".
        pad: "auto" or "error" (see above).

    Attributes:
        encoder, decoder, head: the three parts; ``aux_heads`` for deep supervision.

    Example:
        >>> import torch, medtransfer as mt
        >>> enc = mt.encoders.create("resnet18", weights=None, in_channels=1)
        >>> Segmenter(enc, num_classes=3)(torch.rand(1, 1, 50, 70)).shape
        torch.Size([1, 3, 50, 70])
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        decoder: str = "unet",
        decoder_channels: Sequence[int] | None = None,
        deep_supervision: bool = False,
        norm: str = "batch",
        pad: str = "auto",
    ) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ModelError(f"decoder={decoder!r} is not one of {DECODERS}.")
        if pad not in PAD_MODES:
            raise ModelError(f"pad={pad!r} is not one of {PAD_MODES}.")
        if num_classes < 1:
            raise ModelError(f"num_classes must be >= 1, got {num_classes}.")
        spatial_dims = encoder.spatial_dims
        levels = len(encoder.out_channels)
        channels = tuple(decoder_channels or default_decoder_channels(levels, spatial_dims))
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder.out_channels, channels, spatial_dims, norm)
        conv = conv_layer(spatial_dims)
        self.head = conv(channels[-1], num_classes, kernel_size=1)
        self.deep_supervision = deep_supervision
        self.aux_heads = nn.ModuleList(
            conv(c, num_classes, kernel_size=1)
            for c in (channels[1:-1] if deep_supervision else ())
        )
        self.num_classes = num_classes
        self.pad = pad
        self.size_divisor = tuple(encoder.input_spec.size_divisor)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        spatial = tuple(int(s) for s in x.shape[2:])
        if self.pad == "error":
            check_multiple(spatial, self.size_divisor)
        x, spatial = pad_to_multiple(x, self.size_divisor)
        outputs = self.decoder(self.encoder(x), input_size=x.shape[2:])
        logits = crop_to(self.head(outputs[-1]), spatial)
        if not (self.deep_supervision and self.training):
            return logits
        mode = "bilinear" if x.ndim == 4 else "trilinear"
        coarse = [
            crop_to(
                F.interpolate(head(out), size=x.shape[2:], mode=mode, align_corners=False), spatial
            )
            for head, out in zip(self.aux_heads, outputs[1:-1])
        ]
        return [logits, *coarse[::-1]]  # full resolution first, then coarser and coarser

    def parameter_groups(self) -> OrderedDict[str, list[nn.Parameter]]:
        """``stem``, ``stage1``..., ``decoder``, ``head``: for freezing and per-group learning rates."""
        groups = encoder_level_groups(self.encoder)
        groups["decoder"] = list(self.decoder.parameters())
        groups["head"] = list(self.head.parameters()) + list(self.aux_heads.parameters())
        return groups
