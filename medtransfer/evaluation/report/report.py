"""``Report``: the result of an evaluation as plain tables, written to CSV, JSON or one HTML file.

A report holds numbers, never images of patients' identities: cases are keyed by ``case_id`` only
(the record's ``case_id``, never its ``patient_id`` or a DICOM header field). The overlay slices
kept for the HTML page are small 2D arrays of the best, median and worst cases.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.format import (
    format_estimate,
    history_data,
    json_safe,
    metric_label,
    text_table,
)
from medtransfer.evaluation.report.sections import make_section
from medtransfer.evaluation.wording import count
from medtransfer.io import atomic_path

if TYPE_CHECKING:
    from medtransfer.evaluation.report.saliency_view import SaliencySlice

__all__ = ["OverlaySlice", "Report"]

_TASKS = ("segmentation", "classification")
SUMMARY_COLUMNS = ("metric", "class", "value", "low", "high", "n", "confidence")


@dataclass(frozen=True)
class OverlaySlice:
    """One display slice of a case for the overlay panel (radiological orientation).

    Attributes:
        case_id: the case.
        role: ``"best"``, ``"median"`` or ``"worst"`` (by mean Dice over classes).
        slice_index: index of the slice along the axial axis, and ``n_slices`` their number.
        image: (rows, cols) uint8 grey values after the display window (0 = window low).
        reference, prediction: (rows, cols) label maps.
        aspect: row spacing / column spacing (for ``imshow(aspect=...)``).
        dice: Dice per class name on the whole case (not the slice).
        window: ``(level, width)`` used for ``image``, or None (percentile scaling).
        radiological: True when reoriented to the radiological view (3D images); 2D images are
            shown as stored.
    """

    case_id: str
    role: str
    slice_index: int
    n_slices: int
    image: np.ndarray
    reference: np.ndarray
    prediction: np.ndarray
    aspect: float = 1.0
    dice: Mapping[str, float] = field(default_factory=dict)
    window: tuple[float, float] | None = None
    radiological: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Everything but the pixels (for JSON)."""
        return {
            "case_id": self.case_id,
            "role": self.role,
            "slice_index": self.slice_index,
            "n_slices": self.n_slices,
            "dice": {k: json_safe(v) for k, v in self.dice.items()},
            "window": None if self.window is None else list(self.window),
        }


