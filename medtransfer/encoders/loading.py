"""Fit a loaded state dict onto a timm model: key layout, classifier head, strict key checks.

Weights that cannot fit because they belong to the classifier (another number of classes, or a
head the model does not have) are dropped with a log line listing them. Any other missing,
unexpected or mis-shaped key is a :class:`~medtransfer.errors.WeightsError`: a layer silently
left at random initialisation (MONAI's EfficientNetBN stem when ``in_channels != 3``) would look
like transfer learning while not being it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from medtransfer.encoders.safe_load import load_state_dict_file
from medtransfer.encoders.spec import ResolvedWeights
from medtransfer.encoders.weight_packages import map_state_dict_in_order
from medtransfer.errors import WeightsError

__all__ = ["LoadReport", "fit_state_dict", "load_resolved_weights"]

logger = logging.getLogger(__name__)

# Buffers that carry no learned information (older checkpoints lack them).
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def _is_head(key: str, head_prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in head_prefixes)


def fit_state_dict(
    state: dict[str, torch.Tensor],
    reference: dict[str, torch.Tensor],
    head_prefixes: tuple[str, ...],
    origin: str,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Check ``state`` against a model's ``reference`` state dict; drop only classifier weights.

    Args:
        state: weights read from a file, in timm's key layout.
        reference: the model's ``state_dict()``.
        head_prefixes: module names of the classifier (timm's ``pretrained_cfg["classifier"]``).
        origin: the file the weights came from (for messages).

    Returns:
        ``(weights to load, names of the classifier keys dropped)``.

    Raises:
        WeightsError: a non-classifier key is missing, unexpected, or has the wrong shape.

    Example:
        >>> import torch
        >>> ref = {"conv.weight": torch.zeros(4, 3, 3, 3), "fc.weight": torch.zeros(2, 4)}
        >>> src = {"conv.weight": torch.ones(4, 3, 3, 3), "fc.weight": torch.ones(1000, 4)}
        >>> fit_state_dict(src, ref, ("fc",), "demo")[1]
        ['fc.weight']
    """
    dropped: list[str] = []
    kept: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    for key, tensor in state.items():
        expected = reference.get(key)
        if expected is not None and tuple(expected.shape) == tuple(tensor.shape):
            kept[key] = tensor
        elif _is_head(key, head_prefixes):
            dropped.append(key)
        elif expected is None:
            unexpected.append(key)
        else:
            mismatched.append(f"{key}: file {tuple(tensor.shape)} vs model {tuple(expected.shape)}")
    missing = [
        k
        for k in reference
        if k not in kept and not _is_head(k, head_prefixes) and not k.endswith(_OPTIONAL_SUFFIXES)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {missing[:8]}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {unexpected[:8]}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {mismatched[:8]}")
    if problems:
        raise WeightsError(
            f"Weights in {origin} do not fit the model ({'; '.join(problems)}). Only classifier "
            "weights may differ; check that the file is for this encoder name (timm key layout)."
        )
    if dropped:
        logger.info(
            "Dropped classifier weights that do not fit the model from %s: %s", origin, dropped
        )
    return kept, dropped


@dataclass(frozen=True)
class LoadReport:
    """What loading did: classifier keys dropped, and whether the whole head was loaded."""

    dropped: tuple[str, ...]
    head_loaded: bool


def load_resolved_weights(
    model: torch.nn.Module, resolved: ResolvedWeights, head_prefixes: tuple[str, ...]
) -> LoadReport:
    """Read ``resolved`` safely, map its keys, and load it into ``model`` (a full timm model).

    Args:
        model: the timm model, with its classifier, built with 3 input channels.
        resolved: where the weights are.
        head_prefixes: classifier module names, whose weights may be dropped.

    Returns:
        A :class:`LoadReport`: classifier keys dropped, and whether every head weight loaded.

    Example:
        >>> import timm
        >>> from medtransfer.encoders.sources import resolve_weights
        >>> m = timm.create_model("tf_efficientnet_lite0")
        >>> resolved = resolve_weights("tf_efficientnet_lite0", "imagenet")
        >>> load_resolved_weights(m, resolved, ("classifier",))
        LoadReport(dropped=(), head_loaded=True)
    """
    state = load_state_dict_file(resolved.path)
    reference = model.state_dict()
    origin = str(resolved.path)
    if resolved.source.key_layout == "in_order":
        state = map_state_dict_in_order(state, reference, origin)
    kept, dropped = fit_state_dict(state, reference, head_prefixes, origin)
    model.load_state_dict(kept, strict=False)
    head = [k for k in reference if _is_head(k, head_prefixes)]
    return LoadReport(tuple(dropped), bool(head) and all(k in kept for k in head))
