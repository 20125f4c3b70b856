"""Callbacks: hooks into the training loop; early stopping.

Callbacks read the tuner's state and may set ``tuner.stop = True``. Early stopping derives its
decision from the History alone, so it survives a resume without state of its own.
"""

from __future__ import annotations

import math
from typing import Any

from medtransfer.errors import ConfigError

__all__ = ["Callback", "EarlyStopping"]


class Callback:
    """Base class; override the hooks you need (all receive the FineTuner)."""

    def on_fit_start(self, tuner: Any) -> None:
        """After set-up (and resume), before the first epoch."""

    def on_step_end(self, tuner: Any, step: int, loss: float) -> None:
        """After each optimizer step (``step`` counts from 1 over the whole run)."""

    def on_epoch_end(self, tuner: Any, record: dict[str, Any]) -> None:
        """After an epoch's record (validation included) is in ``tuner.history``."""

    def on_fit_end(self, tuner: Any) -> None:
        """After the last epoch."""


class EarlyStopping(Callback):
    """Stop when the selection metric has not improved by ``min_delta`` for ``patience`` validations.

    Args:
        patience: validations without improvement before stopping (>= 1).
        min_delta: smallest change that counts as an improvement.

    Example:
        >>> from types import SimpleNamespace
        >>> from medtransfer.training.history import History
        >>> h = History("dice", records=[{"epoch": e, "dice": d} for e, d in [(1, .5), (2, .4), (3, .45)]])
        >>> tuner = SimpleNamespace(history=h, stop=False)
        >>> EarlyStopping(patience=2).on_epoch_end(tuner, h.records[-1]); tuner.stop
        True
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ConfigError(f"EarlyStopping patience must be >= 1, got {patience}.")
        self.patience = patience
        self.min_delta = min_delta

    def validations_without_improvement(self, history: Any) -> int:
        best: float | None = None
        waited = 0
        sign = 1.0 if history.higher_is_better else -1.0
        for value in history[history.metric]:
            if value is None or math.isnan(value):
                waited += 1
            elif best is None or sign * (value - best) > self.min_delta:
                best, waited = value, 0
            else:
                waited += 1
        return waited

    def on_epoch_end(self, tuner: Any, record: dict[str, Any]) -> None:
        if tuner.history.metric not in record:
            return
        if self.validations_without_improvement(tuner.history) >= self.patience:
            tuner.history.stopped_early = True
            tuner.stop = True
