"""Frozen features of an encoder on a labelled dataset: what transferability scores are computed on.

Classification: one vector per case, the deepest pyramid level globally average-pooled (what
:class:`~medtransfer.models.Classifier`'s head sees); a 2D or 2.5D encoder on a volume gives one
vector per slice, averaged over the slices (as the model's patient score averages its slice
probabilities).

Segmentation: one vector per sampled pixel (voxel in 3D): the *hypercolumn* of the pixel
(Hariharan et al., CVPR 2015), every pyramid level of the encoder bilinearly interpolated at the
pixel's centre at the label's resolution and concatenated, which is what a U-Net decoder combines
through its skip connections. Pixels are sampled at random, as Tan, Li and Huang do to make
transferability scores tractable for segmentation ("Transferability estimation for semantic
segmentation task", arXiv:2109.15242; ICIP 2023), and class-balanced (the same number of pixels of
each class present in each case), because in medical images the structures of interest are a
small fraction of the voxels: uniform sampling would score an encoder mostly on background. A 2D
encoder on a volume sees at most 8 slices per case (those showing the most classes, ties drawn at
random): ranking costs a few forward passes per case, not an epoch of inference. A 3D encoder
sees the whole volume, and its pixels are drawn from the same slices, so 2D, 2.5D and 3D
candidates are scored on comparable pixels.

Features are cached in memory per process (and on disk with ``cache_dir``), keyed by the
candidate, the cases and the sampling settings, so that several scores cost one extraction.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medtransfer.data.case_ids import case_ids
from medtransfer.errors import ConfigError

__all__ = ["Features", "extract_features"]

_MEMORY: OrderedDict[str, Features] = OrderedDict()
_MEMORY_SIZE = 16


@dataclass
class Features:
    """Frozen features with their labels.

    Attributes:
        features: ``(N, D)`` float32.
        labels: ``(N,)`` int64 (class indices).
        cases: ``(N,)`` index of the case each row comes from.
        source_probs: ``(N, Z)`` probabilities of the encoder's source (ImageNet) classifier, or
            None (LEEP needs them; classification only).
        seconds: time the extraction took.
    """

    features: np.ndarray
    labels: np.ndarray
    cases: np.ndarray
    source_probs: np.ndarray | None = None
    seconds: float = 0.0

    @property
    def dim(self) -> int:
        """Feature size ``D``."""
        return int(self.features.shape[1])


def _pad(x: torch.Tensor, divisor: Sequence[int]) -> torch.Tensor:
    """Zero-pad every spatial dim at its end to a multiple of ``divisor`` (pyramid tiles exactly)."""
    pads: list[int] = []
    for size, div in reversed(list(zip(x.shape[2:], divisor))):
        pads += [0, (-size) % int(div)]
    return F.pad(x, pads) if any(pads) else x


def _hypercolumns(levels: list[torch.Tensor], points: torch.Tensor, padded: Sequence[int]):
    """Bilinear features of every level at ``points`` (K, dims) voxel indices of one image."""
    # grid_sample's grid lists coordinates fastest dim first; align_corners=False maps the centre
    # of input voxel i of a size-P axis to 2 * (i + 0.5) / P - 1 at every level; border padding
    # clamps at the edges exactly as F.interpolate(..., align_corners=False) does when upsampling
    norm = (2 * (points.float() + 0.5) / torch.tensor(padded, dtype=torch.float32)) - 1
    grid = norm.flip(-1).reshape(1, -1, *([1] * (len(padded) - 1)), len(padded))
    columns = [
        F.grid_sample(
            level.float(),
            grid.to(level.device),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        .reshape(level.shape[1], -1)
        .T
        for level in levels
    ]
    return torch.cat(columns, dim=1)


def _sample_points(label: np.ndarray, per_class: int, rng: np.random.Generator):
    """Class-balanced voxel indices of one case: up to ``per_class`` of each class present."""
    points, classes = [], []
    for value in np.unique(label):
        where = np.argwhere(label == value)
        take = rng.choice(len(where), size=min(per_class, len(where)), replace=False)
        points.append(where[np.sort(take)])
        classes.append(np.full(len(take), int(value)))
    return np.concatenate(points), np.concatenate(classes)


SLICES_PER_CASE = 8


def _chosen_slices(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to :data:`SLICES_PER_CASE` slices of a stack, those showing the most classes first.

    The encoder then runs on a few slices per case instead of all of them (the cost of ranking
    is the forward passes); the pixels are still class-balanced within the chosen slices.
    """
    n = label.shape[0]
    if n <= SLICES_PER_CASE:
        return np.arange(n)
    shown = np.array([len(np.unique(label[i])) for i in range(n)])
    order = np.lexsort((rng.random(n), -shown))  # most classes first, random among ties
    return np.sort(order[:SLICES_PER_CASE])


