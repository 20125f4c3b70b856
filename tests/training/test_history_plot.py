"""History.plot: losses on the left axis, metrics (never timings) on the right."""

from __future__ import annotations

import pytest

from medtransfer.errors import ConfigError
from medtransfer.training import History


def _history(task="segmentation"):
    history = History("dice" if task == "segmentation" else "auroc")
    for epoch, (loss, score) in enumerate([(0.9, 0.4), (0.6, 0.6), (0.5, 0.7)], start=1):
        record = {"epoch": epoch, "step": 4 * epoch, "train_loss": loss, "lr": 1e-3,
                  "time_s": 3.0, "samples_per_s": 10.0, "val_loss": loss + 0.1,
                  "val_time_s": 1.2}  # fmt: skip
        if task == "segmentation":
            record["dice"] = score
        else:
            record.update(auroc=score, accuracy=score - 0.1)
        history.append(record)
    return history


def _lines(ax):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    assert isinstance(ax.figure, Figure)
    lines = {a.get_ylabel(): [line.get_label() for line in a.get_lines()] for a in ax.figure.axes}
    plt.close(ax.figure)
    return lines


def test_plot_draws_metrics_never_timings():
    lines = _lines(_history().plot())
    assert lines == {"loss": ["train_loss", "val_loss"], "validation metric": ["dice"]}


def test_plot_draws_every_metric_by_default_selection_metric_first():
    lines = _lines(_history("classification").plot())
    assert lines["validation metric"] == ["auroc", "accuracy"]


def test_plot_refuses_a_timing_as_a_metric():
    with pytest.raises(ConfigError, match="val_time_s.*not a metric"):
        _history().plot(keys=["dice", "val_time_s"])
    assert _lines(_history().plot(keys=["dice"]))["validation metric"] == ["dice"]
