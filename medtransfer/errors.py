"""Exception and warning hierarchy of medtransfer (the bottom layer: imports nothing of ours).

Every failure a user can cause raises a subclass of :class:`MedTransferError` whose message names
the file or field at fault and says what to do about it. Catch ``MedTransferError`` to handle all
of them; catch a subclass to handle one kind.

Example:
    >>> import medtransfer as mt
    >>> try:
    ...     mt.io.load("/no/such/file.nii.gz")
    ... except mt.errors.MedTransferError as err:
    ...     print(type(err).__name__)
    InputPathError
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataWarning",
    "DicomError",
    "EncoderError",
    "ExportError",
    "GeometryWarning",
    "InputPathError",
    "ManifestError",
    "MedTransferError",
    "MedTransferWarning",
    "ModelError",
    "NiftiError",
    "OutOfDistributionWarning",
    "OutputPathError",
    "RasterError",
    "SeriesError",
    "SplitError",
    "WeightsError",
]


class MedTransferError(Exception):
    """Base class of every error medtransfer raises on bad input, configuration or environment."""


class InputPathError(MedTransferError, FileNotFoundError):
    """A path given by the user does not exist or is of the wrong kind (file vs folder)."""


class OutputPathError(MedTransferError, OSError):
    """An output path cannot be written (read-only folder, no space left, a file where a folder is).

    Also an ``OSError``, so code that already catches ``OSError`` around writes keeps working.
    """


class DicomError(MedTransferError):
    """A DICOM file cannot be read or decoded (not DICOM, truncated, unsupported transfer syntax)."""


class SeriesError(MedTransferError):
    """A DICOM series cannot be assembled into one correct volume.

    Raised for several series where one is needed, missing or duplicate slices, non-uniform
    spacing, mixed orientations or sizes within a series.
    """


class NiftiError(MedTransferError):
    """A NIfTI file cannot be read or written."""


class RasterError(MedTransferError):
    """A PNG, JPEG or TIFF file cannot be read (damaged, truncated, or a layout medtransfer refuses,
    such as a multi-page TIFF or a 16-bit colour PNG that Pillow would reduce to 8 bits)."""


class ManifestError(MedTransferError):
    """A dataset manifest (CSV, JSON, MSD dataset.json) is malformed or points at missing files."""


class SplitError(MedTransferError):
    """Records cannot be split as asked (too few patients or cases for the fractions or folds)."""


class WeightsError(MedTransferError):
    """Pretrained weights are missing, unsafe, corrupt (checksum) or do not fit the model."""


class EncoderError(MedTransferError):
    """An encoder name, channel count or 2D->3D conversion is not supported."""


class ModelError(MedTransferError):
    """A task model cannot be built or run with the given arguments or input shape."""


class ExportError(MedTransferError):
    """A model cannot be exported as asked (``mt.export``, ``medtransfer export``).

    Raised for an unknown format, a missing exporter package (onnx, onnxscript), a model that
    cannot be traced, a pipeline step the format cannot express, and an exported file whose
    outputs differ from the PyTorch model's on the check input.
    """


class CheckpointError(MedTransferError):
    """A checkpoint or run folder cannot be used as asked.

    Raised for a checkpoint that fails its checksum with no good one to fall back to, a resume
    with nothing to resume, and a run folder whose history would be overwritten without
    ``overwrite=True``.
    """


class ConfigError(MedTransferError):
    """A configuration value or key is invalid; the message lists each bad field."""


class MedTransferWarning(UserWarning):
    """Base class of medtransfer's warnings."""


class GeometryWarning(MedTransferWarning):
    """Image geometry is unusual but usable (e.g. gantry tilt kept as a sheared affine)."""


class DataWarning(MedTransferWarning):
    """Input data is usable but suspicious (NaN/inf voxels, unreadable files skipped on request)."""


class OutOfDistributionWarning(MedTransferWarning):
    """A case looks unlike the model's reference (training) cases in the encoder's feature space.

    The model's accuracy on such a case is not what validation measured. Issued by the
    out-of-distribution check of inference (``medtransfer.evaluation.OODDetector``); the message
    names the case id, its score and the threshold.
    """
