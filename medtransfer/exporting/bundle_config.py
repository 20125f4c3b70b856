"""The JSON of a MONAI bundle: ``configs/inference.json`` and ``configs/metadata.json``.

``inference.json`` follows the layout of the MONAI Model Zoo's bundles (``bundle_root``,
``dataset_dir``, ``preprocessing``, ``inferer``, ``postprocessing``, ``evaluator``,
``initialize``, ``run``), so ``python -m monai.bundle run --config_file configs/inference.json
--bundle_root B --dataset_dir IMAGES --output_dir OUT`` segments every NIfTI file of IMAGES. The
steps mirror ``mt.evaluation.predict``: the preset's pre-processing, Gaussian-weighted sliding
windows (overlap 0.25), softmax (or sigmoid), probabilities taken back to the source grid by
inverting the pre-processing (linear interpolation), then argmax (or ``>= 0.5``).
"""

from __future__ import annotations

from typing import Any

from medtransfer.exporting.pipeline import BUNDLE_KEY, PipelineInfo

__all__ = ["SCHEMA_URL", "inference_config", "bundle_metadata", "inferer_roi"]

SCHEMA_URL = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
    "meta_schema_20240725.json"
)
OVERLAP = 0.25  # mt.evaluation.predict's default
SIGMA = 0.125  # MONAI's default Gaussian sigma, a fraction of the window (predict uses it)
FLAT = 1.0e6  # a Gaussian this wide is 1 across the window


def inferer_roi(pipeline: PipelineInfo, spatial_dims: int) -> list[int]:
    """Sliding-window size: the preset's ``roi_size``; 2D models on volumes: ``(X, Y, -1)``.

    ``-1`` makes MONAI's window span the whole depth, so every window holds whole axial slices
    for the network's slice-wise wrapper and the in-plane windows are those of ``predict``.
    """
    roi = list(pipeline.roi_size)
    if pipeline.context is not None:
        return [*roi[:2], -1]
    return roi[:spatial_dims]


def inference_config(pipeline: PipelineInfo, num_classes: int, spatial_dims: int) -> dict[str, Any]:
    """``configs/inference.json`` of a segmentation bundle (see the module docstring)."""
    sigmoid = num_classes == 1
    discrete = {"threshold": 0.5} if sigmoid else {"argmax": True}
    stacked = pipeline.context is not None
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "$@bundle_root + '/sample_data'",
        "datalist": "$sorted(glob.glob(os.path.join(@dataset_dir, '*.nii*')))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": "$torch.jit.load(@bundle_root + '/models/model.ts', map_location='cpu')",
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": pipeline.bundle},
        "dataset": {
            "_target_": "Dataset",
            "data": f"$[{{'{BUNDLE_KEY}': i}} for i in @datalist]",
            "transform": "@preprocessing",
        },
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": "@dataset",
            "batch_size": 1,
            "shuffle": False,
            "num_workers": 0,
        },
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": inferer_roi(pipeline, spatial_dims),
            "sw_batch_size": 1 if stacked else 4,
            "overlap": OVERLAP,
            "mode": "gaussian",
            # slices: flat along the depth, so in-plane weights are predict's 2D ones (MONAI
            # clamps the Gaussian at 1e-3, which a depth factor would otherwise change)
            "sigma_scale": [SIGMA, SIGMA, FLAT] if stacked else SIGMA,
        },
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {
                    "_target_": "Activationsd",
                    "keys": "pred",
                    "softmax": not sigmoid,
                    "sigmoid": sigmoid,
                },
                {
                    "_target_": "Invertd",
                    "keys": "pred",
                    "transform": "@preprocessing",
                    "orig_keys": BUNDLE_KEY,
                    "nearest_interp": False,
                    "to_tensor": True,
                },
                {"_target_": "AsDiscreted", "keys": "pred", **discrete},
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "output_dir": "@output_dir",
                    "output_postfix": "seg",
                    "output_ext": ".nii.gz",
                    "output_dtype": "$numpy.uint8",
                    "resample": False,
                    "separate_folder": False,
                },
            ],
        },
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "amp": False,
        },
        "checkpointloader": {
            "_target_": "CheckpointLoader",
            "load_path": "$@bundle_root + '/models/model.pt'",
            "load_dict": {"model": "@network"},
            "map_location": "cpu",
        },
        "initialize": ["$@checkpointloader(@evaluator)"],
        "run": ["$@evaluator.run()"],
    }


