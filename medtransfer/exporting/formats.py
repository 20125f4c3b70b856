"""Writers of the single-file formats (ONNX, TorchScript) and the runs that check them.

Each writer traces the model on an input of the export's fixed spatial size with a batch of two
(the batch axis stays dynamic; spatial sizes are fixed: the segmenter's padding to its stride
is resolved at trace time) and writes atomically. Each checker runs the *written file* with its
own runtime (onnxruntime, ``torch.jit.load``) and returns the outputs for comparison.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtransfer.errors import ExportError
from medtransfer.exporting.metadata import EXTRA_FILE, METADATA_KEY
from medtransfer.io.atomic import atomic_path

__all__ = ["run_onnx", "run_torchscript", "trace", "write_onnx", "write_torchscript"]

INPUT_NAME, OUTPUT_NAME = "image", "logits"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Tracer and deprecation warnings of torch's exporters are not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _untraceable(model: nn.Module, err: Exception, fmt: str) -> ExportError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ExportError(
        f"{type(model).__name__} could not be traced for {fmt} export: {first[:300]}. The model's "
        "forward must map one tensor (N, C, *spatial) to one tensor (no Python data, no "
        "data-dependent branches); export the model built by mt.models.create_* (after "
        "strategy.export for LoRA), or pass example= with the input size used at inference."
    )


def trace(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` of ``model`` on ``example``, with a clear error when it fails."""
    try:
        with quiet(), torch.no_grad():
            return torch.jit.trace(model, example, check_trace=False)
    except Exception as err:  # torch raises many kinds; the message is what helps
        raise _untraceable(model, err, "TorchScript") from err


def write_torchscript(model: nn.Module, example: torch.Tensor, path: Path, metadata: dict) -> Path:
    """Trace and save with the metadata as the archive's extra file ``medtransfer.json``."""
    traced = trace(model, example)
    with atomic_path(path) as tmp, quiet():
        traced.save(str(tmp), _extra_files={EXTRA_FILE: json.dumps(metadata, indent=1)})
    return path


def run_torchscript(path: Path, x: torch.Tensor) -> np.ndarray:
    """Outputs of the saved TorchScript file on ``x``."""
    with quiet(), torch.no_grad():
        loaded = torch.jit.load(str(path), map_location="cpu")
        return loaded(x).numpy()


def _onnx_modules() -> Any:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as err:
        raise ExportError(
            f"ONNX export needs the packages onnx and onnxscript ({err.name} is missing): "
            "pip install onnx onnxscript (and onnxruntime to check the exported file)."
        ) from None
    return onnx


def write_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    metadata: dict,
    opset: int | None = None,
) -> Path:
    """``torch.onnx.export`` (the ``torch.export``-based exporter), batch axis dynamic."""
    onnx = _onnx_modules()
    batch = torch.export.Dim("batch")
    kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
    try:
        with quiet(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                verbose=False,
                **kwargs,
            )
    except ExportError:
        raise
    except Exception as err:
        raise _untraceable(model, err, "ONNX") from err
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    proto.doc_string = (
        f"medtransfer {metadata.get('task', '')} model; see metadata '{METADATA_KEY}'"
    )
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


def run_onnx(path: Path, x: torch.Tensor) -> np.ndarray | None:
    """Outputs of the saved ONNX file on ``x`` with onnxruntime; None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: x.numpy()})[0]
