"""Report: tables, CSV/JSON/HTML contents, escaping, self-containment, no PHI."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.format import format_estimate, text_table
from medtransfer.evaluation.report.overlays import display_slice, pick_examples
from medtransfer.evaluation.report.report import OverlaySlice, Report

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def _overlay(case_id: str, role: str) -> OverlaySlice:
    ref = np.zeros((24, 20), np.uint8)
    ref[6:16, 5:12] = 1
    pred = np.roll(ref, 2, axis=1)
    image = np.linspace(0, 255, 24 * 20).reshape(24, 20).astype(np.uint8)
    return OverlaySlice(case_id, role, 3, 8, image, ref, pred, 1.5, {"liver": 0.8}, (40.0, 400.0))


def _report(**kwargs) -> Report:
    summary = [
        {"metric": "dice", "class": "liver", "value": 0.912, "low": 0.881, "high": 0.934, "n": 12},
        {
            "metric": "dice_post",
            "class": "liver",
            "value": 0.925,
            "low": 0.9,
            "high": 0.94,
            "n": 12,
        },
        {"metric": "hd95", "class": "liver", "value": 4.26, "low": 3.1, "high": 6.04, "n": 12},
    ]
    cases = [
        {"case_id": "case-a", "dice/liver": 0.95, "dice_post/liver": 0.96, "hd95/liver": 2.0},
        {
            "case_id": "case-b",
            "dice/liver": float("nan"),
            "dice_post/liver": None,
            "hd95/liver": 9.5,
        },
        {"case_id": "case-c", "dice/liver": 0.40, "dice_post/liver": 0.42, "hd95/liver": 30.0},
    ]
    defaults = {
        "summary": summary,
        "cases": cases,
        "metadata": {"model": "Segmenter", "class_names": ["liver"], "n_cases": 3, "seed": 0,
                     "n_resamples": 2000, "tolerance_mm": 2.0, "empty_counts": {}},
        "overlays": [_overlay("case-a", "best"), _overlay("case-c", "worst")],
    }  # fmt: skip
    defaults.update(kwargs)
    return Report("segmentation", **defaults)


def test_headline_repr_and_lookup():
    report = _report()
    assert report.headline() == [
        "Dice liver 0.91 (95% CI 0.88–0.93), n=12; post-processed 0.93 (95% CI 0.90–0.94), n=12"
    ]
    assert report.estimate("hd95", "liver")["value"] == 4.26
    assert report.case("case-c")["dice/liver"] == 0.40
    text = repr(report)
    assert (
        "Report(segmentation, 3 cases, model Segmenter)" in text and "4.3 (95% CI 3.1–6.0)" in text
    )
    assert "0.91" in report._repr_html_()
    with pytest.raises(ConfigError, match="no summary row"):
        report.estimate("nsd")
    with pytest.raises(ConfigError, match="not in the report"):
        report.case("nope")


def test_invalid_reports_are_refused():
    with pytest.raises(ConfigError, match="task"):
        Report("detection")
    with pytest.raises(ConfigError, match="unique 'case_id'"):
        Report("segmentation", cases=[{"case_id": "a"}, {"case_id": "a"}])


def test_csv_has_one_row_per_case_and_empty_cells_for_nan(tmp_path):
    report = _report()
    with report.to_csv(tmp_path / "out" / "cases.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case_id"] for r in rows] == ["case-a", "case-b", "case-c"]
    assert rows[0]["dice/liver"] == "0.95" and rows[1]["dice/liver"] == ""
    with report.to_csv(tmp_path / "summary.csv", table="summary").open() as handle:
        summary = list(csv.DictReader(handle))
    assert summary[0]["metric"] == "dice" and summary[0]["low"] == "0.881"
    with pytest.raises(ConfigError, match="table"):
        report.to_csv(tmp_path / "x.csv", table="other")


def test_json_holds_everything_but_pixels_and_round_trips(tmp_path):
    history = {"train_loss": [0.9, 0.5], "dice": [0.4, 0.6]}
    report = _report(history=history)
    path = report.to_json(tmp_path / "report.json")
    data = json.loads(path.read_text())
    assert data["summary"][0]["value"] == 0.912
    assert data["cases"][1]["dice/liver"] is None  # NaN -> null, valid JSON
    assert data["overlays"][0] == {
        "case_id": "case-a", "role": "best", "slice_index": 3, "n_slices": 8,
        "dice": {"liver": 0.8}, "window": [40.0, 400.0],
    }  # fmt: skip
    assert data["history"] == history
    again = Report.from_json(path)
    assert again.summary == report.summary and again.case("case-a") == report.case("case-a")


def test_history_object_with_records_is_plotted(tmp_path):
    class FakeHistory:
        records = [{"epoch": 1, "train_loss": 1.0, "dice": 0.3}, {"epoch": 2, "train_loss": 0.5}]

    report = _report(history=FakeHistory())
    assert report.to_dict()["history"] == {
        "epoch": [1, 2], "train_loss": [1.0, 0.5], "dice": [0.3, None]
    }  # fmt: skip
    assert "Training curves" in report.to_html(tmp_path / "r.html").read_text()
    with pytest.raises(ConfigError, match="history"):
        _report(history=42).to_dict()

    class PlotOnly:
        def plot(self, ax=None):
            ax.plot([1, 2], [0.9, 0.4], label="train_loss")
            return ax

    report = _report(history=PlotOnly())
    assert report.to_dict()["history"] is None
    assert "Training curves" in report.to_html(tmp_path / "p.html").read_text()


def test_html_is_self_contained_and_quotes_the_numbers(tmp_path):
    html = _report().to_html(tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "0.91" in html and "95% CI 0.88–0.93" in html and "n=12" in html
    assert html.count("data:image/png;base64,") == 3 + 1  # box plots (Dice, HD95), 2 overlays
    for case_id in ("case-a", "case-b", "case-c"):
        assert case_id in html
    assert "Best case: case-a" in html and "Worst case: case-c" in html
    assert not re.search(r"https?://|<script|<link|@import|url\(", html)
    assert "Methods" in html and "bootstrap" in html


def test_html_escapes_all_text(tmp_path):
    names = ["<b>liver</b>"]
    summary = [{"metric": "dice", "class": names[0], "value": 0.5, "low": 0.4, "high": 0.6, "n": 2}]
    cases = [{"case_id": "<img src=x>", f"dice/{names[0]}": 0.5}]
    report = Report(
        "segmentation", summary=summary, cases=cases,
        metadata={"class_names": names, "model": "<script>alert(1)</script>"},
    )  # fmt: skip
    html = report.to_html(tmp_path / "r.html").read_text()
    assert "<b>liver" not in html and "&lt;b&gt;liver&lt;/b&gt;" in html
    assert "<img src=x>" not in html and "<script>" not in html


def test_text_formatting_helpers():
    row = {"metric": "hd95", "value": 3.04, "low": 2.0, "high": float("nan"), "n": 5}
    assert format_estimate(row) == "3.0, n=5"
    assert text_table([]) == "(empty)"


def test_pandas_tables_or_a_clear_error():
    report = _report()
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pandas"):
            report.summary_table()
    else:
        assert list(report.cases_table().index) == ["case-a", "case-b", "case-c"]
        assert report.summary_table()["value"].iloc[0] == 0.912


def test_plot_returns_a_figure():
    fig = _report().plot()
    assert fig.axes


def test_display_slice_is_radiological_and_picks_the_largest_reference_slice():
    ref = np.zeros((8, 6, 5), np.uint8)
    ref[1:3, 1:5, 1] = 1  # small area on slice 1
    ref[2:7, 0:5, 3] = 1  # largest on slice 3
    image = np.zeros(ref.shape, np.float32)
    image[0] = 100.0  # i = 0: the patient's far left (RAS affine: i runs to the right)
    image[:, 0] += 200.0  # j = 0: the most posterior row
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    s = display_slice(image, ref, ref, affine, case_id="c", dice={}, window=(200, 400))
    assert s.slice_index == 3 and s.image.shape == (6, 8) and s.aspect == 1.0
    assert s.image[0, -1] > 0 and s.image[0, 0] == 0  # patient's left on the viewer's right
    assert s.image[-1, 3] > 0 and s.image[0, 3] == 0  # anterior at the top
    assert pick_examples([s], {"c": float("nan")}) == []


def test_dicom_header_phi_never_reaches_the_report(tmp_path):
    header = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)
    image = mt.io.load(CT_SMALL)
    label = mt.io.make_image(
        (image.numpy() > 40).astype(np.uint8), image.affine.numpy(), source="memory"
    )
    record = {"image": str(CT_SMALL), "label": label, "case_id": "ct-small-01",
              "patient_id": str(header.PatientID)}  # fmt: skip
    preset = mt.transforms.presets.xray("segmentation", roi_size=(64, 64))
    model = torch.nn.Conv2d(1, 2, 1)
    report = mt_evaluate(model, [record], preset)
    outputs = [
        report.to_html(tmp_path / "r.html").read_text(),
        report.to_json(tmp_path / "r.json").read_text(),
        report.to_csv(tmp_path / "r.csv").read_text(),
        repr(report),
    ]
    phi = [str(header.PatientName), str(header.PatientID), str(header.InstitutionName).strip()]
    phi += [str(header.StudyInstanceUID), str(header.SeriesInstanceUID), str(CT_SMALL)]
    for text in outputs:
        assert "ct-small-01" in text or text.startswith("Report(")
        for value in phi:
            assert value not in text, value


def mt_evaluate(model, records, preset):
    return mt.evaluation.evaluate_segmentation(
        model, records, preset, n_resamples=20, device="cpu", progress=False
    )


def test_the_training_history_is_accepted(tmp_path):
    history = mt.training.History("dice")
    history.append({"epoch": 1, "train_loss": 0.9, "val_loss": 1.0, "dice": 0.5})
    history.append({"epoch": 2, "train_loss": 0.6, "val_loss": 0.8, "dice": 0.7})
    report = _report(history=history)
    assert report.to_dict()["history"]["dice"] == [0.5, 0.7]
    assert "Training curves" in report.to_html(tmp_path / "h.html").read_text()
