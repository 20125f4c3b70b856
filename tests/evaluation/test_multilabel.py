"""Multi-label findings: masked per-label metrics against scikit-learn, averages, CIs, reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.evaluation import (
    ClassificationAccumulator,
    choose_thresholds,
    evaluate_classification,
    multilabel_metrics,
)

NAMES = ["opacity", "effusion", "cardiomegaly"]


def _data(n: int, seed: int = 0, unknown: float = 0.2):
    """Scores that carry signal for each finding, labels with NaN and -1 (not known)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 3)).astype(float)
    scores = np.clip(0.25 + 0.4 * labels + rng.normal(0, 0.2, size=(n, 3)), 0, 1)
    hidden = rng.random((n, 3)) < unknown
    labels[hidden] = np.where(rng.random(hidden.sum()) < 0.5, np.nan, -1.0)
    return scores, labels


def test_per_label_auroc_and_auprc_equal_sklearn_on_the_known_cases():
    scores, labels = _data(60)
    m = multilabel_metrics(scores, labels, names=NAMES)
    for k, name in enumerate(NAMES):
        known = labels[:, k] >= 0
        y, s = labels[known, k], scores[known, k]
        assert m[f"auroc/{name}"] == pytest.approx(roc_auc_score(y, s))
        assert m[f"auprc/{name}"] == pytest.approx(average_precision_score(y, s))


def test_macro_is_the_mean_over_findings_and_micro_pools_known_pairs():
    scores, labels = _data(60, seed=1)
    m = multilabel_metrics(scores, labels, names=NAMES)
    for metric in ("auroc", "auprc", "sensitivity", "specificity", "ece"):
        mean = np.mean([m[f"{metric}/{n}"] for n in NAMES])
        assert m[f"{metric}/macro"] == pytest.approx(mean)
    known = labels >= 0
    assert m["auroc/micro"] == pytest.approx(roc_auc_score(labels[known], scores[known]))
    assert m["auprc/micro"] == pytest.approx(average_precision_score(labels[known], scores[known]))
    # without unknown labels micro is sklearn's average="micro", macro its average="macro"
    full_scores, full = _data(40, seed=2, unknown=0.0)
    m = multilabel_metrics(full_scores, full)
    assert m["auroc/micro"] == pytest.approx(roc_auc_score(full, full_scores, average="micro"))
    assert m["auroc/macro"] == pytest.approx(roc_auc_score(full, full_scores, average="macro"))


def test_sensitivity_specificity_at_each_findings_threshold():
    scores = np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.4], [0.1, 0.35]])
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, np.nan]])
    m = multilabel_metrics(scores, labels, threshold={"b": 0.3}, names=["a", "b"])
    # a at 0.5: TP 2, TN 2; b at 0.3: positives 0.7, 0.4 called, negative 0.2 not called
    assert (m["sensitivity/a"], m["specificity/a"]) == (1.0, 1.0)
    assert (m["sensitivity/b"], m["specificity/b"]) == (1.0, 1.0)
    m = multilabel_metrics(scores, labels, threshold=[0.5, 0.5], names=["a", "b"])
    assert m["sensitivity/b"] == 0.5 and m["sensitivity/micro"] == pytest.approx(3 / 4)


def test_choose_thresholds_youden_and_target_sensitivity():
    scores, labels = _data(80, seed=3)
    youden = choose_thresholds(scores, labels)
    sens = choose_thresholds(scores, labels, "sensitivity", target_sensitivity=0.9)
    for k in range(3):
        known = labels[:, k] >= 0
        s, y = scores[known, k], labels[known, k]
        j = [np.mean(s[y == 1] >= t) + np.mean(s[y == 0] < t) for t in np.unique(s)]
        assert np.mean(s[y == 1] >= youden[k]) + np.mean(s[y == 0] < youden[k]) == max(j)
        assert np.mean(s[y == 1] >= sens[k]) >= 0.9
        assert np.mean(s[y == 1] >= np.min(s[s > sens[k]], initial=2.0)) < 0.9  # the highest
    with pytest.raises(ConfigError, match="method="):
        choose_thresholds(scores, labels, "f1")


