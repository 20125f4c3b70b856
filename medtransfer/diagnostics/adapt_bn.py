"""Adapting a trained model to a new site without labels: AdaBN and TENT.

A model trained at one hospital meets other scanners, protocols and reconstruction kernels at the
next one; its batch-norm statistics (what it learned a "typical" feature looks like) are then
wrong before any weight is. Two label-free remedies, both on the new site's images only:

- :func:`adapt_batchnorm` (**AdaBN**; Li, Wang, Shi, Liu, Hou, "Revisiting Batch Normalization
  For Practical Domain Adaptation", arXiv:1603.04779, 2016; Pattern Recognition 2018): every
  BatchNorm's running mean and variance are re-estimated on the target images; no weight moves.
- ``tent`` (:mod:`~medtransfer.diagnostics.tent`; **TENT**; Wang, Shelhamer, Liu, Olshausen,
  Darrell, "Tent: Fully Test-Time Adaptation by Entropy Minimization", ICLR 2021): after AdaBN,
  the BatchNorm scales and shifts (and nothing else) take a few optimizer steps that lower the
  entropy of the predictions.

The target images go through the image part of the preset's eval pipeline (what
:func:`~medtransfer.evaluation.predict` feeds the model): 2D/2.5D presets give every slice,
3D presets the preprocessed volume, both cut into tiles of the preset's ``roi_size`` (the size
the eval pipeline pads to, the window ``predict`` slides), so every tile has one shape and
tiles of several cases share a batch. Tiles do not overlap, except the last along an axis,
which is moved back inside the image.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medtransfer.data.case_ids import case_id
from medtransfer.errors import ConfigError, ModelError
from medtransfer.evaluation.inference.geometry import pipeline_roi_size, prepare_pipeline
from medtransfer.evaluation.inference.predict import resolve_device
from medtransfer.transforms.pipeline_errors import run_pipeline

__all__ = ["adapt_batchnorm"]

_BatchNorm = nn.modules.batchnorm._BatchNorm


class TargetTiles:
    """Unlabelled target cases as model inputs: the eval pipeline's image part, cut in tiles."""

    def __init__(self, records: Sequence[Mapping[str, Any]], preset: Any, image_key: str):
        self.records = list(records)
        if not self.records:
            raise ConfigError(
                "target_records is empty: adaptation needs the new site's images, as records "
                f"such as [{{{image_key!r}: 'scan.nii.gz'}}, ...] (labels are not used)."
            )
        self.loader, self.pipeline, self.key = prepare_pipeline(preset, image_key)

    def __len__(self) -> int:
        return len(self.records)

    def tiles(self, index: int) -> list[torch.Tensor]:
        """The model inputs ``(C, *roi)`` of one case (slices first cut from a 2D stack)."""
        record = self.records[index]
        if not isinstance(record, Mapping) or self.key not in record:
            name = case_id(record, index) if isinstance(record, Mapping) else f"case_{index:04d}"
            raise ConfigError(
                f"target case {name!r} has no {self.key!r}: each target record needs the image "
                f"under {self.key!r} (pass image_key=... for another key; no label is needed)."
            )
        loaded = run_pipeline(self.loader, {self.key: record[self.key]})
        x = run_pipeline(self.pipeline, loaded)[self.key]
        stacked = "slice_stack" in getattr(x, "meta", {})
        data = (x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)).float()
        images = list(data) if stacked else [data]
        roi = pipeline_roi_size(self.pipeline, self.key, images[0].ndim - 1)
        return [tile for image in images for tile in _tiles(image, roi)]

    def batches(
        self, batch_size: int, progress: bool, desc: str, seed: int = 0
    ) -> Iterator[torch.Tensor]:
        """Every tile once, in batches (see :func:`batch_tiles`), mixed across cases.

        Cases come in a seeded random order and their tiles pass through a shuffle pool of
        :data:`POOL_TILES`: a batch of consecutive slices of one case has statistics of its own
        (one patient, one level of the body) that the batch norms would normalise away, and
        the next layers' statistics would then differ from what the model sees in eval mode.
        """
        from tqdm.auto import tqdm

        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self)).tolist()
        cases = tqdm(order, desc=desc, unit="case", disable=not progress)
        return batch_tiles(_pooled((t for i in cases for t in self.tiles(i)), rng), batch_size)


#: Tiles held back to mix cases before batching (bounded memory: 512 slices of 256 x 256 are
#: about 130 MB per channel).
POOL_TILES = 512


def _pooled(tiles: Iterator[torch.Tensor], rng: np.random.Generator) -> Iterator[torch.Tensor]:
    """The tiles in a random order, through a pool of at most :data:`POOL_TILES`."""
    pool: list[torch.Tensor] = []
    for tile in tiles:
        pool.append(tile)
        if len(pool) >= POOL_TILES:
            yield pool.pop(int(rng.integers(len(pool))))
    for index in rng.permutation(len(pool)):
        yield pool[int(index)]


