"""Which layer a class activation map is read from: a level of the encoder's feature pyramid.

The levels are the modules timm names in the trunk's ``feature_info`` (``layer4`` for a ResNet,
``blocks.6`` for an EfficientNet, ``stages_3`` inside a ``features_only`` wrapper); their outputs
are exactly the feature maps the encoder returns. The default is the deepest level whose map is
still at least ``MIN_MAP_SIZE`` voxels along both in-plane axes (7: the deepest map of a
224 x 224 ImageNet input): the deepest map of a smaller input is a few voxels wide, and a map of
2 x 2 cells 32 voxels apart cannot point at a lesion.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from torch import nn

from medtransfer.errors import ModelError

__all__ = ["MIN_MAP_SIZE", "feature_levels", "resolve_layer"]

#: In-plane size (voxels) below which a level is too coarse to be the default target layer.
MIN_MAP_SIZE = 7


def _trunk_names(body: nn.Module) -> list[str]:
    info = getattr(body, "feature_info", None)
    if info is None:
        return []
    try:
        return [str(n) for n in info.module_name()]
    except (AttributeError, TypeError):
        return [str(entry.get("module", "")) for entry in info]


def feature_levels(model: nn.Module) -> list[str]:
    """Names (in ``model.named_modules()``) of the modules emitting each feature level.

    Raises:
        ModelError: the model has no medtransfer encoder with timm feature metadata.

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
        >>> feature_levels(model)[-2:]
        ['encoder.body.layer3', 'encoder.body.layer4']
    """
    encoder = getattr(model, "encoder", None)
    body = getattr(encoder, "body", None)
    names = _trunk_names(body) if isinstance(body, nn.Module) else []
    if not names:
        raise ModelError(
            f"saliency needs a model with a medtransfer encoder (model.encoder, as made by "
            f"mt.models.create_classifier) to choose the layer; {type(model).__name__} has none. "
            "Pass layer='<module name>' (a convolutional block of your model, see "
            "model.named_modules()) to use another model."
        )
    modules = dict(model.named_modules())
    levels = []
    for name in names:
        # features_only wrappers flatten nested names ("stages.3" -> "stages_3")
        found = [f"encoder.body.{n}" for n in (name, name.replace(".", "_"))]
        found = [n for n in found if n in modules]
        if not found:
            raise ModelError(
                f"The encoder's feature level {name!r} is not a module of the model; pass "
                "layer='<module name>' explicitly (see model.named_modules())."
            )
        levels.append(found[0])
    return levels


def _named_layer(model: nn.Module, layer: str) -> str:
    names = [n for n, _ in model.named_modules() if n]
    if layer in names:
        return layer
    close = difflib.get_close_matches(layer, names, n=4, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ModelError(
        f"layer={layer!r} is not a module of {type(model).__name__}.{hint} Module names are "
        "those of model.named_modules(), e.g. 'encoder.body.layer4'."
    )


def resolve_layer(
    model: nn.Module, layer: str | int | None, map_sizes: Sequence[Sequence[int]] | None = None
) -> str:
    """The module name to hook for ``layer``.

    Args:
        model: the classifier.
        layer: None (the deepest level at least ``MIN_MAP_SIZE`` wide in-plane, else the
            deepest), a level index (``-1``: the deepest, ``-2``: the one before...), or a module
            name of ``model.named_modules()``.
        map_sizes: the spatial shape of every level's feature map for this input (needed for
            ``layer=None``), ``(X, Y)`` or ``(X, Y, Z)``: X and Y are the in-plane axes.

    Raises:
        ModelError: no encoder to choose from, an index out of range, an unknown name.

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
        >>> sizes = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]  # a 64 x 64 input
        >>> resolve_layer(model, None, sizes), resolve_layer(model, -1)
        ('encoder.body.layer2', 'encoder.body.layer4')
    """
    if isinstance(layer, str):
        return _named_layer(model, layer)
    levels = feature_levels(model)
    if layer is None:
        sizes = list(map_sizes or [])
        wide = [i for i, s in enumerate(sizes) if min(s[:2]) >= MIN_MAP_SIZE]
        return levels[min(wide[-1], len(levels) - 1)] if wide else levels[-1]
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise ModelError(
            f"layer={layer!r}: pass None, a feature level index such as -1, or a module name."
        )
    if not -len(levels) <= layer < len(levels):
        raise ModelError(
            f"layer={layer} is out of range: the encoder has {len(levels)} feature levels "
            f"({', '.join(levels)}); use 0..{len(levels) - 1} or -1 for the deepest."
        )
    return levels[layer]
