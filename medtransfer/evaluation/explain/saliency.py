"""``saliency``: where a classifier looked, as a map on the source image's own voxel grid.

The image goes through the preset's eval pipeline (as in ``evaluate_classification``); MONAI's
``GradCAM`` or ``GradCAMpp`` computes the class activation map at one level of the encoder (see
:mod:`~medtransfer.evaluation.explain.layers`), upsampled to the model's input; the map goes back
to the source grid by inverting the pipeline, as ``predict`` does for masks
(:func:`~medtransfer.evaluation.inference.geometry.restore_geometry`).

A 2D or 2.5D model sees a volume as a batch of slices ``(S, C, X, Y)``, and the case's score is
the mean of the slices' probabilities. Each slice's map is weighted by that slice's probability
of the target class (its share of the case's score) before the slices are stacked back into a
volume, so slices the model found nothing on stay dark. A 3D model gets one map of the volume.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from torch import nn

from medtransfer.errors import ConfigError, InputPathError, ModelError
from medtransfer.evaluation.explain.alignment import trace_grids, upsample_aligned
from medtransfer.evaluation.explain.layers import feature_levels, resolve_layer
from medtransfer.evaluation.inference.geometry import prepare_pipeline, restore_geometry
from medtransfer.evaluation.inference.predict import _check_model, resolve_device
from medtransfer.transforms import unstack_slices
from medtransfer.transforms.pipeline_errors import run_pipeline

__all__ = ["METHODS", "POSITIVE", "saliency", "saliency_and_image"]

METHODS = ("gradcam", "gradcampp")
#: ``target=POSITIVE``: the positive class of a binary model (output 0 of one, 1 of two outputs).
POSITIVE = "positive"
# Slices whose probability of the target is below this share of the largest one are left dark
# without a backward pass: after the weighting they would not show.
_MIN_SLICE_SHARE = 0.01


def _cam_class(method: Any) -> type:
    from monai.visualize import GradCAM, GradCAMpp

    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not supported; allowed values: {METHODS}.")
    return GradCAM if method == "gradcam" else GradCAMpp


@contextmanager
def _hooked_cam(model: nn.Module, layer: str, method: str, frame: Any) -> Iterator[Any]:
    """MONAI's CAM on ``model``, leaving the model as it found it.

    MONAI registers hooks it never removes, may switch an in-place activation off and zeroes
    the gradients; parameters are frozen meanwhile (the gradient flows from the input).
    """
    module = dict(model.named_modules())[layer]
    forward_keys, backward_keys = set(module._forward_hooks), set(module._backward_hooks)
    full_hook, inplace = module._is_full_backward_hook, module.__dict__.get("inplace")
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        for p, _, _ in params:
            p.requires_grad_(False)
        yield _cam_class(method)(
            model,
            target_layers=layer,
            upsampler=lambda size: lambda maps: upsample_aligned(maps, size, *frame),
            postprocessing=lambda maps: maps,
        )
    finally:
        for key in set(module._forward_hooks) - forward_keys:
            del module._forward_hooks[key]
        for key in set(module._backward_hooks) - backward_keys:
            del module._backward_hooks[key]
        module._is_full_backward_hook = full_hook
        if inplace is not None:
            module.inplace = inplace
        for p, flag, grad in params:
            p.requires_grad_(flag)
            p.grad = grad


def _logits(model: nn.Module, batch: torch.Tensor, batch_size: int, device: Any) -> torch.Tensor:
    outs = []
    with torch.no_grad():
        for i in range(0, batch.shape[0], batch_size):
            out = model(batch[i : i + batch_size].to(device))
            out = out[0] if isinstance(out, list | tuple) else out
            if out.ndim != 2:
                raise ModelError(
                    f"saliency needs a classifier (N, C, ...) -> (N, K) logits; the model "
                    f"returned shape {tuple(out.shape)}."
                )
            outs.append(out.detach().float().cpu())
    return torch.cat(outs)


def _probabilities(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if logits.shape[1] == 1 or multilabel:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)


def _target(target: Any, case_probs: torch.Tensor, multilabel: bool) -> int:
    width = int(case_probs.shape[0])
    if target is None:
        return 0 if width == 1 else int(case_probs.argmax())
    if target == POSITIVE and (width == 1 or (width == 2 and not multilabel)):
        return width - 1
    if isinstance(target, bool) or not isinstance(target, int | np.integer):
        raise ConfigError(f"target={target!r} must be a class (or finding) index, or None.")
    if not 0 <= int(target) < width:
        what = "finding" if multilabel else "class"
        raise ConfigError(
            f"target={target} is out of range: the model has {width} output(s), so the {what} "
            f"index is 0..{width - 1}"
            + (" (its one output is the positive class)." if width == 1 else ".")
        )
    return int(target)


def _maps(
    model: nn.Module,
    batch: torch.Tensor,
    slices: Sequence[int],
    layer: tuple[str, Any],
    method: str,
    target: int,
    batch_size: int,
    device: Any,
) -> torch.Tensor:
    """Upsampled maps ``(len(slices), 1, *spatial)`` of the chosen batch elements."""
    # GradCAMpp multiplies the gradients by exp(score) broadcast over the last axis: one at a time
    step = batch_size if method == "gradcam" else 1
    maps = []
    with _hooked_cam(model, layer[0], method, layer[1]) as cam, torch.enable_grad():
        for i in range(0, len(slices), step):
            x = batch[list(slices[i : i + step])].to(device).requires_grad_(True)
            maps.append(cam(x, class_idx=target).detach().float().cpu())
    return torch.cat(maps)


def _layer_and_frame(
    model: nn.Module, layer: str | int | None, sample: torch.Tensor
) -> tuple[str, Any]:
    """The module to hook and the sampling grid of its output (traced on one sample)."""
    named = resolve_layer(model, layer) if isinstance(layer, str) else None
    levels = [] if named else feature_levels(model)
    grid = trace_grids(model, sample, levels + ([named] if named else []))
    name = named or resolve_layer(model, layer, [grid.sizes.get(n, (0, 0)) for n in levels])
    if name not in grid.sizes:
        raise ModelError(
            f"layer {name!r} returned no feature map (a tensor (N, C, *spatial)) on this input; "
            "choose a convolutional block of the model."
        )
    return name, grid.frame(name, sample.shape[2:])


def _output_meta(loaded: MetaTensor, affine: np.ndarray, shape: Sequence[int]) -> dict[str, Any]:
    meta = loaded.meta
    info = {
        "filename_or_obj": meta.get("filename_or_obj", ""),
        "spacing": tuple(float(v) for v in np.linalg.norm(affine[:3, : len(shape)], axis=0)),
        "original_affine": affine.copy(),
        "spatial_shape": np.asarray(shape, dtype=np.int64),
        "original_channel_dim": "no_channel",
    }
    for key in ("series_uid", "modality", "space"):
        if key in meta:
            info[key] = meta[key]
    return info


def saliency_and_image(
    model: nn.Module,
    image: Any,
    preset: Any,
    method: str = "gradcam",
    *,
    target: Any = None,
    layer: str | int | None = None,
    multilabel: bool | None = None,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    image_key: str | None = None,
    restore: str = "auto",
) -> tuple[MetaTensor, MetaTensor]:
    """:func:`saliency` and the source image it is drawn on (first channel, same grid)."""
    _cam_class(method)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.")
    if isinstance(layer, str):
        resolve_layer(model, layer)  # fail before loading anything
    else:
        feature_levels(model)
    if isinstance(image, str | os.PathLike) and not Path(image).exists():
        raise InputPathError(
            f"Not found: {image}. Pass a NIfTI file, a DICOM file or series folder, or an image."
        )
    loader, pipeline, key = prepare_pipeline(preset, image_key)
    loaded = loader({key: image})[key]
    if not isinstance(loaded, MetaTensor):
        raise ConfigError(f"The pipeline's loader did not return an image for {key!r}.")
    shape = tuple(int(s) for s in loaded.shape[1:])
    affine = loaded.affine.detach().cpu().numpy().astype(np.float64)
    x = run_pipeline(pipeline, {key: loaded})[key]
    stacked = "slice_stack" in x.meta
    spatial_dims = 2 if stacked else x.ndim - 1
    _check_model(model, spatial_dims, int(x.shape[1] if stacked else x.shape[0]), stacked)
    batch = x.as_tensor().float() if stacked else x.as_tensor().float()[None]
    device = resolve_device(device)
    if multilabel is None:
        multilabel = bool(getattr(model, "multilabel", False))
    was_training = model.training
    model.eval()
    model.to(device)
    try:
        probs = _probabilities(_logits(model, batch, batch_size, device), multilabel)
        target_index = _target(target, probs.mean(0), multilabel)
        layer_name, frame = _layer_and_frame(model, layer, batch[:1].to(device))
        weights = probs[:, target_index]
        chosen = [i for i, w in enumerate(weights) if w >= _MIN_SLICE_SHARE * weights.max()]
        maps = _maps(
            model, batch, chosen, (layer_name, frame), method, target_index, batch_size, device
        )
    finally:
        model.train(was_training)
    if stacked:
        full = torch.zeros((batch.shape[0], *maps.shape[1:]))
        full[chosen] = maps * weights[chosen].view(-1, *[1] * (maps.ndim - 1))
        volume = unstack_slices(full, reference=x)
    else:
        volume = MetaTensor(maps[0], meta=dict(x.meta), applied_operations=x.applied_operations)
        volume.affine = x.affine.clone()
    restored = restore_geometry(volume, pipeline, key, shape, affine, restore)[0].clamp(min=0.0)
    peak = float(restored.max())
    restored = restored / peak if peak > 0 else restored
    source = loaded.as_tensor()[0]
    if loaded.meta.get("expanded_from_2d"):  # a 2D input: back to its own 2D grid
        restored, source, shape = restored[..., 0], source[..., 0], shape[:-1]
    meta = _output_meta(loaded, affine, shape)
    meta.update(saliency_method=method, target=target_index, layer=layer_name,
                score=float(probs.mean(0)[target_index]))  # fmt: skip
    shown = MetaTensor(source.float(), affine=torch.as_tensor(affine), meta=dict(meta))
    out = MetaTensor(restored.float().contiguous(), affine=torch.as_tensor(affine), meta=meta)
    return out, shown


def saliency(
    model: nn.Module,
    image: str | os.PathLike[str] | torch.Tensor | np.ndarray,
    preset: Any,
    method: str = "gradcam",
    *,
    target: int | None = None,
    layer: str | int | None = None,
    multilabel: bool | None = None,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    image_key: str | None = None,
    restore: str = "auto",
) -> MetaTensor:
    """Where a classifier found the evidence for a class: a saliency map on the image's own grid.

    Grad-CAM (``"gradcam"``) or Grad-CAM++ (``"gradcampp"``) from MONAI, at one level of the
    model's encoder; 2D, 2.5D (a volume seen slice by slice, each slice's map weighted by its
    probability of the target) and 3D models. One forward pass over the case and one backward
    pass per slice batch (3D: per volume); the model is left unchanged (no hooks, gradients or
    ``requires_grad`` flags altered, training flag restored).

    Args:
        model: a classifier with an encoder (``mt.models.create_classifier``), ``(N, C, ...) ->
            (N, K)`` logits; it is put on ``device``.
        image: NIfTI file, DICOM file or series folder, or an in-memory image (as ``predict``).
        preset: the ``(train, eval)`` preset pair used in training (its eval pipeline runs).
        method: ``"gradcam"`` or ``"gradcampp"``.
        target: class index (softmax model) or finding index (``multilabel=True``) whose score is
            explained. None: the predicted class, or for a one-output (sigmoid) model its
            positive class (index 0).
        layer: None (the deepest encoder level whose map is at least 7 voxels along both in-plane
            axes: for a 224 x 224 slice the deepest, for 96 x 96 the stride-8 one), a level index
            (``-1``: the deepest), or a module name of ``model.named_modules()`` (e.g.
            ``"encoder.body.layer3"``).
        multilabel: the outputs are independent findings (sigmoids), not one softmax;
            default: the model's ``multilabel`` attribute (False when it has none).
        batch_size: slices per forward/backward pass (2D/2.5D models).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``...
        image_key: the pipeline's image key (default: the first key its loader loads).
        restore: ``"auto"``, ``"invert"`` or ``"resample"``: the way back to the source grid
            (see ``predict``).

    Returns:
        A float32 ``MetaTensor`` with the shape and affine of ``mt.io.load(image)``, in [0, 1]
        (1 at the peak; all zeros when the layer holds no positive evidence for the target).
        ``meta`` holds ``saliency_method``, ``target`` (the index explained), ``layer`` (the
        module hooked) and ``score`` (the case's probability of the target), with ``spacing``.

    Raises:
        ConfigError: an unknown method, a target out of range, a bad preset or argument.
        ModelError: a model without an encoder (pass ``layer=``), an unknown layer, or a model
            that does not fit the preset.

    Example:
        >>> import torch, medtransfer as mt
        >>> image = 100 + 10 * torch.rand(32, 32, 4)
        >>> image[4:12, 18:26] += 300.0  # a bright square
        >>> preset = mt.transforms.presets.mri("classification", roi_size=(32, 32), spatial_dims=2)
        >>> model = mt.models.create_classifier("resnet18", 1, weights=None, seed=0)
        >>> heat = saliency(model, image, preset, device="cpu")
        >>> tuple(heat.shape), heat.meta["layer"], float(heat.max())
        ((32, 32, 4), 'encoder.body.layer1', 1.0)
    """
    heat, _ = saliency_and_image(
        model, image, preset, method, target=target, layer=layer, multilabel=multilabel,
        batch_size=batch_size, device=device, image_key=image_key, restore=restore,
    )  # fmt: skip
    return heat
