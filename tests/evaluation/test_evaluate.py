"""evaluate_segmentation / evaluate_classification end to end on tiny phantoms.

The segmentation oracle thresholds the windowed input (the abdomen window maps 40 HU to 0.5), and
the reference of each record is the same threshold applied to the source image: a pipeline that
maps predictions back to the source grid correctly scores Dice 1 exactly, whatever the source
orientation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.evaluation.evaluate.classification import evaluate_classification
from medtransfer.evaluation.evaluate.segmentation import evaluate_segmentation
from tests.fixtures import Oracle

THRESHOLD_HU = 40.0


def _reoriented(image):
    """The phantom re-expressed with permuted, flipped axes (not RAS), same world geometry."""
    array = image.as_tensor().numpy()[::-1].transpose(1, 0, 2).copy()
    shape = image.shape
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, shape[0] - 1
    affine = image.affine.numpy() @ flip @ np.eye(4)[[1, 0, 2, 3]]
    return mt.io.make_image(array.astype(np.float32), affine, source="memory")


def _threshold_records(n=3, shape=(32, 28, 6), tmp_path=None):
    records = []
    for i, case in enumerate(
        mt.data.synthetic.phantoms(n, shape=shape, spacing=(10.0, 12.0, 20.0))
    ):
        image = _reoriented(case["image"]) if i % 2 == 0 else case["image"]
        mask = (image.as_tensor().numpy() > THRESHOLD_HU).astype(np.uint8)
        label = mt.io.make_image(mask, image.affine.numpy(), source="memory")
        record = {"image": image, "label": label, "case_id": case["case_id"]}
        if tmp_path is not None:
            record["image"] = mt.io.save(image, tmp_path / f"{i}.nii.gz")
            record["label"] = mt.io.save(label, tmp_path / f"{i}_seg.nii.gz")
        record["patient_id"] = f"Doe^Jane-{i}"
        records.append(record)
    return records


def test_oracle_scores_dice_one_through_the_geometry_round_trip(tmp_path):
    records = _threshold_records(tmp_path=tmp_path)
    preset = mt.transforms.presets.ct(roi_size=(32, 32, 16))
    report = evaluate_segmentation(
        Oracle(), records, preset, class_names=["dense"], n_resamples=100, device="cpu",
        progress=False, postprocess=False, keep_predictions=True,
    )  # fmt: skip
    assert [row["case_id"] for row in report.cases] == ["phantom-000", "phantom-001", "phantom-002"]
    for row in report.cases:
        assert row["dice/dense"] == 1.0 and row["nsd/dense"] == 1.0 and row["hd95/dense"] == 0.0
    assert report.estimate("dice", "dense")["value"] == 1.0
    assert not any(r["metric"].endswith("_post") for r in report.summary)
    assert set(report.predictions) == {r["case_id"] for r in report.cases}
    assert [o.role for o in report.overlays] == ["best", "median", "worst"]
    assert report.metadata["n_cases"] == 3 and report.metadata["model"] == "Oracle"
    text = report.to_json(tmp_path / "r.json").read_text()
    assert "Doe^Jane" not in text and str(tmp_path) not in text


def test_resampling_preset_keeps_geometry_and_postprocessing_is_reported():
    records = _threshold_records(n=2)
    preset = mt.transforms.presets.ct(spacing=(8.0, 15.0, 25.0), roi_size=(32, 32, 16))
    report = evaluate_segmentation(
        Oracle(), records, preset, n_resamples=50, device="cpu", progress=False,
        postprocess=True,
    )  # fmt: skip
    dice = report.estimate("dice", "class_1")["value"]
    assert 0.8 < dice < 1.0  # resampled there and back: close, not exact
    post = report.estimate("dice_post", "class_1")
    assert post["n"] == 2 and 0.0 < post["value"] <= 1.0
    assert report.metadata["postprocess"] == {"largest_component": True}


def test_label_off_the_image_grid_is_refused():
    records = _threshold_records(n=1)
    records[0]["label"] = records[0]["label"][:-1]
    preset = mt.transforms.presets.ct(roi_size=(32, 32, 16))
    with pytest.raises(ConfigError, match="voxel grid"):
        evaluate_segmentation(Oracle(), records, preset, device="cpu", progress=False)


def test_bad_inputs_name_the_field():
    preset = mt.transforms.presets.ct(roi_size=(32, 32, 16))
    with pytest.raises(ConfigError, match="list of dicts"):
        evaluate_segmentation(Oracle(), {"image": 1}, preset, progress=False)
    with pytest.raises(ConfigError, match="label_key"):
        evaluate_segmentation(Oracle(), [{"image": 1, "case_id": "a"}], preset, progress=False)
    records = _threshold_records(n=1)
    with pytest.raises(ConfigError, match="postprocess options"):
        evaluate_segmentation(Oracle(), records, preset, postprocess={"largest": 1})
    with pytest.raises(ConfigError, match="appears twice"):
        evaluate_segmentation(Oracle(), records * 2, preset, progress=False)


@pytest.mark.slow
def test_untrained_segmenter_on_phantoms_gives_a_full_report(tmp_path):
    torch.manual_seed(0)
    records = mt.data.synthetic.phantoms(3, shape=(32, 32, 16))
    preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
    model = mt.models.create_segmenter("resnet18", num_classes=5, weights=None)
    report = evaluate_segmentation(
        model, records, preset, class_names=["liver", "lesion", "spleen", "kidney"],
        n_resamples=100, device="cpu", progress=False,
        postprocess={"largest_component": ["liver", "spleen"]},
    )  # fmt: skip
    metrics = {r["metric"] for r in report.summary}
    assert metrics == {"dice", "dice_post", "nsd", "nsd_post", "hd95", "hd95_post"}
    assert len(report.summary) == 6 * 4
    for row in report.summary:
        if row["metric"].startswith("dice") and row["n"]:
            assert 0.0 <= row["low"] <= row["value"] <= row["high"] <= 1.0
    assert report.metadata["encoder"] == "resnet18"
    assert report.metadata["weights"].startswith("random")
    html = report.to_html(tmp_path / "seg.html").read_text()
    assert html.count("data:image/png;base64,") >= 5  # 2 box plots + 3 overlays


class MeanScore(nn.Module):
    """A 'classifier' whose logit is a fixed function of the input: checkable scores."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = x.flatten(1).mean(1, keepdim=True) * 10.0 - 3.0
        return torch.cat([torch.zeros_like(logit), logit], dim=1)


