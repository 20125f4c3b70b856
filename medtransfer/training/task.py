"""Which task a FineTuner trains: given, or read from the model (Segmenter / Classifier), and
whether a classifier's outputs are multi-label findings."""

from __future__ import annotations

from torch import nn

from medtransfer.errors import ConfigError

__all__ = ["TASKS", "resolve_findings", "resolve_task"]

TASKS = ("classification", "segmentation")


def _inner(model: nn.Module) -> nn.Module | None:
    """The module inside a torch.compile / DDP / DataParallel wrapper, else None."""
    inner = getattr(model, "_orig_mod", None)  # torch.compile
    if inner is None:
        inner = getattr(model, "module", None)  # DistributedDataParallel, DataParallel
    return inner if isinstance(inner, nn.Module) else None


def resolve_findings(
    model: nn.Module, multilabel: bool | None, task: str
) -> tuple[str, ...] | None:
    """The names of a multi-label model's outputs (None: not multi-label).

    ``multilabel=None`` reads ``model.multilabel`` (also inside wrappers); names come from
    ``model.class_names``, else ``finding_0``... for ``model.num_classes`` outputs.

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None, multilabel=True,
        ...                                     class_names=["opacity", "effusion"])
        >>> resolve_findings(model, None, "classification")
        ('opacity', 'effusion')
    """
    found, seen = model, set()
    while found is not None and id(found) not in seen and not hasattr(found, "multilabel"):
        seen.add(id(found))
        found = _inner(found)
    found = found if found is not None else model
    if multilabel is None:
        multilabel = bool(getattr(found, "multilabel", False))
    if not multilabel:
        return None
    if task != "classification":
        raise ConfigError(f"multilabel=True is for classification, not task={task!r}.")
    names = getattr(found, "class_names", None)
    if names:
        return tuple(str(n) for n in names)
    k = getattr(found, "num_classes", None)
    if not isinstance(k, int):
        raise ConfigError(
            "multilabel=True needs a model with num_classes (e.g. mt.models.create_classifier("
            "..., multilabel=True)) to know the number of findings."
        )
    return tuple(f"finding_{i}" for i in range(k))


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
