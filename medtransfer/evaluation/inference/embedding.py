"""One feature vector per case: what the out-of-distribution detector compares.

The deepest level of the model's encoder, globally average-pooled (what a Classifier's head
sees), averaged over the slices for a 2D/2.5D model, after the preset's eval pipeline (as
``predict`` runs it). The same idea as the frozen features of ``mt.diagnostics`` (which the
evaluation layer may not import).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from torch import nn

from medtransfer.data.case_ids import case_id as record_case_id
from medtransfer.errors import ConfigError, ModelError
from medtransfer.evaluation.inference.device import resolve_device
from medtransfer.evaluation.inference.geometry import prepare_pipeline
from medtransfer.transforms.pipeline_errors import run_pipeline

__all__ = ["case_embedding", "embed_records"]


def _encoder_of(model: nn.Module) -> nn.Module:
    """``model.encoder`` (Segmenter, Classifier) or the model itself when it is an encoder."""
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, nn.Module) and hasattr(encoder, "spatial_dims"):
        return encoder
    if isinstance(model, nn.Module) and hasattr(model, "spatial_dims"):
        return model
    raise ModelError(
        f"case_embedding needs a medtransfer Segmenter or Classifier (with .encoder) or an "
        f"Encoder (mt.encoders.create); got {type(model).__name__}."
    )


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every submodule's own training flag restored after (frozen BN stays)."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _encoder_input(encoder: nn.Module, image: Any) -> torch.Tensor:
    """The preprocessed image as the encoder's input: ``(S, C, X, Y)`` slices or ``(1, C, *XYZ)``."""
    stacked = isinstance(image, MetaTensor) and "slice_stack" in image.meta
    if isinstance(image, MetaTensor):
        x = image.as_tensor()
    elif isinstance(image, torch.Tensor):
        x = image
    else:
        x = torch.as_tensor(np.asarray(image))
    x = x.detach().float()
    dims = encoder.spatial_dims
    if dims == 3 and stacked:
        raise ModelError(
            "The model is 3D but the image is a stack of axial slices (a 2D/2.5D preset); build "
            "the preset with spatial_dims=3, or use a 2D model."
        )
    if dims == 2 and x.ndim == 3:  # a single 2D image (a radiograph): a stack of one slice
        x = x[None]
    layout = "(S, C, X, Y) slices or (C, X, Y)" if dims == 2 else "(C, X, Y, Z)"
    if x.ndim != 4:
        raise ModelError(
            f"The {dims}D model needs a preprocessed image {layout} (the preset's eval pipeline "
            f"output), got shape {tuple(x.shape)}."
        )
    if dims == 3:
        x = x[None]
    channels, expected = int(x.shape[1]), getattr(encoder, "in_channels", None)
    if expected is not None and expected != channels:
        raise ModelError(
            f"The model takes {expected} input channel(s) but the image has {channels} (the C of "
            f"{layout}); use the same preset settings (windows, 2.5D context) as in training."
        )
    if x.shape[0] == 0:
        raise ConfigError("The image has no slices; check the preset's crop and the image.")
    return x


def case_embedding(
    model: nn.Module,
    image: Any,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """One feature vector for one case: the encoder's deepest level, global-average-pooled.

    A 2D or 2.5D model sees each slice of the stack (``batch_size`` at a time) and the pooled
    vectors are averaged over the slices; a 3D model sees the whole volume.

    Args:
        model: a medtransfer Segmenter or Classifier (its ``.encoder`` is used) or an Encoder.
            It runs in eval mode under ``torch.inference_mode()`` on ``device`` (it stays on
            that device); every module's training flag is restored afterwards.
        image: a preprocessed image, the output of a preset's eval pipeline: an ``(S, C, X, Y)``
            slice stack (2D/2.5D model; a single ``(C, X, Y)`` image is one slice) or a
            ``(C, X, Y, Z)`` volume (3D model).
        batch_size: slices per forward pass (2D/2.5D).
        device: ``"cpu"``, ``"cuda:0"``, or ``"auto"``.

    Returns:
        float32 vector of length ``encoder.out_channels[-1]``.

    Raises:
        ModelError: a model without an encoder, or an image whose layout or channels do not fit.

    Example:
        >>> import torch, medtransfer as mt
        >>> model = mt.models.create_segmenter("test_resnet", 2, weights=None)
        >>> case_embedding(model, torch.rand(3, 1, 32, 32)).shape  # 3 slices
        (96,)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.")
    encoder = _encoder_of(model)
    x = _encoder_input(encoder, image)
    device = resolve_device(device)
    model.to(device)
    pooled = []
    with _eval_mode(model), torch.inference_mode():
        for batch in torch.split(x, batch_size):
            deepest = encoder(batch.to(device))[-1]
            pooled.append(deepest.flatten(2).mean(-1).float().cpu())
    return torch.cat(pooled).mean(0).numpy().astype(np.float32)


def embed_records(
    model: nn.Module,
    records: Sequence[Mapping[str, Any]],
    preset: Any,
    *,
    image_key: str = "image",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """:func:`case_embedding` of each record's image after the preset's eval pipeline.

    Only the image goes through the pipeline: records need no label (target-site data is usually
    unlabelled). Use the preset the model was trained with.

    Args:
        model: Segmenter, Classifier or Encoder (see :func:`case_embedding`).
        records: dicts with an image (a path, or an in-memory image) under ``image_key``.
        preset: the ``(train, eval)`` pair from ``mt.transforms.presets.*`` or its eval Compose.
        image_key: the records' (and the pipeline's) image key.
        batch_size: slices per forward pass.
        device: ``"cpu"``, ``"cuda:0"``, or ``"auto"``.
        progress: show a progress bar over the cases.

    Returns:
        float32 array ``(n_records, encoder.out_channels[-1])``, rows in the records' order.

    Raises:
        ConfigError: no records, or a record without an image.
        ModelError: a model whose dimensions or channels do not fit the preset.

    Example:
        >>> import medtransfer as mt
        >>> records = mt.data.synthetic.phantoms(2, shape=(24, 24, 4))
        >>> model = mt.models.create_segmenter("test_resnet", 2, weights=None)
        >>> preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
        >>> embed_records(model, records, preset).shape
        (2, 96)
    """
    records = list(records)
    if not records:
        raise ConfigError("records is empty; pass at least one case to embed.")
    loader, pipeline, key = prepare_pipeline(preset, image_key)
    from tqdm.auto import tqdm

    rows = []
    for index, record in enumerate(tqdm(records, desc="embeddings", unit="case", disable=not progress)):  # fmt: skip
        if not isinstance(record, Mapping):
            raise ConfigError(f"records[{index}] is a {type(record).__name__}, not a dict.")
        if record.get(image_key) is None:
            raise ConfigError(
                f"Case {record_case_id(record, index)!r} has no {image_key!r}; every record needs "
                f"an image (a path or an in-memory image) under {image_key!r}."
            )
        x = run_pipeline(pipeline, loader({key: record[image_key]}))[key]
        if _encoder_of(model).spatial_dims == 2 and x.ndim == 4 and "slice_stack" not in x.meta:
            raise ModelError(
                "The model is 2D but the preset makes 3D volumes (C, X, Y, Z); build the preset "
                "with spatial_dims=2 (it stacks the axial slices), or use a 3D model."
            )
        rows.append(case_embedding(model, x, batch_size=batch_size, device=device))
    return np.stack(rows)
