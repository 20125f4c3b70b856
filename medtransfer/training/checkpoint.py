"""Checkpoints: plain state dicts and RNG states, written atomically with a SHA-256 sidecar,
verified before they are read with ``weights_only``.

A training checkpoint is a dict of tensors, numbers, strings, lists and dicts only (no pickled
objects), so ``torch.load(path, weights_only=True)`` reads it: model, optimizer, scheduler and
grad-scaler state dicts, Python/NumPy/torch RNG states, the loop position and the history.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtransfer.errors import CheckpointError, DataWarning, InputPathError
from medtransfer.io.atomic import atomic_path
from medtransfer.training.checksums import (
    recorded_digests,
    sha256_file,
    sidecar_path,
    verify,
    write_sidecar,
)

__all__ = [
    "get_rng_state",
    "load_checkpoint",
    "load_training_checkpoint",
    "previous_path",
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


def previous_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`save_checkpoint` keeps the previous version (``last.pt`` -> ``last.prev.pt``).

    Example:
        >>> previous_path("run/checkpoints/last.pt").name
        'last.prev.pt'
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(
    path: str | os.PathLike[str], payload: dict[str, Any], keep_previous: bool = False
) -> Path:
    """Write ``payload`` (plain data only) to ``path`` atomically, with a SHA-256 sidecar.

    The checkpoint goes to a temporary file first and is renamed over ``path``; its digest goes
    to ``path.sha256`` (see :mod:`~medtransfer.training.checksums`). With ``keep_previous``,
    the checkpoint ``path`` held so far becomes :func:`previous_path` (rotated by renames), the
    fallback of :func:`load_training_checkpoint`. At every moment of the sequence, a kill leaves
    files that verify: the old pair, the new pair, or the previous checkpoint alone.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.pt"
        >>> _ = save_checkpoint(path, {"model": {"w": torch.ones(2)}})
        >>> load_checkpoint(path)["model"]["w"].tolist()
        [1.0, 1.0]
        >>> sorted(p.name for p in path.parent.iterdir())
        ['ckpt.pt', 'ckpt.pt.sha256']
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT_VERSION, **payload}, tmp)
        digest = sha256_file(tmp)
        if keep_previous and path.is_file():
            _rotate(path, previous_path(path))
        old = recorded_digests(path) if path.is_file() else []
        if old is not None:  # accept the old and the new content until the rename is done
            write_sidecar(path, [digest, *old])
    write_sidecar(path, [digest])
    return path


def _rotate(path: Path, previous: Path) -> None:
    """Rename ``path`` to ``previous``, its sidecar first extended so both pairs verify."""
    digests = recorded_digests(path)
    if digests is None:  # an old checkpoint without a sidecar stays without one
        sidecar_path(previous).unlink(missing_ok=True)
    else:
        write_sidecar(previous, [*digests, *(recorded_digests(previous) or [])])
    os.replace(path, previous)
    if digests is not None:
        write_sidecar(previous, digests)


def load_checkpoint(path: str | os.PathLike[str], map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`: checksum first, then a safe load.

    The SHA-256 sidecar (``path.sha256``) is verified before anything is unpickled, and the file
    is read with ``weights_only=True``. A checkpoint without a sidecar (written before
    medtransfer recorded checksums, or copied without it) loads with a :class:`DataWarning`.

    Raises:
        InputPathError: the file does not exist.
        CheckpointError: the file fails its checksum, is not a medtransfer checkpoint or is
            unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise InputPathError(f"Checkpoint {path} does not exist.")
    status = verify(path)
    if status == "mismatch":
        raise CheckpointError(
            f"Checkpoint {path} is corrupt: its SHA-256 is not the one recorded in "
            f"{sidecar_path(path).name} when it was written. Copy it again from where it came "
            "from or a backup, or use another checkpoint."
        )
    if status == "unverified":
        warnings.warn(
            f"Checkpoint {path} has no checksum ({sidecar_path(path).name} is missing), so it "
            "cannot be verified; copy the .sha256 file along with checkpoints.",
            DataWarning,
            stacklevel=2,
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(
            f"Checkpoint {path} cannot be read safely ({type(err).__name__}: {err}). "
            "Use a checkpoint written by medtransfer, or delete it to start over."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is not a medtransfer training checkpoint (format {FORMAT_VERSION})."
        )
    return payload


def load_training_checkpoint(
    path: str | os.PathLike[str], map_location: str = "cpu"
) -> tuple[dict[str, Any], Path]:
    """Load ``path``, or its previous version when ``path`` is missing or corrupt (a warning).

    Returns:
        The payload and the file it came from.

    Raises:
        CheckpointError: neither ``path`` nor :func:`previous_path` is usable; names both.
    """
    path = Path(path)
    problems = []
    for candidate in (path, previous_path(path)):
        if not candidate.is_file():
            problems.append(f"{candidate} does not exist")
            continue
        try:
            payload = load_checkpoint(candidate, map_location)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if problems:
            warnings.warn(
                f"{problems[0]} Resuming from the previous checkpoint {candidate} instead "
                "(the steps since then are trained again).",
                DataWarning,
                stacklevel=2,
            )
        return payload, candidate
    raise CheckpointError(
        f"No usable checkpoint to resume in {path.parent}: " + " ".join(
            p if p.endswith(".") else p + "." for p in problems
        ) + " Restore them from a backup, or start over (overwrite=True, CLI --overwrite) or "
        "in another run folder."
    )  # fmt: skip
