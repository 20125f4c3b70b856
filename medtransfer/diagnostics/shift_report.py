"""``ShiftReport``: the result of :func:`~medtransfer.diagnostics.domain_shift`, and how it is shown.

A verdict in words, a table of acquisition differences, the intensity and feature distances
beside their reference scales, the out-of-distribution cases by case id (never a patient
attribute), a three-panel figure, Markdown, JSON and a section of the HTML Report.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.diagnostics.json_files import write_json
from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.format import json_safe
from medtransfer.evaluation.report.html_page import figure_html

__all__ = ["ShiftReport"]

_FIELDS = (
    "reference_name", "target_name", "reference_ids", "target_ids", "acquisition", "intensity",
    "features", "ood", "alpha", "seconds",
)  # fmt: skip


@dataclass
class ShiftReport:
    """Domain shift from a reference site to a target site (see ``domain_shift``).

    Attributes:
        reference_name, target_name: the sites (from the records' ``site`` column, else
            "reference"/"target").
        reference_ids, target_ids: case ids of both groups.
        acquisition: rows ``{"field", "label", "reference", "target", "differs"}``.
        intensity: ``w1`` (Wasserstein-1 of foreground intensities), ``w1_within_reference``
            (between two halves of the reference cases), per-site ``reference``/``target``
            percentiles and a ``histogram``.
        features: ``encoder``, ``dim``, ``mmd2``, ``p_value``, ``permutations``, ``frechet``
            and the PCA coordinates.
        ood: ``method``, ``quantile``, ``threshold``, held-out ``reference_scores`` and
            ``target_scores`` (one per target case, in order).
        alpha: the significance level of :attr:`shifted`.
        seconds: time taken.

    Example:
        >>> r = ShiftReport("A", "B", ["a1", "a2"], ["b1", "b2"], features={"p_value": 0.001, "mmd2": 0.2},
        ...                 ood={"threshold": 1.0, "reference_scores": [0.5, 1.2], "target_scores": [2.0, 0.1]})
        >>> r.shifted, r.flagged, r.target_flag_rate, r.reference_flag_rate
        (True, ['b1'], 0.5, 0.5)
    """

    reference_name: str
    target_name: str
    reference_ids: list[str]
    target_ids: list[str]
    acquisition: list[dict[str, Any]] = field(default_factory=list)
    intensity: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    ood: dict[str, Any] = field(default_factory=dict)
    alpha: float = 0.01
    seconds: float = 0.0

    # -- what it says ------------------------------------------------------------------------
    @property
    def n_reference(self) -> int:
        return len(self.reference_ids)

    @property
    def n_target(self) -> int:
        return len(self.target_ids)

    @property
    def p_value(self) -> float | None:
        return self.features.get("p_value")

    @property
    def shifted(self) -> bool:
        """The feature test rejects "same distribution" at :attr:`alpha`."""
        return self.p_value is not None and self.p_value < self.alpha

    @property
    def target_scores(self) -> dict[str, float]:
        """Out-of-distribution score of each target case, by case id."""
        return dict(zip(self.target_ids, self.ood.get("target_scores", [])))

    @property
    def flagged(self) -> list[str]:
        """Target case ids whose score is above the threshold, highest score first."""
        threshold = self.ood.get("threshold")
        if threshold is None:
            return []
        above = [(s, c) for c, s in self.target_scores.items() if s > threshold]
        return [c for _, c in sorted(above, key=lambda item: -item[0])]

    @property
    def target_flag_rate(self) -> float | None:
        return len(self.flagged) / self.n_target if self.n_target else None

    @property
    def reference_flag_rate(self) -> float | None:
        """Share of held-out reference cases above the threshold (about 1 - quantile)."""
        scores, threshold = self.ood.get("reference_scores") or [], self.ood.get("threshold")
        if not scores or threshold is None:
            return None
        return float(np.mean([s > threshold for s in scores]))

    def verdict(self) -> str:
        """One sentence: is there a shift, how strong, and how many cases are flagged.

        Example:
            >>> ShiftReport("A", "B", [], [], features={"p_value": 0.3, "mmd2": 0.0}).verdict()
            'No evidence of a feature shift from A to B (MMD² 0, p = 0.3).'
        """
        p, mmd2 = self.p_value, self.features.get("mmd2")
        stats = f"MMD² {mmd2:.3g}, p = {p:.3g}" if p is not None and mmd2 is not None else "no test"
        if self.shifted:
            text = f"{self.target_name} is shifted from {self.reference_name} ({stats})."
        else:
            text = f"No evidence of a feature shift from {self.reference_name} to {self.target_name} ({stats})."  # fmt: skip
        if self.ood.get("threshold") is not None and self.n_target:
            text += (
                f" {len(self.flagged)} of {self.n_target} {self.target_name} cases are out of "
                f"distribution ({self.ood.get('method')} score above the "
                f"{self.ood.get('quantile', 0.95):.0%} quantile of held-out "
                f"{self.reference_name} cases)."
            )
        differing = [r["label"] for r in self.acquisition if r["differs"]]
        if differing:
            text += " Acquisition differs in: " + ", ".join(differing) + "."
        return text

    # -- tables ------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict.

        Example:
            >>> sorted(ShiftReport("A", "B", [], []).summary())[:3]
            ['frechet', 'intensity_w1', 'intensity_w1_within_reference']
        """
        return {
            "reference": self.reference_name, "target": self.target_name,
            "n_reference": self.n_reference, "n_target": self.n_target,
            "mmd2": self.features.get("mmd2"), "p_value": self.p_value, "shifted": self.shifted,
            "frechet": self.features.get("frechet"),
            "intensity_w1": self.intensity.get("w1"),
            "intensity_w1_within_reference": self.intensity.get("w1_within_reference"),
            "ood_threshold": self.ood.get("threshold"), "n_flagged": len(self.flagged),
            "target_flag_rate": self.target_flag_rate,
            "reference_flag_rate": self.reference_flag_rate,
        }  # fmt: skip

    def to_frame(self) -> Any:
        """One row per case: ``case_id``, ``site``, ``ood_score``, ``flagged`` (pandas).

        Reference rows carry their held-out (cross-fitted) scores.
        """
        import pandas as pd

        threshold = self.ood.get("threshold")
        rows = []
        for ids, name, key in ((self.reference_ids, self.reference_name, "reference_scores"),
                               (self.target_ids, self.target_name, "target_scores")):  # fmt: skip
            scores = self.ood.get(key) or [None] * len(ids)
            for case, score in zip(ids, scores):
                flag = bool(score is not None and threshold is not None and score > threshold)
                rows.append({"case_id": case, "site": name, "ood_score": score, "flagged": flag})
        return pd.DataFrame(rows, columns=["case_id", "site", "ood_score", "flagged"])

    def _distance_rows(self) -> list[list[str]]:
        def num(value: Any) -> str:
            return "–" if value is None else f"{value:.4g}"

        f, i = self.features, self.intensity
        return [
            ["feature MMD²", num(f.get("mmd2")),
             f"p = {num(f.get('p_value'))} ({f.get('permutations', '?')} permutations)"],
            ["feature Fréchet distance", num(f.get("frechet")), f"{f.get('encoder', '')}, {f.get('dim', '?')} features"],
            ["intensity Wasserstein-1", num(i.get("w1")),
             f"between two halves of {self.reference_name}: {num(i.get('w1_within_reference'))}"],
            ["out-of-distribution cases", f"{len(self.flagged)} / {self.n_target}",
             f"threshold {num(self.ood.get('threshold'))}; held-out {self.reference_name} "
             f"flagged: {num(self.reference_flag_rate)}"],
        ]  # fmt: skip

    def to_markdown(self) -> str:
        """The verdict, the distances, the acquisition differences and the flagged cases."""
        lines = [self.verdict(), "", "| measure | value | scale |", "|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in self._distance_rows()]
        if self.acquisition:
            lines += ["", f"| acquisition | {self.reference_name} | {self.target_name} | differs |",
                      "|---|---|---|---|"]  # fmt: skip
            lines += [f"| {r['label']} | {r['reference']} | {r['target']} | "
                      f"{'yes' if r['differs'] else ''} |" for r in self.acquisition]  # fmt: skip
        if self.flagged:
            lines += ["", "Out-of-distribution cases: " + ", ".join(self.flagged)]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return self.to_markdown()

    # -- figures -----------------------------------------------------------------------------
    def plot(self) -> Any:
        """Intensity histograms, the PCA scatter of embeddings, and the OOD scores by site.

        Returns a matplotlib ``Figure`` (no pyplot state).
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from medtransfer.evaluation.report.plots import PALETTE

        fig = Figure(figsize=(12, 3.6), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        hist, scatter, scores = fig.subplots(1, 3)
        names = (self.reference_name, self.target_name)
        colours = (PALETTE[0], PALETTE[1])
        h = self.intensity.get("histogram")
        if h:
            edges = np.asarray(h["edges"])
            for key, name, colour in zip(("reference", "target"), names, colours):
                hist.stairs(h[key], edges, label=name, color=colour, fill=True, alpha=0.35)
        hist.set(xlabel="foreground intensity (after the preset)", ylabel="density",
                 title=f"Intensity (W1 {self.intensity.get('w1', float('nan')):.3g})")  # fmt: skip
        hist.legend(fontsize=8)
        for key, name, colour in zip(("pca_reference", "pca_target"), names, colours):
            xy = np.asarray(self.features.get(key) or np.zeros((0, 2)))
            if xy.size:
                scatter.scatter(xy[:, 0], xy[:, 1], s=18, color=colour, label=name, alpha=0.8)
        p = self.p_value
        scatter.set(xlabel="PC 1", ylabel="PC 2",
                    title=f"Encoder features (MMD p = {p:.3g})" if p is not None else "Encoder features")  # fmt: skip
        scatter.legend(fontsize=8)
        for position, (key, colour) in enumerate(
            zip(("reference_scores", "target_scores"), colours)
        ):
            values = np.asarray(self.ood.get(key) or [], dtype=float)
            jitter = np.random.default_rng(position).uniform(-0.15, 0.15, values.size)
            scores.scatter(position + jitter, values, s=16, color=colour, alpha=0.8)
        if self.ood.get("threshold") is not None:
            scores.axhline(self.ood["threshold"], color="black", lw=0.8, ls="--", label="threshold")
            scores.legend(fontsize=8)
        scores.set_xticks([0, 1], [f"{names[0]} (held out)", names[1]])
        scores.set(ylabel=f"{self.ood.get('method', 'OOD')} score",
                   title=f"Out of distribution: {len(self.flagged)} of {self.n_target}")  # fmt: skip
        return fig

    # -- HTML --------------------------------------------------------------------------------
    def _tables_html(self) -> str:
        def row(cells: list[str], tag: str = "td") -> str:
            return (
                "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"
            )

        parts = ["<table><thead>" + row(["measure", "value", "scale"], "th") + "</thead><tbody>"
                 + "".join(row(r) for r in self._distance_rows()) + "</tbody></table>"]  # fmt: skip
        if self.acquisition:
            head = row(["acquisition", self.reference_name, self.target_name, "differs"], "th")
            body = "".join(row([r["label"], r["reference"], r["target"], "yes" if r["differs"] else ""])
                           for r in self.acquisition)  # fmt: skip
            parts.append(f"<table><thead>{head}</thead><tbody>{body}</tbody></table>")
        if self.flagged:
            parts.append(
                "<p>Out-of-distribution cases: " + html.escape(", ".join(self.flagged)) + "</p>"
            )
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        return f"<div><p>{html.escape(self.verdict())}</p>{self._tables_html()}</div>"

    def html_section(self) -> str:
        """An HTML fragment for a report: verdict, tables and the figure."""
        alt = f"Domain shift from {self.reference_name} to {self.target_name}"
        return "\n".join([f"<p>{html.escape(self.verdict())}</p>", self._tables_html(),
                          figure_html(self.plot(), alt)])  # fmt: skip

    def add_to(self, report: Any) -> None:
        """Add (or replace) the section "Domain shift (<reference> → <target>)" of a ``Report``."""
        title = f"Domain shift ({self.reference_name} → {self.target_name})"
        report.add_section(title, self.html_section(), data=self.to_dict())

    # -- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-safe plain data, with the summary."""
        data = {name: getattr(self, name) for name in _FIELDS}
        return json_safe({**data, "summary": self.summary()})

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON (atomically); :meth:`from_json` reads it back."""
        return write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ShiftReport:
        """Read a report written by :meth:`to_json`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**{name: data[name] for name in _FIELDS})
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(
                f"{path} is not a ShiftReport JSON ({type(err).__name__}: {err}); write one "
                "with ShiftReport.to_json()."
            ) from err
