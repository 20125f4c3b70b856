"""Nyul-Udupa histogram standardisation: by-hand values, sites made alike, JSON, preset, errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy.stats import wasserstein_distance

import medtransfer as mt
from medtransfer.errors import ConfigError, InputPathError
from medtransfer.transforms import (
    HistogramStandardized,
    RobustScaled,
    histogram_standardize,
    learn_histogram_landmarks,
    load_landmarks,
    presets,
    robust_scale,
    save_landmarks,
)

# 11 foreground values each (0 is background): percentiles 10/50/90 are values 1, 5 and 9.
A = np.array([0.0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110])  # landmarks 20, 60, 100
B = np.array([0.0, 10, 20, 25, 30, 35, 40, 55, 70, 85, 100, 110])  # landmarks 20, 40, 100
HAND = {
    "percentiles": [10.0, 50.0, 90.0],
    "landmarks": [0.0, 37.5, 100.0],
    "standard_range": [0.0, 100.0],
    "foreground": "nonzero",
}


def test_learning_matches_a_derivation_by_hand():
    # A: (20, 60, 100) -> (0, 50, 100); B: (20, 40, 100) -> (0, 25, 100); average (0, 37.5, 100)
    learned = learn_histogram_landmarks([torch.tensor(A), B], percentiles=(10, 50, 90))
    assert learned == {"method": "nyul-udupa", **HAND, "n_images": 2}
    unit = learn_histogram_landmarks([A, B], percentiles=(10, 50, 90), standard_range=(0, 1))
    assert unit["landmarks"] == [0.0, 0.375, 1.0] and unit["standard_range"] == [0.0, 1.0]
    json.dumps(learned)  # plain JSON data


def test_applying_matches_a_derivation_by_hand():
    # B's landmarks (20, 40, 100) -> (0, 0.375, 1): slope 0.375/20 below 40, 0.625/60 above
    out = histogram_standardize(torch.tensor(B[None]), HAND)
    expected = [0.0, -0.1875, 0.0, 0.09375, 0.1875, 0.28125, 0.375, 0.53125, 0.6875, 0.84375,
                1.0, 1.0 + 0.625 / 6]  # fmt: skip
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6)
    # A's landmarks (20, 60, 100) -> (0, 0.375, 1): the same landmarks give the same values
    out_a = histogram_standardize(torch.tensor(A[None]), HAND)
    np.testing.assert_allclose(out_a[0, [2, 6, 10]].numpy(), [0.0, 0.375, 1.0], atol=1e-6)
    clipped = histogram_standardize(torch.tensor(B[None]), HAND, clip=True)
    assert clipped.min() == 0 and clipped.max() == 1 and clipped[0, 0] == 0


def test_map_is_the_interpolation_inside_the_cutoffs_and_zero_stays_zero():
    rng = np.random.default_rng(0)
    image = np.where(rng.random((1, 30, 20)) < 0.3, 0, rng.gamma(2.0, 300.0, (1, 30, 20)))
    landmarks = learn_histogram_landmarks(rng.gamma(3.0, 50.0, (30, 20)) + 1)
    out = histogram_standardize(image.astype(np.float32), landmarks).numpy()
    values = image[image != 0]
    source = np.percentile(values, landmarks["percentiles"])
    target = np.asarray(landmarks["landmarks"]) / 100.0
    inside = (image >= source[0]) & (image <= source[-1])
    np.testing.assert_allclose(out[inside], np.interp(image[inside], source, target), atol=1e-5)
    assert np.all(out[image == 0] == 0)
    assert np.all(np.diff(out[image != 0][np.argsort(values)]) >= -1e-6)  # monotone


def test_channels_are_mapped_alike_and_meta_is_kept():
    x = torch.tensor(B[None, 1:])
    image = MetaTensor(torch.cat([x, 1000 * x, torch.zeros_like(x)]), meta={"case": "c1"})
    image.affine = torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    out = histogram_standardize(image, HAND)
    assert isinstance(out, MetaTensor) and out.meta["case"] == "c1"
    assert torch.equal(out.affine, image.affine)
    torch.testing.assert_close(out[0], out[1])  # a positive scale changes nothing
    assert out[2].abs().sum() == 0  # a channel without foreground stays 0


def test_foreground_choices():
    image = torch.tensor([[0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
    everything = learn_histogram_landmarks(image[0], percentiles=(20, 90), foreground=None)
    assert everything["foreground"] is None
    out = histogram_standardize(image, everything)
    assert out[0, 0] < 0  # with foreground=None the background (below percentile 20) is mapped
    above_mean = learn_histogram_landmarks(image[0], percentiles=(10, 90), foreground="mean")
    assert histogram_standardize(image, above_mean)[0, 5] < 0  # 4 is below the cutoff 5.1


def _anatomy(seed: int, shape=(40, 40, 16)) -> np.ndarray:
    """One head-like anatomy: three tissues (0.2, 0.5, 0.8) in ellipsoid shells, texture, noise."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radii = np.array([0.85, 0.8, 0.9]) * rng.uniform(0.92, 1.05, 3)
    r = np.sqrt(((grid / radii[:, None, None, None]) ** 2).sum(0))
    tissue = np.select([r < 0.45, r < 0.75, r < 1.0], [0.8, 0.5, 0.2], 0.0)
    texture = 0.05 * np.sin(3 * grid[0] + rng.uniform(0, 6)) * np.cos(2 * grid[1])
    noisy = tissue + (tissue > 0) * (texture + rng.normal(0, 0.03, shape))
    return np.clip(noisy, 0.0, None).astype(np.float32)


