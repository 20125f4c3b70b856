"""Report figures and text: training curves plot metrics only, overlay legends fit the figure,
run details name each preprocessing step once, counts read "1 case" / "2 cases"."""

from __future__ import annotations

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.evaluation.evaluate.records import preset_summary
from medtransfer.evaluation.report.methods import _empty_sentence
from medtransfer.evaluation.report.plots import history_figure, overlay_figure
from medtransfer.evaluation.report.report import OverlaySlice, Report

RECORDS = {
    "epoch": [1, 2, 3],
    "step": [4, 8, 12],
    "train_loss": [0.9, 0.6, 0.5],
    "lr": [1e-3, 5e-4, 1e-4],
    "time_s": [3.0, 2.9, 3.1],
    "samples_per_s": [10.0, 11.0, 10.5],
    "val_loss": [1.0, 0.8, 0.7],
    "val_time_s": [1.2, 1.1, 1.3],
    "dice": [0.4, 0.6, 0.7],
}


def _labels(fig) -> dict[str, list[str]]:
    """Line labels per y-axis label (the twin axis of the metrics has its own)."""
    return {ax.get_ylabel(): [line.get_label() for line in ax.get_lines()] for ax in fig.axes}


def _inside(fig, artist) -> bool:
    if not hasattr(fig.canvas, "get_renderer"):  # a Figure made without pyplot or Agg canvas
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    box = artist.get_window_extent(fig.canvas.get_renderer())
    frame = fig.bbox
    return (
        box.x0 >= frame.x0 - 0.5 and box.y0 >= frame.y0 - 0.5
        and box.x1 <= frame.x1 + 0.5 and box.y1 <= frame.y1 + 0.5
    )  # fmt: skip


def test_training_curves_put_only_metrics_on_the_metric_axis():
    labels = _labels(history_figure(RECORDS))
    assert labels["loss"] == ["train_loss", "val_loss"]
    assert labels["validation metric"] == ["dice"]  # not val_time_s, time_s, samples_per_s


def test_training_curves_without_metrics_have_no_metric_axis():
    labels = _labels(history_figure({"train_loss": [0.9, 0.5], "val_time_s": [1.0, 1.1]}))
    assert labels == {"loss": ["train_loss"]}


def _overlay(shape, n_classes, radiological=False):
    ref = np.zeros(shape, np.uint8)
    for value in range(1, n_classes + 1):
        ref[4 + 3 * value : 7 + 3 * value, 4:12] = value
    pred = np.roll(ref, 2, axis=1)
    image = np.full(shape, 120, np.uint8)
    return OverlaySlice("c", "best", 0, 1, image, ref, pred, 1.0, {}, None, radiological)


@pytest.mark.parametrize(
    ("shape", "names"),
    [
        ((24, 20), ["liver"]),
        ((60, 60), ["liver", "lesion", "spleen", "kidney"]),  # two legend rows
        ((40, 90), ["white matter", "grey matter"]),  # a wide, short image
        ((90, 30), ["cerebrospinal fluid", "left hippocampus", "right hippocampus"]),
    ],
)
def test_overlay_legend_lies_inside_the_figure(shape, names):
    fig = overlay_figure(_overlay(shape, len(names)), names)
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 1
    texts = [t.get_text() for t in legends[0].get_texts()]
    assert texts[-2:] == ["reference", "prediction"] and texts[:-2] == names
    assert _inside(fig, legends[0]), "the legend is clipped by the figure's edge"


def test_history_legend_lies_inside_the_figure():
    fig = history_figure(RECORDS)
    assert all(_inside(fig, legend) for legend in fig.legends)


def test_run_details_name_each_2d_step_once():
    text = preset_summary(mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32)))
    steps = text.split(" > ")
    assert "SliceStackd(image, label)" in steps
    assert len(steps) == len(set(steps)), text
    assert steps[:2] == ["LoadVolumed", "Orientationd"]


def test_counts_are_singular_or_plural():
    from medtransfer.evaluation.wording import count

    assert count(1, "case") == "1 case" and count(2, "case") == "2 cases"
    assert count(0, "case") == "0 cases" and count(1, "class", "classes") == "1 class"
    assert count(3, "class", "classes") == "3 classes"


def _one_case_report(task="segmentation"):
    summary = [{"metric": "dice", "class": "liver", "value": 0.9, "low": 0.9, "high": 0.9, "n": 1}]
    if task == "classification":
        summary = [{"metric": "auroc", "class": "all", "value": 0.9, "n": 1}]
    return Report(
        task,
        summary=summary,
        cases=[{"case_id": "case-a", "dice/liver": 0.9}],
        metadata={"model": "Segmenter", "n_cases": 1, "class_names": ["liver"]},
    )


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_one_case_reads_singular(tmp_path, task):
    report = _one_case_report(task)
    assert "1 case," in repr(report) and "1 cases" not in repr(report)
    assert "1 case ·" in report._repr_html_() and "1 cases" not in report._repr_html_()
    html = report.to_html(tmp_path / "r.html").read_text()
    assert "1 cases" not in html and "1 case" in html
    with pytest.raises(ConfigError, match=r"\(1 case\)"):
        report.case("nope")


def test_empty_mask_counts_are_singular_or_plural():
    meta = {"empty_counts": {"liver": {"pred_empty": 1, "target_empty": 2, "both_empty": 0}}}
    text = _empty_sentence(meta)
    assert "liver missed in 1 case;" in text and "absent in 2 cases." in text
    assert "(s)" not in text
