"""``Ranking``: candidate encoders ordered by a transferability score, and how it is shown.

The result of :func:`~medtransfer.diagnostics.rank_encoders`: one row per candidate (score,
feature size, time, or why it was skipped), best first. It prints as a table, writes Markdown,
JSON and an HTML section of a :class:`~medtransfer.evaluation.Report`, and checks itself against
fine-tuned results with :meth:`Ranking.agreement` (a score is only useful if it orders encoders
the way fine-tuning does).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.diagnostics.json_files import write_json
from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.format import json_safe
from medtransfer.evaluation.report.html_page import figure_html

__all__ = ["METHOD_DESCRIPTIONS", "Ranking"]

#: One sentence per score: what the number means (shown above the table in HTML).
METHOD_DESCRIPTIONS = {
    "logme": "LogME: the log marginal evidence per sample of a linear model on the features, "
    "higher is better.",
    "h_score": "H-score: how much of the feature variance lies between the class means "
    "(trace of cov(f)⁻¹·cov(E[f|y])), higher is better.",
    "leep": "LEEP: the mean log-likelihood of the labels when the source model's class "
    "probabilities are mapped to the target classes, higher is better.",
    "linear_probe": "Linear probe: the cross-validated balanced accuracy of a logistic "
    "regression on the frozen features, higher is better.",
}
_TASKS = ("segmentation", "classification")
_HEADER = ("#", "candidate", "score", "feature dim", "seconds", "status")
_COLUMNS = (
    "candidate",
    "score",
    "method",
    "feature_dim",
    "n_samples",
    "seconds",
    "status",
    "reason",
)


def _display_name(key: str, names: set[str]) -> str:
    """A ranked candidate's name for ``key``: itself, or its short form (``"resnet18:random"``)."""
    if key in names:
        return key
    from medtransfer.diagnostics.candidates import as_candidate

    try:
        name = as_candidate(key).name
    except ConfigError:
        return key
    return name if name in names else key


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "score":
        return f"{value:.4g}"
    if kind == "seconds":
        return f"{value:.1f}"
    return str(value)


