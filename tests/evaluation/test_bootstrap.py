"""Bootstrap confidence intervals: determinism, NaN handling, width and coverage sanity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medtransfer.errors import ConfigError
from medtransfer.evaluation import (
    Estimate,
    auroc,
    bootstrap_ci,
    bootstrap_columns,
    bootstrap_summary,
)


def test_seeded_and_deterministic_and_contains_the_estimate():
    values = np.random.default_rng(0).normal(0.8, 0.05, size=30)
    a, b = bootstrap_ci(values, seed=3), bootstrap_ci(values, seed=3)
    assert a == b
    assert a.low < a.value < a.high and a.n == 30
    assert a.value == pytest.approx(values.mean())
    assert bootstrap_ci(values, seed=4) != a  # another seed, another (close) interval


def test_fewer_cases_give_wider_intervals():
    values = np.random.default_rng(1).normal(0.8, 0.05, size=200)
    wide, narrow = bootstrap_ci(values[:10]), bootstrap_ci(values)
    assert (wide.high - wide.low) > 2 * (narrow.high - narrow.low)


def test_coverage_of_the_mean_is_close_to_nominal():
    rng = np.random.default_rng(2)
    hits = 0
    trials = 200
    for i in range(trials):
        sample = rng.normal(0.0, 1.0, size=40)
        est = bootstrap_ci(sample, n_resamples=400, seed=i)
        hits += est.low <= 0.0 <= est.high
    assert 0.87 <= hits / trials <= 0.99  # percentile bootstrap under-covers a little


def test_nan_cases_are_dropped_and_counted():
    est = bootstrap_ci([0.9, np.nan, 0.7, np.nan])
    assert est.n == 2 and est.value == pytest.approx(0.8)
    empty = bootstrap_ci([np.nan, np.nan])
    assert empty.n == 0 and math.isnan(empty.value)
    cols = bootstrap_columns(np.array([[0.9, np.nan], [0.7, 0.4], [0.8, np.nan]]), n_resamples=50)
    assert [c.n for c in cols] == [3, 1]
    assert cols[1].low == cols[1].high == 0.4


def test_statistic_over_cases_resamples_rows_together():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=30)
    scores = rng.random(30) * 0.5 + 0.4 * labels
    est = bootstrap_ci((scores, labels), auroc, n_resamples=300)
    assert est.value == auroc(scores, labels)
    assert est.low <= est.value <= est.high <= 1.0
    # a resample with a single class gives NaN and is left out rather than breaking the CI
    tiny = bootstrap_ci((np.array([0.2, 0.8]), np.array([0, 1])), auroc, n_resamples=200)
    assert tiny.value == 1.0 and tiny.low == tiny.high == 1.0


def test_infinite_values_give_a_usable_interval():
    est = bootstrap_ci([1.0, 2.0, math.inf, 3.0], n_resamples=300)
    assert est.value == math.inf and est.high == math.inf and not math.isnan(est.low)


def test_summary_of_several_numbers_shares_the_resamples():
    x = np.arange(20.0)
    out = bootstrap_summary(x, lambda v: {"mean": v.mean(), "double": 2 * v.mean()}, seed=1)
    assert out["double"].low == pytest.approx(2 * out["mean"].low)
    assert out["double"].high == pytest.approx(2 * out["mean"].high)


def test_estimate_repr_and_dict():
    est = Estimate(0.8732, 0.8511, 0.8944, 40)
    assert repr(est) == "0.873 (95% CI 0.851-0.894, n=40)"
    assert str(Estimate(-0.1, -0.3, 0.2, 5, 0.9)) == "-0.100 (90% CI -0.300 to 0.200, n=5)"
    assert est.as_dict()["n"] == 40


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_resamples": 0}, "n_resamples"), ({"confidence": 1.0}, "confidence")],
)
def test_bad_bootstrap_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        bootstrap_ci([1.0, 2.0], **kwargs)


def test_bad_bootstrap_data():
    with pytest.raises(ConfigError, match="1-D"):
        bootstrap_ci(np.ones((3, 2)))
    with pytest.raises(ConfigError, match="different numbers of cases"):
        bootstrap_ci((np.ones(3), np.ones(4)), lambda a, b: 0.0)
