"""Radiographs from files end to end: the committed X-ray samples (PNG and DICOM DX in one
manifest) through presets.xray, training, evaluation and prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import medtransfer as mt
from tests.io.radiograph_files import write_radiograph

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "xray"
FINDINGS = ("opacity", "effusion", "cardiomegaly")


def _records() -> list[dict]:
    return mt.data.load_manifest(SAMPLES / "manifest.csv")


def test_xray_samples_mix_png_and_dicom_with_three_findings():
    records = _records()
    assert len(records) == 28 and len({r["patient_id"] for r in records}) == 20
    suffixes = {Path(r["image"]).suffix for r in records}
    assert suffixes == {".png", ".dcm"}
    for finding in FINDINGS:
        values = {int(r[finding]) for r in records}
        assert values == {1, 0, -1}, finding
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 2**20
    stored = {mt.io.load(r["image"]).meta.get("stored_dtype") for r in records[:2]}
    assert stored == {"uint8", "uint16"}  # even cases 8-bit, odd cases 16-bit
    dicom = [mt.io.load(r["image"]) for r in records if r["image"].endswith(".dcm")]
    assert [d.meta["inverted"] for d in dicom] == [False, True, False, False]
    assert all(d.meta["spacing"] == (2.8, 2.8) for d in dicom)


def test_findings_are_visible_in_the_films():
    """Each finding changes the pixels where it is drawn (a cheap check that models can learn)."""
    films = {r["case_id"]: mt.io.load(r["image"]).numpy() for r in _records()}
    films = {k: (v - v.min()) / (v.max() - v.min()) for k, v in films.items()}
    records = _records()

    def mean_where(finding: str, value: int, region) -> float:
        return float(
            np.mean(
                [films[r["case_id"]][region].mean() for r in records if int(r[finding]) == value]
            )
        )

    heart_level = (slice(20, 108), slice(88, 100))  # x across the heart, y at its centre row band
    assert (
        mean_where("cardiomegaly", 1, heart_level)
        > mean_where("cardiomegaly", 0, heart_level) + 0.05
    )
    lung_bases = (slice(10, 118), slice(78, 96))
    assert mean_where("effusion", 1, lung_bases) > mean_where("effusion", 0, lung_bases) + 0.02

    def lung_spot(film: np.ndarray) -> float:  # inside both lungs, above any fluid level
        lungs = np.concatenate([film[28:48, 37:72], film[79:99, 37:72]])
        return float(np.percentile(lungs, 99) - np.median(lungs))

    spots = {value: [] for value in (1, 0, -1)}
    for r in records:
        spots[int(r["opacity"])].append(lung_spot(films[r["case_id"]]))
    assert min(spots[1]) > max(spots[-1]) and min(spots[1]) > max(spots[0])


def test_xray_preset_loads_every_sample_file():
    train, evaluate = mt.transforms.presets.xray(roi_size=(32, 32), mean=0.449, std=0.226)
    for record in _records():
        out = evaluate(dict(record))["image"]
        assert tuple(out.shape) == (1, 32, 32), record["case_id"]
        assert torch.isfinite(out).all()
    assert tuple(train(dict(_records()[-1]))["image"].shape) == (1, 32, 32)


@pytest.mark.slow
def test_train_and_evaluate_a_classifier_from_png_and_dicom_files(tmp_path):
    records = [dict(r, label=int(r["opacity"])) for r in _records() if int(r["opacity"]) >= 0]
    preset = mt.transforms.presets.xray(roi_size=(32, 32), mean=0.449, std=0.226)
    val = [r for r in records if r["patient_id"] in ("patient-04", "patient-05", "patient-07")]
    val += [r for r in records if r not in val][:4]
    train = [r for r in records if r not in val]
    assert {Path(r["image"]).suffix for r in train} == {".png", ".dcm"}
    model = mt.models.create_classifier("resnet18", 2, weights=None)
    tuner = mt.training.FineTuner(
        model, run_dir=tmp_path / "run", device="cpu", progress="quiet", batch_size=4
    )
    history = tuner.fit(train, val, steps=2, train_transform=preset[0], val_transform=preset[1])
    assert len(history) >= 1
    report = mt.evaluation.evaluate_classification(
        model, val, preset, n_resamples=20, progress=False, device="cpu"
    )
    assert sorted(row["case_id"] for row in report.cases) == sorted(r["case_id"] for r in val)


def test_predict_a_mask_on_the_grid_of_a_png_and_of_a_dx_file(tmp_path):
    pixels = (np.arange(40 * 30).reshape(40, 30) % 251).astype(np.uint8)  # 40 rows, 30 columns
    Image.fromarray(pixels).save(tmp_path / "film.png")
    write_radiograph(
        tmp_path / "film.dcm", pixels.astype(np.uint16) * 16, ImagerPixelSpacing=[0.2, 0.2]
    )
    preset = mt.transforms.presets.xray("segmentation", roi_size=(32, 32))
    model = mt.models.create_segmenter("resnet18", 2, weights=None)
    for name in ("film.png", "film.dcm"):
        image = mt.io.load(tmp_path / name)
        mask = mt.evaluation.predict(model, tmp_path / name, preset, device="cpu")
        assert tuple(mask.shape) == tuple(image.shape) == (30, 40), name
        np.testing.assert_allclose(mask.affine.numpy(), image.affine.numpy())
