"""Figures of a :class:`~medtransfer.evaluation.Report` (matplotlib, no pyplot state).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot, so writing an HTML
report never opens a window or changes the notebook's backend; :func:`png_base64` turns one into
the text of an ``<img src="data:image/png;base64,...">``. Colours are the Okabe-Ito palette (safe
for colour-blind readers); on overlays the reference is a solid line, the prediction dashed.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from medtransfer.evaluation.report.report import OverlaySlice, Report

__all__ = [
    "PALETTE",
    "calibration_figure",
    "dice_boxplot",
    "draw_calibration",
    "draw_roc",
    "history_figure",
    "overlay_figure",
    "overview_figure",
    "png_base64",
    "roc_figure",
]

PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure text with (``fig.canvas.get_renderer()``)
    return fig


def _fitted_legend(fig: Any, handles: list[Any], most_columns: int = 4, **options: Any) -> Any:
    """A legend below the axes with as many columns as fit the figure's width.

    Constrained layout makes room for it below the axes; when one column is still too wide
    (a long class name), the figure is widened so that no label is cut.
    """
    renderer = fig.canvas.get_renderer()
    for columns in range(min(len(handles), most_columns), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncol=columns, **options)
        width = legend.get_window_extent(renderer).width
        if width <= fig.bbox.width - 4 or columns == 1:
            break
        legend.remove()
    if width > fig.bbox.width - 4:
        fig.set_figwidth((width + 8) / fig.dpi)
    return legend


def png_base64(fig: Any, dpi: int = 100) -> str:
    """The figure as a base64 PNG (for ``data:image/png;base64,`` URLs).

    Example:
        >>> png_base64(_figure(1, 1))[:8]
        'iVBORw0K'
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def class_names(report: Report) -> list[str]:
    """Class names in order (metadata, else the summary's order)."""
    names = report.metadata.get("class_names")
    if names:
        return [str(n) for n in names]
    return list(dict.fromkeys(str(r.get("class")) for r in report.summary))


def _case_values(report: Report, key: str) -> np.ndarray:
    values = [row.get(key) for row in report.cases]
    array = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return array[np.isfinite(array)]


def dice_boxplot(report: Report, metric: str = "dice") -> Any:
    """Box plot per class of a per-case metric, raw next to post-processed, with every case.

    Args:
        report: a segmentation report.
        metric: ``"dice"``, ``"nsd"`` or ``"hd95"`` (the ``_post`` twin is drawn when present).
    """
    names = class_names(report)
    variants = [
        v
        for v in (metric, f"{metric}_post")
        if any(f"{v}/{n}" in r for r in report.cases for n in names)
    ]
    fig = _figure(max(4.0, 1.3 * len(names) * len(variants) + 1.5), 3.4)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # jitter of the points only
    width = 0.8 / max(len(variants), 1)
    for j, variant in enumerate(variants):
        data = [_case_values(report, f"{variant}/{n}") for n in names]
        positions = np.arange(len(names)) + (j - (len(variants) - 1) / 2) * width
        kept = [(p, d) for p, d in zip(positions, data) if d.size]
        if not kept:
            continue
        colour = PALETTE[4] if j == 0 else PALETTE[0]
        box = ax.boxplot(
            [d for _, d in kept], positions=[p for p, _ in kept], widths=width * 0.8,
            patch_artist=True, showfliers=False, medianprops={"color": "black"},
        )  # fmt: skip
        for patch in box["boxes"]:
            patch.set(facecolor=colour, alpha=0.35, edgecolor=colour)
        for p, d in kept:
            ax.plot(p + rng.uniform(-0.12, 0.12, d.size) * width, d, "o", ms=3.5, color=colour)
        label = "raw prediction" if j == 0 else "after post-processing"
        ax.plot([], [], "s", color=colour, alpha=0.6, label=label)
    ax.set_xticks(np.arange(len(names)), names)
    from medtransfer.evaluation.report.format import metric_label

    ax.set_ylabel(metric_label(metric))
    if metric in ("dice", "nsd"):
        ax.set_ylim(-0.02, 1.02)
    ax.grid(axis="y", alpha=0.3)
    if len(variants) > 1:
        fig.legend(loc="outside right upper", fontsize=8)
    ax.set_title(f"{metric_label(metric)} per case and class (dots: cases)", fontsize=10)
    return fig


def roc_figure(report: Report) -> Any:
    """ROC curves per class (one-vs-rest) with AUROC in the legend."""
    fig = _figure(4.2, 4.0)
    draw_roc(fig.add_subplot(), report)
    return fig


def draw_roc(ax: Any, report: Report) -> None:
    """Draw the ROC curves of ``report`` on ``ax``."""
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="chance")
    for i, curve in enumerate(report.curves.get("roc", [])):
        label = f"{curve['class']} (AUROC {_number(curve.get('auroc'))})"
        ax.step(curve["fpr"], curve["tpr"], where="post", color=PALETTE[i % 7], lw=2, label=label)
    ax.set(
        xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (true positive rate)"
    )
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("ROC curve", fontsize=10)


def calibration_figure(report: Report) -> Any:
    """Reliability diagram: observed frequency against mean predicted probability per bin."""
    fig = _figure(4.2, 4.0)
    draw_calibration(fig.add_subplot(), report)
    return fig