def _channel_def(names: list[str] | None, count: int, background: bool) -> dict[str, str]:
    if names is not None and len(names) == count - int(background):
        labels = (["background"] if background else []) + list(names)
    elif names is not None and len(names) == count:
        labels = list(names)
    else:
        labels = [f"class {i}" for i in range(count)]
    return {str(i): name for i, name in enumerate(labels)}


def bundle_metadata(
    metadata: dict[str, Any], pipeline: PipelineInfo, spatial_dims: int
) -> dict[str, Any]:
    """``configs/metadata.json``: MONAI's bundle fields, medtransfer's under ``"medtransfer"``."""
    import numpy

    num_classes = int(metadata["num_classes"])
    channels = int(metadata["input"]["shape"][1])
    stacked = pipeline.context is not None
    in_channels = channels // (2 * pipeline.context + 1) if stacked else channels
    roi = inferer_roi(pipeline, spatial_dims)
    names = metadata.get("class_names")
    modality = "CT" if any("Window" in s["_target_"] for s in pipeline.description) else "image"
    packages = {"nibabel": _version("nibabel"), "pytorch-ignite": _version("ignite")}
    if pipeline.needs_medtransfer:
        packages["medtransfer"] = metadata["medtransfer_version"]
    encoder = (metadata.get("encoder") or {}).get("name") or metadata["model_class"]
    return {
        "schema": SCHEMA_URL,
        "version": "0.1.0",
        "changelog": {"0.1.0": f"exported by medtransfer {metadata['medtransfer_version']}"},
        "monai_version": metadata["monai_version"],
        "pytorch_version": metadata["torch_version"].split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": packages,
        "name": f"medtransfer {encoder} segmentation",
        "task": "segmentation",
        "description": (
            f"A {encoder} segmenter ({_dims_word(pipeline, spatial_dims)}) fine-tuned with "
            "medtransfer; configs/inference.json segments every NIfTI file of dataset_dir."
        ),
        "authors": "exported by medtransfer",
        "copyright": "see the model's training data and weights",
        "data_type": "nibabel",
        "image_classes": f"{in_channels} channel(s), intensities scaled to [0, 1] by the pre-processing",
        "label_classes": ", ".join(
            f"{i}: {n}" for i, n in _channel_def(names, max(num_classes, 2), True).items()
        ),
        "pred_classes": f"{num_classes} channel(s) of logits; the saved mask holds labels",
        "intended_use": "Research only, not for clinical use unless validated for it.",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield" if modality == "CT" else "magnitude",
                    "modality": modality,
                    "num_channels": in_channels,
                    "spatial_shape": roi,
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": {str(i): "image" for i in range(in_channels)},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": num_classes,
                    "spatial_shape": roi,
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": True,
                    "channel_def": _channel_def(names, num_classes, num_classes > 1),
                }
            },
        },
        "medtransfer": metadata,
    }


def _dims_word(pipeline: PipelineInfo, spatial_dims: int) -> str:
    if pipeline.context:
        return f"2.5D, {2 * pipeline.context + 1} slices, applied slice by slice"
    if pipeline.context == 0:
        return "2D, applied slice by slice"
    return f"{spatial_dims}D"


def _version(module: str) -> str:
    import importlib.metadata

    name = {"ignite": "pytorch-ignite"}.get(module, module)
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