def _segmentation_rows(encoder, image, label, per_class, rng, batch_size, device):
    """Hypercolumns of the sampled voxels of one case (2D: image (S, C, X, Y); 3D: (C, X, Y, Z))."""
    label = np.asarray(label)
    divisor = encoder.input_spec.size_divisor
    if encoder.spatial_dims == 3:  # the same slices (last axis) a 2D candidate would see
        chosen = _chosen_slices(np.moveaxis(label[0], -1, 0), rng)
        points, classes = _sample_points(label[0][..., chosen], per_class, rng)
        points[:, -1] = chosen[points[:, -1]]
        x = _pad(torch.as_tensor(image)[None].float().to(device), divisor)
        rows = _hypercolumns(encoder(x), torch.from_numpy(points), x.shape[2:])
        return rows.cpu().numpy(), classes
    chosen = _chosen_slices(label[:, 0], rng)
    points, classes = _sample_points(label[chosen, 0], per_class, rng)  # (slice, x, y)
    points[:, 0] = chosen[points[:, 0]]
    rows = np.zeros((len(points), sum(encoder.out_channels)), np.float32)
    slices = np.unique(points[:, 0])
    for start in range(0, len(slices), batch_size):
        chunk = slices[start : start + batch_size]
        x = _pad(torch.as_tensor(image[chunk]).float().to(device), divisor)
        levels = encoder(x)
        for i, s in enumerate(chunk):
            mine = np.flatnonzero(points[:, 0] == s)
            per_slice = [level[i : i + 1] for level in levels]
            rows[mine] = _hypercolumns(per_slice, torch.from_numpy(points[mine, 1:]), x.shape[2:]).cpu().numpy()  # fmt: skip
    return rows, classes


def _class_index(label: Any, record: Mapping[str, Any], index: int) -> int:
    """A classification label as a class index, or a ConfigError naming the case."""
    try:
        value = np.asarray(label).reshape(-1)
        if value.size == 1 and float(value[0]) == int(value[0]):
            return int(value[0])
    except (TypeError, ValueError):
        pass
    from medtransfer.data.case_ids import case_id

    raise ConfigError(
        f"case {case_id(record, index)!r}: label {str(label)[:40]!r} is not a class index; "
        "load the manifest with class_names=[...] (mt.data.load_manifest) to map names to indices."
    )


def _with_slice_axis(sample: dict, spatial_dims: int, task: str) -> dict:
    """A single 2D image (a radiograph: ``(C, X, Y)``) as a stack of one slice, like a volume's."""
    image = sample["image"]
    if spatial_dims == 2 and getattr(image, "ndim", 0) == 3:
        sample = {**sample, "image": image[None]}
        if task == "segmentation":
            sample["label"] = np.asarray(sample["label"])[None]
    return sample


def _pooled(encoder, image, batch_size, device, head=None):
    """Mean over slices (2D) of the pooled deepest level; with ``head``, mean source probs too."""
    x = torch.as_tensor(image).float()
    batches = [x[None]] if encoder.spatial_dims == 3 else list(torch.split(x, batch_size))
    pooled, probs = [], []
    for batch in batches:
        batch = batch.to(device)
        deepest = encoder(batch)[-1]
        pooled.append(deepest.flatten(2).mean(-1).cpu())
        if head is not None:
            probs.append(head(batch).softmax(-1).cpu())
    vector = torch.cat(pooled).mean(0).numpy()
    return vector, (torch.cat(probs).mean(0).numpy() if head is not None else None)


