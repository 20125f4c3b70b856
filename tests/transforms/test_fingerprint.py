"""Dataset fingerprint and plan: numbers on a constructed dataset, rules, JSON, presets accept it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.transforms import (
    fingerprint_dataset,
    plan_preprocessing,
    presets,
    propose_roi_size,
    propose_spacing,
    propose_window,
)


def _case(
    spacing, shape=(20, 16, 10), box=(slice(2, 12), slice(4, 8), slice(0, 10)), values=(0, 100)
):
    """Air (-1000) with a body box; the label marks the body box, intensities evenly spread."""
    image = np.full(shape, -1000.0, np.float32)
    body = image[box]
    image[box] = np.linspace(*values, body.size, dtype=np.float32).reshape(body.shape)
    label = np.zeros(shape, np.float32)
    label[box] = 1
    label[box][0, 0, 0] = 3
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    return {
        "image": MetaTensor(torch.from_numpy(image), affine=affine),
        "label": MetaTensor(torch.from_numpy(label), affine=affine.clone()),
    }


def test_fingerprint_numbers_on_a_constructed_dataset():
    cases = [_case((1.0, 1.0, 3.0)), _case((2.0, 2.0, 5.0), values=(100, 200))]
    fp = fingerprint_dataset(cases, body_threshold=-500, samples_per_case=10**6)
    assert fp["n_cases"] == 2
    assert [c["spacing"] for c in fp["cases"]] == [[1.0, 1.0, 3.0], [2.0, 2.0, 5.0]]
    assert fp["cases"][0]["shape"] == [20, 16, 10]
    assert fp["cases"][0]["extent_mm"] == [10.0, 4.0, 30.0]
    assert fp["cases"][1]["extent_mm"] == [20.0, 8.0, 50.0]
    assert fp["cases"][0]["foreground_voxels"] == 400
    assert fp["spacing"]["median"] == [1.5, 1.5, 4.0]
    assert fp["extent_mm"]["max"] == [20.0, 8.0, 50.0]
    assert fp["labels"] == [0, 1, 3]
    pooled = np.concatenate([np.linspace(0, 100, 400), np.linspace(100, 200, 400)])
    assert fp["intensity"]["p50"] == pytest.approx(np.percentile(pooled, 50), abs=1e-3)
    assert fp["intensity"]["p0.5"] == pytest.approx(np.percentile(pooled, 0.5), abs=1e-3)
    assert fp["intensity"]["min"] == 0.0 and fp["intensity"]["max"] == 200.0
    json.dumps(fp)  # plain JSON


def test_without_label_maps_the_body_threshold_is_the_foreground():
    case = _case((1.0, 1.0, 1.0))
    fp = fingerprint_dataset([{"image": case["image"], "label": 1}], body_threshold=-500)
    assert fp["labels"] == [] and fp["cases"][0]["foreground_voxels"] == 400


def test_propose_spacing_anisotropic_rule():
    iso = {"cases": [{"spacing": [1.0, 1.0, 1.2]}, {"spacing": [0.8, 0.8, 1.0]}]}
    assert propose_spacing(iso) == [0.9, 0.9, 1.1]
    aniso = {"cases": [{"spacing": [0.7, 0.7, s]} for s in (1.0, 5.0, 5.0, 5.0, 5.0)]}
    assert propose_spacing(aniso) == [0.7, 0.7, pytest.approx(np.percentile([1, 5, 5, 5, 5], 10))]


def test_propose_window_and_roi():
    assert propose_window({"intensity": {"p0.5": -50.0, "p99.5": 250.0}}) == {
        "level": 100.0,
        "width": 300.0,
    }
    with pytest.raises(ConfigError, match="window="):
        propose_window({"intensity": {"p0.5": None, "p99.5": None}})
    fp = {"extent_mm": {"median": [400.0, 300.0, 300.0]}}
    roi = propose_roi_size(fp, [1.0, 1.0, 1.0])  # 400*300*300 voxels is far over 128**3
    assert np.prod(roi) <= 160**3 and all(v % 16 == 0 for v in roi)
    assert propose_roi_size(fp, [1.0, 1.0, 1.0], spatial_dims=2) == [416, 320]


def test_plan_on_the_committed_samples_is_used_by_presets(sample_records):
    fp = fingerprint_dataset(sample_records, body_threshold=-500)
    assert fp["labels"] == [0, 1, 2, 3, 4] and fp["modality"] == "CT"
    assert fp["spacing"]["median"] == [5.0, 5.0, 5.0]
    plan = plan_preprocessing(fp)
    assert json.loads(json.dumps(plan)) == plan
    assert plan["spacing"] == [5.0, 5.0, 5.0]
    assert plan["roi_size"] == [64, 48, 32] and plan["roi_size_2d"] == [64, 64]
    low, high = fp["intensity"]["p0.5"], fp["intensity"]["p99.5"]
    assert plan["window"]["width"] == pytest.approx(high - low, abs=0.1)
    train, _ = presets.ct("segmentation", plan=plan, spatial_dims=3, num_samples=1)
    assert tuple(train(sample_records[0])[0]["image"].shape) == (1, 64, 48, 32)
    train2d, _ = presets.ct("segmentation", plan=plan, spatial_dims=2, num_samples=1)
    assert tuple(train2d(sample_records[0])[0]["image"].shape) == (1, 64, 64)


def test_mr_plan_has_no_window_and_errors():
    fp = fingerprint_dataset([_case((1.0, 1.0, 1.0))])
    plan = plan_preprocessing(fp, modality="mr")
    assert "window" not in plan and plan["modality"] == "MR"
    with pytest.raises(ConfigError, match="modality='PET'"):
        plan_preprocessing(fp, modality="pet")
    with pytest.raises(ConfigError, match="at least one record"):
        fingerprint_dataset([])
    with pytest.raises(ConfigError, match="no 'image' key"):
        fingerprint_dataset([{"img": "x"}])
    assert mt.transforms.plan_preprocessing is plan_preprocessing
