"""How a :class:`~medtransfer.diagnostics.comparison.TransferComparison` is shown: its table,
text, learning curve (metric vs labelled cases), convergence curves (metric vs optimizer step)
and the HTML section of a report. Figures are matplotlib ``Figure`` objects made without pyplot,
so nothing opens a window or changes a notebook's backend.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

__all__ = [
    "comparison_html",
    "convergence_figure",
    "frame",
    "learning_curve_figure",
    "summary_rows",
    "text_summary",
]

COLOURS = {"pretrained": "#0072B2", "scratch": "#D55E00"}  # Okabe-Ito blue / vermilion
_LABELS = {"dice": "Dice", "auroc": "AUROC", "accuracy": "accuracy"}


def _label(metric: str | None) -> str:
    return _LABELS.get(str(metric), str(metric))


def summary_rows(comparison: Any) -> list[dict[str, Any]]:
    """One row per label fraction: sizes, both arms, the difference, its verdict and the median
    share of scratch's steps the pretrained arm needed to match it (seeds that matched)."""
    rows = []
    for f in comparison.fractions:
        d = comparison.difference(f)
        pre, scr = comparison.arm("pretrained", f), comparison.arm("scratch", f)
        match = comparison.steps_to_match(f)
        shares = [r["fraction"] for r in match if r["fraction"] is not None]
        rows.append({
            "fraction": f, "n_train": comparison.n_train(f), "pretrained": pre["value"],
            "pretrained_low": pre["low"], "pretrained_high": pre["high"],
            "scratch": scr["value"], "scratch_low": scr["low"], "scratch_high": scr["high"],
            "difference": d["value"], "low": d["low"], "high": d["high"],
            "steps_to_match": float(np.median(shares)) if shares else None,
            "matched_seeds": f"{len(shares)}/{len(match)}", "verdict": comparison.verdict(f),
        })  # fmt: skip
    return rows


def frame(rows: list[dict[str, Any]]) -> Any:
    """A pandas DataFrame of ``rows`` when pandas is installed, else the rows themselves.

    Example:
        >>> len(frame([{"fraction": 1.0, "difference": 0.1}]))
        1
    """
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)


def text_summary(comparison: Any) -> str:
    """Header, verdict of the largest fraction, and a small table (the comparison's repr)."""
    from medtransfer.evaluation.report.format import text_table

    columns = ("fraction", "n_train", "pretrained", "scratch", "difference", "low", "high")
    rows = [{k: row[k] for k in columns} for row in comparison.summary_rows()]
    head = (
        f"TransferComparison({comparison.task}, {comparison.candidate} vs scratch, "
        f"{len(comparison.seeds)} seeds, {_label(comparison.metric)})"
    )
    return f"{head}\n{comparison.verdict()}\n{text_table(rows)}"


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def learning_curve_figure(comparison: Any) -> Any:
    """Metric vs labelled training cases, both arms: mean over seeds with its interval (a band
    with several fractions, error bars with one)."""
    fig, ax = _figure(5.5, 3.6)
    n = [comparison.n_train(f) for f in comparison.fractions]
    for arm, colour in COLOURS.items():
        est = [comparison.arm(arm, f) for f in comparison.fractions]
        value, low, high = (np.array([e[k] for e in est], float) for k in ("value", "low", "high"))
        if len(n) > 1:
            ax.plot(n, value, marker="o", color=colour, label=arm)
            ax.fill_between(n, low, high, color=colour, alpha=0.2, linewidth=0)
        else:
            errors = np.abs(np.vstack([value - low, high - value]))
            ax.errorbar(n, value, yerr=np.nan_to_num(errors), fmt="o", capsize=4, color=colour,
                        label=arm)  # fmt: skip
    ax.set_xlabel("labelled training cases")
    ax.set_ylabel(f"{_label(comparison.metric)} on test cases")
    level = f"{comparison.confidence * 100:g}%"
    seeds = len(comparison.seeds)
    title = f"{comparison.candidate} vs scratch (mean of {seeds} seeds, {level} CI)"
    ax.set_title(title, fontsize=9)
    if len(n) > 1 and max(n) / max(min(n), 1) >= 8:
        ax.set_xscale("log")
    ax.legend(loc="best")
    return fig


