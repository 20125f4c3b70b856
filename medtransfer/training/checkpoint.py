"""Checkpoints: plain state dicts and RNG states, written atomically, read with ``weights_only``.

A training checkpoint is a dict of tensors, numbers, strings, lists and dicts only (no pickled
objects), so ``torch.load(path, weights_only=True)`` reads it: model, optimizer, scheduler and
grad-scaler state dicts, Python/NumPy/torch RNG states, the loop position and the history.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtransfer.errors import InputPathError, ModelError
from medtransfer.io.atomic import atomic_path

__all__ = [
    "get_rng_state",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
]

FORMAT_VERSION = 1


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's global and torch's generators (what augmentations and init use)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global state others draw from)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy (legacy global) and torch (CPU and CUDA) RNG states as plain data.

    Example:
        >>> state = get_rng_state()
        >>> a = torch.rand(1); set_rng_state(state); torch.equal(a, torch.rand(1))
        True
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002 (the global state user code and MONAI draw from)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states returned by :func:`get_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plain data only) to ``path`` atomically (temporary file + rename).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.pt"
        >>> _ = save_checkpoint(path, {"model": {"w": torch.ones(2)}})
        >>> load_checkpoint(path)["model"]["w"].tolist()
        [1.0, 1.0]
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT_VERSION, **payload}, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling objects.

    Raises:
        InputPathError: the file does not exist.
        ModelError: the file is not a medtransfer checkpoint or is unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise InputPathError(f"Checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise ModelError(
            f"Checkpoint {path} cannot be read safely ({type(err).__name__}: {err}). "
            "Use a checkpoint written by medtransfer, or delete it to start over."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise ModelError(
            f"{path} is not a medtransfer training checkpoint (format {FORMAT_VERSION})."
        )
    return payload
