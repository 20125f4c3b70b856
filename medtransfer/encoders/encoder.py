"""The encoder contract every medtransfer decoder relies on.

An :class:`Encoder` maps ``(N, in_channels, H, W)`` (2D) or ``(N, in_channels, D, H, W)`` (3D)
to a list of feature maps, shallow to deep, one per pyramid level. For level ``i``:

- ``features[i].shape[1] == out_channels[i]``;
- its in-plane size is the input's divided by ``reductions[i]`` (exactly, for sizes that are
  multiples of ``input_spec.size_divisor``); in 3D its depth is divided by ``depth_reductions[i]``.

The input itself is not part of the list (decoders that want it keep it).
"""

from __future__ import annotations

import torch
from torch import nn

from medtransfer.encoders.spec import InputSpec, ResolvedWeights
from medtransfer.errors import EncoderError

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """A timm CNN trunk adapted to medical inputs, returning a feature pyramid.

    Build it with :func:`medtransfer.encoders.create`. Attributes describe it as data:

    Attributes:
        name: the timm name it was built from.
        in_channels: input channels expected.
        spatial_dims: 2 or 3.
        conversion: ``None`` (2D), ``"inflate"`` or ``"acs"``.
        out_channels: channels of each returned feature map.
        reductions: in-plane downsampling factor of each feature map.
        depth_reductions: depth downsampling factor of each feature map (3D; equal to
            ``reductions`` unless ``depth_stride=1`` was used); ``()`` in 2D.
        input_spec: normalisation and size conventions (:class:`InputSpec`).
        weights: where the pretrained weights came from and their SHA-256, or None (random).
        dropped_keys: classifier weights that were not loaded.
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        name: str,
        in_channels: int,
        spatial_dims: int,
        conversion: str | None,
        out_channels: tuple[int, ...],
        reductions: tuple[int, ...],
        depth_reductions: tuple[int, ...],
        input_spec: InputSpec,
        weights: ResolvedWeights | None,
        dropped_keys: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.body = body
        self.name = name
        self.in_channels = in_channels
        self.spatial_dims = spatial_dims
        self.conversion = conversion
        self.out_channels = out_channels
        self.reductions = reductions
        self.depth_reductions = depth_reductions
        self.input_spec = input_spec
        self.weights = weights
        self.dropped_keys = dropped_keys

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of ``x``, shallow to deep (see the module docstring)."""
        expected = self.spatial_dims + 2
        if x.ndim != expected or x.shape[1] != self.in_channels:
            layout = "(N, C, H, W)" if self.spatial_dims == 2 else "(N, C, D, H, W)"
            raise EncoderError(
                f"Encoder {self.name!r} expects input {layout} with C={self.in_channels}, got "
                f"shape {tuple(x.shape)}. Add a batch/channel axis or create the encoder with "
                f"in_channels={x.shape[1] if x.ndim == expected else '...'}."
            )
        if self.conversion == "acs":
            bad = [
                (size, div)
                for size, div in zip(x.shape[2:], self.input_spec.size_divisor)
                if size % div
            ]
            if bad:
                raise EncoderError(
                    f"ACS encoder {self.name!r} needs every spatial size to be a multiple of "
                    f"{self.input_spec.size_divisor}; got {tuple(x.shape[2:])}. Pad or crop."
                )
        return list(self.body(x))

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, in_channels={self.in_channels}, "
            f"spatial_dims={self.spatial_dims}, conversion={self.conversion!r}, "
            f"out_channels={self.out_channels}, reductions={self.reductions}"
        )
