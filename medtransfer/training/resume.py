"""The full training state for exact resume: what goes into ``last.pt`` and how it comes back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medtransfer.errors import ModelError
from medtransfer.training.checkpoint import (
    get_rng_state,
    load_training_checkpoint,
    set_rng_state,
)
from medtransfer.training.distributed import unwrap
from medtransfer.training.history import History
from medtransfer.training.loop import LoopState, Runtime

__all__ = ["restore_training_state", "training_state"]


def training_state(rt: Runtime, state: LoopState, history: History) -> dict[str, Any]:
    """Model, optimizer, scheduler, scaler and RNG states, loop position and history (plain data)."""
    return {
        "model": unwrap(rt.model).state_dict(),
        "optimizer": rt.optimizer.state_dict(),
        "scheduler": rt.scheduler.state_dict(),
        "scaler": rt.scaler.state_dict() if rt.scaler.is_enabled() else {},
        "rng": get_rng_state(),
        "loop": state.to_dict(),
        "history": history.to_dict(),
    }


def restore_training_state(
    path: str | os.PathLike[str], rt: Runtime
) -> tuple[LoopState, History, Path]:
    """Load ``path`` into ``rt`` (model, optimizer, scheduler, scaler) and restore the RNG states.

    A corrupt or missing ``path`` falls back to its previous version (``last.prev.pt``) with a
    warning (:func:`~medtransfer.training.checkpoint.load_training_checkpoint`).

    Returns:
        The loop position, the history and the checkpoint file actually used.

    Raises:
        CheckpointError: no usable checkpoint (checksum mismatch or unreadable, both files).
        ModelError: the checkpoint does not fit the model, strategy or optimizer.
    """
    payload, path = load_training_checkpoint(path)
    try:
        unwrap(rt.model).load_state_dict(payload["model"])
        rt.optimizer.load_state_dict(payload["optimizer"])
        rt.scheduler.load_state_dict(payload["scheduler"])
        if payload["scaler"] and rt.scaler.is_enabled():
            rt.scaler.load_state_dict(payload["scaler"])
        loop = LoopState(**payload["loop"])
        history = History.from_dict(payload["history"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        from medtransfer.evaluation.inference.checkpoint_fit import describe_mismatch

        model_state = payload.get("model") if isinstance(payload.get("model"), dict) else {}
        what = describe_mismatch(model_state, unwrap(rt.model).state_dict())
        detail = what or f"{type(err).__name__}: {str(err)[:300]}"
        raise ModelError(
            f"Checkpoint {path} does not match this model/strategy: {detail}. Resume with the "
            "same model, strategy and optimizer settings, or start a new run_dir."
        ) from err
    set_rng_state(payload["rng"])
    return loop, history, path
