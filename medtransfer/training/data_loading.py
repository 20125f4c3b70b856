"""Data for the FineTuner: records + transforms -> cached datasets -> per-epoch seeded loaders.

Deterministic transforms run once (MONAI ``CacheDataset`` in memory, ``PersistentDataset`` on
disk; both cache the prefix of a Compose up to its first random transform), random transforms run
per sample after the cache. Each epoch gets a fresh loader whose shuffling and augmentation
randomness come from ``seed + epoch``: the order is reproducible, so a resumed run replays the
same batches without pickling iterators.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

from medtransfer.errors import ConfigError
from medtransfer.training.distributed import DistContext
from medtransfer.transforms.pipeline_errors import medtransfer_errors

__all__ = [
    "CACHES",
    "LOADERS",
    "EpochLoaders",
    "build_dataset",
    "samples_per_record",
    "split_batch",
    "val_batch_size",
]

CACHES = ("memory", "disk", "none")
LOADERS = ("process", "thread")
BATCH_KEYS = ("image", "label", "case_id")


def build_dataset(
    records: Sequence[dict[str, Any]],
    transform: Callable | None,
    cache: str = "memory",
    cache_dir: str | os.PathLike[str] | None = None,
    num_workers: int = 0,
) -> Dataset:
    """A MONAI dataset over ``records`` with the deterministic part of ``transform`` cached.

    Args:
        records: list of dicts (``"image"``, ``"label"``, ``"case_id"``...).
        transform: MONAI Compose (or any callable on a record), or None.
        cache: "memory" (CacheDataset), "disk" (PersistentDataset in ``cache_dir``) or "none".
        cache_dir: folder for the disk cache. Its entries are keyed by the record *and* the
            cached transforms, so pipelines (train/val, changed preprocessing) never share one.
        num_workers: threads used to fill the memory cache.

    Example:
        >>> import torch
        >>> ds = build_dataset([{"image": torch.zeros(1, 4, 4), "label": 0}], None)
        >>> len(ds), type(ds).__name__
        (1, 'CacheDataset')
    """
    from monai.data import CacheDataset, PersistentDataset
    from monai.data import Dataset as MonaiDataset

    if cache not in CACHES:
        raise ConfigError(f"cache={cache!r} is not one of {CACHES}.")
    records = list(records)
    if not records or not all(isinstance(r, dict) for r in records):
        raise ConfigError("Training/validation records must be a non-empty list of dicts.")
    if cache == "memory":
        return CacheDataset(records, transform, num_workers=num_workers or None, progress=False)
    if cache == "disk":
        if cache_dir is None:
            raise ConfigError('cache="disk" needs cache_dir= (a folder for the cached items).')
        return PersistentDataset(
            records, transform, cache_dir=cache_dir, hash_transform=_transform_hash
        )
    return MonaiDataset(records, transform)


def _transform_hash(transforms: Any) -> bytes:
    """Hash of the cached transforms with their parameters (pickled); class names if they
    cannot be pickled. A changed pipeline then misses the cache instead of reading stale items."""
    from monai.data.utils import json_hashing, pickle_hashing

    try:
        return pickle_hashing(transforms)
    except Exception:  # lambdas, open handles...: fall back to the transforms' names
        return json_hashing([type(t).__qualname__ for t in transforms])


def _flatten(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _samples(items: list[Any]) -> list[Any]:
    """The samples of a list of dataset items: multi-sample crops (lists of dicts) flattened,
    reduced to the keys a step needs, MetaTensors as plain tensors (a step needs no metadata,
    and collating it fails on values such as None)."""
    out = []
    for item in _flatten(items):
        if isinstance(item, dict):
            item = {k: _plain(v) for k, v in item.items() if k in BATCH_KEYS}
            if isinstance(item.get("label"), (list, tuple)):  # multi-label: one (K,) vector
                item["label"] = torch.tensor(item["label"], dtype=torch.float32)
        out.append(item)
    return out


def _plain(value: Any) -> Any:
    return value.as_tensor() if hasattr(value, "as_tensor") else value


def collate_batch(items: list[Any]) -> Any:
    """Collate the keys a training step needs, flattening multi-sample crops (lists of dicts)."""
    from monai.data import list_data_collate

    return list_data_collate(_samples(items))


def _regroup(batches: Iterable[list[Any]], size: int) -> Iterator[Any]:
    """Batches of exactly ``size`` samples (the last one smaller) from batches of any size."""
    pending: list[Any] = []
    for samples in batches:
        pending.extend(samples)
        while len(pending) >= size:
            yield collate_batch(pending[:size])
            pending = pending[size:]
    if pending:
        yield collate_batch(pending)


def samples_per_record(transform: Any) -> int | None:
    """Samples a pipeline makes of one record: the product of the ``num_samples`` of its
    multi-sample crops (e.g. the presets' ``RandCropByLabelClassesd``), 1 without any, None when
    a multi-sample transform does not say how many.

    Example:
        >>> import medtransfer as mt
        >>> samples_per_record(mt.transforms.presets.ct(num_samples=4)[0]), samples_per_record(None)
        (4, 1)
    """
    from monai.transforms import Compose, MultiSampleTrait

    steps = transform.flatten().transforms if isinstance(transform, Compose) else [transform]
    count = 1
    for step in steps:
        if isinstance(step, MultiSampleTrait):
            n = getattr(step, "num_samples", None)
            n = n if n is not None else getattr(getattr(step, "cropper", None), "num_samples", None)
            if not isinstance(n, int):
                return None
            count *= n
    return count


def val_batch_size(transform: Any, default: int) -> int:
    """1 when the eval pipeline yields whole-volume slice stacks (2D/2.5D presets): volumes
    differ in slice count, so they cannot be collated; each is validated as one volume."""
    from medtransfer.transforms.slices import SliceStackd

    if any(isinstance(t, SliceStackd) for t in getattr(transform, "transforms", ())):
        return 1
    return default


def split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """``(image, target, case_ids)`` from a dict batch or an ``(image, target)`` pair.

    MetaTensors become plain tensors (the training step needs no metadata).

    Example:
        >>> x, y, ids = split_batch((torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])))
        >>> tuple(x.shape), ids
        ((2, 1, 4, 4), None)
    """
    if isinstance(batch, dict):
        try:
            image, target = batch["image"], batch["label"]
        except KeyError as err:
            raise ConfigError(
                f"A batch has no {err.args[0]!r} key (keys: {sorted(batch)}); records need "
                '"image" and "label".'
            ) from None
        case_ids = batch.get("case_id")
    elif isinstance(batch, (list, tuple)) and len(batch) >= 2:
        image, target, case_ids = batch[0], batch[1], None
    else:
        raise ConfigError("A batch must be a dict with image/label or an (image, target) pair.")
    image = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)
    target = target.as_tensor() if hasattr(target, "as_tensor") else torch.as_tensor(target)
    return image, target, list(case_ids) if case_ids is not None else None


class EpochLoaders:
    """Makes the loader of each epoch, seeded with ``seed + epoch``.

    Args:
        source: a list of records (a dataset is built with ``transform`` and ``cache``), a
            Dataset, or a ready DataLoader (used as is; a RandomSampler is re-seeded per epoch).
        train: shuffle (training) or keep order (validation, sharded without padding).
        batch_size: samples per batch; a pipeline making ``num_samples`` crops of a record
            (see :func:`samples_per_record`) loads ``ceil(batch_size / num_samples)`` records
            per batch, regrouped into exactly ``batch_size`` samples when that overshoots.
        num_workers, pin_memory: DataLoader settings.
        loader: "process" (DataLoader, ``num_workers`` processes) or "thread" (MONAI
            ThreadDataLoader: for data cached on the GPU, e.g. ``EnsureTyped(device="cuda")`` as
            the last deterministic transform, where worker processes cannot help).
        seed: base seed.
        ctx: distributed context (shards the data).
    """

    def __init__(
        self,
        source: Any,
        *,
        transform: Callable | None = None,
        train: bool = True,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool = False,
        loader: str = "process",
        seed: int = 0,
        cache: str = "memory",
        cache_dir: str | os.PathLike[str] | None = None,
        ctx: DistContext | None = None,
    ) -> None:
        self.train = train
        self.batch_size = batch_size
        self.num_workers = num_workers
        if loader not in LOADERS:
            raise ConfigError(f"loader={loader!r} is not one of {LOADERS}.")
        self.kind = loader
        self.pin_memory = pin_memory and loader == "process"
        self.seed = seed
        self.ctx = ctx or DistContext()
        self.loader: DataLoader | None = source if isinstance(source, DataLoader) else None
        if self.loader is not None:
            self.dataset = self.loader.dataset
        elif isinstance(source, Dataset):
            self.dataset = source
        else:
            self.dataset = build_dataset(source, transform, cache, cache_dir, num_workers)
        # Metadata is needed by deterministic spatial transforms only; after a memory cache the
        # random transforms and the model run faster on plain tensors (MONAI's set_track_meta).
        self.track_meta = not (
            self.loader is None and isinstance(source, list) and cache == "memory"
        )
        if self.loader is not None and self.ctx.enabled:
            raise ConfigError(
                "Under torchrun pass records or a Dataset (not a DataLoader), so the FineTuner "
                "can shard them with a DistributedSampler."
            )
        # batch_size counts samples: a record cropped num_samples times gives that many, so a
        # step loads ceil(batch_size / num_samples) records, regrouped when that overshoots
        self.per_record = 1
        if self.loader is None:
            found = samples_per_record(getattr(self.dataset, "transform", None))
            self.per_record = found if found is not None else self._probe_samples()
        self.records_per_batch = -(-batch_size // self.per_record)
        self.regroup = batch_size % self.per_record != 0

    def _probe_samples(self) -> int:
        """Samples of the first record, for multi-sample transforms that do not say how many
        (the loaders re-seed the random transforms every epoch: the probe changes nothing)."""
        with medtransfer_errors():
            return max(len(_flatten([self.dataset[0]])), 1) if len(self.dataset) else 1

    def _val_indices(self) -> list[int]:
        return list(range(self.ctx.rank, len(self.dataset), self.ctx.world_size))

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if self.loader is not None:
            return len(self.loader)
        n = len(self.dataset)
        if self.ctx.enabled:
            n = -(-n // self.ctx.world_size) if self.train else len(self._val_indices())
        return -(-(n * self.per_record) // self.batch_size)

    def indices(self) -> list[int]:
        """Global dataset index of each validation sample on this rank, in loader order."""
        return self._val_indices() if self.loader is None else list(range(len(self.dataset)))

    def iterate(self, epoch: int) -> Iterator[Any]:
        """The batches of ``epoch``, with MONAI metadata tracking off after a memory cache."""
        from monai.data import get_track_meta, set_track_meta

        loader = self.for_epoch(epoch)
        batches = _regroup(loader, self.batch_size) if self.regroup else loader
        previous = get_track_meta()
        set_track_meta(self.track_meta and previous)
        try:
            with medtransfer_errors():  # a bad record: our message, not MONAI's wrapper
                yield from batches
        finally:
            set_track_meta(previous)

    def for_epoch(self, epoch: int) -> DataLoader:
        """The loader of ``epoch`` (0-based)."""
        from monai.data import DataLoader as MonaiDataLoader
        from monai.data import ThreadDataLoader
        from torch.utils.data.distributed import DistributedSampler

        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if self.loader is not None:
            if isinstance(self.loader.sampler, RandomSampler):
                self.loader.sampler.generator = generator
            return self.loader
        dataset, sampler, shuffle = self.dataset, None, self.train
        if self.ctx.enabled and self.train:
            sampler = DistributedSampler(
                dataset, self.ctx.world_size, self.ctx.rank, shuffle=True, seed=self.seed
            )
            sampler.set_epoch(epoch)
            shuffle = False
        elif self.ctx.enabled:
            dataset, shuffle = Subset(dataset, self._val_indices()), False
        make = ThreadDataLoader if self.kind == "thread" else MonaiDataLoader
        return make(
            dataset,
            batch_size=self.records_per_batch,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=generator,
            collate_fn=_samples if self.regroup else collate_batch,
        )
