"""The methods footnote and run details of a report, as plain sentences from its metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medtransfer.evaluation.inference.postprocess_options import describe_postprocess
from medtransfer.evaluation.wording import count

if TYPE_CHECKING:
    from medtransfer.evaluation.report.report import Report

__all__ = ["methods_items", "run_details"]


def _ci_sentence(meta: dict[str, Any]) -> str:
    confidence = float(meta.get("confidence", 0.95)) * 100
    return (
        f"Confidence intervals: {confidence:g}% percentile bootstrap over cases "
        f"({meta.get('n_resamples', '?')} resamples of whole cases with replacement, "
        f"numpy seed {meta.get('seed', '?')}); the value is the statistic of all cases."
    )


def _empty_sentence(meta: dict[str, Any]) -> str:
    text = (
        "Empty masks: a class absent from both reference and prediction is not scored (left out "
        "of means, n counts the scored cases); a class missing from exactly one of them scores "
        "Dice 0 and the image diagonal as HD95."
    )
    counts = meta.get("empty_counts") or {}
    found = []
    for name, c in counts.items():
        if c.get("pred_empty"):
            found.append(f"{name} missed in {count(c['pred_empty'], 'case')}")
        if c.get("target_empty"):
            found.append(f"{name} predicted but absent in {count(c['target_empty'], 'case')}")
        if c.get("both_empty"):
            found.append(f"{name} absent from both in {count(c['both_empty'], 'case')}")
    return text + (" In this evaluation: " + "; ".join(found) + "." if found else "")


def methods_items(report: Report) -> list[str]:
    """One sentence per method detail (metric definitions, empty masks, CIs, settings)."""
    meta = report.metadata
    if report.task == "segmentation":
        tolerance = meta.get("tolerance_mm", "?")
        post = meta.get("postprocess")
        items = [
            "Predictions are computed on the preprocessed image and mapped back to the original "
            "voxel grid; every metric is computed there, against the unmodified reference.",
            "Dice = 2|P∩R| / (|P|+|R|) per case and class (1 = perfect overlap).",
            "HD95: 95th percentile Hausdorff distance between the surfaces of prediction and "
            "reference, in mm (the larger of the two directed 95th percentiles).",
            f"Surface Dice (NSD): fraction of both surfaces within {tolerance} mm of the other.",
            "Post-processing: "
            + (
                f"{describe_postprocess(post, meta.get('class_names'))} (scikit-image connected "
                "components); metrics are given before and after it (post-processed)."
                if post
                else "none; the metrics are those of the raw predictions."
            ),
            _empty_sentence(meta),
            _ci_sentence(meta),
            "Example slices: the best, median and worst case by mean Dice over classes; the "
            "axial slice with the largest reference area; display window "
            f"{_window(meta.get('display_window'))}.",
        ]
    elif meta.get("multilabel"):
        items = [
            "Findings: each is its own binary task, on the cases where its label is known "
            "(uncertain or missing labels are left out of that finding's numbers; n per finding).",
            "AUROC and AUPRC (average precision) per finding; macro: the mean over findings; "
            "micro: all known (case, finding) pairs pooled.",
            "Sensitivity and specificity at each finding's threshold (see the summary table; "
            "chosen on validation data, or 0.5).",
            f"Calibration: expected calibration error over {meta.get('n_bins', 10)} equal-width "
            "probability bins per finding (biased upwards with few cases).",
            _ci_sentence(meta),
        ]
    else:
        threshold = meta.get("threshold")
        items = [
            "AUROC: probability that a positive case scores higher than a negative one "
            "(one-vs-rest per class, macro mean for several classes).",
            "Sensitivity and specificity at the decision threshold "
            f"{'0.5 (argmax for several classes)' if threshold is None else threshold}; at "
            "Youden's threshold they are optimistic (chosen on these same cases).",
            f"Calibration: expected calibration error over {meta.get('n_bins', 10)} equal-width "
            "probability bins (biased upwards with few cases).",
            _ci_sentence(meta),
        ]
    return items


def _window(window: Any) -> str:
    if window is None:
        return "1st-99th intensity percentile of the slice"
    level, width = window
    return f"level {level:g}, width {width:g} (HU for CT)"


def run_details(report: Report) -> list[list[str]]:
    """``[name, value]`` rows: model, weights, preset, version, date, settings."""
    meta = report.metadata
    labels = {
        "model": "model",
        "encoder": "encoder",
        "weights": "weights",
        "preset": "evaluation preprocessing",
        "class_names": "classes",
        "n_cases": "cases",
        "roi_size": "sliding-window size",
        "overlap": "window overlap",
        "tta": "test-time augmentation (flips)",
        "medtransfer_version": "medtransfer version",
        "date": "date (UTC)",
    }
    rows = []
    for key, label in labels.items():
        if meta.get(key) is not None:
            value = meta[key]
            value = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            rows.append([label, str(value)])
        if key == "tta" and report.task == "segmentation":
            post = describe_postprocess(meta.get("postprocess"), meta.get("class_names"))
            rows.append(["post-processing", post])
    return rows
