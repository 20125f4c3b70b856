"""Pretrained vs scratch: paired statistics on plain arrays, and the :class:`TransferComparison`.

:func:`paired_bootstrap` gives the difference pretrained - scratch of a metric (mean foreground
Dice per case, or AUROC recomputed per replicate), averaged over seeds, with a two-level
percentile bootstrap (seeds, then test cases, with replacement; the same cases for both arms).
:func:`verdict` puts it in words; :func:`steps_to_match` reads convergence curves.
:class:`TransferComparison` holds the runs of ``compare_to_scratch`` and derives the rest.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.diagnostics import curves
from medtransfer.diagnostics.json_files import write_json
from medtransfer.errors import ConfigError
from medtransfer.evaluation.bootstrap import Estimate, _check, _interval
from medtransfer.evaluation.metrics.ranking import binary_auroc

__all__ = ["TransferComparison", "auroc_macro", "paired_bootstrap", "steps_to_match", "verdict"]

ARMS = ("pretrained", "scratch")
TASK_METRICS = {"segmentation": "dice", "classification": "auroc"}
METRIC_LABELS = {"dice": "Dice", "auroc": "AUROC"}


def auroc_macro(scores: Any, labels: Any) -> float:
    """AUROC: binary ``(N,)`` scores, or the macro one-vs-rest mean of ``(N, K)`` scores.

    ``labels`` are class indices ``(N,)`` (or 0/1 indicators ``(N, K)``); classes without both
    outcomes are left out of the mean; NaN when none has both.

    Example:
        >>> auroc_macro([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
        >>> auroc_macro([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], [0, 1, 2])
        1.0
    """
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if s.ndim == 1:
        return binary_auroc(s, (y == 1) if y.ndim == 1 else y)
    columns = [y[:, k] if y.ndim == 2 else (y == k) for k in range(s.shape[1])]
    values = [binary_auroc(s[:, k], c.astype(int)) for k, c in enumerate(columns)]
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def _seed_metrics(values: np.ndarray, labels: np.ndarray | None, metric: str, seeds, cases):
    """The metric of each drawn seed on the drawn cases: ``(len(seeds),)``."""
    if metric == "dice":
        return np.nanmean(values[np.asarray(seeds)[:, None], np.asarray(cases)[None, :]], axis=1)
    return np.array([auroc_macro(values[s][cases], labels[cases]) for s in seeds])


def _outcomes(y: np.ndarray) -> int:
    """Classes present (or, for (N, K) indicators, labels with both outcomes)."""
    return np.unique(y).size if y.ndim == 1 else int(((y.min(0) == 0) & (y.max(0) == 1)).sum())


def paired_bootstrap(
    pretrained: Any,
    scratch: Any,
    labels: Any = None,
    *,
    metric: str = "dice",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    paired: bool = True,
) -> dict[str, Any]:
    """Mean difference pretrained - scratch over seeds with a two-level bootstrap interval.

    Args:
        pretrained, scratch: per-case values of each arm, one row per seed: ``(S, N)`` Dice per
            case (NaN: no foreground anywhere), or ``(S, N)`` / ``(S, N, K)`` probabilities.
        labels: ``(N,)`` (or ``(N, K)``) labels of the cases, for ``metric="auroc"``.
        metric: ``"dice"`` (mean of the per-case values) or ``"auroc"`` (recomputed).
        n_resamples, confidence, seed: bootstrap replicates, coverage, random seed.
        paired: draw the same cases for both arms (False: independent draws, for comparison).

    Returns:
        ``{"difference", "pretrained", "scratch"}``: dicts ``value/low/high/n/confidence``
        (``n`` cases); ``seed_differences`` (one per seed), ``n_seeds``, ``n_cases``,
        ``n_resamples`` and ``skipped`` (replicates left out as a class is missing: AUROC).

    Example:
        >>> import numpy as np
        >>> scratch = np.random.default_rng(0).uniform(0.5, 0.8, size=(3, 20))
        >>> out = paired_bootstrap(scratch + 0.1, scratch, n_resamples=200)
        >>> round(out["difference"]["value"], 6), round(out["difference"]["low"], 6)
        (0.1, 0.1)
    """
    _check(n_resamples, confidence)
    if metric not in METRIC_LABELS:
        raise ConfigError(f"metric={metric!r} must be one of {tuple(METRIC_LABELS)}.")
    p, s = np.asarray(pretrained, dtype=np.float64), np.asarray(scratch, dtype=np.float64)
    if p.shape != s.shape or p.ndim < 2 or 0 in p.shape[:2]:
        raise ConfigError(
            f"pretrained {p.shape} and scratch {s.shape} must have the same shape "
            "(seeds, cases[, classes]) with at least one seed and one case."
        )
    n_seeds, n_cases = p.shape[:2]
    y = None if metric == "dice" else np.asarray(labels)
    if y is not None and (y.ndim == 0 or y.shape[0] != n_cases):
        raise ConfigError(f"metric='auroc' needs labels with {n_cases} rows (one per case).")
    full = _outcomes(y) if y is not None else 0
    rng = np.random.default_rng(seed)
    reps = np.full((n_resamples, 3), np.nan)
    skipped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN-only draws: NaN, left out
        every = (range(n_seeds), range(n_cases))
        point_p, point_s = (_seed_metrics(a, y, metric, *every) for a in (p, s))
        points = (np.nanmean(point_p - point_s), np.nanmean(point_p), np.nanmean(point_s))
        for r in range(n_resamples):
            seeds = rng.integers(0, n_seeds, n_seeds)
            cases_p = rng.integers(0, n_cases, n_cases)
            cases_s = cases_p if paired else rng.integers(0, n_cases, n_cases)
            if y is not None and full != min(_outcomes(y[cases_p]), _outcomes(y[cases_s])):
                skipped += 1
                continue
            mp = _seed_metrics(p, y, metric, seeds, cases_p)
            ms = _seed_metrics(s, y, metric, seeds, cases_s)
            reps[r] = (np.nanmean(mp - ms), np.nanmean(mp), np.nanmean(ms))
    out: dict[str, Any] = {
        name: Estimate(
            float(points[k]), *_interval(reps[:, k], confidence), n_cases, confidence
        ).as_dict()  # fmt: skip
        for k, name in enumerate(("difference", *ARMS))
    }
    out.update(seed_differences=[float(v) for v in point_p - point_s], n_seeds=n_seeds,
               n_cases=n_cases, n_resamples=n_resamples, skipped=skipped)  # fmt: skip
    return out


def _number(x: float, digits: int) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}f}"


def verdict(difference: Mapping[str, Any], metric: str = "dice") -> str:
    """The difference pretrained - scratch in words: helps, no evidence, or negative transfer.

    Pretraining helps when the interval lies above 0, hurts (negative transfer) when it lies
    below 0; otherwise there is no evidence either way. With one seed (``n_seeds`` 1) the
    interval cannot include the spread between training runs, and the verdict says so.

    Example:
        >>> verdict({"value": 0.12, "low": 0.08, "high": 0.15, "confidence": 0.95})
        'pretraining helps (+0.12 Dice, 95% CI 0.08 to 0.15)'
        >>> verdict({"value": -0.06, "low": -0.1, "high": -0.02}, "auroc")
        'negative transfer: the pretrained model is worse (-0.06 AUROC, 95% CI -0.10 to -0.02)'
    """
    value, low, high = (float(_nan(difference.get(k))) for k in ("value", "low", "high"))
    level = f"{float(difference.get('confidence', 0.95)) * 100:g}%"
    finite = [abs(v) for v in (value, low, high) if not math.isnan(v)]
    digits = 3 if finite and max(finite) < 0.05 else 2
    sign = "+" if not math.isnan(value) and value >= 0 else ""
    shown = f"{sign}{_number(value, digits)} {METRIC_LABELS.get(metric, metric)}"
    if math.isnan(low) or math.isnan(high):
        return f"no evidence either way ({shown}, no {level} CI: too few cases or seeds)"
    detail = f"{shown}, {level} CI {_number(low, digits)} to {_number(high, digits)}"
    if difference.get("n_seeds") == 1:
        detail += "; one seed: the interval covers the cases, not training randomness"
    if low > 0:
        return f"pretraining helps ({detail})"
    if high < 0:
        return f"negative transfer: the pretrained model is worse ({detail})"
    return f"no evidence either way ({detail})"


def steps_to_match(
    curve: Sequence[Sequence[float]], target: float, total_steps: int, higher_is_better=True
) -> tuple[int | None, float | None]:
    """The first step at which ``curve`` reaches ``target``, and that step / ``total_steps``.

    ``curve`` is ``[(step, metric), ...]`` (NaN points ignored), ``target`` e.g. scratch's
    final metric and ``total_steps`` scratch's steps; ``(None, None)`` if never reached.

    Example:
        >>> steps_to_match([(10, 0.2), (20, 0.55), (30, 0.7)], 0.5, 40)
        (20, 0.5)
    """
    if target is None or math.isnan(float(target)):
        return None, None
    for step, value in sorted((int(a), float(b)) for a, b in curve):
        if math.isnan(value):
            continue
        if (value >= target) if higher_is_better else (value <= target):
            return step, step / total_steps if total_steps else None
    return None, None


def _nan(value: Any) -> Any:
    """None (JSON null) back to NaN, in nested lists too."""
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return math.nan if value is None else value


@dataclass
class TransferComparison:
    """Does pretraining help on this dataset? Runs of both arms and the paired statistics.

    Attributes:
        task: ``"segmentation"`` or ``"classification"``.
        metric: ``"dice"`` (mean foreground Dice per case) or ``"auroc"`` (binary or macro).
        candidate: the pretrained candidate's name (scratch is the same with random weights).
        seeds, fractions: the training seeds and label fractions (largest first).
        runs: one dict per (fraction, arm, seed): ``fraction``, ``arm`` (``"pretrained"`` or
            ``"scratch"``), ``seed``, ``n_train``, ``metric`` (final model on the test cases),
            ``cases`` (``case_id`` and ``value`` per case, or ``score`` and ``label``),
            ``curve`` (``[[step, validation metric], ...]``), ``steps`` (optimizer steps run).
        curve_metric: the validation metric of the curves (its name in the training history).
        n_resamples, confidence: the bootstrap's replicates and coverage.
        metadata: budget, sizes, versions, dates.

    Example:
        >>> def run(arm, shift):
        ...     cases = {"case_id": ["a", "b"], "value": [0.6 + shift, 0.8 + shift]}
        ...     return {"fraction": 1.0, "arm": arm, "seed": 0, "n_train": 8, "steps": 10,
        ...             "curve": [[10, 0.7 + shift]], "metric": 0.7 + shift, "cases": cases}
        >>> runs = [run("pretrained", 0.1), run("scratch", 0.0)]
        >>> c = TransferComparison("segmentation", "dice", "resnet18", [0], [1.0], runs)
        >>> c.verdict()
        'pretraining helps (+0.10 Dice, 95% CI 0.10 to 0.10; one seed: the interval covers the cases, not training randomness)'
    """

    task: str
    metric: str
    candidate: str
    seeds: list[int]
    fractions: list[float]
    runs: list[dict[str, Any]]
    curve_metric: str | None = None
    n_resamples: int = 2000
    confidence: float = 0.95
    metadata: dict[str, Any] = field(default_factory=dict)
    _cache: dict[float, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.metric not in METRIC_LABELS:
            raise ConfigError(f"metric={self.metric!r} must be one of {tuple(METRIC_LABELS)}.")
        self.seeds = [int(s) for s in self.seeds]
        self.fractions = sorted((float(f) for f in self.fractions), reverse=True)
        self.curve_metric = self.curve_metric or self.metric

    # ------------------------------------------------------------------------------ look-ups
    def _fraction(self, fraction: float | None) -> float:
        if fraction is None:
            return self.fractions[0]
        for f in self.fractions:
            if math.isclose(f, float(fraction), rel_tol=1e-9, abs_tol=1e-12):
                return f
        raise ConfigError(f"fraction={fraction!r} was not run; the fractions are {self.fractions}.")

    def select(self, fraction: float | None = None, arm: str | None = None) -> list[dict]:
        """The runs of one fraction (default the largest), optionally one arm, by seed."""
        f = self._fraction(fraction)
        runs = [r for r in self.runs if math.isclose(r["fraction"], f) and arm in (None, r["arm"])]
        return sorted(runs, key=lambda r: (ARMS.index(r["arm"]), r["seed"]))

    def n_train(self, fraction: float | None = None) -> int:
        """Labelled training cases used at ``fraction``."""
        runs = self.select(fraction)
        return int(runs[0]["n_train"]) if runs else 0

    def _arrays(self, fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        arms = [self.select(fraction, arm) for arm in ARMS]
        if not arms[0] or [r["seed"] for r in arms[0]] != [r["seed"] for r in arms[1]]:
            raise ConfigError(f"fraction {fraction}: both arms need runs with the same seeds.")
        ids = arms[0][0]["cases"]["case_id"]
        if any(r["cases"]["case_id"] != ids for runs in arms for r in runs):
            raise ConfigError(f"fraction {fraction}: the runs were evaluated on different cases.")
        key = "value" if self.metric == "dice" else "score"
        p, s = (np.array([_nan(r["cases"][key]) for r in runs], dtype=float) for runs in arms)
        labels = None if self.metric == "dice" else np.asarray(arms[0][0]["cases"]["label"])
        return p, s, labels

    # ------------------------------------------------------------------------------ statistics
    def statistics(self, fraction: float | None = None) -> dict[str, Any]:
        """:func:`paired_bootstrap` of one fraction (computed once, then cached)."""
        f = self._fraction(fraction)
        if f not in self._cache:
            p, s, labels = self._arrays(f)
            self._cache[f] = paired_bootstrap(
                p, s, labels, metric=self.metric, n_resamples=self.n_resamples,
                confidence=self.confidence,
            )  # fmt: skip
        return self._cache[f]

    def difference(self, fraction: float | None = None) -> dict[str, Any]:
        """Pretrained - scratch: ``value``, ``low``, ``high``, ``n`` (cases), ``confidence``."""
        stats = self.statistics(fraction)
        return {**stats["difference"], "n_seeds": stats["n_seeds"]}

    def arm(self, arm: str, fraction: float | None = None) -> dict[str, Any]:
        """One arm's mean metric over seeds with its interval (``value``, ``low``, ``high``)."""
        if arm not in ARMS:
            raise ConfigError(f"arm={arm!r} must be one of {ARMS}.")
        return dict(self.statistics(fraction)[arm])

    def verdict(self, fraction: float | None = None) -> str:
        """The difference in words (default: the largest fraction), see :func:`verdict`."""
        return verdict(self.difference(fraction), self.metric)

    def steps_to_match(self, fraction: float | None = None) -> list[dict[str, Any]]:
        """Per seed: the first step where pretrained's validation curve reaches scratch's final
        validation value (``step``, None if never) and the fraction of scratch's steps it is."""
        rows = []
        pre, scr = self.select(fraction, "pretrained"), self.select(fraction, "scratch")
        for p, s in zip(pre, scr):
            values = [float(v) for _, v in s["curve"] if v is not None and not math.isnan(v)]
            target = values[-1] if values else math.nan
            step, share = steps_to_match(p["curve"], target, int(s["steps"]))
            rows.append({"seed": p["seed"], "target": target, "step": step, "fraction": share})
        return rows

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per fraction: sizes, both arms, the difference, its verdict, steps to match."""
        return curves.summary_rows(self)

    def to_frame(self) -> Any:
        """:meth:`summary_rows` as a pandas DataFrame (the list of rows without pandas)."""
        return curves.frame(self.summary_rows())

    def __repr__(self) -> str:
        return curves.text_summary(self)

    # ------------------------------------------------------------------------------ output
    def plot_learning_curve(self) -> Any:
        """Metric vs labelled cases, both arms with their intervals (a matplotlib Figure)."""
        return curves.learning_curve_figure(self)

    def plot_convergence(self, fraction: float | None = None) -> Any:
        """Validation metric vs optimizer step, per seed and mean, both arms (a Figure)."""
        return curves.convergence_figure(self, fraction)

    def html_section(self) -> str:
        """An HTML fragment: verdicts, the table and both plots (for a report section)."""
        return curves.comparison_html(self)

    def add_to(self, report: Any) -> None:
        """Add this comparison to an evaluation Report as the section "Pretrained vs scratch"."""
        report.add_section("Pretrained vs scratch", self.html_section(), data=self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data: the fields, plus the per-fraction summary (not read back)."""
        data = {
            "task": self.task, "metric": self.metric, "candidate": self.candidate,
            "seeds": self.seeds, "fractions": self.fractions, "curve_metric": self.curve_metric,
            "n_resamples": self.n_resamples, "confidence": self.confidence,
            "metadata": self.metadata, "runs": self.runs, "summary": self.summary_rows(),
        }  # fmt: skip
        from medtransfer.evaluation.report.format import json_safe  # NaN -> None, numpy -> Python

        return json_safe(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferComparison:
        """Inverse of :meth:`to_dict` (the summary is recomputed from the runs)."""
        runs = []
        for run in data["runs"]:
            run = dict(run)
            run["metric"] = _nan(run.get("metric"))
            run["curve"] = [[int(s), _nan(v)] for s, v in run.get("curve", [])]
            run["cases"] = {k: _nan(v) if k != "case_id" else v for k, v in run["cases"].items()}
            runs.append(run)
        names = ("curve_metric", "n_resamples", "confidence", "metadata")
        return cls(
            data["task"], data["metric"], data["candidate"], list(data["seeds"]),
            list(data["fractions"]), runs, **{k: data[k] for k in names if k in data},
        )  # fmt: skip

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON, atomically (NaN as null); returns the path."""

        return write_json(path, self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TransferComparison:
        """Read a comparison written by :meth:`to_json`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"Cannot read a TransferComparison from {path}: {err}") from err
        return cls.from_dict(data)
