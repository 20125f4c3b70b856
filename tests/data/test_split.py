"""split and kfold: patient-level, stratified, deterministic, clear errors."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from medtransfer.data import Fold, Split, kfold, split
from medtransfer.errors import SplitError


def _records(n_patients: int, cases_per_patient: int = 1, positive_every: int = 4) -> list[dict]:
    """Patients p000..; every `positive_every`-th patient has label 1 (25 % by default)."""
    return [
        {
            "case_id": f"p{p:03d}-{c}",
            "patient_id": f"p{p:03d}",
            "label": int(p % positive_every == 0),
        }
        for p in range(n_patients)
        for c in range(cases_per_patient)
    ]


def _patients(records: list[dict]) -> set[str]:
    return {r["patient_id"] for r in records}


def test_no_patient_in_two_splits_and_nothing_lost():
    records = _records(40, cases_per_patient=3)
    result = split(records, seed=1)
    assert isinstance(result, Split)
    train, val, test = result
    assert not _patients(train) & _patients(val)
    assert not _patients(train) & _patients(test)
    assert not _patients(val) & _patients(test)
    assert sorted(r["case_id"] for r in train + val + test) == sorted(r["case_id"] for r in records)
    # 40 patients at 0.7/0.15/0.15 -> 28/6/6 patients, 3 cases each
    assert (len(_patients(train)), len(_patients(val)), len(_patients(test))) == (28, 6, 6)
    assert (len(train), len(val), len(test)) == (84, 18, 18)


def test_records_keep_their_identity_and_input_order():
    records = _records(10)
    train, val, test = split(records, seed=0)
    for part in (train, val, test):
        positions = [next(i for i, r in enumerate(records) if r is x) for x in part]
        assert positions == sorted(positions)


def test_deterministic_for_a_seed_and_independent_of_record_order():
    records = _records(30, cases_per_patient=2)
    first = split(records, seed=7)
    again = split(list(reversed(records)), seed=7)
    for a, b in zip(first, again):
        assert _patients(a) == _patients(b)
    other = split(records, seed=8)
    assert _patients(other.test) != _patients(first.test)


def test_stratified_split_keeps_class_proportions():
    records = _records(100)  # 25 positives
    train, val, test = split(records, stratify="label", seed=3)
    positives = [sum(r["label"] for r in part) for part in (train, val, test)]
    assert (len(train), len(val), len(test)) == (70, 15, 15)
    # 25 * (0.7, 0.15, 0.15) = 17.5, 3.75, 3.75
    assert 17 <= positives[0] <= 18
    assert 3 <= positives[1] <= 4 and 3 <= positives[2] <= 4
    assert sum(positives) == 25


@pytest.mark.parametrize("seed", range(5))
def test_stratification_beats_chance_on_small_sets(seed):
    records = _records(20)  # 5 positives
    train, val, test = split(records, stratify="label", fractions=(0.6, 0.2, 0.2), seed=seed)
    assert [sum(r["label"] for r in part) for part in (train, val, test)] == [3, 1, 1]


def test_stratify_uses_the_majority_class_of_each_patient():
    records = [
        {"case_id": "a1", "patient_id": "a", "y": 1},
        {"case_id": "a2", "patient_id": "a", "y": 1},
        {"case_id": "a3", "patient_id": "a", "y": 0},
        {"case_id": "b1", "patient_id": "b", "y": 0},
        {"case_id": "c1", "patient_id": "c", "y": 0},
        {"case_id": "d1", "patient_id": "d", "y": 1},
    ]
    for seed in range(10):
        train, val = split(records, stratify="y", fractions=(0.5, 0.5), seed=seed)[:2]
        # classes at patient level: a=1, d=1, b=0, c=0 -> one of each class per half
        classes = {"a": 1, "b": 0, "c": 0, "d": 1}
        assert sorted(classes[p] for p in _patients(train)) == [0, 1]
        assert sorted(classes[p] for p in _patients(val)) == [0, 1]


def test_two_fractions_and_zero_test_fraction():
    records = _records(10)
    train, val, test = split(records, fractions=(0.8, 0.2))
    assert (len(train), len(val), test) == (8, 2, [])
    assert split(records, fractions=(0.8, 0.2, 0.0)).test == []


def test_custom_patient_key():
    records = [{"case_id": f"c{i}", "subject": f"s{i % 5}"} for i in range(20)]
    train, val, test = split(records, by="subject", fractions=(0.6, 0.2, 0.2))
    subjects = [{r["subject"] for r in part} for part in (train, val, test)]
    assert [len(s) for s in subjects] == [3, 1, 1]
    assert not subjects[0] & subjects[1] and not subjects[1] & subjects[2]


def test_too_few_patients_says_how_many_are_needed():
    records = _records(2, cases_per_patient=5)
    with pytest.raises(SplitError, match="2 distinct 'patient_id' values, at least 3 needed"):
        split(records)
    train, val, test = split(_records(3))  # three patients are enough: one each
    assert (len(train), len(val), len(test)) == (1, 1, 1)


def test_records_without_the_patient_key_are_listed():
    records = _records(5) + [{"case_id": "x1"}, {"case_id": "x2", "patient_id": None}]
    with pytest.raises(SplitError) as info:
        split(records)
    message = str(info.value)
    assert "2 record(s) have no 'patient_id' value" in message
    assert "record 5 (case 'x1')" in message and "record 6 (case 'x2')" in message


def test_missing_stratify_values_are_listed():
    records = _records(6)
    del records[2]["label"]
    with pytest.raises(
        SplitError, match="Cannot stratify on 'label'.*record 2 \\(case 'p002-0'\\)"
    ):
        split(records, stratify="label")


@pytest.mark.parametrize(
    ("fractions", "match"),
    [
        ((0.5, 0.2, 0.2), "sum to 1"),
        ((1.2, -0.2), ">= 0"),
        ((0.5, 0.2, 0.2, 0.1), "got 4 values"),
        ((0.0, 0.5, 0.5), "train fraction must be > 0"),
        (("a", "b"), "must be numbers"),
    ],
)
def test_bad_fractions(fractions, match):
    with pytest.raises(SplitError, match=match):
        split(_records(10), fractions=fractions)


def test_empty_records_and_bad_seed():
    with pytest.raises(SplitError, match="empty"):
        split([])
    with pytest.raises(SplitError, match="seed must be an integer"):
        split(_records(10), seed=1.5)


def test_kfold_validates_every_patient_exactly_once():
    records = _records(23, cases_per_patient=2)
    folds = kfold(records, k=5, seed=2)
    assert len(folds) == 5 and all(isinstance(f, Fold) for f in folds)
    validated = Counter(p for fold in folds for p in _patients(fold.val))
    assert set(validated) == _patients(records) and set(validated.values()) == {1}
    assert sorted(len(_patients(f.val)) for f in folds) == [4, 4, 5, 5, 5]
    for fold in folds:
        assert not _patients(fold.train) & _patients(fold.val)
        assert len(fold.train) + len(fold.val) == len(records)


def test_kfold_stratified_and_deterministic():
    records = _records(40)  # 10 positives
    folds = kfold(records, k=5, stratify="label", seed=4)
    assert [sum(r["label"] for r in f.val) for f in folds] == [2, 2, 2, 2, 2]
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    again = kfold(shuffled, k=5, stratify="label", seed=4)
    assert [_patients(f.val) for f in folds] == [_patients(f.val) for f in again]


def test_kfold_errors():
    with pytest.raises(SplitError, match="Too few patients for k=5 folds: 4 distinct .* 5 needed"):
        kfold(_records(4), k=5)
    with pytest.raises(SplitError, match="k must be an integer >= 2"):
        kfold(_records(4), k=1)
