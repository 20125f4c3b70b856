"""Expected calibration error on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from medtransfer.errors import ConfigError
from medtransfer.evaluation import calibration_bins, expected_calibration_error


def test_binary_ece_by_hand():
    scores = [0.05, 0.15, 0.25, 0.35, 0.95, 0.85]
    labels = [0, 0, 1, 0, 1, 1]
    # 5 bins of width 0.2: [0,.2]: conf .1, acc 0 (2 cases); (.2,.4]: conf .3, acc .5 (2);
    # (.8,1]: conf .9, acc 1 (2).  ECE = (2*.1 + 2*.2 + 2*.1) / 6
    assert expected_calibration_error(scores, labels, n_bins=5) == pytest.approx(0.8 / 6)


def test_bins_are_closed_on_the_right():
    bins = calibration_bins([0.0, 0.3, 0.30001, 1.0], [0, 0, 1, 1], n_bins=10)[0]
    assert bins.counts.tolist() == [1, 0, 1, 1, 0, 0, 0, 0, 0, 1]
    assert np.isnan(bins.confidence[1]) and bins.ece == pytest.approx(
        expected_calibration_error([0.0, 0.3, 0.30001, 1.0], [0, 0, 1, 1])
    )


def test_multiclass_ece_uses_top_label_confidence():
    scores = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.45, 0.35, 0.2]])
    labels = np.array([0, 0, 2, 0])
    # confidences .6 (right), .7 (wrong), .8 (right), .45 (right); 2 bins [0,.5], (.5,1]
    # bin 1: conf .45, acc 1 -> .55 * 1/4; bin 2: conf .7, acc 2/3 -> |.7 - .6667| * 3/4
    expected = 0.55 / 4 + abs(0.7 - 2 / 3) * 3 / 4
    assert expected_calibration_error(scores, labels, n_bins=2) == pytest.approx(expected)


def test_multilabel_ece_is_per_label_mean_and_perfect_calibration_is_zero():
    scores = np.array([[1.0, 0.5], [0.0, 0.5], [1.0, 0.5], [0.0, 0.5]])
    labels = np.array([[1, 1], [0, 0], [1, 0], [0, 1]])
    per_label = expected_calibration_error(scores, labels, average=None)
    np.testing.assert_allclose(per_label, [0.0, 0.0])
    assert expected_calibration_error(scores, labels) == 0.0


def test_ece_needs_probabilities_and_bins():
    with pytest.raises(ConfigError, match="probabilities"):
        expected_calibration_error([1.5, 0.2], [1, 0])
    with pytest.raises(ConfigError, match="n_bins"):
        expected_calibration_error([0.5, 0.2], [1, 0], n_bins=0)