# monotone intensity responses of three "sites" (0 stays 0: the background)
SITES = {
    "reference": lambda v: 800.0 * v,
    "gamma": lambda v: 3000.0 * v**2.2,
    "piecewise": lambda v: np.interp(v, [0, 0.3, 0.6, 1.0], [0, 40, 1500, 1800]),
}


def _w1(x: np.ndarray, y: np.ndarray, x_mask: np.ndarray, y_mask: np.ndarray) -> float:
    return wasserstein_distance(np.asarray(x)[x_mask], np.asarray(y)[y_mask])


@pytest.mark.parametrize("site", ["gamma", "piecewise"])
def test_sites_become_alike(site):
    """Another subject at another site: W1 of the foreground, linear scaling vs standardisation.

    Measured: gamma 0.127 -> 0.0036, piecewise 0.096 -> 0.0032 (about 30x closer), both in
    units of the [0, 1] scale; raw intensities differ by 40-60 % of the reference's range.
    """
    landmarks = learn_histogram_landmarks([SITES["reference"](_anatomy(s)) for s in range(3)])
    reference = SITES["reference"](_anatomy(10))[None]
    other = SITES[site](_anatomy(11))[None]
    masks = reference != 0, other != 0

    def linear(x):  # the same cutoffs mapped to 0 and 1: the best a linear scaling does
        return robust_scale(torch.as_tensor(x), 1, 99, clip=False).numpy()

    def standard(x):
        return histogram_standardize(x, landmarks).numpy()

    before = _w1(linear(reference), linear(other), *masks)
    after = _w1(standard(reference), standard(other), *masks)
    assert before > 0.05
    assert after < 0.01 and after < before / 10