def _identity(value: Any) -> Any:
    """What a cache key holds of an image or a label: a file's path, size and modification time,
    an array's shape, dtype and SHA-256, or the value itself (a class index)."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        stat = path.stat() if path.exists() else None
        return [str(path), stat.st_size if stat else None, stat.st_mtime_ns if stat else None]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return [list(data.shape), str(data.dtype), hashlib.sha256(data.tobytes()).hexdigest()]
    return repr(value)


def _cache_key(candidate: str, records: list[Mapping], settings: Mapping[str, Any]) -> str:
    """The candidate (and what identifies its preset), the cases' ids, images and labels, and the
    sampling settings: any change gives another key."""
    items = [[_identity(r.get("image")), _identity(r.get("label"))] for r in records]
    text = json.dumps([candidate, case_ids(records), items, dict(settings)], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def extract_features(
    encoder: torch.nn.Module,
    records: Sequence[Mapping[str, Any]],
    transform: Any,
    *,
    task: str,
    max_samples: int = 4000,
    seed: int = 0,
    batch_size: int = 16,
    source_head: torch.nn.Module | None = None,
    device: str | torch.device = "cpu",
    cache_key: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    label: str | None = None,
) -> Features:
    """Run a frozen encoder over labelled records and collect features and labels.

    Args:
        encoder: an :class:`~medtransfer.encoders.Encoder` (``forward -> list`` of levels).
        records: dicts with ``image`` and ``label`` (a class index, or a label map).
        transform: the evaluation pipeline (``preset[1]``) matching the encoder's input form.
        task: ``"classification"`` (one row per case) or ``"segmentation"`` (sampled pixels).
        max_samples: classification: at most this many cases (a seeded random subset);
            segmentation: about this many pixels in all, split evenly over cases and classes.
        seed: seeds the subset and the pixel sampling.
        source_head: classification: the full source classifier (e.g.
            ``mt.encoders.create_imagenet_classifier``), to record ``source_probs`` for LEEP.
        cache_key: identifies the encoder (e.g. its candidate name); with it, features are
            reused within the process, and with ``cache_dir`` across processes.
        progress, label: a progress bar over the cases, titled ``label``.

    Example:
        >>> import torch, medtransfer as mt
        >>> enc = mt.encoders.create("resnet18", weights=None)
        >>> cases = [{"image": torch.rand(24, 24, 2), "label": torch.randint(0, 2, (24, 24, 2))}]
        >>> _, evaluate = mt.transforms.presets.mri("segmentation", spatial_dims=2)
        >>> f = extract_features(enc, cases, evaluate, task="segmentation", max_samples=40)
        >>> f.features.shape, sorted(set(f.labels.tolist()))
        ((40, 1024), [0, 1])
    """
    if task not in ("classification", "segmentation"):
        raise ConfigError(f"task={task!r} must be 'classification' or 'segmentation'.")
    if not isinstance(max_samples, int) or max_samples < 2:
        raise ConfigError(f"max_samples={max_samples!r} must be an integer >= 2.")
    records = list(records)
    rng = np.random.default_rng(seed)
    if task == "classification" and len(records) > max_samples:
        keep = np.sort(rng.choice(len(records), size=max_samples, replace=False))
        records = [records[i] for i in keep]
    settings = {"task": task, "max_samples": max_samples, "seed": seed, "leep": source_head is not None}  # fmt: skip
    key = _cache_key(cache_key, records, settings) if cache_key else None
    cached = _cached(key, cache_dir)
    if cached is not None:
        return cached
    start = time.perf_counter()
    rows, labels, cases, probs = [], [], [], []
    per_class = None
    device = torch.device(device)
    encoder = encoder.to(device).eval()
    if source_head is not None:
        source_head = source_head.to(device).eval()
    iterator = _progress(records, progress, label)
    with torch.inference_mode():
        for index, record in enumerate(iterator):
            sample = _with_slice_axis(transform(dict(record)), encoder.spatial_dims, task)
            if task == "classification":
                vector, p = _pooled(encoder, sample["image"], batch_size, device, source_head)
                rows.append(vector[None])
                labels.append(np.array([_class_index(sample.get("label"), records[index], index)]))
                if p is not None:
                    probs.append(p[None])
            else:
                label = np.asarray(sample["label"]).astype(np.int64)
                if per_class is None:
                    n_classes = max(2, len(np.unique(label)))
                    per_class = max(1, max_samples // (len(records) * n_classes))
                r, c = _segmentation_rows(encoder, sample["image"], label, per_class, rng, batch_size, device)  # fmt: skip
                rows.append(r)
                labels.append(c)
            cases.append(np.full(len(labels[-1]), index))
    result = Features(
        features=np.concatenate(rows).astype(np.float32),
        labels=np.concatenate(labels).astype(np.int64),
        cases=np.concatenate(cases),
        source_probs=np.concatenate(probs).astype(np.float64) if probs else None,
        seconds=time.perf_counter() - start,
    )
    _store(key, cache_dir, result)
    return result


def _progress(records: list, progress: bool, name: str | None):
    if not progress:
        return records
    from tqdm.auto import tqdm

    return tqdm(records, desc=f"features {name or ''}".strip(), unit="case", leave=False)


def _cached(key: str | None, cache_dir: str | Path | None) -> Features | None:
    if key is None:
        return None
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    if cache_dir is not None and (Path(cache_dir) / f"{key}.npz").is_file():
        with np.load(Path(cache_dir) / f"{key}.npz") as data:
            probs = data["source_probs"] if "source_probs" in data.files else None
            found = Features(data["features"], data["labels"], data["cases"], probs, 0.0)
        _store(key, None, found)
        return found
    return None


def _store(key: str | None, cache_dir: str | Path | None, features: Features) -> None:
    if key is None:
        return
    _MEMORY[key] = features
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)
    if cache_dir is not None:
        from medtransfer.io.atomic import atomic_path, make_folder

        make_folder(Path(cache_dir))
        arrays = {"features": features.features, "labels": features.labels, "cases": features.cases}
        if features.source_probs is not None:
            arrays["source_probs"] = features.source_probs
        with atomic_path(Path(cache_dir) / f"{key}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
