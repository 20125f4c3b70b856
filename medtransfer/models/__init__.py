"""medtransfer.models: task models on pretrained encoders (``encoder + decoder + head``).

Example:
    >>> import torch, medtransfer as mt
    >>> seg = mt.models.create_segmenter("resnet18", num_classes=2, weights=None)
    >>> seg(torch.rand(1, 1, 64, 64)).shape
    torch.Size([1, 2, 64, 64])
"""

from __future__ import annotations

from medtransfer.models.classifier import Classifier
from medtransfer.models.factory import create_classifier, create_segmenter
from medtransfer.models.parameter_groups import encoder_level_groups
from medtransfer.models.segmenter import Segmenter
from medtransfer.models.unet_decoder import UNetDecoder

__all__ = [
    "Classifier",
    "Segmenter",
    "UNetDecoder",
    "create_classifier",
    "create_segmenter",
    "encoder_level_groups",
]