def _starts(length: int, size: int) -> list[int]:
    starts = list(range(0, length - size + 1, size))
    return starts + [length - size] if starts[-1] + size < length else starts


def _tiles(image: torch.Tensor, roi: Sequence[int]) -> list[torch.Tensor]:
    """Non-overlapping ``roi``-sized tiles covering ``image`` ``(C, *spatial)`` (whole if no roi)."""
    spatial = image.shape[1:]
    if not roi or len(roi) != len(spatial):
        return [image]
    size = [min(int(r), int(s)) for r, s in zip(roi, spatial)]
    corners = itertools.product(*(_starts(int(s), r) for s, r in zip(spatial, size)))
    return [image[(slice(None), *(slice(a, a + r) for a, r in zip(c, size)))] for c in corners]


def batch_tiles(tiles: Iterator[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Tiles of one shape, ``batch_size`` at a time; a last batch of one joins the one before
    (a BatchNorm normalising with batch statistics needs two values per channel)."""
    held: dict[tuple, torch.Tensor] = {}
    waiting: dict[tuple, list[torch.Tensor]] = {}
    for tile in tiles:
        shape = tuple(tile.shape)
        same = waiting.setdefault(shape, [])
        same.append(tile)
        if len(same) == batch_size:
            if shape in held:
                yield held.pop(shape)
            held[shape], waiting[shape] = torch.stack(same), []
    for shape, same in waiting.items():
        full, rest = held.pop(shape, None), (torch.stack(same) if same else None)
        if full is not None and rest is not None and len(rest) == 1:
            yield torch.cat([full, rest])
            continue
        yield from (b for b in (full, rest) if b is not None)


def batchnorm_layers(model: nn.Module, method: str) -> list[_BatchNorm]:
    """The model's BatchNorm layers that keep running statistics, or a ModelError naming ``method``."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if norms:
        return norms
    kinds = (nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
    found = sorted({type(m).__name__ for m in model.modules() if isinstance(m, kinds)})
    raise ModelError(
        f"{method} adapts BatchNorm layers, and this model has none with running statistics "
        f"(normalisation: {', '.join(found) or 'none'}). AdaBN and TENT both need BatchNorm: build "
        "the model on a BatchNorm encoder (e.g. resnet18, tf_efficientnet_lite0; "
        "mt.models.create_segmenter(..., norm='batch')), or fine-tune on a few labelled "
        "target cases instead (mt.training.FineTuner)."
    )


def _check_input(model: nn.Module, batch: torch.Tensor) -> None:
    encoder = getattr(model, "encoder", None)
    dims, channels = getattr(encoder, "spatial_dims", None), getattr(encoder, "in_channels", None)
    if dims is not None and dims != batch.ndim - 2:
        raise ModelError(
            f"The model is {dims}D but the preset's eval pipeline gives {batch.ndim - 2}D inputs; "
            f"build the preset with spatial_dims={dims} (the preset of the model's training)."
        )
    if channels is not None and channels != batch.shape[1]:
        raise ModelError(
            f"The model takes {channels} input channel(s) but the pipeline makes "
            f"{batch.shape[1]}; use the preset settings of the model's training."
        )


def forward_logits(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The model's output ``(N, K, ...)`` (the full-resolution one of a deep-supervision list)."""
    out = model(batch)
    return out[0] if isinstance(out, list | tuple) else out


class _PooledStats:
    """Each BatchNorm's per-channel input count, mean and sum of squared deviations, merged over
    batches in float64 (Chan et al.'s pairwise update), as forward pre-hooks."""

    def __init__(self, norms: list[_BatchNorm]) -> None:
        self.seen: dict[_BatchNorm, list] = {}
        self.handles = [norm.register_forward_pre_hook(self._add) for norm in norms]

    def _add(self, norm: _BatchNorm, args: tuple) -> None:
        x = args[0].detach().float()
        dims = [0, *range(2, x.ndim)]
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        n, mean, m2 = x.numel() // x.shape[1], mean.double(), var.double() * (x.numel() // x.shape[1])  # fmt: skip
        if norm not in self.seen:
            self.seen[norm] = [n, mean, m2, 1]
            return
        total, old_mean, old_m2, calls = self.seen[norm]
        delta = mean - old_mean
        merged = total + n
        self.seen[norm] = [merged, old_mean + delta * n / merged, old_m2 + m2 + delta**2 * total * n / merged, calls + 1]  # fmt: skip

    def apply(self) -> None:
        """Running mean and (unbiased, as torch keeps it) variance := the pooled ones."""
        for norm, (n, mean, m2, calls) in self.seen.items():
            norm.running_mean.copy_(mean.to(norm.running_mean))
            norm.running_var.copy_((m2 / max(n - 1, 1)).to(norm.running_var))
            norm.num_batches_tracked.fill_(calls)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def reestimate_batchnorm(
    model: nn.Module,
    norms: list[_BatchNorm],
    batches: Iterator[torch.Tensor],
    device: torch.device,
    on_output: Callable[[torch.Tensor], None] | None = None,
) -> Counter:
    """One no-grad pass with batch norms normalising by batch statistics; their running
    statistics become the pooled ones of the pass. Returns how many tiles of each shape ran."""
    sizes: Counter = Counter()
    saved = [(norm.momentum, norm.num_batches_tracked.clone()) for norm in norms]
    stats = _PooledStats(norms)
    model.eval()
    for norm in norms:
        norm.train()
        norm.momentum = 0.0  # torch's own update a no-op: a failed pass changes nothing
    try:
        with torch.no_grad():
            for batch in batches:
                _check_input(model, batch)
                sizes[tuple(batch.shape[1:])] += len(batch)
                out = forward_logits(model, batch.to(device))
                if on_output is not None:
                    on_output(out)
    except ValueError as err:
        if "more than 1 value per channel" not in str(err):
            raise
        raise ConfigError(
            "A batch norm saw a single value per channel (one tile of 1x1 features): use "
            f"batch_size >= 2 or more target images ({err})."
        ) from None
    finally:
        stats.remove()
        for norm, (momentum, tracked) in zip(norms, saved):
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(tracked)
        model.eval()
    stats.apply()  # batch norms the pass never reached (unused branches) keep their statistics
    return sizes


def check_positive(**values: Any) -> None:
    """A ConfigError naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive integer.")


def working_copy(model: nn.Module, inplace: bool, device: Any) -> tuple[nn.Module, torch.device]:
    """The model to adapt (a deep copy unless ``inplace``) on the resolved device."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    device = resolve_device(device)
    return (model if inplace else copy.deepcopy(model)).to(device), device


def adapt_batchnorm(
    model: nn.Module,
    target_records: Sequence[Mapping[str, Any]],
    preset: Any,
    *,
    batch_size: int = 16,
    max_cases: int | None = None,
    device: str | torch.device = "cpu",
    inplace: bool = False,
    progress: bool = False,
    image_key: str = "image",
) -> nn.Module:
    """AdaBN: re-estimate every BatchNorm's running statistics on unlabelled target images.

    The model runs once over the target tiles (see the module docstring) without gradients,
    with dropout and everything else in eval mode; each BatchNorm normalises by the statistics of
    its batch, as in training, and its running mean and variance are then set to the mean and
    (unbiased) variance of *all* the values it saw, pooled over the batches in float64. That is
    AdaBN's "statistics of the whole target domain": exact, unlike torch's cumulative average
    of per-batch statistics (``momentum=None``), which weighs a short last batch like a full one
    and misses the variance between batches. No weight changes; BatchNorms the pass never
    reaches keep their statistics.

    Args:
        model: a model made by ``mt.models.create_segmenter`` / ``create_classifier`` (2D, 2.5D
            or 3D), or any module with BatchNorm layers taking the preset's inputs.
        target_records: records of the new site, with the image under ``image_key`` (a path or
            an in-memory image, as for training); labels are ignored.
        preset: the ``(train, eval)`` pair the model was trained with (or its eval ``Compose``);
            only the image part of the eval pipeline runs.
        batch_size: tiles (2D: slices) per forward pass; larger batches give BatchNorm layers
            steadier batch statistics during the pass.
        max_cases: use only the first ``max_cases`` records (shuffle them first for a random
            subset); None uses all.
        device: ``"cpu"``, ``"cuda:0"``, ``"auto"``...
        inplace: adapt ``model`` itself instead of a deep copy.
        progress: a progress bar over the cases.
        image_key: the records' (and the pipeline's) image key.

    Returns:
        The adapted model (a copy unless ``inplace``), in eval mode, on ``device``.

    Raises:
        ConfigError: no target records, a record without an image, a bad argument.
        ModelError: the model has no BatchNorm layer (GroupNorm/LayerNorm/InstanceNorm only),
            or its dimensions or channels do not fit the preset.

    Example:
        >>> import medtransfer as mt
        >>> preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
        >>> model = mt.models.create_segmenter("test_resnet", 2, weights=None, seed=0)
        >>> target = [{"image": c["image"]} for c in mt.data.synthetic.phantoms(2, shape=(24, 24, 4))]
        >>> adapted = adapt_batchnorm(model, target, preset, batch_size=4)
        >>> adapted is model, adapted.training, int(adapted.encoder.body.bn1.num_batches_tracked)
        (False, False, 2)
    """
    check_positive(batch_size=batch_size)
    if max_cases is not None:
        check_positive(max_cases=max_cases)
    target = TargetTiles(list(target_records)[:max_cases], preset, image_key)
    model, device = working_copy(model, inplace, device)
    norms = batchnorm_layers(model, "AdaBN")
    reestimate_batchnorm(model, norms, target.batches(batch_size, progress, "AdaBN"), device)
    return model
