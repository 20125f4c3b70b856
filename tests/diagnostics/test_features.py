"""Frozen features: hypercolumns at the right pixels, class balance, pooling, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import medtransfer as mt
from medtransfer.diagnostics.features import extract_features
from medtransfer.encoders.spec import InputSpec
from medtransfer.errors import ConfigError


class PassThroughEncoder(nn.Module):
    """Level 0 is the input itself (reduction 1); level 1 its 2x average pool. Counts calls."""

    def __init__(self, spatial_dims: int = 2) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.out_channels = (1, 1)
        self.input_spec = InputSpec(mean=(0.0,), std=(1.0,), size_divisor=(2,) * spatial_dims)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.calls += 1
        pool = F.avg_pool2d if self.spatial_dims == 2 else F.avg_pool3d
        return [x, pool(x, 2)]


def identity(sample):
    return sample


def _slices_case(rng: np.random.Generator, slices: int = 3) -> dict:
    label = np.zeros((slices, 1, 10, 12), np.int64)
    label[:, :, 2:5, 3:7] = 1
    label[1, :, 6:8, 6:9] = 2
    return {"image": torch.from_numpy(label.astype(np.float32)), "label": label}


def test_hypercolumn_of_a_pixel_is_that_pixel_exactly():
    """With the input as level 0, the sampled feature equals the label at the sampled pixel."""
    rng = np.random.default_rng(0)
    cases = [_slices_case(rng) for _ in range(2)]
    f = extract_features(PassThroughEncoder(), cases, identity, task="segmentation", max_samples=60)
    assert f.features.shape[1] == 2
    np.testing.assert_allclose(f.features[:, 0], f.labels, atol=1e-5)


def test_3d_hypercolumn_matches_upsampled_levels():
    torch.manual_seed(0)
    image = torch.rand(1, 6, 8, 10)
    label = (image > 0.5).long().numpy()
    enc = PassThroughEncoder(spatial_dims=3)
    f = extract_features(enc, [{"image": image, "label": label}], identity, task="segmentation", max_samples=40)  # fmt: skip
    up = F.interpolate(F.avg_pool3d(image[None], 2), size=(6, 8, 10), mode="trilinear", align_corners=False)[0, 0]  # fmt: skip
    # every sampled row: level 0 is the voxel's value, level 1 the trilinear upsampling there
    for row, cls in zip(f.features, f.labels):
        where = np.argwhere(np.isclose(image[0].numpy(), row[0]))
        assert len(where) >= 1
        x, y, z = where[0]
        assert row[1] == pytest.approx(float(up[x, y, z]), abs=1e-5)
        assert cls == label[0, x, y, z]


def test_pixels_are_class_balanced_per_case():
    cases = [_slices_case(np.random.default_rng(0))]
    f = extract_features(PassThroughEncoder(), cases, identity, task="segmentation", max_samples=30)
    counts = np.bincount(f.labels)
    assert counts.tolist() == [10, 10, 6]  # 10 per class; class 2 has only 6 pixels
    again = extract_features(PassThroughEncoder(), cases, identity, task="segmentation", max_samples=30)  # fmt: skip
    np.testing.assert_array_equal(f.features, again.features)  # seeded


def test_classification_vector_is_the_slice_mean_of_pooled_deepest_level():
    enc = mt.encoders.create("resnet18", weights=None, in_channels=1)
    torch.manual_seed(0)
    image = torch.rand(3, 1, 32, 32)
    f = extract_features(enc, [{"image": image, "label": 1}, {"image": image * 0.5, "label": 0}], identity, task="classification")  # fmt: skip
    with torch.no_grad():
        expected = enc(image)[-1].mean(dim=(2, 3)).mean(0).numpy()
    assert f.features.shape == (2, 512)
    np.testing.assert_allclose(f.features[0], expected, rtol=1e-4, atol=1e-5)
    assert f.labels.tolist() == [1, 0]
    assert f.source_probs is None


def test_source_probabilities_for_leep_sum_to_one():
    enc = PassThroughEncoder()
    head = nn.Sequential(nn.Flatten(), nn.LazyLinear(5))
    cases = [{"image": torch.rand(2, 1, 4, 4), "label": i % 2} for i in range(4)]
    f = extract_features(enc, cases, identity, task="classification", source_head=head)
    assert f.source_probs.shape == (4, 5)
    np.testing.assert_allclose(f.source_probs.sum(1), 1.0, atol=1e-6)


def test_features_are_cached_in_memory_and_on_disk(tmp_path):
    cases = [_slices_case(np.random.default_rng(0))]
    enc = PassThroughEncoder()
    first = extract_features(enc, cases, identity, task="segmentation", max_samples=30, cache_key="pt", cache_dir=tmp_path)  # fmt: skip
    calls = enc.calls
    second = extract_features(enc, cases, identity, task="segmentation", max_samples=30, cache_key="pt")  # fmt: skip
    assert enc.calls == calls and second is first
    from medtransfer.diagnostics import features as module

    module._MEMORY.clear()
    third = extract_features(enc, cases, identity, task="segmentation", max_samples=30, cache_key="pt", cache_dir=tmp_path)  # fmt: skip
    assert enc.calls == calls  # read from disk
    np.testing.assert_array_equal(third.features, first.features)
    other = extract_features(enc, cases, identity, task="segmentation", max_samples=20, cache_key="pt", cache_dir=tmp_path)  # fmt: skip
    assert enc.calls > calls and len(other.labels) < len(first.labels)  # other settings: new key


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="task"):
        extract_features(PassThroughEncoder(), [], identity, task="detection")
    with pytest.raises(ConfigError, match="max_samples"):
        extract_features(PassThroughEncoder(), [], identity, task="segmentation", max_samples=1)


def test_a_2d_encoder_sees_a_few_slices_per_case_those_showing_the_classes():
    label = np.zeros((20, 1, 10, 12), np.int64)
    label[5:8, :, 2:6, 2:6] = 1
    label[6, :, 7:9, 7:9] = 2
    seen = []

    class Recording(PassThroughEncoder):
        def forward(self, x):
            seen.append(x.shape[0])
            return super().forward(x)

    case = {"image": torch.from_numpy(label.astype(np.float32)), "label": label}
    f = extract_features(Recording(), [case], identity, task="segmentation", max_samples=60)
    assert sum(seen) == 8  # SLICES_PER_CASE of 20
    assert set(np.unique(f.labels)) == {0, 1, 2}  # the slices with the classes were chosen
    np.testing.assert_allclose(f.features[:, 0], f.labels, atol=1e-5)  # still aligned


def test_the_cache_key_follows_labels_and_images_not_only_case_ids():
    rng = np.random.default_rng(0)
    case = _slices_case(rng)
    relabelled = {**case, "label": (case["label"] > 0).astype(np.int64)}  # other task, same ids
    first = extract_features(PassThroughEncoder(), [case], identity, task="segmentation", max_samples=30, cache_key="k")  # fmt: skip
    second = extract_features(PassThroughEncoder(), [relabelled], identity, task="segmentation", max_samples=30, cache_key="k")  # fmt: skip
    assert set(first.labels.tolist()) == {0, 1, 2} and set(second.labels.tolist()) == {0, 1}


def test_a_single_2d_image_is_a_stack_of_one_slice():
    """Radiographs: the xray preset gives (C, X, Y), not (S, C, X, Y)."""
    image = torch.rand(1, 8, 10)
    label = (image > 0.5).long().numpy()
    seg = extract_features(PassThroughEncoder(), [{"image": image, "label": label}], identity, task="segmentation", max_samples=20)  # fmt: skip
    np.testing.assert_allclose(seg.features[:, 0] > 0.5, seg.labels.astype(bool))
    cls = extract_features(PassThroughEncoder(), [{"image": image, "label": 1}, {"image": image, "label": 0}], identity, task="classification")  # fmt: skip
    assert cls.features.shape == (2, 1)


def test_a_class_name_instead_of_an_index_names_the_case():
    cases = [{"image": torch.rand(1, 1, 4, 4), "label": "benign", "case_id": "c-7"}]
    with pytest.raises(ConfigError, match=r"c-7.*benign.*class_names"):
        extract_features(PassThroughEncoder(), cases, identity, task="classification")
