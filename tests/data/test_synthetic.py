"""Synthetic CT phantoms: geometry, HU, labels, determinism, variety, speed, argument checks."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

import medtransfer as mt
from medtransfer.data.synthetic import HU, LABELS, phantom_affine, phantoms
from medtransfer.errors import ConfigError

SHAPE = (64, 64, 32)


@pytest.fixture(scope="module")
def cases():
    return phantoms(12, seed=0, shape=SHAPE)


def _arrays(case):
    return np.asarray(case["image"]), np.asarray(case["label"])


def test_is_reachable_from_the_top_level():
    assert mt.data.synthetic.phantoms is phantoms


def test_records_geometry_and_identifiers(cases):
    case = cases[3]
    image, label = case["image"], case["label"]
    assert tuple(image.shape) == SHAPE and tuple(label.shape) == SHAPE
    assert image.dtype.is_floating_point and str(label.dtype) == "torch.uint8"
    expected = phantom_affine(SHAPE, (5.0, 5.0, 5.0))
    np.testing.assert_allclose(np.asarray(image.affine), expected)
    np.testing.assert_allclose(np.asarray(label.affine), expected)
    assert tuple(image.meta["spacing"]) == (5.0, 5.0, 5.0)
    # voxel (0, 0, 0) lies at the patient's right, anterior, inferior corner (RAS+)
    corner = expected @ np.array([0, 0, 0, 1.0])
    assert corner[0] > 0 and corner[1] > 0 and corner[2] < 0
    assert case["case_id"] == case["patient_id"] == "phantom-003"
    assert [c["case_id"] for c in cases[:2]] == ["phantom-000", "phantom-001"]


def test_label_values_and_organs_present(cases):
    for case in cases:
        _, label = _arrays(case)
        values = set(np.unique(label).tolist())
        assert values <= set(LABELS)
        assert {0, 1, 3, 4} <= values  # liver, spleen and kidneys in every case
        assert (2 in values) == case["has_lesion"] == (case["n_lesions"] > 0)
        lesion_slices = np.flatnonzero((label == 2).any(axis=(0, 1))).tolist()
        assert case["lesion_slices"] == lesion_slices
        assert sum(lesion["voxels"] for lesion in case["lesions"]) >= (label == 2).sum()


def test_lesions_replace_liver_and_nothing_else():
    with_lesions = phantoms(3, seed=4, shape=(48, 48, 24), lesion_probability=1)
    without = phantoms(3, seed=4, shape=(48, 48, 24), lesion_probability=0)
    for case, healthy in zip(with_lesions, without):
        label, healthy_label = _arrays(case)[1], _arrays(healthy)[1]
        lesion = label == 2
        assert lesion.any()
        assert np.all(healthy_label[lesion] == 1)  # same anatomy: lesions sit inside the liver
        assert np.array_equal(label[~lesion], healthy_label[~lesion])


def test_hounsfield_units_are_realistic(cases):
    for case in cases:
        image, label = _arrays(case)
        assert image.dtype == np.float32
        assert image[0, 0, :].mean() < -950  # air in the corners
        assert image.min() > -1100 and image.max() < 1000
        fat = ((image > -150) & (image < -50)).mean()
        assert fat > 0.04  # subcutaneous and visceral fat
        organ_hu = {}
        for value, name in ((1, "liver"), (3, "spleen"), (4, "kidney")):
            core = ndimage.binary_erosion(label == value)
            assert core.any(), f"{case['case_id']}: no {name} core"
            organ_hu[name] = float(image[core].mean())
        assert 70 < organ_hu["liver"] < 130
        assert 80 < organ_hu["spleen"] < 160
        assert 90 < organ_hu["kidney"] < 220
        if case["has_lesion"]:
            lesion_hu = float(image[label == 2].mean())
            assert lesion_hu < organ_hu["liver"] - 8, case["case_id"]
        vertebra = image[image > 300]
        assert vertebra.size > 20  # bone


def test_hu_table_is_what_is_drawn():
    assert HU["liver"][0] == 100 and HU["fat"][0] == -100 and HU["air"][0] == -1000


def test_deterministic_and_prefix_stable():
    first = phantoms(3, seed=5, shape=(32, 32, 8))
    again = phantoms(5, seed=5, shape=(32, 32, 8))[:3]
    for a, b in zip(first, again):
        assert a["case_id"] == b["case_id"]
        assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
        assert np.array_equal(np.asarray(a["label"]), np.asarray(b["label"]))
        assert a["lesions"] == b["lesions"]
    other = phantoms(3, seed=6, shape=(32, 32, 8))
    assert not np.array_equal(np.asarray(first[0]["image"]), np.asarray(other[0]["image"]))


def test_cases_differ(cases):
    images = [_arrays(c)[0] for c in cases]
    labels = [_arrays(c)[1] for c in cases]
    for i in range(len(cases) - 1):
        assert not np.array_equal(labels[i], labels[i + 1])  # anatomy jitter
        assert np.abs(images[i] - images[i + 1]).mean() > 10
    liver_volumes = {int((lab == 1).sum()) for lab in labels}
    assert len(liver_volumes) == len(cases)
    presence = [c["has_lesion"] for c in cases]
    assert 0 < sum(presence) < len(presence)
    sizes = [lesion["diameter_mm"] for c in cases for lesion in c["lesions"]]
    contrasts = [lesion["contrast_hu"] for c in cases for lesion in c["lesions"]]
    assert max(sizes) - min(sizes) > 5 and max(contrasts) - min(contrasts) > 5
    assert all(15 <= s <= 45 for s in sizes) and all(40 <= h <= 80 for h in contrasts)


def test_classification_task():
    records = phantoms(8, task="classification", seed=1, shape=(32, 32, 16))
    for record in records:
        assert record["label"] in (0, 1)
        assert record["label"] == int(record["has_lesion"])
        assert record["label"] == int((np.asarray(record["mask"]) == 2).any())
    assert {r["label"] for r in records} == {0, 1}


def test_lesion_probability_extremes():
    assert not any(c["has_lesion"] for c in phantoms(4, shape=(16, 16, 4), lesion_probability=0))
    assert all(c["has_lesion"] for c in phantoms(4, shape=(16, 16, 4), lesion_probability=1))


def test_several_cases_per_patient_share_patient_and_lesion_status():
    records = phantoms(6, seed=2, shape=(32, 32, 8), cases_per_patient=3)
    assert [r["case_id"] for r in records[:4]] == [
        "phantom-000-0",
        "phantom-000-1",
        "phantom-000-2",
        "phantom-001-0",
    ]
    assert [r["patient_id"] for r in records] == ["phantom-000"] * 3 + ["phantom-001"] * 3
    for patient in (records[:3], records[3:]):
        assert len({r["has_lesion"] for r in patient}) == 1
        images = [np.asarray(r["image"]) for r in patient]
        assert not np.array_equal(images[0], images[1])  # position and noise differ
    train, val = mt.data.split(records, fractions=(0.5, 0.5))[:2]
    assert len(train) == len(val) == 3


def test_other_shapes_and_spacing_are_physical():
    [case] = phantoms(1, shape=(48, 40, 1), spacing=(6.0, 6.0, 5.0), lesion_probability=1)
    assert tuple(case["image"].shape) == (48, 40, 1)
    np.testing.assert_allclose(np.diag(np.asarray(case["image"].affine))[:3], [-6.0, -6.0, 5.0])
    assert {1, 3} <= set(np.unique(np.asarray(case["label"])).tolist())
    # a 64 mm field of view sees only the inside of the abdomen: no air, no whole organ outline
    [zoomed] = phantoms(1, shape=(32, 32, 4), spacing=(2.0, 2.0, 2.0))
    assert np.asarray(zoomed["image"]).min() > -500
    [whole] = phantoms(1, shape=(32, 32, 4))
    assert tuple(whole["image"].meta["spacing"]) == (10.0, 10.0, 40.0)


def test_fast_enough():
    phantoms(1, shape=SHAPE)  # imports done
    start = time.perf_counter()
    phantoms(4, seed=9, shape=SHAPE)
    assert (time.perf_counter() - start) / 4 < 0.5


def test_bad_arguments_are_all_reported():
    with pytest.raises(ConfigError) as info:
        phantoms(0, task="detection", seed=-1, shape=(4, 64, 32), lesion_size_mm=(0, 10))
    message = str(info.value)
    for part in (
        "n must be",
        "task must be one of",
        "seed must be",
        "shape must be",
        "lesion_size_mm",
    ):
        assert part in message
    with pytest.raises(ConfigError, match="image_format"):
        phantoms(1, image_format="png")
    with pytest.raises(ConfigError, match="noise_hu"):
        phantoms(1, noise_hu=(5, 1))
