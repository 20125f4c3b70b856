"""History: one record per epoch (losses, metrics, learning rate, throughput), plottable."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    """What happened in a run, epoch by epoch.

    Attributes:
        metric: name of the selection metric (e.g. ``"dice"``, ``"auroc"``).
        higher_is_better: direction of ``metric``.
        records: one dict per epoch: ``epoch``, ``step``, ``train_loss``, ``lr``, ``time_s``,
            ``samples_per_s`` and, on validation epochs, ``val_loss`` and metric values.
        stopped_early: whether early stopping ended the run.

    Example:
        >>> h = History("dice")
        >>> h.append({"epoch": 1, "train_loss": 0.9, "dice": 0.5})
        >>> h.append({"epoch": 2, "train_loss": 0.5, "dice": 0.7})
        >>> h.best_epoch, h.best_value, h["train_loss"]
        (2, 0.7, [0.9, 0.5])
    """

    metric: str
    higher_is_better: bool = True
    records: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False

    def append(self, record: dict[str, Any]) -> None:
        """Add one epoch's record."""
        self.records.append(dict(record))

    def __getitem__(self, key: str) -> list[Any]:
        """Values of ``key`` over the epochs that have it."""
        return [r[key] for r in self.records if key in r]

    def __len__(self) -> int:
        return len(self.records)

    def _scored(self) -> list[tuple[int, float, float]]:
        """``(epoch, metric, val_loss)`` of the validated epochs (val_loss NaN when absent)."""
        return [
            (r["epoch"], r[self.metric], _loss(r.get("val_loss")))
            for r in self.records
            if isinstance(r.get(self.metric), (int, float)) and not math.isnan(r[self.metric])
        ]

    def _rank(self, value: float, val_loss: float) -> tuple[float, float]:
        """Sort key, larger is better: the metric, then (on a tie) the lower validation loss."""
        loss_key = -math.inf if math.isnan(val_loss) else -val_loss  # no loss: loses a tie
        return (value if self.higher_is_better else -value, loss_key)

    @property
    def best_epoch(self) -> int | None:
        """Epoch (1-based) with the best selection metric, None before any validation.

        A tie on the metric (e.g. AUROC 1.0 twice) goes to the lower ``val_loss``, then to the
        earlier epoch.
        """
        scored = self._scored()
        if not scored:
            return None
        return max(scored, key=lambda item: self._rank(item[1], item[2]))[0]

    @property
    def best_value(self) -> float | None:
        """Best value of the selection metric."""
        best = self.best_epoch
        return None if best is None else {e: v for e, v, _ in self._scored()}[best]

    def is_improvement(
        self, value: float, min_delta: float = 0.0, val_loss: float | None = None
    ) -> bool:
        """Whether ``value`` beats every earlier value by more than ``min_delta``.

        An exact tie with the best value counts when ``val_loss`` is lower than that epoch's.

        Example:
            >>> h = History("auroc", records=[{"epoch": 1, "auroc": 1.0, "val_loss": 0.6}])
            >>> h.is_improvement(1.0, val_loss=0.1), h.is_improvement(1.0, val_loss=0.7)
            (True, False)
        """
        if value is None or math.isnan(value):
            return False
        scored = self._scored()
        if not scored:
            return True
        best = max(scored, key=lambda item: self._rank(item[1], item[2]))
        if value == best[1]:
            return self._rank(value, _loss(val_loss)) > self._rank(best[1], best[2])
        return value > best[1] + min_delta if self.higher_is_better else value < best[1] - min_delta

    def epochs_since_best(self) -> int:
        """Validation epochs since the best one (0 when the last validation is the best)."""
        scored = self._scored()
        best = self.best_epoch
        return sum(1 for epoch, _, _ in scored if best is not None and epoch > best)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and JSON)."""
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "records": [dict(r) for r in self.records],
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["metric"], data["higher_is_better"], list(data["records"]), data["stopped_early"]
        )

    def summary(self) -> str:
        """One line: epochs, last losses and the best metric.

        Example:
            >>> History("auroc", records=[{"epoch": 1, "train_loss": 0.25, "auroc": 0.5}]).summary()
            'epochs 1 | train_loss 0.2500 | best auroc 0.5000 at epoch 1'
        """
        if not self.records:
            return "no epochs run"
        last = self.records[-1]
        parts = [f"epochs {last['epoch']}", f"train_loss {last['train_loss']:.4f}"]
        if "val_loss" in last:
            parts.append(f"val_loss {last['val_loss']:.4f}")
        if self.best_epoch is not None:
            parts.append(f"best {self.metric} {self.best_value:.4f} at epoch {self.best_epoch}")
        if self.stopped_early:
            parts.append("stopped early")
        return " | ".join(parts)

    def metric_keys(self) -> list[str]:
        """Validation metric columns, selection metric first (never losses, ``lr`` or timings).

        Example:
            >>> History("auroc", records=[{"epoch": 1, "train_loss": 0.5, "val_time_s": 2.0,
            ...                            "accuracy": 0.75, "auroc": 0.5}]).metric_keys()
            ['auroc', 'accuracy']
        """
        from medtransfer.evaluation.report.format import curve_kind

        found = dict.fromkeys(
            key
            for record in self.records
            for key, value in record.items()
            if curve_kind(key) == "metric" and isinstance(value, (int, float))
        )
        return sorted(found, key=lambda key: key != self.metric)

    def plot(self, keys: Sequence[str] | None = None, ax: Any = None) -> Any:
        """Plot loss curves (left axis) and validation metrics (right axis) against epochs.

        Timings (``time_s``, ``val_time_s``, ``samples_per_s``) and ``lr`` are not metrics: they
        are not drawn. Needs matplotlib.

        Args:
            keys: metrics to draw on the right axis (default: :meth:`metric_keys`).
            ax: a matplotlib Axes (default: a new figure).

        Returns:
            The matplotlib Axes of the losses (the metrics' twin axis is ``ax.figure.axes[-1]``).

        Raises:
            ConfigError: a key of ``keys`` is a timing or ``lr``, not a metric.

        Example:
            >>> h = History("dice", records=[{"epoch": 1, "train_loss": 0.9, "val_time_s": 2.0,
            ...                               "dice": 0.5}])
            >>> ax = h.plot()
            >>> [line.get_label() for axes in ax.figure.axes for line in axes.get_lines()]
            ['train_loss', 'dice']
            >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
        """
        from medtransfer.errors import ConfigError
        from medtransfer.evaluation.report.format import curve_kind

        try:
            import matplotlib.pyplot as plt
        except ImportError as err:  # optional dependency: only needed here
            raise ConfigError("History.plot() needs matplotlib: pip install matplotlib") from err
        keys = self.metric_keys() if keys is None else list(keys)
        for key in keys:
            if curve_kind(key) is None:
                raise ConfigError(
                    f"History.plot(keys=...): {key!r} is not a metric (timings ending in '_s', "
                    f"lr, epoch and step are not drawn); pass metrics such as {self.metric!r}, "
                    f"or plot it yourself: ax.plot(history['epoch'], history[{key!r}])."
                )
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        for key in ("train_loss", "val_loss"):
            points = [(r["epoch"], r[key]) for r in self.records if key in r]
            if points:
                ax.plot(*zip(*points), marker=".", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        handles, labels = ax.get_legend_handles_labels()
        if keys:
            right = ax.twinx()
            colours = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:olive")
            for i, key in enumerate(keys):
                points = [(r["epoch"], r[key]) for r in self.records if key in r]
                if points:
                    right.plot(*zip(*points), marker="o", linestyle="--",
                               color=colours[i % len(colours)], label=key)  # fmt: skip
            right.set_ylabel("validation metric")
            more = right.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        if handles:
            ax.legend(handles, labels, loc="best")
        return ax


def _loss(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan
