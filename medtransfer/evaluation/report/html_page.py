"""One self-contained HTML page for a :class:`~medtransfer.evaluation.Report`.

Inline CSS, plots embedded as base64 PNGs, no script, font, stylesheet or link to anything outside
the file (it opens on an air-gapped workstation and can be attached to an e-mail). Every piece of
text comes from the report and is escaped. Order: headline numbers with 95% CIs, summary table,
box plots, extra sections (``Report.add_section``), example overlays (best/median/worst), saliency
maps (classification), ROC and calibration, training curves, cases, methods, run details.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from medtransfer.evaluation.report.format import (
    format_estimate,
    format_value,
    history_data,
    metric_label,
)
from medtransfer.evaluation.report.methods import methods_items, run_details
from medtransfer.evaluation.report.saliency_view import saliency_html
from medtransfer.evaluation.report.sections import sections_html
from medtransfer.evaluation.wording import count

if TYPE_CHECKING:
    from medtransfer.evaluation.report.report import Report

__all__ = ["figure_html", "render_html", "summary_html"]

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2733;margin:0;
background:#f4f6f8;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #dde3e9;
padding-bottom:4px}.sub{color:#5a6b7b;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #cfd8e0;border-radius:8px;
padding:10px 16px;min-width:190px;background:#f9fbfc}.card .what{font-size:13px;color:#5a6b7b}
.card .num{font-size:30px;font-weight:600}.card .ci{font-size:13px;color:#33414e}
.card .post{font-size:12px;color:#5a6b7b;margin-top:4px}
.note{background:#fff7e0;border-left:4px solid #e6a700;padding:6px 12px;font-size:14px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #d6dde4;
padding:3px 8px;text-align:right}th{background:#eef2f5}th[colspan]{text-align:center}td.id,th.id{text-align:left}
td.low{background:#fde0dd}table.left td,table.left th{text-align:left}tr.role td.id{font-weight:600}
figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}
figcaption{font-size:13px;color:#33414e;max-width:420px}
img{max-width:100%}figure.overlay{width:350px}td .ci{font-size:11px;color:#5a6b7b}.methods li{font-size:13px;margin-bottom:4px}.small{font-size:12px;color:#5a6b7b}
"""


def e(text: Any) -> str:
    """Escaped text of anything (quotes too)."""
    return html.escape(str(text), quote=True)


def _image(fig: Any, alt: str) -> str:
    from medtransfer.evaluation.report.plots import png_base64

    return f'<img alt="{e(alt)}" src="data:image/png;base64,{png_base64(fig)}">'


def figure_html(fig: Any, alt: str) -> str:
    """A matplotlib figure as a self-contained ``<img>`` (base64 PNG, escaped ``alt`` text),
    for the HTML fragment of a report section; the figure is closed afterwards.

    Example:
        >>> from matplotlib.figure import Figure
        >>> fig = Figure(figsize=(1, 1)); _ = fig.add_subplot().plot([0, 1])
        >>> figure_html(fig, "a line").startswith('<img alt="a line" src="data:image/png;base64,')
        True
    """
    text = _image(fig, alt)
    _close(fig)
    return text


def _close(fig: Any) -> None:
    """Free a figure: pyplot's registry forgets it (if pyplot made it), its artists go."""
    import sys

    pyplot = sys.modules.get("matplotlib.pyplot")  # never import pyplot just to close
    if pyplot is not None:
        pyplot.close(fig)
    fig.clear()


