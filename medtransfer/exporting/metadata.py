"""What an exported model carries for inference, and how to read it back from any format.

One plain-JSON dict (:func:`model_metadata`) goes into every export: the ONNX file's
``metadata_props`` (key ``"medtransfer"``), the TorchScript archive's extra file
``medtransfer.json``, and a MONAI bundle's ``configs/metadata.json`` (key ``"medtransfer"``,
beside MONAI's own fields). :func:`read_metadata` reads it back without running the model: an
ONNX file is parsed (``onnx``), a TorchScript archive is opened as the zip file it is (nothing
is unpickled), a bundle's JSON is read.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from torch import nn

from medtransfer.errors import ExportError, InputPathError
from medtransfer.exporting.pipeline import PipelineInfo

__all__ = ["METADATA_KEY", "SCHEMA_VERSION", "model_metadata", "read_metadata", "task_of"]

METADATA_KEY = "medtransfer"  # ONNX metadata_props key, bundle metadata.json key
EXTRA_FILE = "medtransfer.json"  # TorchScript extra file
SCHEMA_VERSION = 1


def task_of(model: nn.Module) -> str:
    """``segmentation``, ``classification`` or ``unknown`` (not a medtransfer task model)."""
    from medtransfer.models import Classifier, Segmenter

    if isinstance(model, Segmenter):
        return "segmentation"
    if isinstance(model, Classifier):
        return "classification"
    return "unknown"


def _encoder(model: nn.Module) -> dict[str, Any] | None:
    encoder = getattr(model, "encoder", None)
    spec = getattr(encoder, "input_spec", None)
    if encoder is None or spec is None:
        return None
    weights = getattr(encoder, "weights", None)
    return {
        "name": getattr(encoder, "name", None),
        "in_channels": getattr(encoder, "in_channels", None),
        "spatial_dims": getattr(encoder, "spatial_dims", None),
        "conversion": getattr(encoder, "conversion", None),
        "pretrained_sha256": getattr(weights, "sha256", None),
        "input_spec": {
            "mean": list(spec.mean),
            "std": list(spec.std),
            "value_range": list(spec.value_range),
            "input_size": list(spec.input_size),
            "interpolation": spec.interpolation,
            "size_divisor": list(spec.size_divisor),
        },
    }


def _num_outputs(model: nn.Module, output_shape: tuple[int, ...]) -> int:
    return int(getattr(model, "num_classes", output_shape[1] if len(output_shape) > 1 else 1))


def model_metadata(
    model: nn.Module,
    *,
    format: str,
    input_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    pipeline: PipelineInfo | None,
    class_names: list[str] | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata dict of an export (see the module docstring and ``docs/export.md``)."""
    import importlib

    import monai
    import torch

    version = importlib.import_module("medtransfer").__version__  # not a layer dependency

    outputs = _num_outputs(model, output_shape)
    task = task_of(model)
    spatial = len(input_shape) - 2
    layout = "(N, C, X, Y)" if spatial == 2 else "(N, C, X, Y, Z)"
    data = {
        "schema_version": SCHEMA_VERSION,
        "medtransfer_version": version,
        "torch_version": torch.__version__,
        "monai_version": monai.__version__,
        "format": format,
        "task": task,
        "model_class": type(model).__name__,
        "num_classes": outputs,
        "class_names": list(class_names) if class_names is not None else None,
        "spatial_dims": spatial,
        "input": {
            "name": "image",
            "layout": layout,
            "shape": list(input_shape),
            "dynamic_axes": {"0": "batch"},
            "dtype": "float32",
        },
        "output": {
            "name": "logits",
            "shape": list(output_shape),
            "kind": "logits",
            "activation": "sigmoid" if outputs == 1 else "softmax",
            "labels": "argmax over channels (0 = background)"
            if task == "segmentation" and outputs > 1
            else None,
        },
        "encoder": _encoder(model),
        "preprocessing": None,
    }
    if pipeline is not None:
        data["preprocessing"] = {
            "steps": pipeline.description,
            "slice_context": pipeline.context,
            "roi_size": list(pipeline.roi_size),
            "normalisation": {
                "mean": list(pipeline.mean),
                "std": list(pipeline.std),
                "value_range": list(pipeline.value_range),
            },
        }
    if extra:
        data["extra"] = extra
    return data


def _from_onnx(path: Path) -> dict[str, Any]:
    try:
        import onnx
    except ImportError:
        raise ExportError(f"Reading {path} needs the onnx package: pip install onnx.") from None
    proto = onnx.load(str(path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise ExportError(
        f"{path} has no {METADATA_KEY!r} metadata: it was not exported by medtransfer."
    )


def _from_torchscript(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith(f"/extra/{EXTRA_FILE}")), None)
            if name is None:
                raise ExportError(
                    f"{path} has no extra file {EXTRA_FILE}: it was not exported by medtransfer."
                )
            return json.loads(archive.read(name))
    except zipfile.BadZipFile:
        raise ExportError(f"{path} is not a TorchScript archive (not a zip file).") from None


def _from_bundle(folder: Path) -> dict[str, Any]:
    meta = folder / "configs" / "metadata.json"
    if not meta.is_file():
        raise InputPathError(f"{folder} is not a MONAI bundle: {meta} does not exist.")
    data = json.loads(meta.read_text(encoding="utf-8"))
    if METADATA_KEY not in data:
        raise ExportError(f"{meta} has no {METADATA_KEY!r} entry: not exported by medtransfer.")
    return data[METADATA_KEY]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata an exported model carries (ONNX file, TorchScript file or MONAI bundle).

    Args:
        path: a ``.onnx`` file, a TorchScript file (``.ts``/``.pt``), or a bundle folder.

    Returns:
        The dict written at export: ``class_names``, ``spatial_dims``, ``input``, ``output``,
        ``encoder`` (with its ``input_spec``), ``preprocessing`` (the preset's eval steps),
        ``medtransfer_version``...

    Raises:
        InputPathError: ``path`` does not exist.
        ExportError: the file holds no medtransfer metadata, or ``onnx`` is missing.

    Example:
        >>> import tempfile, pathlib, torch, medtransfer as mt
        >>> from medtransfer.exporting import read_metadata
        >>> model = mt.models.create_classifier("test_resnet", 3, weights=None, seed=0)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.ts"
        >>> _ = mt.export(model, path, format="torchscript", example=torch.zeros(1, 1, 32, 32))
        >>> meta = read_metadata(path)
        >>> meta["task"], meta["num_classes"], meta["input"]["shape"]
        ('classification', 3, [1, 1, 32, 32])
    """
    path = Path(path)
    if not path.exists():
        raise InputPathError(f"Not found: {path} (an exported .onnx/.ts file or a bundle folder).")
    if path.is_dir():
        return _from_bundle(path)
    if path.suffix == ".onnx":
        return _from_onnx(path)
    return _from_torchscript(path)