def test_classification_scores_metrics_and_curves(tmp_path):
    records = mt.data.synthetic.phantoms(6, task="classification", shape=(16, 16, 4))
    labels = [r["label"] for r in records]
    assert 0 < sum(labels) < len(labels)
    preset = mt.transforms.presets.ct("classification", roi_size=(16, 16, 4))
    report = evaluate_classification(
        MeanScore(), records, preset, class_names=["no lesion", "lesion"], n_resamples=100,
        progress=False, device="cpu",
    )  # fmt: skip
    expected = []
    for record in records:
        x = preset[1](dict(record))["image"]
        expected.append(float(torch.sigmoid(x.float().mean() * 10.0 - 3.0)))
    scores = [row["score"] for row in report.cases]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert [row["label"] for row in report.cases] == labels
    assert report.estimate("auroc")["value"] == pytest.approx(mt.evaluation.auroc(scores, labels))
    assert report.curves["roc"][0]["class"] == "lesion"
    assert sum(report.curves["calibration"][0]["counts"]) == 6
    html = report.to_html(tmp_path / "cls.html").read_text()
    assert "ROC curve" in html and "phantom-005" in html


@pytest.mark.slow
def test_classification_with_a_2d_model_averages_slices():
    torch.manual_seed(0)
    records = mt.data.synthetic.phantoms(4, task="classification", shape=(32, 32, 6))
    preset = mt.transforms.presets.ct("classification", spatial_dims=2, roi_size=(32, 32))
    model = mt.models.create_classifier("resnet18", num_classes=2, weights=None)
    report = evaluate_classification(model, records, preset, n_resamples=50, progress=False)
    assert all(0.0 <= row["score"] <= 1.0 for row in report.cases)
    assert report.metadata["class_names"] == ["negative", "positive"]
    with pytest.raises(ConfigError, match="class_names"):
        evaluate_classification(model, records, preset, class_names=["a"], progress=False)


def test_a_mirrored_reference_is_not_scored_perfect():
    records = _threshold_records(n=1)
    label = records[0]["label"]
    records[0]["label"] = mt.io.make_image(
        label.numpy()[::-1].copy(), label.affine.numpy(), source="memory"
    )
    preset = mt.transforms.presets.ct(roi_size=(32, 32, 16))
    report = evaluate_segmentation(
        Oracle(), records, preset, n_resamples=10, device="cpu", progress=False
    )
    assert report.cases[0]["dice/class_1"] < 0.95


def test_multiclass_and_multilabel_classification():
    records = mt.data.synthetic.phantoms(6, task="classification", shape=(16, 16, 4))
    preset = mt.transforms.presets.ct("classification", roi_size=(16, 16, 4))
    torch.manual_seed(0)
    for i, record in enumerate(records):
        record["label"] = i % 3
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))
    report = evaluate_classification(
        model, records, preset, class_names=["a", "b", "c"], n_resamples=20, progress=False
    )
    assert {r["class"] for r in report.summary} == {"all", "a", "b", "c"}
    assert set(report.cases[0]) == {
        "case_id",
        "label",
        "score/a",
        "score/b",
        "score/c",
        "prediction",
    }
    assert [c["class"] for c in report.curves["roc"]] == ["a", "b", "c"]
    for i, record in enumerate(records):
        record["label"] = [i % 2, (i // 2) % 2]
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(2))
    report = evaluate_classification(model, records, preset, n_resamples=20, progress=False)
    assert isinstance(report.cases[0]["prediction"], list)
    assert len(report.curves["calibration"]) == 2
