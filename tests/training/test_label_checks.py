"""Training checks each label against its image (shape, affine, values) before using it (issue 11)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError, MedTransferError
from medtransfer.training import FineTuner
from tests.training.helpers import (
    TinyClassifier,
    TinySegmenter,
    classification_records,
    segmentation_records,
)

SHAPE = (20, 16, 4)


def _cases(tmp_path, n=3):
    return mt.data.synthetic.phantoms(n, shape=SHAPE, seed=0, output_dir=tmp_path / "data")


def _rewrite_label(path, array=None, affine_shift=None, dtype=None):
    img = nib.load(path)
    data = np.asarray(img.dataobj) if array is None else array
    affine = img.affine.copy()
    if affine_shift is not None:
        affine[:3, 3] += affine_shift
    out = nib.Nifti1Image(data.astype(dtype or data.dtype), affine)
    nib.save(out, path)


def _presets(**kwargs):
    options = {"spatial_dims": 2, "roi_size": (16, 16), "num_samples": 1, **kwargs}
    return mt.transforms.presets.ct("segmentation", **options)


def _fit(tmp_path, train, val=None, num_classes=5, cache="memory"):
    train_tf, eval_tf = _presets()
    model = TinySegmenter(num_classes=num_classes)
    model.encoder.spatial_dims = 2  # validated slice by slice, as a 2D Segmenter
    tuner = FineTuner(
        model,
        task="segmentation",
        run_dir=tmp_path / "run",
        progress="quiet",
        batch_size=2,
        cache=cache,
    )
    return tuner.fit(train, val, epochs=1, train_transform=train_tf, val_transform=eval_tf)


def _assert_names_case_and_files(err, case):
    message = str(err.value)
    assert f"'{case['case_id']}'" in message
    assert case["image"] in message and case["label"] in message


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_a_label_of_another_shape_is_refused(tmp_path, cache):
    cases = _cases(tmp_path)
    label = np.asarray(nib.load(cases[1]["label"]).dataobj)
    _rewrite_label(cases[1]["label"], array=label[:18])  # 18x16x4 against an image of 20x16x4
    with pytest.raises(ConfigError, match=r"shape \(18, 16, 4\).*\(20, 16, 4\)") as err:
        _fit(tmp_path, cases, cache=cache)
    _assert_names_case_and_files(err, cases[1])


def test_a_label_shifted_by_10_mm_is_refused(tmp_path):
    cases = _cases(tmp_path)
    _rewrite_label(cases[0]["label"], affine_shift=(10.0, 0.0, 0.0))
    with pytest.raises(ConfigError, match="affine") as err:
        _fit(tmp_path, cases)
    _assert_names_case_and_files(err, cases[0])
    assert "origin" in str(err.value)


def test_a_float_probability_map_is_refused(tmp_path):
    cases = _cases(tmp_path)
    label = np.asarray(nib.load(cases[2]["label"]).dataobj).astype(np.float32)
    _rewrite_label(cases[2]["label"], array=label * 0.2)  # probabilities 0..0.8
    with pytest.raises(ConfigError, match="non-integer") as err:
        _fit(tmp_path, cases)
    _assert_names_case_and_files(err, cases[2])


def test_a_label_value_above_num_classes_is_refused_not_an_index_error(tmp_path):
    cases = _cases(tmp_path)
    for case in cases:
        label = np.clip(np.asarray(nib.load(case["label"]).dataobj), 0, 2)
        if case is cases[1]:
            label[10, 8, 2] = 5  # inside the body: kept by the foreground crop
        _rewrite_label(case["label"], array=label)
    with pytest.raises(ConfigError, match=r"value 5.*3 classes") as err:
        _fit(tmp_path, cases, num_classes=3)
    _assert_names_case_and_files(err, cases[1])


def test_a_bad_validation_pair_is_refused_too(tmp_path):
    cases = _cases(tmp_path)
    _rewrite_label(cases[2]["label"], affine_shift=(0.0, 0.0, 10.0))
    with pytest.raises(ConfigError, match="affine") as err:
        _fit(tmp_path, cases[:2], cases[2:])
    _assert_names_case_and_files(err, cases[2])


def test_in_memory_label_values_are_checked_without_a_loader(tmp_path):
    records = segmentation_records(4)  # tensors, no transform: values are still checked
    records[1]["label"][0, 8, 8] = 4
    tuner = FineTuner(TinySegmenter(num_classes=3), task="segmentation", progress="quiet",
                      run_dir=tmp_path / "run", batch_size=2)  # fmt: skip
    with pytest.raises(ConfigError, match=r"seg-001.*value 4.*3 classes"):
        tuner.fit(records, epochs=1)


def test_good_pairs_are_checked_once_per_case_right_after_loading(tmp_path, monkeypatch):
    from medtransfer.training.label_checks import CheckLabelAgainstImaged, with_label_check

    calls = []
    original = CheckLabelAgainstImaged.__call__

    def counting(self, data):
        calls.append(data.get("case_id"))
        return original(self, data)

    monkeypatch.setattr(CheckLabelAgainstImaged, "__call__", counting)
    cases = _cases(tmp_path, n=4)
    history = _fit(tmp_path, cases[:3], cases[3:])  # 1 epoch: train and val pipelines
    assert len(history) == 1
    assert sorted(calls) == sorted(c["case_id"] for c in cases)  # once each, cached
    train_tf, eval_tf = _presets(spacing=(2.0, 2.0, 4.0))
    for pipeline in (train_tf, eval_tf):
        checked = with_label_check(pipeline, "segmentation", 5)
        names = [type(t).__name__ for t in checked.transforms]
        assert names[:2] == ["LoadVolumed", "CheckLabelAgainstImaged"]  # before Spacingd
        assert "Spacingd" in names and len(names) == len(pipeline.transforms) + 1
        assert pipeline.transforms[1].__class__.__name__ != "CheckLabelAgainstImaged"


@pytest.mark.parametrize(
    ("label", "match"),
    [(3, r"label 3.*0\.\.1"), ("benign", "'benign'"), (-1, "label -1"), (0.5, "label 0.5")],
)
def test_classification_labels_must_be_class_values(tmp_path, label, match):
    records = classification_records(4)
    records[2]["label"] = label
    tuner = FineTuner(TinyClassifier(), run_dir=tmp_path / "run", progress="quiet", batch_size=2)
    with pytest.raises(ConfigError, match=match) as err:
        tuner.fit(records, epochs=1)
    assert "case-002" in str(err.value)


def test_errors_are_medtransfer_errors_in_the_check_itself():
    from medtransfer.training.label_checks import CheckLabelAgainstImaged

    check = CheckLabelAgainstImaged("classification", num_classes=2)
    assert check({"image": None, "label": 1, "case_id": "c"})["label"] == 1
    with pytest.raises(MedTransferError, match="'c'"):
        check({"image": None, "label": 2, "case_id": "c"})


@pytest.mark.slow
def test_the_train_command_reports_the_bad_pair(tmp_path, capsys):
    from medtransfer.cli import main

    cases = mt.data.synthetic.phantoms(8, shape=(32, 32, 6), seed=1, output_dir=tmp_path / "data")
    for case in cases:  # whichever case the split puts first in training
        _rewrite_label(case["label"], affine_shift=(10.0, 0.0, 0.0))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "data: {manifest: data/manifest.csv, task: segmentation, class_names: [liver, lesion, "
        "spleen, kidney], split: {fractions: [0.5, 0.25, 0.25]}}\npreprocessing: {spatial_dims: 2, roi_size: [32, 32], num_samples: 1}\n"
        "model: {encoder: resnet18, weights: null, decoder_channels: [32, 16, 16, 8, 8]}\n"
        "training: {epochs: null, steps: 1, batch_size: 2, device: cpu, cache: none}\n"
        "output: {run_dir: runs/tiny}\n"
    )
    assert main(["train", str(config)]) != 0
    err = capsys.readouterr().err
    assert "phantom-0" in err and "affine" in err and "Traceback" not in err