def _cards(report: Report) -> str:
    cards = []
    post = {(r["metric"], r.get("class")): r for r in report.summary}
    if report.task == "segmentation":
        rows = [r for r in report.summary if r["metric"] == "dice"]
    elif report.metadata.get("multilabel"):
        rows = [r for r in report.summary if r.get("class") in ("macro", "micro")]
        rows = [r for r in rows if r["metric"] in ("auroc", "auprc")]
    else:
        wanted = ("auroc", "sensitivity", "specificity", "accuracy")
        rows = [r for r in report.summary if r["metric"] in wanted and r.get("class") == "all"]
    for row in rows:
        cls = row.get("class")
        what = metric_label(row["metric"]) + ("" if cls in (None, "all") else f" · {cls}")
        text = format_estimate(row)
        value, _, rest = text.partition(" ")
        extra = ""
        twin = post.get((f"{row['metric']}_post", cls))
        if twin is not None:
            extra = f'<div class="post">post-processed: {e(format_estimate(twin))}</div>'
        cards.append(
            f'<div class="card"><div class="what">{e(what)}</div><div class="num">{e(value)}</div>'
            f'<div class="ci">{e(rest)}</div>{extra}</div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


class Raw(str):
    """Text that is already HTML (built from escaped parts): not escaped again."""


def _cell_html(text: Any) -> str:
    return text if isinstance(text, Raw) else e(text)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], first_id: bool = True) -> str:
    """Rows of cells (text, :class:`Raw` HTML, or a ``(text, css class)`` pair) to a table."""
    head = "".join(
        f"<th{' class=id' if i == 0 and first_id else ''}>{e(h)}</th>" for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text, cls = cell if isinstance(cell, tuple) else (cell, "")
            cls = "id" if i == 0 and first_id else cls
            text = _cell_html(text)
            cells.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary_table(report: Report) -> str:
    metrics = list(dict.fromkeys(r["metric"] for r in report.summary))
    classes = list(dict.fromkeys(r.get("class") for r in report.summary))
    lookup = {(r["metric"], r.get("class")): _estimate_cell(r) for r in report.summary}
    if report.metadata.get("multilabel"):  # one row per finding, then macro and micro
        counts, cuts = report.metadata.get("label_counts", {}), report.metadata.get("threshold")
        header = ["finding", "n", "positives", *[metric_label(m) for m in metrics], "threshold"]
        rows = []
        for c in classes:
            n = next((r.get("n") for r in report.summary if r.get("class") == c), "")
            positives = counts.get(c, {}).get("positive", "")
            cut = cuts.get(c, "") if isinstance(cuts, dict) else ""
            name = {"macro": "macro mean", "micro": "micro (pooled)"}.get(str(c), str(c))
            rows.append([name, str(n), str(positives), *[lookup.get((m, c), "–") for m in metrics],
                         format_value(cut, digits=3) if cut != "" else ""])  # fmt: skip
    elif report.task == "segmentation":
        n = {r.get("class"): r.get("n") for r in report.summary if r["metric"] == "dice"}
        header = ["class", "n", *[metric_label(m) for m in metrics]]
        rows = [[str(c), str(n.get(c, "")), *[lookup.get((m, c), "–") for m in metrics]]
                for c in classes]  # fmt: skip
    else:
        overall = "all classes (macro mean)" if len(classes) > 1 else "value (95% CI)"
        header = ["metric", *[(overall if c == "all" else str(c)) for c in classes]]
        rows = [[metric_label(m), *[lookup.get((m, c), "–") for c in classes]] for m in metrics]
    return _table(header, rows)


def _estimate_cell(row: dict[str, Any]) -> Raw:
    """``0.91`` over a small ``0.88–0.93`` (and ``n`` for classification, where it varies)."""
    metric = str(row["metric"])
    value = format_value(row.get("value"), metric)
    low, high = row.get("low"), row.get("high")
    if low is None or high is None or value == "–" or math.isnan(float(low) + float(high)):
        return Raw(e(value))
    interval = f"{format_value(low, metric)}–{format_value(high, metric)}"
    return Raw(f"<b>{e(value)}</b><br><span class=ci>{e(interval)}</span>")


def summary_html(report: Report) -> str:
    """Headline and summary table only (Jupyter's ``_repr_html_``; no images, fast)."""
    n = report.metadata.get("n_cases", len(report.cases))
    title = f"{report.task.capitalize()} report · {count(n, 'case')} · {report.metadata.get('model', '')}"
    return f"<div><b>{e(title)}</b>{_cards(report)}{_summary_table(report)}</div>"


def _cases_table(report: Report) -> str:
    from medtransfer.evaluation.report.plots import class_names

    roles = {o.case_id: o.role for o in report.overlays}
    if report.task == "segmentation":
        metrics = [m for m in ("dice", "dice_post", "hd95", "nsd") if _has(report, m)]
        names = class_names(report)
        columns = [(m, c) for c in names for m in metrics]
        rows = []
        for row in report.cases:
            cells: list[Any] = [_case_name(row["case_id"], roles)]
            for m, c in columns:
                value = row.get(f"{m}/{c}")
                low = m.startswith("dice") and value is not None and not math.isnan(value)
                low = low and value < 0.5
                cells.append((format_value(value, m), "low" if low else ""))
            rows.append(cells)
        groups = "".join(f'<th colspan="{len(metrics)}">{e(c)}</th>' for c in names)
        short = "".join(f"<th>{e(_SHORT.get(m, m))}</th>" for m in metrics) * len(names)
        table = _table(["case"] * (1 + len(columns)), rows)
        head = f'<thead><tr><th class=id rowspan="2">case</th>{groups}</tr><tr>{short}</tr></thead>'
        return re.sub(r"<thead>.*?</thead>", lambda _: head, table, count=1, flags=re.S)
    return _classification_cases(report)


_SHORT = {"dice": "Dice", "dice_post": "Dice PP", "hd95": "HD95 mm", "nsd": "NSD"}


def _findings_cases(report: Report) -> str:
    """Multi-label: one column per finding, ``P / true label``; red where the call is wrong."""
    names = [str(n) for n in report.metadata.get("class_names") or []]
    rows = []
    for r in report.cases:
        labels, calls = r.get("label") or [], r.get("prediction") or []
        cells: list[Any] = [str(r["case_id"])]
        for k, name in enumerate(names):
            truth = labels[k] if k < len(labels) else None
            wrong = truth is not None and k < len(calls) and calls[k] != truth
            text = f"{_plain(r.get(f'score/{name}'))} / {_plain(truth)}"
            cells.append((text, "low" if wrong else ""))
        rows.append(cells)
    return _table(["case", *[f"P({n}) / true" for n in names]], rows)


def _classification_cases(report: Report) -> str:
    if report.metadata.get("multilabel"):
        return _findings_cases(report)
    names = [str(n) for n in report.metadata.get("class_names") or []]

    def name(value: Any) -> str:
        if isinstance(value, int) and 0 <= value < len(names):
            return names[value]
        return _plain(value)

    keys = [k for k in dict.fromkeys(k for r in report.cases for k in r)]
    keys = [k for k in keys if k not in ("case_id", "label", "prediction")]
    rows = []
    for r in report.cases:
        wrong = "low" if r.get("prediction") != r.get("label") else ""
        cells = [str(r["case_id"]), name(r.get("label")), *[_plain(r.get(k)) for k in keys]]
        rows.append([*cells, (name(r.get("prediction")), wrong)])
    header = [
        f"P({names[1]})"
        if k == "score" and len(names) == 2
        else f"P({k[6:]})"
        if k.startswith("score/")
        else k
        for k in keys
    ]
    return _table(["case", "true class", *header, "predicted class"], rows)


def _has(report: Report, metric: str) -> bool:
    return any(r["metric"] == metric for r in report.summary)


def _case_name(case_id: str, roles: dict[str, str]) -> str:
    return f"{case_id} ({roles[case_id]})" if case_id in roles else str(case_id)


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return format_value(value, digits=3)
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return "–" if value is None else str(value)


def _overlays(report: Report) -> str:
    from medtransfer.evaluation.report.plots import class_names, overlay_figure

    names = class_names(report)
    figures = []
    for overlay in report.overlays:
        dice = ", ".join(f"{k} {format_value(v, 'dice')}" for k, v in overlay.dice.items())
        caption = f"{overlay.role.capitalize()} case: {overlay.case_id} — Dice {dice}."
        if overlay.radiological:
            caption += (
                f" Axial slice {overlay.slice_index + 1} of {overlay.n_slices}"
                " (largest reference area), patient's right on the left."
            )
        fig = overlay_figure(overlay, names)
        figures.append(
            f"<figure class=overlay>{_image(fig, caption)}<figcaption>{e(caption)}</figcaption></figure>"
        )
    return "".join(figures)


def _own_plot(history: Any) -> Any:
    """A figure drawn by the history's own ``plot(ax=...)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.2), dpi=100, layout="constrained")
    history.plot(ax=fig.add_subplot())
    return fig


def render_html(report: Report) -> str:
    """The whole page as a string (see the module docstring for what it contains)."""
    from medtransfer.evaluation.report.plots import (
        calibration_figure,
        dice_boxplot,
        history_figure,
        roc_figure,
    )

    meta = report.metadata
    n = meta.get("n_cases", len(report.cases))
    title = f"{report.task.capitalize()} evaluation"
    sub = " · ".join(
        str(x)
        for x in (
            meta.get("model"),
            meta.get("encoder"),
            meta.get("weights"),
            count(n, "case"),
            meta.get("date"),
        )  # fmt: skip
        if x
    )
    parts = [
        f"<header><h1>{e(title)}</h1><p class=sub>{e(sub)}</p></header>",
        "<h2>Key results</h2>",
        _cards(report),
    ]
    if 0 < n < 20:
        parts.append(
            f'<p class="note">Only {e(count(n, "case"))}: the 95% confidence intervals are '
            "approximate (the bootstrap is slightly too narrow with fewer than about 20 "
            "cases).</p>"
        )
    parts += ["<h2>Summary</h2>", _summary_table(report)]
    if report.task == "segmentation":
        parts.append('<p class="small">Mean over cases; below it the 95% confidence interval '
                     "(bootstrap over cases). n: cases where the class is present in the "
                     "reference or the prediction (see Methods).</p>")  # fmt: skip
    else:
        on = "the one case" if n == 1 else f"all {n} cases"
        parts.append(f'<p class="small">Value on {e(on)}; below it the 95% confidence '
                     "interval (bootstrap over cases).</p>")  # fmt: skip
    if report.task == "segmentation" and report.cases:
        parts += [
            "<h2>Distribution over cases</h2>",
            _image(dice_boxplot(report), "Dice box plots"),
        ]
        if _has(report, "hd95"):
            parts.append(_image(dice_boxplot(report, "hd95"), "HD95 box plots"))
    if report.sections:
        parts.append(sections_html(report.sections))
    if report.overlays:
        parts += [
            "<h2>Examples: best, median and worst case</h2>",
            '<p class="small">Solid lines: reference segmentation; dashed lines: model prediction'
            " (before post-processing); one colour per class.</p>",
            _overlays(report),
        ]
    if report.saliency:
        parts.append(saliency_html(report))
    if report.curves.get("roc"):
        parts += [
            "<h2>Discrimination and calibration</h2>",
            _image(roc_figure(report), "ROC curve"),
            _image(calibration_figure(report), "Calibration"),
        ]
    curves = history_data(report.history)
    if curves:
        parts += ["<h2>Training</h2>", _image(history_figure(curves), "Training curves")]
    elif report.history is not None:
        parts += ["<h2>Training</h2>", _image(_own_plot(report.history), "Training curves")]
    parts += ["<h2>Cases</h2>", _cases_table(report)]
    if report.task == "segmentation":
        parts.append('<p class="small">Dice PP: Dice after post-processing; NSD: surface Dice. '
                     "Red cells: Dice below 0.5. (best/median/worst) marks the cases shown "
                     "above. All metrics of every case are in the CSV (Report.to_csv).</p>")  # fmt: skip
    elif report.metadata.get("multilabel"):
        parts.append('<p class="small">Probability of each finding / true label (– not known); '
                     "red cells: wrong calls at the finding's threshold.</p>")  # fmt: skip
    else:
        cut = report.metadata.get("threshold")
        parts.append('<p class="small">Red cells: wrong predictions (threshold '
                     f"{e(0.5 if cut is None else cut)} on the score, argmax for several "
                     "classes).</p>")  # fmt: skip
    items = "".join(f"<li>{e(item)}</li>" for item in methods_items(report))
    parts += [f'<h2>Methods</h2><ul class="methods">{items}</ul>', "<h2>Run details</h2>"]
    parts.append(
        _table(["item", "value"], run_details(report)).replace("<table>", '<table class="left">')
    )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head>\n<body><main>\n{body}\n"
        "</main></body></html>\n"
    )
