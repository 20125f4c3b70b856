"""Dice and IoU: agreement with MONAI, layouts, the empty-mask policy and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, MeanIoU

from medtransfer.errors import ConfigError, MedTransferError
from medtransfer.evaluation import dice, iou
from tests.evaluation.masks import one_hot, random_label_maps


@pytest.mark.parametrize("shape", [(24, 20), (12, 14, 10)])
@pytest.mark.parametrize("include_background", [True, False])
def test_dice_and_iou_agree_with_monai(shape, include_background):
    rng = np.random.default_rng(len(shape))
    pred, ref = random_label_maps(rng, batch=3, shape=shape, num_classes=4)
    p, r = torch.from_numpy(one_hot(pred, 4)), torch.from_numpy(one_hot(ref, 4))
    for ours, monai_metric in (
        (dice, DiceMetric(include_background=include_background, reduction="none")),
        (iou, MeanIoU(include_background=include_background, reduction="none")),
    ):
        expected = monai_metric(p, r).numpy()
        got = ours(pred, ref, num_classes=4, include_background=include_background)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_random_noise_masks_agree_with_monai():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, size=(2, 1, 16, 16, 8))
    ref = rng.integers(0, 3, size=(2, 1, 16, 16, 8))
    expected = DiceMetric(reduction="none", include_background=False)(
        torch.from_numpy(one_hot(pred, 3)), torch.from_numpy(one_hot(ref, 3))
    )
    np.testing.assert_allclose(dice(pred, ref), expected.numpy(), rtol=1e-6)


def test_label_map_and_one_hot_layouts_give_equal_results():
    rng = np.random.default_rng(7)
    pred, ref = random_label_maps(rng, batch=2, shape=(16, 16), num_classes=3)
    base = dice(pred, ref)
    assert base.shape == (2, 2)
    np.testing.assert_array_equal(dice(one_hot(pred, 3), one_hot(ref, 3)), base)
    np.testing.assert_array_equal(dice(one_hot(pred, 3).astype(bool), ref), base)
    np.testing.assert_array_equal(dice(torch.from_numpy(pred).float(), ref), base)  # MONAI floats
    np.testing.assert_array_equal(iou(pred, one_hot(ref, 3)), iou(pred, ref))


def _masks(pred_on: bool, ref_on: bool) -> tuple[np.ndarray, np.ndarray]:
    pred = np.zeros((1, 1, 8, 8), dtype=np.int64)
    ref = np.zeros_like(pred)
    if pred_on:
        pred[0, 0, 2:5, 2:5] = 1
    if ref_on:
        ref[0, 0, 3:6, 3:6] = 1
    return pred, ref


@pytest.mark.parametrize(
    ("pred_on", "ref_on", "expected"),
    [(False, False, np.nan), (False, True, 0.0), (True, False, 0.0)],
    ids=["both-empty", "prediction-empty", "reference-empty"],
)
@pytest.mark.parametrize("metric", [dice, iou])
def test_empty_mask_policy(metric, pred_on, ref_on, expected):
    pred, ref = _masks(pred_on, ref_on)
    got = metric(pred, ref, num_classes=2)
    np.testing.assert_array_equal(got, [[expected]])


def test_num_classes_fixes_the_columns_and_absent_classes_are_nan():
    pred, ref = _masks(True, True)
    out = dice(pred, ref, num_classes=4)
    assert out.shape == (1, 3)
    assert out[0, 0] == pytest.approx(2 * 4 / 18)
    assert np.isnan(out[0, 1:]).all()


def test_background_column_is_first_when_included():
    pred, ref = _masks(True, True)
    out = dice(pred, ref, include_background=True)
    assert out.shape == (1, 2)
    assert out[0, 0] == pytest.approx(2 * (64 - 14) / (55 + 55))


@pytest.mark.parametrize(
    ("pred", "ref", "kwargs", "match"),
    [
        (np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 9)), {}, "differ in batch or spatial"),
        (np.zeros((1, 1, 8, 8)), np.full((1, 1, 8, 8), 0.5), {}, "non-integer"),
        (np.zeros((1, 1, 8, 8)), np.full((1, 1, 8, 8), -1), {}, "negative"),
        (np.zeros((1, 1, 8, 8)), np.full((1, 1, 8, 8), 3), {"num_classes": 3}, "label 3"),
        (np.zeros((1, 3, 8, 8)), np.full((1, 3, 8, 8), 2.0), {}, "one-hot"),
        (np.zeros((1, 3, 8, 8)), np.zeros((1, 2, 8, 8)), {}, "channels"),
        (np.zeros((8, 8)), np.zeros((8, 8)), {}, "x\\[None\\]"),
        (np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)), {"num_classes": 1}, "num_classes"),
        (np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)), {"spacing": (1, 2, 3)}, "spacing"),
        (np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)), {"spacing": (1, 0)}, "positive"),
        (np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)), {"spacing": "a"}, "spacing"),
        ([[0]], np.zeros((1, 1, 8, 8)), {}, "numpy array or torch tensor"),
    ],
)
def test_bad_input_raises_medtransfer_errors(pred, ref, kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        dice(pred, ref, **kwargs)
    assert isinstance(info.value, MedTransferError)
