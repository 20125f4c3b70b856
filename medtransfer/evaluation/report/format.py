"""How report numbers are named and printed: metric labels, decimals, CIs, plain-text tables.

Shared by :class:`~medtransfer.evaluation.Report` (``repr``, CSV) and the HTML writer so
that a number reads the same everywhere: ``Dice liver 0.91 (95% CI 0.88–0.93), n=12``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medtransfer.errors import ConfigError

__all__ = [
    "json_safe",
    "METRIC_LABELS",
    "curve_kind",
    "format_estimate",
    "format_value",
    "history_data",
    "metric_label",
    "text_table",
]

#: Display names of the metric keys used in ``Report.summary`` and ``Report.cases``.
METRIC_LABELS = {
    "dice": "Dice",
    "dice_post": "Dice, post-processed",
    "iou": "IoU",
    "hd95": "HD95 (mm)",
    "hd95_post": "HD95 (mm), post-processed",
    "assd": "ASSD (mm)",
    "nsd": "Surface Dice",
    "nsd_post": "Surface Dice, post-processed",
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "youden_threshold": "Youden threshold",
    "sensitivity_youden": "Sensitivity at Youden threshold",
    "specificity_youden": "Specificity at Youden threshold",
    "ece": "Calibration error (ECE)",
}

# Distances are in mm: one decimal is the precision of any CT; ratios get two (three in tables).
_MM_METRICS = ("hd95", "hd95_post", "assd", "assd_post")


def metric_label(metric: str) -> str:
    """Human name of a metric key (the key itself when unknown).

    Example:
        >>> metric_label("dice_post"), metric_label("volume")
        ('Dice, post-processed', 'volume')
    """
    return METRIC_LABELS.get(metric, metric)


#: Per-epoch columns of a training history that are neither losses nor metrics.
_BOOKKEEPING = ("epoch", "step", "lr")


def curve_kind(key: str) -> str | None:
    """How a per-epoch history column is plotted: ``"loss"``, ``"metric"`` or None (not plotted).

    None for bookkeeping (``epoch``, ``step``, ``lr``) and for timings, whose names end in ``_s``
    (``time_s``, ``val_time_s``: seconds; ``samples_per_s``: a rate): they are not metrics.

    Example:
        >>> [curve_kind(k) for k in ("val_loss", "dice", "val_time_s", "samples_per_s", "lr")]
        ['loss', 'metric', None, None, None]
    """
    if key in _BOOKKEEPING or key.endswith("_s"):
        return None
    return "loss" if "loss" in key else "metric"


def format_value(value: Any, metric: str = "", digits: int | None = None) -> str:
    """A number as printed in reports: NaN/None as an en dash, mm with 1 decimal, ratios with 2.

    Example:
        >>> format_value(0.9149, "dice"), format_value(3.04, "hd95"), format_value(float("nan"))
        ('0.91', '3.0', '–')
    """
    if value is None or isinstance(value, str):
        return "–" if value is None else value
    number = float(value)
    if math.isnan(number):
        return "–"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if digits is None:
        digits = 1 if metric in _MM_METRICS else 2
    return f"{number:.{digits}f}"


def format_estimate(row: Mapping[str, Any], digits: int | None = None) -> str:
    """One summary row as ``0.91 (95% CI 0.88–0.93), n=12``.

    Args:
        row: a ``Report.summary`` row (``metric``, ``value``, ``low``, ``high``, ``n``, and
            optionally ``confidence``).
        digits: decimals (default: 1 for distances in mm, 2 otherwise).

    Example:
        >>> format_estimate({"metric": "dice", "value": 0.912, "low": 0.88, "high": 0.934, "n": 12})
        '0.91 (95% CI 0.88–0.93), n=12'
    """
    metric = str(row.get("metric", ""))
    value = format_value(row.get("value"), metric, digits)
    confidence = float(row.get("confidence", 0.95) or 0.95)
    low, high = row.get("low"), row.get("high")
    if value == "–" or low is None or high is None or math.isnan(float(low) + float(high)):
        return f"{value}, n={row.get('n', 0)}"
    interval = f"{format_value(low, metric, digits)}–{format_value(high, metric, digits)}"
    return f"{value} ({confidence * 100:g}% CI {interval}), n={row.get('n', 0)}"


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A fixed-width plain-text table (what ``repr`` shows without pandas).

    Example:
        >>> print(text_table([{"case_id": "a", "dice/liver": 0.9}, {"case_id": "b"}]))
        case_id  dice/liver
        a        0.900
        b        –
    """
    if not rows:
        return "(empty)"
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return format_value(value, digits=3)
        return "–" if value is None else str(value)

    body = [[cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in body)) for i, col in enumerate(columns)]
    lines = [[str(c) for c in columns], *body]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in lines)


def history_data(history: Any) -> dict[str, list[Any]] | None:
    """Per-epoch curves of a History (``.records``/``to_dict``) or a dict of lists.

    An object that only has ``plot(ax=...)`` gives None (the HTML page calls its ``plot``).

    Example:
        >>> history_data({"train_loss": [0.9, 0.5], "dice": [0.4, 0.6]})
        {'train_loss': [0.9, 0.5], 'dice': [0.4, 0.6]}
    """
    if history is None:
        return None
    records = getattr(history, "records", None)
    if records is None and hasattr(history, "to_dict"):
        records = history.to_dict().get("records")
    if isinstance(records, list):
        keys = list(dict.fromkeys(k for r in records for k in r if k != "epoch"))
        curves = {"epoch": [r.get("epoch", i + 1) for i, r in enumerate(records)]}
        curves.update({k: [r.get(k) for r in records] for k in keys})
        return curves
    if isinstance(history, Mapping):
        return {str(k): list(v) for k, v in history.items()}
    if callable(getattr(history, "plot", None)):
        return None  # plotted by its own plot(ax=...), no numbers to store
    raise ConfigError(
        f"history={type(history).__name__} is not a History or a dict of per-epoch lists; pass "
        "the History returned by FineTuner.fit, or e.g. {'train_loss': [...], 'dice': [...]}."
    )


def json_safe(value: Any) -> Any:
    """Plain JSON data: numpy arrays and scalars -> Python, NaN/inf -> None, tuples -> lists,
    mapping keys -> str (nested values too).

    Example:
        >>> json_safe({"dice": np.float32(0.5), 1: [float("nan"), (2, 3)]})
        {'dice': 0.5, '1': [None, [2, 3]]}
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
