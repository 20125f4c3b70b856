"""``resolve_device``: one rule for the device of inference and training."""

from __future__ import annotations

import torch

from medtransfer.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as ``torch.device``, checked.

    One rule for inference and training (``mt.training`` uses it too): a CUDA device that this
    machine does not have is a ``ConfigError``, not a crash at the first ``.to(device)``.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(
            f"device={device!r} is not a torch device ('auto', 'cpu', 'cuda:0')."
        ) from err
    if resolved.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available == 0 or (resolved.index is not None and resolved.index >= available):
            raise ConfigError(
                f"device={device!r} but CUDA is not available here ({available} GPU(s) "
                "visible); use device='cpu' or 'auto'."
            )
    return resolved
