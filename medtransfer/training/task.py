"""Which task a FineTuner trains: given, or read from the model (Segmenter / Classifier)."""

from __future__ import annotations

from torch import nn

from medtransfer.errors import ConfigError

__all__ = ["TASKS", "resolve_task"]

TASKS = ("classification", "segmentation")


def _model_task(model: nn.Module) -> str | None:
    """The task of a medtransfer model (also inside torch.compile / DDP wrappers), else None."""
    from medtransfer.models import Classifier, Segmenter

    seen: set[int] = set()
    while id(model) not in seen:
        seen.add(id(model))
        if isinstance(model, Segmenter):
            return "segmentation"
        if isinstance(model, Classifier):
            return "classification"
        inner = getattr(model, "_orig_mod", None)  # torch.compile
        if inner is None:
            inner = getattr(model, "module", None)  # DistributedDataParallel, DataParallel
        if not isinstance(inner, nn.Module):
            return None
        model = inner
    return None


def resolve_task(model: nn.Module, task: str | None) -> str:
    """``task``, checked against the model; None reads it from the model.

    A :class:`~medtransfer.models.Segmenter` trains for segmentation, a
    :class:`~medtransfer.models.Classifier` for classification; any other module trains for
    classification unless ``task="segmentation"`` is given. A task that contradicts the model
    is a ConfigError.

    Example:
        >>> import torch, medtransfer as mt
        >>> resolve_task(mt.models.create_segmenter("resnet18", 2, weights=None), None)
        'segmentation'
        >>> resolve_task(torch.nn.Conv2d(1, 2, 1), None), resolve_task(torch.nn.Conv2d(1, 2, 1), "segmentation")
        ('classification', 'segmentation')
    """
    if task is not None and task not in TASKS:
        raise ConfigError(
            f"task={task!r} is not one of {TASKS}; or leave it out to read it from the model."
        )
    known = _model_task(model)
    if task is None:
        return known or "classification"
    if known is not None and known != task:
        kind = type(model).__name__
        raise ConfigError(
            f"task={task!r} contradicts the model: a {kind} is trained for {known}. Leave task= "
            f"out (it is read from the model) or pass task={known!r}; for {task} create the model "
            f"with mt.models.create_{'segmenter' if task == 'segmentation' else 'classifier'}(...)."
        )
    return task
