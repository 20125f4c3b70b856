"""Split an encoder's parameters by pyramid level: stem, stage1, stage2, ...

Training strategies (freezing, gradual unfreezing, layer-wise learning-rate decay) work on these
groups. Level boundaries come from timm's own feature metadata (``feature_info`` module names),
so every timm CNN is split the same way without per-family tables.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["encoder_level_groups"]


def _feature_module_names(body: nn.Module) -> list[str]:
    info = getattr(body, "feature_info", None)
    if info is None:
        return []
    try:
        names = info.module_name()
    except (AttributeError, TypeError):
        names = [entry.get("module", "") for entry in info]
    return [str(n).replace(".", "_") for n in names]


def _ordered_units(body: nn.Module, boundaries: set[str]) -> list[tuple[str, nn.Module]]:
    """Children in forward order, expanding containers that hold a level boundary inside."""
    units: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}_{name}" if prefix else name
            inner = any(b.startswith(full + "_") for b in boundaries)
            if inner and full not in boundaries:
                visit(full, child)
            else:
                units.append((full, child))

    visit("", body)
    return units


def encoder_level_groups(encoder: nn.Module) -> OrderedDict[str, list[nn.Parameter]]:
    """Parameters of ``encoder.body`` grouped as ``stem`` (level 0) then ``stage1``, ``stage2``...

    Level ``i`` holds every module up to and including the one that emits feature map ``i``.
    Modules after the last feature map (pruned heads) hold no parameters the model uses.

    Example:
        >>> import medtransfer as mt
        >>> enc = mt.encoders.create("resnet18", weights=None, in_channels=1)
        >>> list(encoder_level_groups(enc))
        ['stem', 'stage1', 'stage2', 'stage3', 'stage4']
    """
    body = getattr(encoder, "body", encoder)
    boundaries = _feature_module_names(body)
    groups: OrderedDict[str, list[nn.Parameter]] = OrderedDict()
    names = ["stem"] + [f"stage{i}" for i in range(1, len(boundaries))]
    if not boundaries:
        groups["stem"] = list(body.parameters())
        return groups
    level = 0
    for name in names:
        groups[name] = []
    for unit_name, module in _ordered_units(body, set(boundaries)):
        if level < len(names):
            groups[names[level]].extend(module.parameters())
        if level < len(boundaries) and unit_name == boundaries[level]:
            level += 1
    return groups
