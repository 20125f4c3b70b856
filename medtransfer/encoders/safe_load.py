"""Read weight files without ever running code from them.

Pickle-based checkpoints can execute arbitrary callables while loading. We only read
``.safetensors`` files (pure tensor data) or use ``torch.load(weights_only=True)``, whose restricted
unpickler refuses any global that is not a tensor or a plain container; such a file is reported
as unsafe with a :class:`~medtransfer.errors.WeightsError`, and nothing in it has run.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from medtransfer.errors import WeightsError

__all__ = ["SAFETENSORS_SUFFIXES", "TORCH_SUFFIXES", "load_state_dict_file"]

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")

# Checkpoints written by training loops often nest the weights under one of these keys.
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from a ``.safetensors`` or ``.pth``/``.pt`` file, safely, onto the CPU.

    A ``torch.save`` file must contain only tensors and plain containers; one carrying a pickled
    object or callable is refused before anything in it runs. Weights nested under ``state_dict``
    or ``model`` are unwrapped, and a ``module.`` prefix (DataParallel) is removed.

    Args:
        path: the weight file.

    Returns:
        A dict from parameter name to tensor.

    Raises:
        WeightsError: the file is missing, of an unknown type, corrupt or unsafe.

    Example:
        >>> import tempfile, torch
        >>> from safetensors.torch import save_file
        >>> f = tempfile.mkdtemp() + "/w.safetensors"
        >>> save_file({"conv.weight": torch.zeros(2, 3, 3, 3)}, f)
        >>> list(load_state_dict_file(f))
        ['conv.weight']
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Weight file not found: {path}. Check the path (it must be a file).")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        state = _load_safetensors(path)
    elif suffix in TORCH_SUFFIXES:
        state = _load_torch(path)
    else:
        raise WeightsError(
            f"Weight file {path} has an unsupported extension {suffix!r}: use .safetensors "
            f"(preferred) or a torch.save file ending in {', '.join(TORCH_SUFFIXES)}."
        )
    return _as_flat_state_dict(state, path)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for bad headers/data
        raise WeightsError(
            f"Weight file {path} is not a valid safetensors file ({err}). It may be truncated: "
            "copy it again and compare its SHA-256 with the original."
        ) from err


def _load_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"Refused to load {path}: it contains pickled Python objects (not only tensors), which "
            "could run code when unpickled, so it was not unpickled. Convert it on a trusted "
            "machine to .safetensors (safetensors.torch.save_file(state_dict, 'model.safetensors')) "
            f"or save only the state dict. Detail: {str(err).splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise WeightsError(
            f"Weight file {path} cannot be read by torch.load ({err}). It may be truncated or not "
            "a PyTorch file: copy it again and compare its SHA-256 with the original."
        ) from err


def _as_flat_state_dict(state: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, Mapping):
        for key in _NESTED_KEYS:
            inner = state.get(key)
            if isinstance(inner, Mapping) and inner:
                state = inner
                break
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(
            f"Weight file {path} does not hold a state dict (a mapping of names to tensors); "
            f"found {type(state).__name__}. Save model.state_dict(), not the model."
        )
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise WeightsError(
            f"Weight file {path} has entries that are not tensors: {not_tensors[:5]}. "
            "Save model.state_dict() only."
        )
    if all(str(k).startswith("module.") for k in state):
        state = {str(k)[len("module.") :]: v for k, v in state.items()}
    return {str(k): v for k, v in state.items()}
