"""medtransfer: transfer learning for medical imaging.

ImageNet-pretrained encoders adapted to CT/MRI/X-ray inputs in 2D, 2.5D and 3D, DICOM/NIfTI loaders
that never return a wrong volume, fine-tuning and evaluation with confidence intervals.

Subpackages are imported lazily on first attribute access, so ``import medtransfer`` stays fast
and imports no optional backend.

Example:
    >>> import medtransfer as mt
    >>> mt.__version__
    '0.1.0'
    >>> callable(mt.io.load)
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from medtransfer import errors

__version__ = "0.1.0"

_SUBPACKAGES = (
    "io",
    "data",
    "transforms",
    "encoders",
    "models",
    "evaluation",
    "training",
    "diagnostics",
    "exporting",
)
# Functions at the top level, imported on first access: name -> module that defines it.
_FUNCTIONS = {"export": "medtransfer.exporting"}

__all__ = ["__version__", "errors", *_SUBPACKAGES, *_FUNCTIONS]

if TYPE_CHECKING:  # pragma: no cover - static analysers see the real modules
    from medtransfer import (  # noqa: F401
        data,
        diagnostics,
        encoders,
        evaluation,
        exporting,
        io,
        models,
        training,
        transforms,
    )
    from medtransfer.exporting import export  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"medtransfer.{name}")
        globals()[name] = module
        return module
    if name in _FUNCTIONS:
        function = getattr(importlib.import_module(_FUNCTIONS[name]), name)
        globals()[name] = function
        return function
    raise AttributeError(f"module 'medtransfer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBPACKAGES) | set(_FUNCTIONS))
