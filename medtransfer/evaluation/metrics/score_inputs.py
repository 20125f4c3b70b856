"""Input checks shared by the classification metrics; the task is read from the shapes.

===============  ====================  ======================  =================================
task             scores                labels                  per-class view (one-vs-rest)
===============  ====================  ======================  =================================
binary           (N,) positive score   (N,) 0/1                one column
multi-class      (N, K) class scores   (N,) in 0..K-1          K columns, class k vs the rest
multi-label      (N, K) label scores   (N, K) 0/1              K columns, one per label
===============  ====================  ======================  =================================

Scores may be probabilities or any real-valued scores (logits) for ranking metrics (AUROC,
AUPRC); thresholded metrics and calibration expect probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.wording import count

__all__ = ["ScoreInputs", "parse_scores"]

Task = Literal["binary", "multiclass", "multilabel"]


@dataclass(frozen=True)
class ScoreInputs:
    """Checked scores and labels with the task they describe."""

    task: Task
    scores: np.ndarray  # float64, (N,) or (N, K)
    labels: np.ndarray  # int64, (N,) or (N, K)

    @property
    def n_cases(self) -> int:
        """Number of cases (rows)."""
        return int(self.labels.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of one-vs-rest columns (1 for binary)."""
        return 1 if self.task == "binary" else int(self.scores.shape[1])

    def one_vs_rest(self) -> tuple[np.ndarray, np.ndarray]:
        """Scores (N, K) and 0/1 labels (N, K), one column per class or label."""
        if self.task == "binary":
            return self.scores[:, None], self.labels[:, None]
        if self.task == "multiclass":
            onehot = (self.labels[:, None] == np.arange(self.n_classes)[None, :]).astype(np.int64)
            return self.scores, onehot
        return self.scores, self.labels

    def take(self, index: np.ndarray) -> ScoreInputs:
        """The same inputs restricted to the cases ``index`` (used by the bootstrap)."""
        return ScoreInputs(self.task, self.scores[index], self.labels[index])


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be numeric (numpy, torch or a list): {err}") from None
    if arr.size == 0:
        raise ConfigError(f"{name} is empty; metrics need at least one case.")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} holds NaN or infinite values; remove or fix those cases.")
    return arr


def _labels_in(labels: np.ndarray, high: int, what: str) -> np.ndarray:
    if not np.all(labels == np.round(labels)):
        raise ConfigError(f"labels must be whole numbers ({what}), got non-integer values.")
    if labels.min() < 0 or labels.max() >= high:
        raise ConfigError(
            f"labels must lie in 0..{high - 1} ({what}); found {labels.min():g}..{labels.max():g}."
        )
    return labels.astype(np.int64)


def parse_scores(scores: Any, labels: Any, probabilities: bool = False) -> ScoreInputs:
    """Check scores and labels and infer the task (see the module table).

    Args:
        scores: (N,) or (N, K) scores; numpy, torch or nested lists.
        labels: (N,) class indices or (N, K) 0/1 label indicators.
        probabilities: require scores in [0, 1] (thresholds and calibration).

    Example:
        >>> parse_scores([[0.2, 0.8], [0.6, 0.4]], [1, 0]).task
        'multiclass'
    """
    s, y = _to_numpy(scores, "scores"), _to_numpy(labels, "labels")
    if s.shape[0] != y.shape[0]:
        raise ConfigError(
            f"scores have {count(s.shape[0], 'case')} but labels have {y.shape[0]}; one row per "
            "case."
        )
    if probabilities and (s.min() < 0 or s.max() > 1):
        raise ConfigError(
            "scores must be probabilities in [0, 1] for thresholds and calibration "
            f"(found {s.min():g}..{s.max():g}); apply a sigmoid or softmax first."
        )
    if s.ndim == 2 and s.shape[1] == 1 and y.ndim == 1:
        s = s[:, 0]
    if s.ndim == 1 and y.ndim == 1:
        return ScoreInputs("binary", s, _labels_in(y, 2, "binary task"))
    if s.ndim == 2 and y.ndim == 1:
        return ScoreInputs("multiclass", s, _labels_in(y, s.shape[1], "multi-class task"))
    if s.ndim == 2 and y.shape == s.shape:
        return ScoreInputs("multilabel", s, _labels_in(y, 2, "multi-label task"))
    raise ConfigError(
        f"cannot read scores {s.shape} with labels {y.shape}: use (N,) with (N,) for binary, "
        "(N, K) with (N,) for multi-class, or (N, K) with (N, K) for multi-label."
    )
