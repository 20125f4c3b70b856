"""TrainSettings: the FineTuner's plain settings, typed and frozen, built once per FineTuner.

:func:`~medtransfer.training.optim.build_runtime`, :func:`build_loaders` and
:func:`~medtransfer.training.lr_find.lr_find` read these values, never the FineTuner itself, so
they can be called (and tested) without one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from medtransfer.training.data_loading import EpochLoaders, val_batch_size
from medtransfer.training.distributed import DistContext
from medtransfer.training.label_checks import with_label_check
from medtransfer.transforms.pipeline_errors import medtransfer_errors

__all__ = ["TrainSettings", "build_loaders"]


@dataclass(frozen=True)
class TrainSettings:
    """What a run needs besides the model, its strategy and its metric (see FineTuner's Args).

    Example:
        >>> s = TrainSettings(task="classification", num_outputs=2)
        >>> s.lr, s.optimizer, s.device
        (0.001, 'adamw', 'auto')
    """

    task: str
    num_outputs: int | None = None
    findings: tuple[str, ...] | None = None  # names of a multi-label model's outputs
    pos_weight: Sequence[float] | str | None = "auto"  # multi-label BCE; "auto": from train
    lr: float = 1e-3
    loss: str | Callable = "auto"
    optimizer: str | Callable = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "warmup_cosine"
    warmup: float | int = 0.05
    class_weights: Sequence[float] | None = None
    device: str = "auto"
    amp: str | bool = "auto"
    channels_last: str | bool = "auto"
    compile: bool = False
    grad_accum: int = 1
    clip_grad: float | None = None
    seed: int = 0
    deterministic: bool = False
    batch_size: int = 8
    val_batch_size: int = 8
    num_workers: int = 0
    loader: str = "process"
    cache: str = "memory"
    cache_dir: str | os.PathLike[str] | None = None
    roi_size: tuple[int, ...] | None = None
    sw_batch_size: int = 4
    val_every: int = 1
    checkpoint_every: int | None = None


def build_loaders(
    settings: TrainSettings,
    data: Any,
    transform: Any,
    *,
    train: bool,
    ctx: DistContext,
    cache_dir: str | os.PathLike[str] | None = None,
) -> EpochLoaders:
    """The per-epoch loaders of ``data`` (records, Dataset or DataLoader) under ``settings``.

    Records get a label check against the task and ``num_outputs``; the cache is filled here,
    so a bad record fails here. ``cache_dir`` replaces ``settings.cache_dir`` when that is None.
    """
    if not isinstance(data, (Dataset, DataLoader)):
        multilabel = settings.findings is not None
        transform = with_label_check(
            transform, settings.task, settings.num_outputs, multilabel=multilabel
        )
    batch = settings.batch_size if train else val_batch_size(transform, settings.val_batch_size)
    with medtransfer_errors():
        return EpochLoaders(
            data, transform=transform, train=train, batch_size=batch,
            num_workers=settings.num_workers, pin_memory=torch.cuda.is_available(),
            loader=settings.loader, seed=settings.seed, cache=settings.cache,
            cache_dir=settings.cache_dir if settings.cache_dir is not None else cache_dir, ctx=ctx,
        )  # fmt: skip
