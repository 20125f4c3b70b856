"""medtransfer.exporting: trained models out, for inference without medtransfer.

``mt.export(model, path, format=...)`` writes ONNX, TorchScript or a MONAI bundle, each
carrying the metadata inference needs (classes, input spec, the preset's pre-processing,
versions), and checks the written model against the PyTorch model on a fixed input;
:func:`read_metadata` reads that metadata back. The package is named ``exporting`` so that
``mt.export`` stays the function. Guide: ``docs/export.md``.

Example:
    >>> import medtransfer as mt
    >>> mt.export is mt.exporting.export, mt.exporting.FORMATS
    (True, ('onnx', 'torchscript', 'monai-bundle'))
"""

from __future__ import annotations

from medtransfer.exporting.exporter import DEFAULT_TOLERANCE, FORMATS, ExportResult, export
from medtransfer.exporting.metadata import read_metadata
from medtransfer.exporting.wrappers import NormalisedInput, SliceWise

__all__ = [
    "DEFAULT_TOLERANCE",
    "FORMATS",
    "ExportResult",
    "NormalisedInput",
    "SliceWise",
    "export",
    "read_metadata",
]
