"""AUROC, AUPRC, thresholded metrics and confusion matrices against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from medtransfer.errors import ConfigError
from medtransfer.evaluation import (
    accuracy,
    auprc,
    auroc,
    balanced_accuracy,
    confusion_matrix,
    roc_curve,
    sensitivity_specificity,
    youden_threshold,
)


def pairwise_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(positive scores above negative), ties 1/2, over every pair."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def threshold_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision by looping over every distinct threshold."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(scores)[::-1]:
        called = scores >= t
        tp = np.sum(called & (labels == 1))
        recall = tp / labels.sum()
        ap += (recall - prev_recall) * tp / called.sum()
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed", range(4))
def test_auroc_matches_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=60)
    scores = np.round(rng.random(60) + 0.3 * labels, 1)  # rounding makes many ties
    assert auroc(scores, labels) == pytest.approx(pairwise_auroc(scores, labels), abs=1e-12)
    assert auprc(scores, labels) == pytest.approx(threshold_ap(scores, labels), abs=1e-12)


def test_known_values():
    assert auroc([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert auroc([1, 1, 0, 0], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5] * 4, [0, 1, 0, 1]) == 0.5
    assert auprc([0.5] * 4, [0, 1, 0, 1]) == 0.5  # constant score: precision = prevalence
    assert auprc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert np.isnan(auroc([0.1, 0.2], [1, 1]))  # one class only: undefined, not an error
    assert auroc(torch.tensor([0.1, 0.9]), torch.tensor([0, 1])) == 1.0


def test_multiclass_is_one_vs_rest_and_macro():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=50)
    scores = rng.dirichlet(np.ones(3), size=50) + np.eye(3)[labels] * 0.3
    per_class = auroc(scores, labels, average=None)
    expected = [pairwise_auroc(scores[:, k], (labels == k).astype(int)) for k in range(3)]
    np.testing.assert_allclose(per_class, expected)
    assert auroc(scores, labels) == pytest.approx(np.mean(expected))
    ap = auprc(scores, labels, average=None)
    np.testing.assert_allclose(ap, [threshold_ap(scores[:, k], labels == k) for k in range(3)])


def test_multilabel_is_per_label_and_skips_undefined_labels():
    scores = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0.7, 0.3, 0.5], [0.2, 0.6, 0.5]])
    labels = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]])
    per_label = auroc(scores, labels, average=None)
    assert per_label[0] == 1.0 and per_label[1] == 0.75 and np.isnan(per_label[2])
    assert auroc(scores, labels) == pytest.approx(0.875)


def test_roc_curve_and_youden_against_a_threshold_sweep():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, size=40)
    scores = (rng.random(40) + 0.4 * labels) / 1.4
    fpr, tpr, thr = roc_curve(scores, labels)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(scores, labels))
    best = max(
        np.unique(scores),
        key=lambda t: (np.mean(scores[labels == 1] >= t) - np.mean(scores[labels == 0] >= t), t),
    )
    assert youden_threshold(scores, labels) == best
    sens, spec = sensitivity_specificity(scores, labels, threshold=float(best))
    assert (sens, spec) == sensitivity_specificity(scores, labels, threshold="youden")
    assert sens + spec - 1 == pytest.approx(np.max(tpr - fpr))


def test_binary_thresholded_metrics_by_hand():
    scores = np.array([0.9, 0.6, 0.4, 0.3, 0.2, 0.7])
    labels = np.array([1, 1, 1, 0, 0, 0])
    # at 0.5: TP 2, FN 1, TN 2, FP 1
    assert confusion_matrix(scores, labels).tolist() == [[2, 1], [1, 2]]
    assert sensitivity_specificity(scores, labels) == (2 / 3, 2 / 3)
    assert accuracy(scores, labels) == pytest.approx(4 / 6)
    assert balanced_accuracy(scores, labels) == pytest.approx(2 / 3)
    assert sensitivity_specificity(scores, labels, threshold=0.35) == (1.0, 2 / 3)
    assert accuracy(scores, labels, threshold=0.95) == 0.5


def test_multiclass_thresholded_metrics_use_argmax():
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 2, 1])
    cm = confusion_matrix(scores, labels)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert accuracy(scores, labels) == 0.75
    assert balanced_accuracy(scores, labels) == pytest.approx((1 + 0.5 + 1) / 3)
    sens, spec = sensitivity_specificity(scores, labels)
    np.testing.assert_allclose(sens, [1.0, 0.5, 1.0])
    np.testing.assert_allclose(spec, [2 / 3, 1.0, 1.0])
    with pytest.raises(ConfigError, match="argmax"):
        accuracy(scores, labels, threshold=0.5)


def test_multilabel_confusion_is_per_label():
    scores = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.3]])
    labels = np.array([[1, 0], [0, 1], [0, 1]])
    cm = confusion_matrix(scores, labels)
    assert cm.shape == (2, 2, 2)
    assert cm[0].tolist() == [[1, 1], [0, 1]] and cm[1].tolist() == [[1, 0], [1, 1]]
    assert accuracy(scores, labels) == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [
        ([0.1, 0.2], [0, 1, 1], "cases"),
        ([0.1, 0.2], [0, 2], "0..1"),
        ([0.1, np.nan], [0, 1], "NaN"),
        ([[0.1, 0.9]], [2], "0..1"),
        ([[0.1, 0.9]], [[0, 1, 1]], "cannot read"),
        ([], [], "empty"),
        ([0.1, 0.2], [0.5, 1], "whole numbers"),
    ],
)
def test_bad_classification_input(scores, labels, match):
    with pytest.raises(ConfigError, match=match):
        auroc(scores, labels)


def test_thresholds_need_probabilities_and_valid_names():
    with pytest.raises(ConfigError, match="probabilities"):
        accuracy([-2.0, 3.0], [0, 1])
    assert auroc([-2.0, 3.0], [0, 1]) == 1.0  # logits are fine for ranking
    with pytest.raises(ConfigError, match="threshold"):
        sensitivity_specificity([0.2, 0.8], [0, 1], threshold="best")
    with pytest.raises(ConfigError, match="average"):
        auroc([[0.2, 0.8]], [1], average="micro")