@dataclass
class Report:
    """An evaluation: summary with confidence intervals, per-case table, metadata, plots.

    Attributes:
        task: ``"segmentation"`` or ``"classification"``.
        summary: rows ``{"metric", "class", "value", "low", "high", "n", "confidence"}``; the
            interval is a percentile bootstrap over cases (see ``docs/evaluation.md``).
        cases: one row per case, ``{"case_id": ..., "<metric>/<class>": value, ...}``.
        metadata: model, encoder, weights, preset, date, medtransfer version, settings.
        history: the training ``History`` (or a dict of per-epoch lists), or None.
        curves: classification ROC and calibration points per class (lists of numbers).
        overlays: slices of the best, median and worst cases (segmentation).
        predictions: ``{case_id: label map}`` when evaluated with ``keep_predictions=True``.
        sections: extra parts of the HTML page, ``{"title", "html", "data"}`` each (see
            :meth:`add_section`), shown after the summary and before the methods.
        saliency: saliency slices of the most and least confident cases of each class
            (classification with ``saliency=True``); the JSON keeps their case ids and slices.

    Example:
        >>> report = Report(
        ...     "segmentation",
        ...     summary=[{"metric": "dice", "class": "liver", "value": 0.912, "low": 0.88,
        ...               "high": 0.934, "n": 12}],
        ...     cases=[{"case_id": "case-01", "dice/liver": 0.93}],
        ... )
        >>> report.headline()
        ['Dice liver 0.91 (95% CI 0.88–0.93), n=12']
        >>> report.case("case-01")["dice/liver"]
        0.93
    """

    task: str
    summary: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    history: Any = None
    curves: dict[str, Any] = field(default_factory=dict)
    overlays: list[OverlaySlice] = field(default_factory=list)
    predictions: dict[str, Any] | None = field(default=None, repr=False)
    sections: list[dict[str, Any]] = field(default_factory=list)
    saliency: list[SaliencySlice] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise ConfigError(f"Report task={self.task!r}; allowed values: {_TASKS}.")
        for row in self.summary:
            missing = [k for k in ("metric", "value") if k not in row]
            if missing:
                raise ConfigError(f"summary row {row!r} lacks {missing}; rows need metric, value.")
        ids = [str(row.get("case_id")) for row in self.cases]
        if len(set(ids)) != len(ids) or any(row.get("case_id") is None for row in self.cases):
            raise ConfigError("every row of Report.cases needs a unique 'case_id'.")
        sections = list(self.sections)
        self.sections = []
        for section in sections:
            if not isinstance(section, Mapping):
                raise ConfigError(f"Report.sections holds {section!r}; each must be a dict.")
            self.add_section(section.get("title"), section.get("html"), section.get("data"))

    def add_section(self, title: str, html: str, data: Mapping[str, Any] | None = None) -> None:
        """Add a part to the HTML page (an ``<h2>`` title and a fragment), or replace the one
        with the same title; ``data`` (a JSON-serialisable dict) is kept in the JSON.

        The fragment is shown as given (it comes from the library, such as
        ``Ranking.html_section()``); the title is escaped. Sections follow the summary and
        come before the methods, in the order they were first added.

        Raises:
            ConfigError: an empty title, a fragment that is not a str, or data that is not a
                JSON-serialisable dict.

        Example:
            >>> report = Report("classification")
            >>> report.add_section("Encoder ranking", "<p>old</p>", {"best": "resnet18"})
            >>> report.add_section("Encoder ranking", "<p>new</p>")
            >>> [(s["title"], s["html"]) for s in report.sections]
            [('Encoder ranking', '<p>new</p>')]
        """
        section = make_section(title, html, data)
        for i, old in enumerate(self.sections):
            if old["title"] == section["title"]:
                self.sections[i] = section
                return
        self.sections.append(section)

    # -- tables -------------------------------------------------------------------------------
    def estimate(self, metric: str, class_name: str | None = None) -> dict[str, Any]:
        """The summary row of ``metric`` (and class); ConfigError listing the rows otherwise."""
        for row in self.summary:
            if row["metric"] == metric and (class_name is None or row.get("class") == class_name):
                return row
        known = sorted({f"{r['metric']}/{r.get('class')}" for r in self.summary})
        raise ConfigError(f"no summary row {metric!r}/{class_name!r}; the report has {known}.")

    def case(self, case_id: str) -> dict[str, Any]:
        """The row of one case."""
        for row in self.cases:
            if row["case_id"] == case_id:
                return row
        raise ConfigError(
            f"case_id {case_id!r} is not in the report ({count(len(self.cases), 'case')})."
        )

    def headline(self) -> list[str]:
        """The numbers to quote, one line each: the first metric of the task per class.

        Segmentation gives Dice per class, with the post-processed Dice beside it when the
        evaluation post-processed the predictions:
        ``Dice liver 0.87 (95% CI 0.84–0.90), n=12; post-processed 0.60 (95% CI ...), n=12``.
        Multi-label findings give AUROC per finding, then its macro and micro averages:
        ``AUROC opacity 0.91 (95% CI 0.85–0.96), n=38``.
        """
        first = "dice" if self.task == "segmentation" else None
        rows = [r for r in self.summary if first is None or r["metric"] == first]
        if self.task == "classification" and self.metadata.get("multilabel"):
            rows = [r for r in self.summary if r["metric"] == "auroc"]  # findings, macro, micro
        elif self.task == "classification":
            wanted = ("auroc", "sensitivity", "specificity", "accuracy")
            rows = [r for r in self.summary if r["metric"] in wanted and r.get("class") == "all"]
        post = {r.get("class"): r for r in self.summary if r["metric"] == f"{first}_post"}
        lines = []
        for row in rows:
            name = metric_label(row["metric"])
            cls = row.get("class")
            prefix = f"{name} {cls}" if cls not in (None, "all") else name
            twin = f"; post-processed {format_estimate(post[cls])}" if cls in post else ""
            lines.append(f"{prefix} {format_estimate(row)}{twin}")
        return lines

    def summary_table(self) -> Any:
        """``Report.summary`` as a pandas DataFrame (needs pandas)."""
        return _dataframe(self.summary, SUMMARY_COLUMNS)

    def cases_table(self) -> Any:
        """``Report.cases`` as a pandas DataFrame indexed by case_id (needs pandas)."""
        return _dataframe(self.cases, None).set_index("case_id")

    def __repr__(self) -> str:
        n = self.metadata.get("n_cases", len(self.cases))
        head = f"Report({self.task}, {count(n, 'case')}, model {self.metadata.get('model', '?')})"
        rows = [
            {"metric": r["metric"], "class": r.get("class"), "estimate": format_estimate(r)}
            for r in self.summary
        ]
        return f"{head}\n{text_table(rows)}"

    def _repr_html_(self) -> str:
        from medtransfer.evaluation.report.html_page import summary_html

        return summary_html(self)

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything but pixels and predictions, as JSON-safe plain data."""
        history = history_data(self.history)
        return json_safe(
            {
                "task": self.task,
                "metadata": self.metadata,
                "summary": self.summary,
                "cases": self.cases,
                "curves": self.curves,
                "overlays": [o.as_dict() for o in self.overlays],
                "saliency": [s.as_dict() for s in self.saliency],
                "history": history,
                "sections": self.sections,
            }
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Report:
        """Read a report written by :meth:`to_json` (without overlay pixels)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            data["task"],
            summary=data.get("summary", []),
            cases=data.get("cases", []),
            metadata=data.get("metadata", {}),
            history=data.get("history"),
            curves=data.get("curves", {}),
            sections=data.get("sections", []),
        )

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON (atomically, NaN as null); returns the path."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        with atomic_path(path) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
        return Path(path)

    def to_csv(self, path: str | os.PathLike[str], table: str = "cases") -> Path:
        """Write the per-case table (or ``table="summary"``) as CSV, NaN as an empty cell."""
        if table not in ("cases", "summary"):
            raise ConfigError(f"table={table!r}; allowed values: 'cases', 'summary'.")
        rows = self.cases if table == "cases" else self.summary
        columns = list(dict.fromkeys(k for row in rows for k in row))
        if table == "summary":
            columns = [c for c in SUMMARY_COLUMNS if c in columns]
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
        return Path(path)

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write one self-contained HTML page (inline CSS, embedded PNG plots, no links)."""
        from medtransfer.evaluation.report.html_page import render_html

        text = render_html(self)
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return Path(path)

    def plot(self) -> Any:
        """The report's main figure for notebooks (matplotlib ``Figure``)."""
        from medtransfer.evaluation.report.plots import overview_figure

        return overview_figure(self)


def _csv_cell(value: Any) -> Any:
    value = json_safe(value)
    if isinstance(value, list):
        return json.dumps(value)
    return "" if value is None else value


def _dataframe(rows: list[dict[str, Any]], columns: Any) -> Any:
    try:
        import pandas as pd
    except ImportError as err:
        raise ConfigError(
            "summary_table()/cases_table() need pandas (pip install pandas); without it use "
            "report.summary / report.cases (lists of dicts) or print(report)."
        ) from err
    frame = pd.DataFrame(rows)
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame
