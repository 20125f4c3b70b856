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

from medtransfer.errors import ConfigError
from medtransfer.training.data_loading import CACHES, LOADERS, EpochLoaders, val_batch_size
from medtransfer.training.distributed import DistContext
from medtransfer.training.label_checks import with_label_check
from medtransfer.transforms.pipeline_errors import medtransfer_errors

__all__ = ["TrainSettings", "build_loaders", "check_arguments"]


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


def check_arguments(
    *, lr: Any, grad_accum: Any, batch_size: Any, val_every: Any, checkpoint_every: Any,
    cache: Any, loader: Any, pos_weight: Any,
) -> None:  # fmt: skip
    """Raise one ConfigError naming every invalid :class:`FineTuner` argument among these.

    Example:
        >>> check_arguments(lr=1e-3, grad_accum=1, batch_size=0, val_every=1, checkpoint_every=None,
        ...                 cache="memory", loader="process", pos_weight="auto")
        Traceback (most recent call last):
        ...
        medtransfer.errors.ConfigError: Invalid FineTuner arguments: batch_size=0 must be >= 1.
    """
    problems = [
        f"{name}={value!r} must be >= 1"
        for name, value in (
            ("grad_accum", grad_accum),
            ("batch_size", batch_size),
            ("val_every", val_every),
            ("checkpoint_every", checkpoint_every or 1),
        )
        if not isinstance(value, int) or value < 1
    ]
    if not (isinstance(lr, (int, float)) and lr > 0):
        problems.append(f"lr={lr!r} must be a positive number")
    if cache not in CACHES:
        problems.append(f"cache={cache!r} must be one of {CACHES}")
    if loader not in LOADERS:
        problems.append(f"loader={loader!r} must be one of {LOADERS}")
    if isinstance(pos_weight, str) and pos_weight != "auto":
        problems.append(f"pos_weight={pos_weight!r} must be 'auto', None or a list")
    if problems:
        raise ConfigError("Invalid FineTuner arguments: " + "; ".join(problems) + ".")
