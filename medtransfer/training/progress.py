"""Progress feedback: a tqdm bar per epoch (loss, throughput, ETA), one line per epoch, a summary.

Modes: ``"bar"`` (bar + epoch lines + summary), ``"epoch"`` (lines + summary, for log files),
``"quiet"`` (nothing). Only rank 0 prints in multi-process runs.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["MODES", "Progress"]

MODES = ("bar", "epoch", "quiet")


class Progress:
    """Console feedback for a run.

    Args:
        mode: one of :data:`MODES` (``True`` -> "bar", ``False`` -> "quiet").
        enabled: False on ranks other than 0.

    Example:
        >>> p = Progress("epoch")
        >>> p.message("hello")
        hello
    """

    def __init__(self, mode: str | bool = "bar", enabled: bool = True) -> None:
        if mode is True:
            mode = "bar"
        elif mode is False:
            mode = "quiet"
        if mode not in MODES:
            from medtransfer.errors import ConfigError

            raise ConfigError(f"progress={mode!r} is not one of {MODES} (or True/False).")
        self.mode = mode if enabled else "quiet"
        self._bar: Any = None
        self._start = 0.0
        self._samples = 0

    def message(self, text: str) -> None:
        """Print a line (above the bar, if one is shown)."""
        if self.mode == "quiet":
            return
        from tqdm.auto import tqdm

        tqdm.write(text)

    def start_epoch(self, epoch: int, epochs: int, batches: int, done: int = 0) -> None:
        """Open the bar of ``epoch`` (0-based) with ``done`` batches already counted."""
        self._start = time.perf_counter()
        self._samples = 0
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=batches,
                initial=done,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="batch",
                leave=False,
                dynamic_ncols=True,
            )

    def update(self, batches: int, samples: int, loss: float, lr: float) -> None:
        """Advance the bar; shows the running loss, learning rate and samples/s."""
        self._samples += samples
        if self._bar is not None:
            rate = self._samples / max(1e-9, time.perf_counter() - self._start)
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}")
            self._bar.update(batches)

    def end_epoch(self, record: dict[str, Any], metric: str, is_best: bool) -> None:
        """Close the bar and print the epoch's line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        parts = [f"epoch {record['epoch']}", f"train_loss {record['train_loss']:.4f}"]
        if "val_loss" in record:
            parts.append(f"val_loss {record['val_loss']:.4f}")
        if metric in record:
            parts.append(f"{metric} {record[metric]:.4f}{' *best*' if is_best else ''}")
        parts.append(f"{record['time_s']:.1f} s, {record['samples_per_s']:.1f} samples/s")
        self.message(" | ".join(parts))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