@pytest.mark.skipif(importlib.util.find_spec("nilearn") is None, reason="nilearn (dev) missing")
def test_mni152_sites_become_alike():
    """The MNI152 T1 (2 mm) at a reference site and at a site with gamma 0.5: W1 0.032 -> 0.0013."""
    import nibabel as nib
    import nilearn

    data = Path(nilearn.__file__).parent / "datasets" / "data"
    t1 = np.asarray(nib.load(data / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz").dataobj)
    t1 = t1[::2, ::2, ::2].astype(np.float32) / 255.0  # skull-stripped: background 0
    rng = np.random.default_rng(0)

    def scan(gain, gamma):
        noise = 1 + 0.02 * rng.standard_normal(t1.shape)
        return np.where(t1 > 0, gain * t1**gamma * noise, 0).astype(np.float32)[None]

    landmarks = learn_histogram_landmarks([scan(900, g) for g in (0.9, 1.0, 1.1)])
    scans = reference, other = scan(1000, 1.0), scan(3500, 0.5)
    masks = reference != 0, other != 0
    linear = [robust_scale(torch.as_tensor(x), 1, 99, clip=False).numpy() for x in scans]
    standard = [histogram_standardize(x, landmarks).numpy() for x in scans]
    before, after = _w1(*linear, *masks), _w1(*standard, *masks)
    assert after < before / 10 and after < 0.005


def test_save_load_round_trip_and_paths(tmp_path):
    learned = learn_histogram_landmarks([_anatomy(0), 500 * _anatomy(1)])
    path = save_landmarks(learned, tmp_path / "sites" / "t1.json")
    assert load_landmarks(path) == learned
    assert json.loads(path.read_text())["method"] == "nyul-udupa"
    assert sorted(p.name for p in path.parent.iterdir()) == ["t1.json"]  # no temporary left
    image = torch.as_tensor(_anatomy(2))[None]
    by_path = HistogramStandardized("image", str(path))({"image": image})["image"]
    torch.testing.assert_close(by_path, histogram_standardize(image, learned))


def test_learning_from_records_with_nifti_paths(tmp_path):
    volumes = [_anatomy(0), 3 * _anatomy(1) ** 2]
    records = []
    for i, volume in enumerate(volumes):
        path = mt.io.save(volume, tmp_path / f"case{i}.nii.gz", affine=np.eye(4))
        records.append({"image": str(path), "case_id": f"case{i}"})
    from_paths = learn_histogram_landmarks(records)
    from_arrays = learn_histogram_landmarks(volumes)
    np.testing.assert_allclose(from_paths["landmarks"], from_arrays["landmarks"], atol=1e-4)
    named = learn_histogram_landmarks([{"t1": v} for v in volumes], image_key="t1")
    assert named["n_images"] == 2


def test_mri_preset_with_histogram_keeps_labels(tmp_path):
    rng = np.random.default_rng(0)
    image = torch.as_tensor(rng.uniform(1, 1000, (24, 24, 6)), dtype=torch.float32)
    label = torch.as_tensor(rng.integers(0, 3, (24, 24, 6)), dtype=torch.uint8)
    landmarks = learn_histogram_landmarks([_anatomy(0), _anatomy(1)])
    record = {"image": image, "label": label}
    for histogram in (landmarks, save_landmarks(landmarks, tmp_path / "lm.json")):
        train, evaluate = presets.mri(
            "segmentation", spatial_dims=2, roi_size=(16, 16), histogram=histogram
        )
        assert any(isinstance(t, HistogramStandardized) for t in evaluate.transforms)
        assert not any(isinstance(t, RobustScaled) for t in evaluate.transforms)
        out = evaluate(record)
        expected = histogram_standardize(image[None], landmarks)[0].permute(2, 0, 1)
        torch.testing.assert_close(out["image"][:, 0].as_tensor(), expected)  # mean 0, std 1
        assert torch.equal(out["label"][:, 0].as_tensor(), label.permute(2, 0, 1).float())
        for sample in train(record):
            assert sample["image"].shape == (1, 16, 16)
            assert set(sample["label"].unique().tolist()) <= {0.0, 1.0, 2.0}
    _, default = presets.mri("segmentation", spatial_dims=2, roi_size=(16, 16))
    assert any(isinstance(t, RobustScaled) for t in default.transforms)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"percentiles": (10, 10, 90)}, "percentiles=.*strictly increasing"),
        ({"percentiles": (0, 50, 100)}, r"percentiles=.*\(0, 100\)"),
        ({"percentiles": (50,)}, "at least 2"),
        ({"standard_range": (1, 0)}, "standard_range"),
        ({"foreground": "nonzro"}, "Did you mean 'nonzero'"),
    ],
)
def test_learning_argument_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        learn_histogram_landmarks([A], **kwargs)


def test_learning_data_errors():
    with pytest.raises(ConfigError, match="got no images"):
        learn_histogram_landmarks([])
    with pytest.raises(ConfigError, match=r"images\[1\] has no foreground.*foreground='mean'"):
        learn_histogram_landmarks([A, np.zeros((4, 4))])
    with pytest.raises(ConfigError, match=r"images\[0\] has a constant foreground"):
        learn_histogram_landmarks([np.full((4, 4), 7.0)])
    with pytest.raises(ConfigError, match=r"images\[0\] must be an image path.*image_key='image'"):
        learn_histogram_landmarks([{"t1": A}])
    with pytest.raises(ConfigError, match=r"images\[0\] must be an image path"):
        learn_histogram_landmarks([3])
    # most of the foreground is one value: percentiles 10-80 tie in every image
    tied = np.array([1.0] * 80 + list(np.linspace(2, 3, 20)))
    with pytest.raises(ConfigError, match="not strictly increasing.*fewer"):
        learn_histogram_landmarks([tied, 2 * tied])


def test_landmark_errors(tmp_path):
    with pytest.raises(ConfigError, match="'landmarks'.*strictly increasing"):
        histogram_standardize(torch.tensor(A[None]), {**HAND, "landmarks": [0, 50, 40]})
    with pytest.raises(ConfigError, match="'landmarks'.*3 finite"):
        HistogramStandardized("image", {**HAND, "landmarks": [0, 100]})
    with pytest.raises(ConfigError, match="has no 'percentiles'"):
        save_landmarks({"landmarks": [0, 1]}, tmp_path / "x.json")
    with pytest.raises(ConfigError, match="'foreground'"):
        histogram_standardize(torch.tensor(A[None]), {**HAND, "foreground": "brain"})
    with pytest.raises(ConfigError, match="channel-first"):
        histogram_standardize(torch.tensor(A), HAND)
    with pytest.raises(InputPathError, match="missing.json"):
        load_landmarks(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"percentiles": [1, 99], "landmarks": [0, ')
    with pytest.raises(ConfigError, match="broken.json is not valid JSON"):
        load_landmarks(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"percentiles": [1, 99], "landmarks": [5, 1]}))
    with pytest.raises(ConfigError, match="wrong.json: 'landmarks'"):
        presets.mri(histogram=wrong)
    assert not (tmp_path / "x.json").exists()
