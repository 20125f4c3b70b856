"""Label values against the number of classes, checked before training (issue 11.10)."""

from __future__ import annotations

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.evaluation.label_values import check_label_values, scan_label_values


def _records(tmp_path, tops):
    records = []
    for i, top in enumerate(tops):
        mask = np.zeros((4, 4, 2), np.uint8)
        mask[0, 0, 0] = top
        path = mt.io.save(mt.io.make_image(mask, np.eye(4), source="m"), tmp_path / f"c{i}.nii.gz")
        records.append({"image": "unused", "label": str(path), "case_id": f"c{i}"})
    return records


def test_segmentation_values_above_the_classes_name_the_cases(tmp_path):
    records = _records(tmp_path, [1, 2, 1, 3])
    with pytest.raises(ConfigError) as info:
        check_label_values(records, 2, task="segmentation", source="data.class_names ['lesion']")
    message = str(info.value)
    assert "data.class_names ['lesion']" in message and "0..1" in message
    assert "c1 (values 0, 2)" in message and "c3 (values 0, 3)" in message
    assert "c0" not in message and "2 of 4 checked cases" in message
    assert check_label_values(records, 4, task="segmentation") == 4


def test_the_scan_stops_at_its_voxel_budget_but_reads_at_least_one_map(tmp_path):
    records = _records(tmp_path, [1, 5, 5])
    scan = scan_label_values(records, task="segmentation", max_voxels=40)
    assert scan.checked == 1 and scan.values == {"c0": [0, 1]} and scan.skipped == 2
    assert check_label_values(records, 2, task="segmentation", max_voxels=40) == 1


def test_in_memory_labels_are_checked_too():
    label = np.zeros((3, 3), np.int64)
    label[1, 1] = 4
    records = [{"image": None, "label": label, "case_id": "a"}]
    with pytest.raises(ConfigError, match=r"a \(values 0, 4\)"):
        check_label_values(records, 3, task="segmentation")


def test_classification_labels_against_the_outputs():
    records = [{"case_id": f"p{i}", "label": v} for i, v in enumerate([0, 1, 1, 2])]
    with pytest.raises(ConfigError) as info:
        check_label_values(records, 1, task="classification", source="model.num_classes 1")
    assert "p3 (value 2)" in str(info.value) and "0..1" in str(info.value)
    assert check_label_values(records, 3, task="classification") == 4