def _mean_curve(curves: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds of curves, each interpolated onto the union of their steps."""
    steps = np.array(sorted({s for curve in curves for s, _ in curve}), dtype=float)
    rows = []
    for curve in curves:
        x, y = np.array([s for s, _ in curve], float), np.array([v for _, v in curve], float)
        rows.append(np.interp(steps, x, y, left=np.nan, right=np.nan) if len(x) else steps * np.nan)
    return steps, np.nanmean(np.array(rows), axis=0) if rows else steps


def convergence_figure(comparison: Any, fraction: float | None = None) -> Any:
    """Validation metric vs optimizer step for both arms: one thin line per seed and the mean."""
    import warnings

    fig, ax = _figure(5.5, 3.6)
    f = comparison.fractions[0] if fraction is None else fraction
    for arm, colour in COLOURS.items():
        curves = []
        for run in comparison.select(f, arm):
            curve = [(int(s), float(v)) for s, v in run["curve"] if not _missing(v)]
            curves.append(curve)
            if curve:
                ax.plot(*zip(*curve), color=colour, alpha=0.35, linewidth=0.8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            steps, mean = _mean_curve(curves)
        ax.plot(steps, mean, color=colour, linewidth=2, marker="o", markersize=3,
                label=f"{arm} (mean of {len(curves)})")  # fmt: skip
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"validation {_label(comparison.curve_metric)}")
    ax.set_title(
        f"Convergence with {f:.0%} of the labels ({comparison.n_train(f)} cases)", fontsize=9
    )
    ax.legend(loc="best")
    return fig


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> str:
    return "–" if _missing(value) else f"{float(value):.3f}"


def comparison_html(comparison: Any) -> str:
    """An HTML fragment: what was compared, the verdict per fraction, a table and both plots."""
    from medtransfer.evaluation.report.html_page import figure_html

    e = html.escape
    level = f"{comparison.confidence * 100:g}%"
    head = ("fraction", "labelled cases", "pretrained", "scratch", "difference", f"{level} CI",
            "steps to match", "verdict")  # fmt: skip
    body = "".join(
        "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in (
            f"{r['fraction']:g}", r["n_train"], _number(r["pretrained"]), _number(r["scratch"]),
            _number(r["difference"]), f"{_number(r['low'])} to {_number(r['high'])}",
            "–" if r["steps_to_match"] is None
            else f"{r['steps_to_match']:.0%} ({r['matched_seeds']} seeds)",
            r["verdict"],
        )) + "</tr>"
        for r in comparison.summary_rows()
    )  # fmt: skip
    meta = comparison.metadata
    intro = (
        f"<p><b>{e(comparison.verdict())}</b></p><p>{e(comparison.candidate)} fine-tuned from its "
        f"pretrained weights and from random initialisation with the same recipe, preset and "
        f"budget ({e(str(meta.get('budget', '')))}), {len(comparison.seeds)} seeds per arm; "
        f"final models scored on {meta.get('n_test', '?')} test cases "
        f"({e(_label(comparison.metric))}). "
        f"Intervals: two-level paired bootstrap over seeds and cases "
        f"({comparison.n_resamples} resamples). Steps to match: the share of scratch's optimizer "
        f"steps after which the pretrained model's validation {e(_label(comparison.curve_metric))} "
        "reached scratch's final value (median over the seeds that reached it).</p>"
    )  # fmt: skip
    table = "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + f"</tr>{body}</table>"
    figures = figure_html(
        comparison.plot_learning_curve(), "learning curve: metric vs labelled cases"
    ) + figure_html(comparison.plot_convergence(), "convergence: validation metric vs step")
    return intro + table + figures
