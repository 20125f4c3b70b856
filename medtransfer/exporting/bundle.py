"""MONAI bundle export: a folder that ``python -m monai.bundle run`` runs as it is.

Layout (MONAI's bundle specification)::

    configs/metadata.json    MONAI's fields + "medtransfer": the export's metadata
    configs/inference.json   load, orient, crop, resample, scale to [0, 1], pad, sliding windows,
                             softmax, invert to the source grid, argmax, save NIfTI
    models/model.ts          TorchScript network: encoder normalisation (+ slice-wise 2D) + model
    models/model.pt          its state dict (what CheckpointLoader loads; replace it after
                             fine-tuning the same network)
    docs/README.md           how to run it

The folder is built beside the destination and renamed into place, so a failed export leaves
nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medtransfer.errors import ExportError
from medtransfer.exporting.bundle_config import bundle_metadata, inference_config
from medtransfer.exporting.formats import quiet, trace
from medtransfer.exporting.metadata import EXTRA_FILE
from medtransfer.exporting.pipeline import PipelineInfo
from medtransfer.exporting.wrappers import NormalisedInput, SliceWise
from medtransfer.io.atomic import current_umask, make_folder, output_path_error

__all__ = ["bundle_check_input", "bundle_network", "check_bundle_input", "write_bundle"]

README = """# {name}

Exported by medtransfer {version}. Segment every NIfTI file of a folder:

```bash
python -m monai.bundle run --config_file {bundle}/configs/inference.json \\
    --bundle_root {bundle} --dataset_dir /path/to/images --output_dir /path/to/masks
```

Needs MONAI >= 1.3, nibabel, pytorch-ignite and fire{extra}. Masks are written as
`<image>_seg.nii.gz` on the grid of each input image. The network (`models/model.ts`) takes
images pre-processed by `configs/inference.json` (intensities in [0, 1]) and returns logits;
`configs/metadata.json` lists the classes under `network_data_format` and everything medtransfer
knows about the model under `medtransfer`.
"""


def bundle_check_input(pipeline: PipelineInfo, example: torch.Tensor) -> torch.Tensor:
    """A fixed input of the bundle network: [0, 1] intensities of the export's spatial size.

    2D models on volumes get a volume of 3 slices of the example's in-plane size.
    """
    generator = torch.Generator().manual_seed(0)
    channels = example.shape[1]
    if pipeline.context is not None:
        channels //= 2 * pipeline.context + 1
        return torch.rand((1, channels, *example.shape[2:], 3), generator=generator)
    return torch.rand((1, channels, *example.shape[2:]), generator=generator)


def bundle_network(
    model: nn.Module, pipeline: PipelineInfo, example: torch.Tensor
) -> tuple[nn.Module, nn.Module]:
    """``(eager, scripted)``: normalisation (+ slice-wise wrapper) around ``model``.

    ``model`` is traced on ``example`` (fixed spatial size, as the sliding windows give it);
    the wrappers are scripted around the traced model (the slice loop depends on the depth).
    """
    normalise = (pipeline.mean, pipeline.std, pipeline.value_range)
    eager: nn.Module = NormalisedInput(model, *normalise)
    traced: nn.Module = NormalisedInput(trace(model, example), *normalise)
    if pipeline.context is not None:
        eager, traced = SliceWise(eager, pipeline.context), SliceWise(traced, pipeline.context)
    try:
        with quiet():
            scripted = torch.jit.script(traced)
    except Exception as err:  # TorchScript compiler errors have many types
        raise ExportError(f"The bundle network could not be scripted: {err}") from err
    return eager.eval(), scripted.eval()


def _refuse(reason: str) -> ExportError:
    return ExportError(
        f"format='monai-bundle' {reason}; export it with format='onnx' or 'torchscript' "
        "(the metadata describes the pre-processing)."
    )


def check_bundle_input(task: str, pipeline: PipelineInfo | None, spatial_dims: int) -> None:
    """Refuse, before any work, what a segmentation bundle cannot express."""
    if task != "segmentation":
        raise _refuse(f"exports segmenters only (this model's task: {task})")
    if pipeline is None:
        raise ExportError(
            "format='monai-bundle' needs preset= (the (train, eval) pair the model was trained "
            "with): inference.json repeats its pre-processing."
        )
    if pipeline.bundle_problem is not None:
        raise _refuse(f"cannot write the preset step {pipeline.bundle_problem} into inference.json")
    if not pipeline.roi_size:
        raise _refuse("needs a preset that pads to a roi_size (every preset does)")
    if pipeline.context is None and len(pipeline.roi_size) < spatial_dims:
        raise _refuse(f"got a {len(pipeline.roi_size)}D roi_size for a {spatial_dims}D model")


def write_bundle(
    scripted: nn.Module,
    folder: Path,
    metadata: dict[str, Any],
    pipeline: PipelineInfo,
    overwrite: bool,
) -> tuple[Path, ...]:
    """Write the bundle folder (see the module docstring); returns its files."""
    spatial_dims = int(metadata["spatial_dims"])
    meta = bundle_metadata(metadata, pipeline, spatial_dims)
    config = inference_config(pipeline, int(metadata["num_classes"]), spatial_dims)
    make_folder(folder.parent)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        os.chmod(work, 0o777 & ~current_umask(folder.parent))  # mkdtemp's is 0o700
    except OSError as err:
        raise output_path_error(folder, err) from err
    try:
        for sub in ("configs", "models", "docs"):
            (work / sub).mkdir()
        (work / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        (work / "configs" / "inference.json").write_text(json.dumps(config, indent=2) + "\n")
        with quiet():
            scripted.save(
                str(work / "models" / "model.ts"),
                _extra_files={EXTRA_FILE: json.dumps(metadata, indent=1)},
            )
        torch.save(scripted.state_dict(), work / "models" / "model.pt")
        extra = ", and medtransfer (some pre-processing steps are its own)"
        (work / "docs" / "README.md").write_text(
            README.format(
                name=meta["name"],
                version=metadata["medtransfer_version"],
                bundle=folder.name,
                extra=extra if pipeline.needs_medtransfer else "",
            )
        )
        if folder.exists() and overwrite:
            shutil.rmtree(folder)
        work.rename(folder)
    except OSError as err:
        shutil.rmtree(work, ignore_errors=True)
        raise output_path_error(folder, err) from err
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return tuple(sorted(p for p in folder.rglob("*") if p.is_file()))
