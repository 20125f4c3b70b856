"""Presets: label integrity, end-to-end shapes on the committed samples, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Spacingd

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.transforms import LoadVolumed, presets


def _label_set(x) -> set[float]:
    return set(torch.unique(torch.as_tensor(x)).tolist())


def _case(shape=(32, 32, 8), seed=0):
    return mt.data.synthetic.phantoms(1, shape=shape, seed=seed)[0]


@pytest.mark.parametrize("pixdim", [(2.5, 2.5, 7.0), (13.0, 7.0, 11.0), (1.7, 3.1, 5.0)])
def test_resampled_labels_keep_exactly_the_original_label_set(sample_records, pixdim):
    record = sample_records[0]
    keys = ["image", "label"]
    original = LoadVolumed(keys)(record)["label"]
    resample = Compose(
        [LoadVolumed(keys), Spacingd(keys, pixdim=pixdim, mode=["bilinear", "nearest"])]
    )
    label = resample(record)["label"]
    assert _label_set(original) == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert _label_set(label) == _label_set(original)


@pytest.mark.slow
def test_preset_resampling_and_augmentation_never_invent_label_values(sample_records):
    train, evaluate = presets.ct(
        "segmentation", spacing=(3.0, 3.0, 7.0), roi_size=(48, 48, 16), num_samples=4, seed=3
    )
    record = sample_records[0]
    assert _label_set(evaluate(record)["label"]) == {0.0, 1.0, 2.0, 3.0, 4.0}
    seen = set()
    for _ in range(3):
        for sample in train(record):
            values = _label_set(sample["label"])
            assert values <= {0.0, 1.0, 2.0, 3.0, 4.0}
            seen |= values
    assert seen == {0.0, 1.0, 2.0, 3.0, 4.0}


SHAPES = [  # spatial_dims, context, train image shape
    (3, 0, (1, 32, 32, 16)),
    (2, 0, (1, 32, 32)),
    (2, 2, (5, 32, 32)),
]


@pytest.mark.parametrize(("dims", "context", "train_shape"), SHAPES)
def test_segmentation_end_to_end_on_samples(sample_records, dims, context, train_shape):
    roi = (32, 32, 16) if dims == 3 else (32, 32)
    train, evaluate = presets.ct(
        "segmentation", roi_size=roi, spatial_dims=dims, context=context, num_samples=3
    )
    for record in (sample_records[0], sample_records[3]):  # NIfTI pair, DICOM series + NIfTI
        samples = train(record)
        assert len(samples) == 3
        for s in samples:
            assert tuple(s["image"].shape) == train_shape
            assert tuple(s["label"].shape) == (1, *train_shape[1:])
            assert s["image"].dtype == torch.float32
        out = evaluate(record)  # the whole volume cropped to the body (62 x 45 x 32 voxels)
        if dims == 3:
            assert tuple(out["image"].shape) == tuple(out["label"].shape) == (1, 62, 45, 32)
        else:  # every slice, as a batch
            assert tuple(out["image"].shape) == (32, 2 * context + 1, 62, 45)
            assert tuple(out["label"].shape) == (32, 1, 62, 45)


@pytest.mark.parametrize(("dims", "context"), [(3, 0), (2, 0), (2, 1)])
def test_classification_end_to_end_on_samples(sample_records, dims, context):
    roi = (48, 48, 32) if dims == 3 else (48, 48)
    train, evaluate = presets.ct("classification", roi_size=roi, spatial_dims=dims, context=context)
    record = dict(sample_records[3], label=int(sample_records[3]["has_lesion"]))
    sample, out = train(record), evaluate(record)
    channels = 2 * context + 1
    if dims == 3:
        assert tuple(sample["image"].shape) == tuple(out["image"].shape) == (1, *roi)
    else:
        assert tuple(sample["image"].shape) == (channels, *roi)
        assert tuple(out["image"].shape) == (32, channels, *roi)
    assert sample["label"] == out["label"] == 1


def test_dicom_and_nifti_records_give_the_same_eval_volume(sample_records):
    _, evaluate = presets.ct("segmentation", roi_size=(16, 16, 16))
    nifti, dicom = evaluate(sample_records[0]), evaluate(sample_records[3])
    assert nifti["image"].shape == dicom["image"].shape
    assert (nifti["image"] - dicom["image"]).abs().max() < 0.01  # DICOM stores integer HU
    assert torch.equal(nifti["label"], dicom["label"])
    np.testing.assert_allclose(nifti["image"].affine, dicom["image"].affine, atol=1e-4)


def test_eval_is_deterministic_and_train_is_seeded():
    case = _case()
    kwargs = dict(roi_size=(16, 16, 8), num_samples=2)
    _, evaluate = presets.ct("segmentation", **kwargs)
    assert torch.equal(evaluate(case)["image"], evaluate(case)["image"])
    first = [s["image"] for s in presets.ct("segmentation", seed=7, **kwargs)[0](case)]
    again = [s["image"] for s in presets.ct("segmentation", seed=7, **kwargs)[0](case)]
    other = [s["image"] for s in presets.ct("segmentation", seed=8, **kwargs)[0](case)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_eval_2d_inverts_to_the_preprocessed_volume():
    case = _case()
    _, evaluate = presets.ct("segmentation", spatial_dims=2, context=1, roi_size=(32, 32))
    out = evaluate(case)
    volume = mt.transforms.unstack_slices(out["label"])  # labels stacked with context 0
    assert volume.shape == (1, 32, 32, 8)
    assert _label_set(volume) == _label_set(case["label"])
    assert torch.equal(volume.affine, out["image"].affine)


def test_window_and_encoder_normalisation_values():
    hu = torch.zeros(16, 16, 3)
    hu[..., 0], hu[..., 1], hu[..., 2] = -160.0, 40.0, 240.0  # abdomen window: 0, 0.5, 1
    record = {"image": MetaTensor(hu), "label": 0}
    _, evaluate = presets.ct(
        "classification", roi_size=(16, 16, 3), foreground_threshold=None, mean=0.5, std=0.25
    )
    assert evaluate(record)["image"].unique().tolist() == [-2.0, 0.0, 2.0]


def test_input_spec_and_three_windows_feed_an_rgb_encoder():
    class Spec:
        mean, std, value_range = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (0.0, 1.0)

    train, evaluate = presets.ct(
        "classification",
        window=["abdomen", "lung", "bone"],
        input_spec=Spec(),
        roi_size=(16, 16, 8),
    )
    image = evaluate(_case())["image"]
    assert image.shape == (3, 16, 16, 8)
    assert image[0].min() == pytest.approx((0 - 0.485) / 0.229)


def test_plan_fills_spacing_window_and_roi():
    plan = {
        "spacing": [20.0, 20.0, 20.0],
        "window": {"level": 0, "width": 100},
        "roi_size": [16, 16, 16],
    }
    train, evaluate = presets.ct("segmentation", plan=plan, spatial_dims=3)
    out = evaluate(_case())
    spacing = np.linalg.norm(out["image"].affine[:3, :3].numpy(), axis=0)
    np.testing.assert_allclose(spacing, [20.0, 20.0, 20.0])
    assert tuple(train(_case())[0]["image"].shape) == (1, 16, 16, 16)
    explicit = presets.ct("segmentation", plan=plan, roi_size=(8, 8, 8))[0]
    assert tuple(explicit(_case())[0]["image"].shape) == (1, 8, 8, 8)


def test_mri_preset_robust_normalisation():
    rng = np.random.default_rng(0)
    volume = np.zeros((24, 24, 6), np.float32)
    volume[4:20, 4:20] = rng.uniform(100, 1100, size=(16, 16, 6))
    label = (volume > 600).astype(np.float32)
    _, evaluate = presets.mri("segmentation", percentiles=(0, 100), roi_size=(8, 8, 4))
    out = evaluate({"image": torch.from_numpy(volume), "label": torch.from_numpy(label)})
    assert out["image"].shape == (1, 20, 20, 6)  # cropped to the non-zero box + 2 voxel margin
    assert out["image"].max() == 1.0 and out["image"].min() == 0.0
    inside = out["image"][0, 2:-2, 2:-2]
    expected = (volume[4:20, 4:20] - volume[4:20, 4:20].min()) / np.ptp(volume[4:20, 4:20])
    np.testing.assert_allclose(inside.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_xray_preset(task, tmp_path):
    image = torch.rand(60, 40) * 4000
    mask = torch.zeros(60, 40)
    mask[10:30, 10:30] = 1
    mask[40:50, 5:15] = 2
    path = mt.io.save(image.numpy(), tmp_path / "cxr.nii.gz", affine=np.eye(4))
    record = {"image": str(path), "label": mask if task == "segmentation" else 1}
    train, evaluate = presets.xray(task, roi_size=(32, 32), mean=0.449, std=0.226)
    for out in (train(record), evaluate(record)):
        assert out["image"].shape == (1, 32, 32)
        if task == "segmentation":
            assert _label_set(out["label"]) == {0.0, 1.0, 2.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "segmentaton"}, r"task='segmentaton'.*Did you mean 'segmentation'"),
        ({"window": "lugn"}, r"window='lugn'.*'lung'"),
        ({"roi_size": (32, 32), "spatial_dims": 3}, r"roi_size=\(32, 32\) must be 3 positive"),
        ({"roi_size": (32, 32, 32), "spatial_dims": 2}, r"roi_size=.* must be 2 positive"),
        ({"context": 1, "spatial_dims": 3}, r"context=1 \(2.5D\) needs spatial_dims=2"),
        ({"spatial_dims": 4}, r"spatial_dims=4.*2, 3"),
        ({"spacing": (1.0, 0.0, 1.0)}, r"spacing=.* positive voxel sizes"),
        ({"mean": (0.1, 0.2, 0.3), "std": (1.0, 1.0, 1.0)}, r"3 values but the pipeline makes 1"),
        ({"plan": "plan.json"}, r"plan must be a dict"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        presets.ct(**kwargs)


def test_an_image_that_is_not_an_image_is_a_config_error():
    train, _ = presets.ct("classification", roi_size=(16, 16, 8))
    with pytest.raises(RuntimeError) as info:  # MONAI's Compose wraps errors raised inside it
        train({"image": 3, "label": 0})
    assert isinstance(info.value.__cause__, ConfigError)
    assert "'image' must be an image path or an image tensor" in str(info.value.__cause__)


@pytest.mark.parametrize(
    ("make", "radiograph"),
    [
        (lambda: presets.ct(spatial_dims=3, roi_size=(16, 16, 16)), False),
        (lambda: presets.ct(spatial_dims=2, context=1, roi_size=(16, 16)), False),
        (lambda: presets.mri(spatial_dims=3, roi_size=(16, 16, 16)), False),
        (lambda: presets.xray("segmentation", roi_size=(16, 16)), True),
    ],
)
def test_eval_pipeline_accepts_a_record_without_label_and_train_names_it(make, radiograph):
    from medtransfer.transforms.pipeline_errors import run_pipeline

    train, evaluate = make()
    image = _case()["image"]
    image = image[:, :, 0] if radiograph else image
    out = evaluate({"image": image})
    assert "label" not in out
    with_label = evaluate({"image": image, "label": (image > 100).to(torch.uint8)})
    assert with_label["label"].shape[-2:] == out["image"].shape[-2:]
    with pytest.raises(ConfigError, match=r"no 'label' \(its keys: image\)"):
        run_pipeline(train, {"image": image})


def test_a_wrong_preset_argument_is_a_config_error_with_the_likely_one():
    with pytest.raises(ConfigError, match=r"mri\(\) has no argument 'window'.*no HU scale"):
        presets.mri(window="brain")
    with pytest.raises(ConfigError, match=r"has no argument 'spacng'. Did you mean 'spacing'"):
        presets.ct(spacng=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match=r"xray\(\) has no argument 'spatial_dims'.*2D"):
        presets.xray(spatial_dims=2)
    with pytest.raises(ConfigError, match=r"ct\(\): too many positional"):
        presets.ct("segmentation", "extra")
