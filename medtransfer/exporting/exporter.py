"""``mt.export``: a trained model to ONNX, TorchScript or a MONAI bundle, checked by a round trip."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtransfer.errors import ExportError, OutputPathError
from medtransfer.exporting import bundle as bundle_format
from medtransfer.exporting import formats
from medtransfer.exporting.metadata import model_metadata, task_of
from medtransfer.exporting.pipeline import PipelineInfo, read_pipeline

__all__ = ["DEFAULT_TOLERANCE", "FORMATS", "ExportResult", "export"]

FORMATS = ("onnx", "torchscript", "monai-bundle")
DEFAULT_TOLERANCE = 1e-4
_FALLBACK_SIZE = {2: (256, 256), 3: (96, 96, 96)}  # the presets' default roi_size


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and how well the written model reproduces the PyTorch model.

    Attributes:
        path: the file (ONNX, TorchScript) or folder (MONAI bundle).
        format: ``"onnx"``, ``"torchscript"`` or ``"monai-bundle"``.
        files: every file written.
        metadata: the metadata the export carries (:func:`~medtransfer.exporting.read_metadata`).
        max_abs_diff: largest absolute difference between the written model's outputs and the
            PyTorch model's on the check input; None when it was not checked (``note`` says why).
        tolerance: the largest difference accepted.
        check_input: the shape of the fixed input the check ran on.
        note: why no check ran, else None.
    """

    path: Path
    format: str
    files: tuple[Path, ...]
    metadata: dict[str, Any]
    max_abs_diff: float | None
    tolerance: float
    check_input: tuple[int, ...]
    note: str | None = None

    def summary(self) -> str:
        """One line: what was written and the round-trip difference."""
        if self.max_abs_diff is None:
            check = f"not checked: {self.note}"
        else:
            check = f"max |difference| {self.max_abs_diff:.1e} <= {self.tolerance:g} on a fixed input {self.check_input}"
        return f"{self.format} -> {self.path} ({check})"


def _check_format(format: str) -> str:
    name = str(format).strip().lower().replace("_", "-")
    name = {"ts": "torchscript", "bundle": "monai-bundle", "monai": "monai-bundle"}.get(name, name)
    if name not in FORMATS:
        raise ExportError(
            f"format={format!r} is not supported; allowed values: {', '.join(FORMATS)}."
        )
    return name


def _check_destination(path: Path, fmt: str, overwrite: bool) -> None:
    if fmt == "monai-bundle" and path.is_file():
        raise OutputPathError(f"{path} is a file; a MONAI bundle is a folder: pass a folder path.")
    if fmt != "monai-bundle" and path.is_dir():
        raise OutputPathError(
            f"{path} is a folder; pass a file path (e.g. {path / ('model.onnx' if fmt == 'onnx' else 'model.ts')})."
        )
    if path.exists() and not overwrite:
        raise OutputPathError(
            f"{path} already exists; pass overwrite=True (medtransfer export --overwrite) to "
            "replace it, or choose another path."
        )


def _example(
    model: nn.Module, example: Any, pipeline: PipelineInfo | None, fmt: str
) -> torch.Tensor:
    """The fixed input: ``example`` as a float tensor, or a seeded normal tensor of that shape."""
    encoder = getattr(model, "encoder", None)
    dims, channels = getattr(encoder, "spatial_dims", None), getattr(encoder, "in_channels", None)
    roi = tuple(pipeline.roi_size) if pipeline is not None else ()
    if isinstance(example, torch.Tensor | np.ndarray):
        x = torch.as_tensor(example).detach().float().cpu()
    else:
        if example is None:
            if dims is None or channels is None:
                raise ExportError(
                    f"{type(model).__name__} does not say its input (no encoder with "
                    "spatial_dims/in_channels): pass example=, a tensor or a shape (N, C, *spatial)."
                )
            size = (
                roi[:dims]
                if len(roi) >= dims and all(s > 0 for s in roi[:dims])
                else _FALLBACK_SIZE[dims]
            )
            example = (1, channels, *size)
        if not (
            isinstance(example, Sequence) and all(isinstance(s, int) and s > 0 for s in example)
        ):
            raise ExportError(
                f"example={example!r} must be a tensor or a shape of positive ints (N, C, *spatial)."
            )
        x = torch.randn(tuple(example), generator=torch.Generator().manual_seed(0))
    if dims is not None and channels is not None and (x.ndim != dims + 2 or x.shape[1] != channels):
        layout = "(N, C, X, Y)" if dims == 2 else "(N, C, X, Y, Z)"
        raise ExportError(
            f"example has shape {tuple(x.shape)} but the model takes {layout} with C={channels}."
        )
    if fmt == "monai-bundle" and pipeline is not None and roi:
        expected = roi[:2] if pipeline.context is not None else roi[: x.ndim - 2]
        if tuple(x.shape[2:]) != tuple(expected):
            raise ExportError(
                f"For a MONAI bundle the example's spatial size must be the preset's roi_size "
                f"{tuple(expected)} (the sliding windows' size); got {tuple(x.shape[2:])}. Leave "
                "example=None to use it."
            )
    return x


