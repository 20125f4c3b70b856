"""``predict``: a trained segmenter on one image, the result back on the image's own voxel grid.

The image goes through the preset's eval pipeline (load, RAS orientation, foreground crop,
resampling, intensity, padding, normalisation), the model runs on the preprocessed tensor
(sliding windows for volumes, batches of slices for 2D/2.5D models), and the probabilities are
mapped back to the source grid by inverting the pipeline's spatial transforms (see
:mod:`medtransfer.evaluation.inference.geometry`). The mask therefore has exactly the shape and
affine of ``mt.io.load(source)``: save it with ``mt.io.save`` or ``mt.io.save_dicom_seg``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from torch import nn

from medtransfer.errors import ConfigError, InputPathError, ModelError
from medtransfer.evaluation.inference.device import resolve_device
from medtransfer.evaluation.inference.geometry import (
    pipeline_roi_size,
    prepare_pipeline,
    restore_geometry,
)
from medtransfer.evaluation.inference.ood import case_embedding, warn_if_out_of_distribution
from medtransfer.evaluation.inference.tta import tta_flips
from medtransfer.evaluation.wording import count
from medtransfer.transforms import unstack_slices
from medtransfer.transforms.pipeline_errors import run_pipeline

__all__ = ["OUTPUTS", "predict", "resolve_device"]

OUTPUTS = ("labels", "probabilities")


def _check_arguments(output: str, overlap: float, batch_size: int, threshold: float) -> None:
    if output not in OUTPUTS:
        raise ConfigError(f"output={output!r} is not supported; allowed values: {OUTPUTS}.")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"overlap={overlap!r} must be in [0, 1); 0.25-0.5 is usual.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold={threshold!r} must be in (0, 1).")


def _check_model(model: nn.Module, spatial_dims: int, channels: int, stacked: bool) -> None:
    encoder = getattr(model, "encoder", None)
    dims = getattr(encoder, "spatial_dims", None)
    if dims is not None and dims != spatial_dims:
        what = "axial slices (2D/2.5D preset)" if stacked else f"{spatial_dims}D images"
        raise ModelError(
            f"The model is {dims}D but the preset's eval pipeline gives {what}; build the preset "
            f"with spatial_dims={dims}, or use a {spatial_dims}D model."
        )
    expected = getattr(encoder, "in_channels", None)
    if expected is not None and expected != channels:
        raise ModelError(
            f"The model takes {count(expected, 'input channel')} but the pipeline makes {channels} "
            "(windows x (2*context+1)); use the same preset settings as in training."
        )


def _infer(
    model: nn.Module,
    batch: torch.Tensor,
    roi_size: Sequence[int],
    overlap: float,
    flips: list[tuple[int, ...]],
    batch_size: int,
    device: torch.device,
    progress: bool = False,
) -> torch.Tensor:
    """Probabilities ``(N, K, *spatial)`` on the CPU, averaged over the TTA flips."""
    from monai.inferers import sliding_window_inference

    def forward(window: torch.Tensor) -> torch.Tensor:
        out = model(window)
        out = out[0] if isinstance(out, list | tuple) else out  # deep supervision: full res
        if out.ndim != window.ndim or out.shape[2:] != window.shape[2:]:
            raise ModelError(
                f"predict needs a segmentation model (N, C, *spatial) -> (N, K, *spatial); for "
                f"input {tuple(window.shape)} the model returned {tuple(out.shape)}."
            )
        return out

    total = None
    for axes in flips:
        dims = [a + 2 for a in axes]
        x = torch.flip(batch, dims) if dims else batch
        logits = sliding_window_inference(
            x, roi_size, batch_size, forward, overlap=overlap, mode="gaussian",
            sw_device=device, device="cpu", progress=progress,
        )  # fmt: skip
        logits = torch.as_tensor(logits).float()
        probs = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
        probs = torch.flip(probs, dims) if dims else probs
        total = probs if total is None else total + probs
    return total / len(flips)


def _to_output(
    probs: torch.Tensor, output: str, threshold: float, affine: np.ndarray, meta: dict[str, Any]
) -> MetaTensor:
    if output == "probabilities":
        data, channel = probs, 0
    elif probs.shape[0] == 1:
        data, channel = (probs[0] >= threshold).to(torch.uint8), "no_channel"
    else:
        dtype = torch.uint8 if probs.shape[0] <= 256 else torch.int32
        data, channel = probs.argmax(0).to(dtype), "no_channel"
    spatial_dims = len(probs.shape) - 1
    info = {
        "filename_or_obj": meta.get("filename_or_obj", ""),
        "spacing": tuple(float(v) for v in np.linalg.norm(affine[:3, :spatial_dims], axis=0)),
        "original_affine": affine.copy(),
        "spatial_shape": np.asarray(probs.shape[1:], dtype=np.int64),
        "original_channel_dim": channel,
    }
    for key in ("series_uid", "modality", "space", "ood_score", "out_of_distribution"):
        if key in meta:
            info[key] = meta[key]
    return MetaTensor(data, affine=torch.as_tensor(affine), meta=info)


def predict(
    model: nn.Module,
    image: str | os.PathLike[str] | torch.Tensor | np.ndarray,
    preset: Any,
    *,
    roi_size: Sequence[int] | None = None,
    overlap: float = 0.25,
    tta: bool | Sequence[Sequence[int]] = False,
    output: str = "labels",
    threshold: float = 0.5,
    batch_size: int = 4,
    device: str | torch.device = "auto",
    restore: str = "auto",
    image_key: str | None = None,
    progress: bool = False,
    ood: Any = None,
    case_id: str | None = None,
) -> MetaTensor:
    """Segment one image with ``model`` and return the result on the image's own voxel grid.

    Volumes (3D models) are predicted with MONAI's ``sliding_window_inference`` (Gaussian
    blending); 2D/2.5D models get every slice of the preset's slice stack, ``batch_size`` at a
    time, and the slices are put back with :func:`~medtransfer.transforms.unstack_slices`.
    Probabilities (softmax, or a sigmoid when the model has one output channel) are mapped back to
    the source grid with linear interpolation (the pipeline's inverse transforms), then turned
    into labels (argmax, or ``>= threshold``): smoother than resampling labels with nearest.
    Voxels outside the preset's foreground crop are background.

    Args:
        model: a segmenter ``(N, C, *spatial) -> (N, K, *spatial)`` logits (e.g.
            ``mt.models.create_segmenter``); it is put in eval mode and on ``device`` (its
            training flag is restored afterwards).
        image: NIfTI file, DICOM file or series folder (loaded by the preset's loader), or an
            in-memory image such as ``mt.io.load(...)`` (channel-less) or a phantom's image.
        preset: the ``(train, eval)`` pair from ``mt.transforms.presets.*`` (or the eval
            ``Compose``), built with the same settings as in training.
        roi_size: sliding-window size (default: the preset's ``roi_size``, the size its eval
            pipeline pads to; for slices, the whole slice).
        overlap: overlap of neighbouring windows (0.25-0.5).
        tta: test-time augmentation: ``True`` averages the probabilities of the unflipped input
            and of a flip along each spatial axis of the model's input (in-plane only for
            2D/2.5D); or a list of axis tuples, e.g. ``[(), (0,), (0, 1)]``.
        output: ``"labels"`` (uint8 label map, channel-less) or ``"probabilities"`` (float32
            ``(K, *spatial)``).
        threshold: probability cut-off for one-channel (sigmoid) models.
        batch_size: windows (3D) or slices (2D) per forward pass.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``...
        restore: ``"auto"`` (invert the pipeline, falling back to affine resampling when a
            transform cannot be inverted), ``"invert"`` or ``"resample"``.
        image_key: the pipeline's image key (default: the first key its loader loads).
        progress: show a progress bar over the sliding windows (volumes) or slice batches.
        ood: an :class:`~medtransfer.evaluation.OODDetector` fitted on the model's training
            cases (``medtransfer train`` stores one in its checkpoints): an
            :class:`~medtransfer.evaluation.OutOfDistributionWarning` is issued when this image
            lies outside what the model was trained on.
            The result's ``meta`` then holds ``ood_score`` and ``out_of_distribution``.
        case_id: how that warning names the image (default: the file name, or "image").

    Returns:
        A ``MetaTensor`` with the source image's spatial shape and affine (``meta["spacing"]``
        too): ``predict(...).affine`` equals ``mt.io.load(image).affine``.

    Raises:
        ConfigError: a bad argument, or a pipeline that cannot be mapped back.
        ModelError: the model's dimensions or channels do not fit the preset.

    Example:
        >>> import torch, medtransfer as mt
        >>> from medtransfer.evaluation.inference.predict import predict
        >>> image = mt.data.synthetic.phantoms(1, shape=(24, 20, 4))[0]["image"]
        >>> preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
        >>> model = torch.nn.Conv2d(1, 2, 1)  # any (N, C, X, Y) -> (N, K, X, Y) network
        >>> mask = predict(model, image, preset, device="cpu")
        >>> tuple(mask.shape), mask.dtype, bool((mask.affine == image.affine).all())
        ((24, 20, 4), torch.uint8, True)
    """
    _check_arguments(output, overlap, batch_size, threshold)
    if isinstance(image, str | os.PathLike) and not Path(image).exists():
        raise InputPathError(
            f"Not found: {image}. Pass a NIfTI file, a DICOM file or series folder, or an image."
        )
    loader, pipeline, key = prepare_pipeline(preset, image_key)
    loaded = loader({key: image})[key]
    if not isinstance(loaded, MetaTensor):  # LoadVolumed always returns one; be explicit
        raise ConfigError(f"The pipeline's loader did not return an image for {key!r}.")
    source_shape = tuple(int(s) for s in loaded.shape[1:])
    source_affine = loaded.affine.detach().cpu().numpy().astype(np.float64)
    x = run_pipeline(pipeline, {key: loaded})[key]
    stacked = "slice_stack" in x.meta
    spatial_dims = 2 if stacked else x.ndim - 1
    channels = int(x.shape[1] if stacked else x.shape[0])
    _check_model(model, spatial_dims, channels, stacked)
    flips = tta_flips(tta, spatial_dims)
    spatial = tuple(int(s) for s in (x.shape[2:] if stacked else x.shape[1:]))
    if roi_size is None:
        roi_size = pipeline_roi_size(pipeline, key, spatial_dims) or spatial
    roi = tuple(int(s) for s in roi_size)
    if len(roi) != spatial_dims or any(int(s) < 1 for s in roi):
        raise ConfigError(f"roi_size={roi_size!r} must be {spatial_dims} positive sizes.")
    device = resolve_device(device)
    if ood is not None:
        name = case_id or (Path(image).name if isinstance(image, str | os.PathLike) else "image")
        embedding = case_embedding(model, x.as_tensor().float(), batch_size=batch_size, device=device)  # fmt: skip
        score, flagged = warn_if_out_of_distribution(ood, embedding, name)
        loaded.meta.update(ood_score=float(score), out_of_distribution=bool(flagged))
    was_training = model.training
    model.eval()
    model.to(device)
    try:
        with torch.no_grad():
            data = x.as_tensor().float()
            if stacked:
                from tqdm.auto import tqdm

                starts = range(0, data.shape[0], batch_size)
                chunks = [
                    _infer(model, data[i : i + batch_size], roi, overlap, flips, batch_size, device)
                    for i in tqdm(starts, desc="slices", unit="batch", disable=not progress)
                ]
                volume = unstack_slices(torch.cat(chunks), reference=x)
            else:
                probs = _infer(
                    model, data[None], roi, overlap, flips, batch_size, device, progress
                )[0]
                volume = MetaTensor(
                    probs, meta=dict(x.meta), applied_operations=x.applied_operations
                )
                volume.affine = x.affine.clone()
            restored = restore_geometry(volume, pipeline, key, source_shape, source_affine, restore)
            if restored.shape[0] > 1:  # outside the foreground crop: certainly background
                restored[0] += (1.0 - restored.sum(0)).clamp(min=0.0)
    finally:
        model.train(was_training)
    if loaded.meta.get("expanded_from_2d"):  # a 2D input: back to its own 2D grid
        restored = restored[..., 0]
    return _to_output(restored, output, threshold, source_affine, dict(loaded.meta))
