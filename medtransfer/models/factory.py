"""One-liners: ``create_classifier`` and ``create_segmenter`` from an encoder name."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from medtransfer.encoders import create as create_encoder
from medtransfer.models.classifier import Classifier
from medtransfer.models.segmenter import Segmenter

__all__ = ["create_classifier", "create_segmenter"]


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed the randomly initialised layers without touching the caller's global RNG state."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _encoder(
    encoder_name: str,
    weights: str | os.PathLike | None,
    in_channels: int,
    spatial_dims: int,
    conversion: str | None,
    encoder_kwargs: dict[str, Any],
):
    if spatial_dims == 3 and conversion is None:
        conversion = "inflate"  # the 2D ImageNet kernels, repeated along depth (I3D)
    return create_encoder(
        encoder_name,
        weights=weights,
        in_channels=in_channels,
        spatial_dims=spatial_dims,
        conversion=conversion,
        **encoder_kwargs,
    )


def create_classifier(
    encoder_name: str,
    num_classes: int,
    weights: str | os.PathLike | None = "imagenet",
    in_channels: int = 1,
    spatial_dims: int = 2,
    conversion: str | None = None,
    *,
    dropout: float = 0.2,
    pooling: str = "avg",
    multilabel: bool = False,
    class_names: Sequence[str] | None = None,
    seed: int | None = None,
    **encoder_kwargs: Any,
) -> Classifier:
    """Build a :class:`Classifier` on a pretrained encoder in one line.

    Args:
        encoder_name: any timm CNN (``mt.encoders.list_encoders()``).
        num_classes: logits (1 for binary with a sigmoid; multi-label: one per finding).
        weights: "imagenet" (offline-first resolution), a weight file, or None (random init).
        in_channels: 1 for CT/MR/X-ray, ``2k+1`` for 2.5D (neighbouring slices as channels).
        spatial_dims: 2, or 3 for volumes (the 2D encoder is converted).
        conversion: 3D conversion, "inflate" (default for 3D) or "acs".
        dropout, pooling, multilabel, class_names: see :class:`Classifier` (``multilabel=True``
            for K independent findings, e.g. ``class_names=["opacity", "effusion"]``).
        seed: seed for every randomly initialised weight (head; the encoder too when
            ``weights=None``), so two models built with one seed are identical; the global RNG
            state is left as it was. None uses the global RNG.
        **encoder_kwargs: passed to :func:`medtransfer.encoders.create` (``depth_stride``...).

    Example:
        >>> import torch, medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None, spatial_dims=3)
        >>> model.encoder.conversion, model(torch.rand(1, 1, 32, 32, 32)).shape
        ('inflate', torch.Size([1, 2]))
    """
    with _seeded(seed):
        encoder = _encoder(
            encoder_name, weights, in_channels, spatial_dims, conversion, encoder_kwargs
        )
        return Classifier(
            encoder,
            num_classes,
            dropout=dropout,
            pooling=pooling,
            multilabel=multilabel,
            class_names=class_names,
        )


def create_segmenter(
    encoder_name: str,
    num_classes: int,
    weights: str | os.PathLike | None = "imagenet",
    in_channels: int = 1,
    spatial_dims: int = 2,
    conversion: str | None = None,
    *,
    decoder: str = "unet",
    decoder_channels: Sequence[int] | None = None,
    deep_supervision: bool = False,
    norm: str = "batch",
    pad: str = "auto",
    seed: int | None = None,
    **encoder_kwargs: Any,
) -> Segmenter:
    """Build a :class:`Segmenter` (U-Net on a pretrained encoder) in one line.

    Args:
        encoder_name: any timm CNN (``mt.encoders.list_encoders()``).
        num_classes: output channels, background included.
        weights: "imagenet" (offline-first resolution), a weight file, or None (random init).
        in_channels: 1 for CT/MR/X-ray, ``2k+1`` for 2.5D (neighbouring slices as channels).
        spatial_dims: 2, or 3 for volumes (the 2D encoder is converted).
        conversion: 3D conversion, "inflate" (default for 3D) or "acs".
        decoder, decoder_channels, deep_supervision, norm, pad: see :class:`Segmenter`.
        seed: as in :func:`create_classifier`.
        **encoder_kwargs: passed to :func:`medtransfer.encoders.create` (``depth_stride``...).

    Example:
        >>> import torch, medtransfer as mt
        >>> model = mt.models.create_segmenter("resnet18", 3, weights=None, in_channels=5)
        >>> model(torch.rand(1, 5, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """
    with _seeded(seed):
        encoder = _encoder(
            encoder_name, weights, in_channels, spatial_dims, conversion, encoder_kwargs
        )
        return Segmenter(
            encoder,
            num_classes,
            decoder=decoder,
            decoder_channels=decoder_channels,
            deep_supervision=deep_supervision,
            norm=norm,
            pad=pad,
        )
