"""Stateful accumulators: same numbers as the functions, case tables, padding and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medtransfer.errors import ConfigError
from medtransfer.evaluation import (
    ClassificationAccumulator,
    SegmentationAccumulator,
    auroc,
    classification_metrics,
    dice,
    surface_metrics,
)
from tests.evaluation.masks import random_label_maps


def test_segmentation_accumulator_matches_the_functions():
    pred, ref = random_label_maps(np.random.default_rng(0), batch=4, shape=(20, 20), num_classes=3)
    spacing = np.array([[1.0, 1.0], [0.5, 2.0], [1.0, 3.0], [2.0, 2.0]])
    acc = SegmentationAccumulator(tolerance_mm=2.0)
    assert acc.metrics == ("dice", "iou", "hd95", "assd", "nsd")
    batch = acc.update(pred[:2], ref[:2], spacing=spacing[:2], case_ids=["a", "b"])
    acc.update(pred[2:], ref[2:], spacing=spacing[2:])
    assert acc.case_ids == ["a", "b", "case_0002", "case_0003"] and len(acc) == 4
    np.testing.assert_array_equal(batch["dice"], dice(pred[:2], ref[:2]))
    whole = surface_metrics(pred, ref, spacing=spacing, tolerance_mm=2.0)
    np.testing.assert_allclose(acc.values("hd95"), whole["hd95"])
    np.testing.assert_allclose(acc.aggregate()["nsd"], np.nanmean(whole["nsd"], axis=0))
    np.testing.assert_allclose(acc.per_case()["b"]["assd"], whole["assd"][1])
    summary = acc.summary(n_resamples=100)
    assert len(summary["dice"]) == 2 and summary["dice"][0].n == 4
    acc.reset()
    assert len(acc) == 0
    with pytest.raises(ConfigError, match="no cases"):
        acc.aggregate()


def test_inferred_classes_are_padded_with_nan_and_empty_cases_counted():
    two = np.zeros((1, 1, 8, 8), dtype=np.int64)
    two[0, 0, 1:4, 1:4] = 1
    two[0, 0, 5:7, 5:7] = 2
    one = two.copy()
    one[one == 2] = 0
    empty = np.zeros_like(one)
    acc = SegmentationAccumulator(metrics=("dice", "hd95"), empty_distance=math.inf)
    acc.update(two, two)
    acc.update(one, one)  # class 2 absent from both: its column is padded with NaN
    acc.update(empty, one)  # class 1 missed by the prediction
    table = acc.values("dice")
    assert table.shape == (3, 2)
    np.testing.assert_array_equal(table[:, 0], [1.0, 1.0, 0.0])
    assert np.isnan(table[1:, 1]).all()
    assert acc.values("hd95")[2, 0] == math.inf
    counts = acc.empty_counts()
    assert counts["both_empty"].tolist() == [0, 2]
    assert counts["pred_empty"].tolist() == [1, 0]
    assert counts["target_empty"].tolist() == [0, 0]
    np.testing.assert_allclose(acc.aggregate()["dice"], [2 / 3, 1.0])


def test_segmentation_accumulator_errors():
    with pytest.raises(ConfigError, match="tolerance_mm"):
        SegmentationAccumulator(metrics=("nsd",))
    with pytest.raises(ConfigError, match="unknown metrics"):
        SegmentationAccumulator(metrics=("hd100",))
    acc = SegmentationAccumulator(metrics="dice")
    mask = np.ones((2, 1, 4, 4), dtype=np.int64)
    with pytest.raises(ConfigError, match="case_ids"):
        acc.update(mask, mask, case_ids=["only-one"])
    acc.update(mask, mask, case_ids=["x", "y"])
    with pytest.raises(ConfigError, match="twice"):
        acc.update(mask, mask, case_ids=["y", "z"])
    assert acc.case_ids == ["x", "y"]  # a failed update adds nothing
    with pytest.raises(ConfigError, match="not collected"):
        acc.values("hd95")


def test_classification_accumulator_binary():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=40)
    scores = np.clip(rng.random(40) * 0.6 + 0.35 * labels, 0, 1)
    acc = ClassificationAccumulator()
    for start in range(0, 40, 16):
        acc.update(scores[start : start + 16], labels[start : start + 16])
    agg = acc.aggregate()
    assert agg == classification_metrics(scores, labels)
    assert agg["auroc"] == auroc(scores, labels)
    summary = acc.summary(n_resamples=100, seed=1)
    assert set(summary) == set(agg)
    for name, est in summary.items():
        assert est.value == agg[name] and est.n == 40 and est.low <= est.high
    assert summary["auroc"].low <= summary["auroc"].value <= summary["auroc"].high
    assert acc.per_case()["case_0003"] == {"score": scores[3], "label": int(labels[3])}


def test_classification_accumulator_multiclass_per_class_keys_and_shape_check():
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 2, 1])
    acc = ClassificationAccumulator(class_names=["benign", "malignant", "other"])
    acc.update(scores, labels, case_ids=["p1", "p2", "p3", "p4"])
    agg = acc.aggregate()
    assert agg["accuracy"] == 0.75 and agg["sensitivity/malignant"] == 0.5
    assert agg["auroc"] == pytest.approx(np.mean([agg[f"auroc/{n}"] for n in acc.class_names]))
    with pytest.raises(ConfigError, match="keep one task"):
        acc.update(np.array([0.3, 0.7]), np.array([0, 1]))
    with pytest.raises(ConfigError, match="class_names"):
        classification_metrics(scores, labels, class_names=["a"])