@dataclass
class Ranking:
    """Candidate encoders ordered by a transferability score, best first.

    Attributes:
        method: the score (``"logme"``, ``"h_score"``, ``"leep"``, ``"linear_probe"``).
        task: ``"segmentation"`` or ``"classification"``.
        rows: one per candidate, ``{"candidate", "score", "method", "feature_dim",
            "n_samples", "seconds", "status": "ok"|"skipped", "reason"}``; sorted on
            construction: ok rows by score (highest first), then skipped rows in the given
            order. An ok row without a finite score becomes skipped ("score is not finite").
        metadata: how it was computed (n_cases, max_samples, sampling, version, date...).

    Example:
        >>> ranking = Ranking("logme", "classification", [
        ...     {"candidate": "resnet18", "score": -0.91, "feature_dim": 512},
        ...     {"candidate": "vit_tiny", "status": "skipped", "reason": "out of memory"},
        ...     {"candidate": "tf_efficientnet_lite0", "score": -0.42, "feature_dim": 1280},
        ... ])
        >>> ranking.best, ranking.scores
        ('tf_efficientnet_lite0', {'tf_efficientnet_lite0': -0.42, 'resnet18': -0.91})
        >>> print(ranking)
        Ranking by logme (classification): 3 candidates, 1 skipped
        #  candidate              score  feature dim  seconds  status
        1  tf_efficientnet_lite0  -0.42  1280         –        ok
        2  resnet18               -0.91  512          –        ok
        –  vit_tiny               –      –            –        skipped: out of memory
    """

    method: str
    task: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ConfigError(
                f"Ranking method={self.method!r}; pass the score's name, e.g. 'logme'."
            )
        if self.task not in _TASKS:
            raise ConfigError(f"Ranking task={self.task!r}; allowed values: {_TASKS}.")
        rows = [self._checked(row) for row in self.rows]
        names = [r["candidate"] for r in rows]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"Ranking rows name {twice} more than once; give each a label.")
        ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -r["score"])
        self.rows = ok + [r for r in rows if r["status"] != "ok"]

    def _checked(self, row: Any) -> dict[str, Any]:
        if not isinstance(row, Mapping) or not isinstance(row.get("candidate"), str):
            raise ConfigError(f"Ranking row {row!r} needs a 'candidate' name (str).")
        score = row.get("score")  # before _plain, which turns NaN into None
        status = row.get("status") or ("ok" if score is not None else "skipped")
        if status not in ("ok", "skipped"):
            raise ConfigError(
                f"Ranking row {row['candidate']!r}: status={status!r}; 'ok' or 'skipped'."
            )
        out = {key: None for key in _COLUMNS} | {"method": self.method} | json_safe(dict(row))
        if isinstance(score, np.generic):
            score = score.item()
        finite = isinstance(score, (int, float)) and not isinstance(score, bool)
        if status == "ok" and not (finite and math.isfinite(score)):
            status, out["reason"] = "skipped", out["reason"] or "score is not finite"
        out["status"] = status
        if status == "ok":
            out["score"] = float(score)
        return out

    # -- numbers ------------------------------------------------------------------------------
    @property
    def best(self) -> str | None:
        """The top candidate (None when every candidate was skipped)."""
        return self.rows[0]["candidate"] if self.rows and self.rows[0]["status"] == "ok" else None

    @property
    def scores(self) -> dict[str, float]:
        """``{candidate: score}`` of the ranked (ok) candidates, best first."""
        return {r["candidate"]: r["score"] for r in self.rows if r["status"] == "ok"}

    def agreement(
        self, fine_tuned: Mapping[str, float], *, higher_is_better: bool = True
    ) -> dict[str, Any]:
        """How well the score orders the candidates the way fine-tuning did.

        Args:
            fine_tuned: ``{candidate: metric after fine-tuning}`` (e.g. validation Dice); a
                candidate is its name in the ranking or its short form (``"resnet18:random"``).
            higher_is_better: False for a metric such as HD95 or a loss.

        Returns:
            ``{"n", "spearman_rho", "spearman_p", "kendall_tau", "kendall_p", "top_match",
            "left_out", "reason"}`` over the ok candidates present in both: rank correlations
            (scipy), whether the best by score is the best fine-tuned (None under 2 in
            common), the candidates left out, and why the correlations are None (under 3 in
            common, or constant values).

        Example:
            >>> r = Ranking("logme", "classification", [{"candidate": c, "score": s}
            ...     for c, s in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]])
            >>> out = r.agreement({"a": 0.6, "b": 0.7, "c": 0.8, "d": 0.9, "e": 0.5})
            >>> out["spearman_rho"], out["kendall_tau"], out["n"], out["top_match"], out["left_out"]
            (1.0, 1.0, 4, True, ['e'])
        """
        from scipy import stats

        sign = 1.0 if higher_is_better else -1.0
        names = {r["candidate"] for r in self.rows}
        tuned = {_display_name(str(k), names): json_safe(v) for k, v in fine_tuned.items()}
        common = [
            (r["candidate"], r["score"], sign * float(tuned[r["candidate"]]))
            for r in self.rows
            if r["status"] == "ok"
            and isinstance(tuned.get(r["candidate"]), (int, float))
            and math.isfinite(tuned[r["candidate"]])
        ]
        kept = {c for c, _, _ in common}
        left_out = [r["candidate"] for r in self.rows if r["candidate"] not in kept]
        left_out += [c for c in tuned if c not in kept and c not in left_out]
        out: dict[str, Any] = {"n": len(common), "spearman_rho": None, "spearman_p": None,
                               "kendall_tau": None, "kendall_p": None, "top_match": None,
                               "left_out": left_out, "reason": None}  # fmt: skip
        if len(common) >= 2:
            top = max(m for _, _, m in common)
            out["top_match"] = bool(common[0][2] == top)  # rows are best-first by score
        scores = np.array([s for _, s, _ in common])
        metric = np.array([m for _, _, m in common])
        if len(common) < 3:
            out["reason"] = f"{len(common)} candidates ranked and fine-tuned; need at least 3."
        elif np.ptp(scores) == 0 or np.ptp(metric) == 0:
            out["reason"] = "the scores or the fine-tuned metric are all equal."
        else:
            rho, rho_p = stats.spearmanr(scores, metric)
            tau, tau_p = stats.kendalltau(scores, metric)
            out.update(spearman_rho=float(rho), spearman_p=float(rho_p),
                       kendall_tau=float(tau), kendall_p=float(tau_p))  # fmt: skip
        return out

    # -- tables -------------------------------------------------------------------------------
    def _table_rows(self) -> list[list[str]]:
        out = []
        for i, r in enumerate(self.rows):
            ok = r["status"] == "ok"
            status = "ok" if ok else f"skipped: {r['reason']}" if r["reason"] else "skipped"
            rank = str(i + 1) if ok else "–"
            score, dim = _fmt(r["score"], "score"), _fmt(r["feature_dim"], "dim")
            out.append([rank, r["candidate"], score, dim, _fmt(r["seconds"], "seconds"), status])
        return out

    def __repr__(self) -> str:
        skipped = sum(r["status"] != "ok" for r in self.rows)
        head = f"Ranking by {self.method} ({self.task}): {len(self.rows)} candidates"
        head += f", {skipped} skipped" if skipped else ""
        lines = [list(_HEADER), *self._table_rows()]
        widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
        body = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
        return "\n".join([head, *body])

    def to_markdown(self) -> str:
        """A GitHub Markdown table (rank, candidate, score, feature dim, seconds, status).

        Example:
            >>> ranking = Ranking("leep", "classification", [{"candidate": "a", "score": -1.23456}])
            >>> print(ranking.to_markdown())
            | # | candidate | score | feature dim | seconds | status |
            |---|---|---|---|---|---|
            | 1 | a | -1.235 | – | – | ok |
        """

        def line(cells: Any) -> str:
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

        rule = "|" + "---|" * len(_HEADER)
        return "\n".join([line(_HEADER), rule, *(line(r) for r in self._table_rows())])

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame, or a list of dicts when pandas is not installed.

        Example:
            >>> ranking = Ranking("logme", "segmentation", [{"candidate": "a", "score": 1.0}])
            >>> len(ranking.to_frame())
            1
        """
        rows = [dict(r) for r in self.rows]
        try:
            import pandas as pd
        except ImportError:
            return rows
        columns = list(dict.fromkeys([*_COLUMNS, *(k for r in rows for k in r)]))
        return pd.DataFrame(rows, columns=columns)

    # -- figures and HTML ---------------------------------------------------------------------
    def plot(self) -> Any:
        """Horizontal bars of the scores, best on top (a matplotlib ``Figure``, no pyplot);
        skipped candidates are named in the title.

        Example:
            >>> fig = Ranking("logme", "segmentation", [{"candidate": "a", "score": 1.0}]).plot()
            >>> len(fig.axes[0].patches)
            1
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from medtransfer.evaluation.report.plots import PALETTE

        ok = [r for r in self.rows if r["status"] == "ok"]
        fig = Figure(figsize=(6.5, 1.4 + 0.35 * max(len(ok), 1)), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        positions = np.arange(len(ok))[::-1]  # best at the top
        values = [r["score"] for r in ok]
        colours = [PALETTE[2] if i == 0 else PALETTE[4] for i in range(len(ok))]
        bars = ax.barh(positions, values, color=colours, height=0.6)
        ax.bar_label(bars, labels=[_fmt(v, "score") for v in values], padding=3, fontsize=8)
        ax.set_yticks(positions, [r["candidate"] for r in ok])
        ax.axvline(0.0, color="black", lw=0.6)
        ax.margins(x=0.15)
        ax.set_xlabel(f"{self.method} score (higher is better)")
        ax.grid(axis="x", alpha=0.3)
        skipped = [r["candidate"] for r in self.rows if r["status"] != "ok"]
        title = f"Encoder ranking by {self.method}"
        if skipped:
            title += "\nskipped: " + ", ".join(skipped)
        ax.set_title(title, fontsize=10)
        return fig

    def _table_html(self) -> str:
        def cells(row: list[str], tag: str) -> str:
            items = [f"<{tag}{' class=id' if i == 1 else ''}>{html.escape(c)}</{tag}>"
                     for i, c in enumerate(row)]  # fmt: skip
            return f"<tr>{''.join(items)}</tr>"

        body = "".join(cells(r, "td") for r in self._table_rows())
        return f"<table><thead>{cells(list(_HEADER), 'th')}</thead><tbody>{body}</tbody></table>"

    def _intro(self) -> str:
        what = METHOD_DESCRIPTIONS.get(self.method, f"{self.method}: higher is better.")
        n = self.metadata.get("n_cases")
        on = f" on {n} cases" if n else ""
        caveat = "A score ranks candidates; it does not predict the metric after fine-tuning."
        return f"Frozen-feature score of each candidate encoder{on}, best first. {what} {caveat}"

    def _repr_html_(self) -> str:
        return f"<div><p>{html.escape(self._intro())}</p>{self._table_html()}</div>"

    def html_section(self) -> str:
        """An HTML fragment for a report: what the score means, the table and the bar chart.

        Example:
            >>> ranking = Ranking("logme", "segmentation", [{"candidate": "a", "score": 1.0}])
            >>> text = ranking.html_section()
            >>> "<table>" in text and "<img" in text
            True
        """
        parts = [f'<p class="small">{html.escape(self._intro())}</p>', self._table_html()]
        if self.best is not None:
            parts.append(figure_html(self.plot(), f"Encoder ranking by {self.method}"))
        return "\n".join(parts)

    def add_to(self, report: Any) -> None:
        """Add (or replace) the section "Encoder ranking (<method>)" of a ``Report``.

        Example:
            >>> from medtransfer.evaluation import Report
            >>> report = Report("segmentation")
            >>> Ranking("logme", "segmentation", [{"candidate": "a", "score": 1.0}]).add_to(report)
            >>> [s["title"] for s in report.sections]
            ['Encoder ranking (logme)']
        """
        report.add_section(
            f"Encoder ranking ({self.method})", self.html_section(), data=self.to_dict()
        )

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Method, task, rows and metadata as JSON-safe plain data.

        Example:
            >>> Ranking("leep", "classification").to_dict()
            {'method': 'leep', 'task': 'classification', 'rows': [], 'metadata': {}}
        """
        return json_safe(
            {"method": self.method, "task": self.task, "rows": self.rows, "metadata": self.metadata}
        )

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON (atomically); returns the path.

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "ranking.json"
            >>> ranking = Ranking("logme", "segmentation", [{"candidate": "a", "score": 1.0}])
            >>> Ranking.from_json(ranking.to_json(path)) == ranking
            True
        """
        return write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Ranking:
        """Read a ranking written by :meth:`to_json` (see its example)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "method" not in data or "task" not in data:
            raise ConfigError(f"{path} is not a Ranking JSON (no 'method'/'task'); see to_json().")
        return cls(data["method"], data["task"], data.get("rows", []), data.get("metadata", {}))