def _reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    if isinstance(out, list | tuple) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ExportError(
            f"{type(model).__name__} returned {type(out).__name__}; only models returning one "
            "tensor can be exported."
        )
    return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def export(
    model: nn.Module,
    path: str | os.PathLike[str],
    format: str = "onnx",
    *,
    example: torch.Tensor | np.ndarray | Sequence[int] | None = None,
    preset: Any = None,
    class_names: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    verify: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    overwrite: bool = False,
    opset: int | None = None,
) -> ExportResult:
    """Export ``model`` for inference without medtransfer: ONNX, TorchScript or a MONAI bundle.

    The file carries what inference needs as JSON metadata (:func:`read_metadata`): class
    names, task, spatial dims, the input's shape and layout, the encoder's input spec
    (normalisation), the preset's eval pre-processing step by step, and the medtransfer, torch
    and MONAI versions. The written model is then run by its own runtime on a fixed input
    (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript and the bundle's network) and its
    outputs are compared with the PyTorch model's.

    The spatial size is fixed at export (``example``'s, by default the preset's ``roi_size``):
    run the exported model on windows of that size (sliding windows, as ``predict`` does); the
    batch axis is free. A MONAI bundle (segmenters) is a folder that
    ``python -m monai.bundle run`` runs on NIfTI images: see ``docs/export.md``.

    Args:
        model: a trained :class:`~medtransfer.models.Segmenter` or
            :class:`~medtransfer.models.Classifier` (or any tensor-to-tensor module with an
            ``example``); it is copied, never changed.
        path: output file (``.onnx``, ``.ts``), or folder for ``"monai-bundle"``.
        format: ``"onnx"``, ``"torchscript"`` or ``"monai-bundle"``.
        example: the fixed input, a tensor or a shape ``(N, C, *spatial)``; default
            ``(1, in_channels, *roi_size)`` of the preset (else 256x256 / 96x96x96), seeded
            normal noise.
        preset: the ``(train, eval)`` pair the model was trained with; its eval pipeline goes
            into the metadata and, for a bundle, into ``inference.json`` (required there).
        class_names: names of the classes (segmentation: the foreground classes, or all).
        metadata: more JSON data to carry, stored under ``"extra"``.
        verify: run the round-trip check (ONNX: skipped with a ``note`` when onnxruntime is not
            installed).
        tolerance: largest absolute output difference accepted by the check.
        overwrite: replace an existing file or folder at ``path``.
        opset: ONNX opset version (default: torch's).

    Returns:
        An :class:`ExportResult` (path, files, metadata, ``max_abs_diff``).

    Raises:
        ExportError: unknown format, missing onnx/onnxscript, a model that cannot be traced, a
            bundle the preset cannot express, or a check that finds a difference above
            ``tolerance`` (the written files are then removed).
        OutputPathError: ``path`` exists (without ``overwrite``) or cannot be written.

    Example:
        >>> import tempfile, pathlib, medtransfer as mt
        >>> model = mt.models.create_segmenter("test_resnet", 2, weights=None, seed=0)
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "seg.ts"
        >>> result = mt.export(model, out, format="torchscript", example=(1, 1, 64, 64))
        >>> result.max_abs_diff < 1e-4, mt.exporting.read_metadata(out)["spatial_dims"]
        (True, 2)
    """
    fmt = _check_format(format)
    path = Path(path)
    _check_destination(path, fmt, overwrite)
    if not isinstance(model, nn.Module):
        raise ExportError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    try:
        json.dumps(metadata or {})
    except (TypeError, ValueError) as err:
        raise ExportError(
            f"metadata= must be JSON data (str, numbers, lists, dicts): {err}"
        ) from None
    if class_names is not None and (
        isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names)
    ):
        raise ExportError(f"class_names={class_names!r} must be a list of strings.")
    pipeline = read_pipeline(preset) if preset is not None else None
    net = copy.deepcopy(model).float().cpu().eval()
    if fmt == "monai-bundle":
        dims = getattr(getattr(net, "encoder", None), "spatial_dims", 2)
        bundle_format.check_bundle_input(task_of(net), pipeline, dims)
    x = _example(net, example, pipeline, fmt)
    traced_input = x if x.shape[0] > 1 else torch.cat([x, x.flip(-1)])  # batch 2: a free batch axis
    reference = _reference(net, traced_input)
    info = model_metadata(
        net,
        format=fmt,
        input_shape=tuple(x.shape),
        output_shape=(int(x.shape[0]), *reference.shape[1:]),
        pipeline=pipeline,
        class_names=list(class_names) if class_names is not None else None,
        extra=metadata,
    )
    check_input, note = traced_input, None
    if fmt == "onnx":
        files = (formats.write_onnx(net, traced_input, path, info, opset),)
        run = formats.run_onnx
        note = None if not verify else "onnxruntime is not installed (pip install onnxruntime)"
    elif fmt == "torchscript":
        files = (formats.write_torchscript(net, traced_input, path, info),)
        run = formats.run_torchscript
    else:
        eager, scripted = bundle_format.bundle_network(net, pipeline, traced_input)
        files = bundle_format.write_bundle(scripted, path, info, pipeline, overwrite)
        check_input = bundle_format.bundle_check_input(pipeline, x)
        with torch.no_grad():
            reference = eager(check_input)
        path_to_run = path / "models" / "model.ts"

        def run(_: Path, inputs: torch.Tensor) -> np.ndarray:
            return formats.run_torchscript(path_to_run, inputs)

    diff = None
    if verify:
        outputs = run(path, check_input)
        if outputs is not None:
            note = None
            diff = float(np.abs(outputs - reference.numpy()).max())
            if not diff <= tolerance:  # NaN fails too
                _remove(path)
                raise ExportError(
                    f"The exported {fmt} model differs from the PyTorch model by up to {diff:.3g} "
                    f"(tolerance {tolerance:g}) on a fixed input; {path} was removed. Report it "
                    "with the model's encoder name; try the other format meanwhile."
                )
    else:
        note = "verify=False"
    return ExportResult(
        path=path,
        format=fmt,
        files=tuple(files),
        metadata=info,
        max_abs_diff=diff,
        tolerance=tolerance,
        check_input=tuple(check_input.shape),
        note=note,
    )
