"""The disk cache is keyed by the cached transforms too: pipelines never read each other's items."""

from __future__ import annotations

import torch
from monai.transforms import Compose, ScaleIntensityRanged

from medtransfer.training.data_loading import build_dataset


def _pipeline(top: float) -> Compose:
    return Compose([ScaleIntensityRanged("image", a_min=0.0, a_max=1.0, b_min=0.0, b_max=top)])


def test_a_changed_pipeline_misses_the_disk_cache_instead_of_reading_stale_items(tmp_path):
    records = [{"image": torch.full((1, 4, 4), 0.5), "label": 0}]
    first = build_dataset(records, _pipeline(1.0), cache="disk", cache_dir=tmp_path)[0]
    second = build_dataset(records, _pipeline(10.0), cache="disk", cache_dir=tmp_path)[0]
    again = build_dataset(records, _pipeline(1.0), cache="disk", cache_dir=tmp_path)[0]
    assert float(first["image"].max()) == 0.5 and float(second["image"].max()) == 5.0
    assert float(again["image"].max()) == 0.5
    assert len(list(tmp_path.glob("*.pt"))) == 2  # one entry per pipeline, reused