def draw_calibration(ax: Any, report: Report) -> None:
    """Draw the reliability diagram of ``report`` on ``ax``."""
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="perfect calibration")
    for i, bins in enumerate(report.curves.get("calibration", [])):
        conf = np.array([np.nan if v is None else v for v in bins["confidence"]], float)
        acc = np.array([np.nan if v is None else v for v in bins["accuracy"]], float)
        counts = np.asarray(bins["counts"], float)
        keep = counts > 0
        sizes = 20 + 180 * counts[keep] / max(counts.max(), 1)
        colour = PALETTE[i % 7]
        ax.plot(conf[keep], acc[keep], "-", color=colour, lw=1.5)
        ax.scatter(conf[keep], acc[keep], s=sizes, color=colour, alpha=0.8,
                   label=f"{bins['class']} (ECE {_number(bins.get('ece'))})")  # fmt: skip
    ax.set(xlabel="predicted probability (bin mean)", ylabel="observed frequency")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Calibration (dot size: cases in bin)", fontsize=10)


def history_figure(curves: dict[str, list[Any]]) -> Any:
    """Training curves: losses on the left axis, validation metrics on the right.

    Bookkeeping and timings (``lr``, ``time_s``, ``val_time_s``, ``samples_per_s``) are not
    drawn: see :func:`~medtransfer.evaluation.report.format.curve_kind`.
    """
    from medtransfer.evaluation.report.format import curve_kind

    fig = _figure(6.5, 3.2)
    ax = fig.add_subplot()
    epochs = curves.get("epoch") or list(range(1, 1 + max(len(v) for v in curves.values())))
    right = None
    drawn = [(k, v, curve_kind(k)) for k, v in curves.items() if curve_kind(k) is not None]
    for i, (key, values, kind) in enumerate(drawn):
        points = [
            (e, v)
            for e, v in zip(epochs, values)
            if isinstance(v, (int, float)) and math.isfinite(v)
        ]
        if not points:
            continue
        is_loss = kind == "loss"
        if not is_loss and right is None:
            right = ax.twinx()
        target = ax if is_loss else right
        target.plot(*zip(*points), marker="o", ms=3, ls="-" if is_loss else "--",
                    color=PALETTE[i % 7], label=key)  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
        right.set_ylabel("validation metric")
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="outside right upper")
    ax.set_title("Training curves", fontsize=10)
    return fig


def _crop_box(overlay: OverlaySlice, margin: int = 4) -> tuple[slice, slice]:
    """Rows and columns holding the body (grey above the window floor) or any mask."""
    content = (overlay.image > 0) | (overlay.reference > 0) | (overlay.prediction > 0)
    if not content.any():
        return slice(None), slice(None)
    rows, cols = np.flatnonzero(content.any(1)), np.flatnonzero(content.any(0))
    n_rows, n_cols = content.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, n_rows)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, n_cols)),
    )


def overlay_figure(overlay: OverlaySlice, names: Sequence[str], size: float = 3.7) -> Any:
    """One slice, cropped to the body, with reference (solid) and prediction (dashed) contours."""
    from matplotlib.lines import Line2D
    from skimage.measure import find_contours

    box = _crop_box(overlay)
    image = overlay.image[box]
    rows, cols = image.shape
    height = size * rows * overlay.aspect / max(cols, 1)
    fig = _figure(size, min(max(height, 1.5), 1.6 * size) + 0.45)
    ax = fig.add_subplot()
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, aspect=overlay.aspect,
              interpolation="nearest")  # fmt: skip
    handles = []
    for value, name in enumerate(names, start=1):
        colour = PALETTE[(value - 1) % 7]
        drawn = False
        # the reference under a thicker line, the prediction dashed on top of it
        for mask, style, width in ((overlay.reference, "-", 2.2), (overlay.prediction, "--", 1.2)):
            binary = np.pad(mask[box] == value, 1).astype(float)  # pad: closed at the border
            for contour in find_contours(binary, 0.5):
                ax.plot(contour[:, 1] - 1, contour[:, 0] - 1, style, color=colour, lw=width)
                drawn = True
        if drawn:
            handles.append(Line2D([], [], color=colour, lw=3, label=name))
    handles += [
        Line2D([], [], color="black", lw=2.2, ls="-", label="reference"),
        Line2D([], [], color="black", lw=1.2, ls="--", label="prediction"),
    ]
    _fitted_legend(fig, handles, fontsize=7, frameon=False)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if overlay.radiological:
        ax.text(0.01, 0.5, "R", color="white", transform=ax.transAxes, fontsize=8, va="center")
        ax.text(0.97, 0.5, "L", color="white", transform=ax.transAxes, fontsize=8, va="center")
    return fig


def overview_figure(report: Report) -> Any:
    """The notebook view (``Report.plot()``): Dice box plots, or ROC and calibration."""
    if report.task == "segmentation":
        return dice_boxplot(report)
    fig = _figure(8.4, 4.0)
    draw_roc(fig.add_subplot(1, 2, 1), report)
    draw_calibration(fig.add_subplot(1, 2, 2), report)
    return fig


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.2f}"
