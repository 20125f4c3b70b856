"""medtransfer.encoders: ImageNet encoders adapted to medical inputs (2D, 2.5D, 3D), offline first.

Importing this subpackage imports torch and timm; ``import medtransfer`` alone does not.

Example:
    >>> import medtransfer as mt
    >>> enc = mt.encoders.create("resnet18", weights=None, in_channels=1)
    >>> enc.out_channels
    (64, 64, 128, 256, 512)
"""

from __future__ import annotations

from medtransfer.encoders.acs import ACSConv3d, acs_conv
from medtransfer.encoders.channels import adapt_first_conv, adapt_input_kernel
from medtransfer.encoders.encoder import Encoder
from medtransfer.encoders.factory import (
    CNN_FAMILIES,
    TESTED_FAMILIES,
    create,
    create_imagenet_classifier,
    list_encoders,
)
from medtransfer.encoders.inflate import inflate_conv, inflate_conv_weights
from medtransfer.encoders.safe_load import load_state_dict_file
from medtransfer.encoders.sources import (
    cache_file,
    import_weights,
    medtransfer_home,
    resolve_weights,
    sha256_file,
)
from medtransfer.encoders.spec import EncoderInfo, InputSpec, ResolvedWeights, WeightSource
from medtransfer.encoders.weight_packages import PACKAGE_WEIGHTS

__all__ = [
    "CNN_FAMILIES",
    "PACKAGE_WEIGHTS",
    "TESTED_FAMILIES",
    "ACSConv3d",
    "Encoder",
    "EncoderInfo",
    "InputSpec",
    "ResolvedWeights",
    "WeightSource",
    "acs_conv",
    "adapt_first_conv",
    "adapt_input_kernel",
    "cache_file",
    "create",
    "create_imagenet_classifier",
    "import_weights",
    "inflate_conv",
    "inflate_conv_weights",
    "list_encoders",
    "load_state_dict_file",
    "medtransfer_home",
    "resolve_weights",
    "sha256_file",
]