def test_intervals_contain_the_estimate_and_narrow_with_more_cases():
    widths = []
    for n in (40, 400):
        scores, labels = _data(n, seed=4)
        acc = ClassificationAccumulator(class_names=NAMES)
        acc.update(scores, labels)
        summary = acc.summary(n_resamples=300, seed=0)
        for name in [*NAMES, "macro", "micro"]:
            est = summary[f"auroc/{name}"]
            assert est.low <= est.value <= est.high
        assert summary["auroc/opacity"].n == int(np.sum(labels[:, 0] >= 0)) < n
        assert summary["auroc/macro"].n == n
        widths.append(summary["auroc/macro"].high - summary["auroc/macro"].low)
    assert widths[1] < widths[0] / 2


def test_bad_labels_and_reserved_names_are_refused():
    with pytest.raises(ConfigError, match="case 1, label 0 holds 2"):
        multilabel_metrics([[0.1, 0.2], [0.3, 0.4]], [[1, 0], [2, 1]])
    with pytest.raises(ConfigError, match="may not be called"):
        multilabel_metrics([[0.1, 0.2]], [[1, 0]], names=["macro", "x"])
    with pytest.raises(ConfigError, match="one per finding"):
        multilabel_metrics([[0.1, 0.2]], [[1, 0]], threshold=[0.5])


class _Findings(nn.Module):
    """Logits that read the mean intensity of the image for every finding (a fixed model)."""

    multilabel = True
    class_names = NAMES

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([mean * 4.0, -mean * 4.0, mean * 0.0], dim=1)


def test_report_has_one_row_per_finding_and_the_averages(tmp_path):
    records = mt.data.synthetic.phantoms(8, task="classification", shape=(16, 16, 4))
    preset = mt.transforms.presets.ct("classification", roi_size=(16, 16, 4))
    for i, record in enumerate(records):
        record["label"] = [i % 2, (i // 2) % 2, float("nan") if i < 2 else (i // 4) % 2]
    report = evaluate_classification(
        _Findings(), records, preset, threshold={"effusion": 0.3}, n_resamples=30, progress=False
    )
    auroc_rows = [r for r in report.summary if r["metric"] == "auroc"]
    assert [r["class"] for r in auroc_rows] == [*NAMES, "macro", "micro"]
    assert [r["n"] for r in auroc_rows] == [8, 8, 6, 8, 8]
    assert report.metadata["threshold"] == {"opacity": 0.5, "effusion": 0.3, "cardiomegaly": 0.5}
    assert report.metadata["label_counts"]["cardiomegaly"] == {
        "positive": 4,
        "negative": 2,
        "unknown": 2,
    }
    assert report.cases[0]["label"] == [0, 0, None]
    heads = [line.split(" 0.")[0].split(" 1.")[0] for line in report.headline()]
    assert heads == [f"AUROC {name}" for name in [*NAMES, "macro", "micro"]]
    html = report.to_html(tmp_path / "r.html").read_text()
    for text in ('<td class="id">opacity</td>', "macro mean", "micro (pooled)", "P(effusion)"):
        assert text in html
    again = mt.evaluation.Report.from_json(report.to_json(tmp_path / "r.json"))
    assert [r["class"] for r in again.summary if r["metric"] == "auroc"][-2:] == ["macro", "micro"]


def test_thresholds_chosen_on_a_validation_report_and_classify_without_labels():
    records = mt.data.synthetic.phantoms(8, task="classification", shape=(16, 16, 4))
    preset = mt.transforms.presets.ct("classification", roi_size=(16, 16, 4))
    for i, record in enumerate(records):
        record["label"] = [i % 2, (i // 2) % 2, (i // 4) % 2]
    val = evaluate_classification(_Findings(), records, preset, n_resamples=1, progress=False)
    cuts = choose_thresholds(val)
    scores = np.array([[row[f"score/{n}"] for n in NAMES] for row in val.cases])
    labels = np.array([row["label"] for row in val.cases], dtype=float)
    assert cuts == dict(zip(NAMES, choose_thresholds(scores, labels).tolist()))
    rows = mt.evaluation.classify(_Findings(), records, preset, threshold=cuts, device="cpu")
    assert [r["case_id"] for r in rows] == [r["case_id"] for r in records]
    for row, case in zip(rows, val.cases):
        assert [row[f"score/{n}"] for n in NAMES] == pytest.approx(
            [case[f"score/{n}"] for n in NAMES]
        )
        assert row["prediction"] == [int(row[f"score/{n}"] >= cuts[n]) for n in NAMES]
