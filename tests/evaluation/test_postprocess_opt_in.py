"""Post-processing is opt-in and per class; reports and headlines say what was applied (issue 11.2)."""

from __future__ import annotations

import numpy as np
import pytest

from medtransfer.errors import ConfigError
from medtransfer.evaluation.evaluate.segmentation import evaluate_segmentation
from medtransfer.evaluation.inference.postprocess import postprocess, remove_small_islands
from medtransfer.evaluation.inference.postprocess_options import (
    describe_postprocess,
    resolve_postprocess,
)
from medtransfer.evaluation.report.methods import methods_items, run_details
from tests.evaluation.test_evaluate import Oracle, _threshold_records
from tests.evaluation.test_postprocess import _two_class_mask

NAMES = ["liver", "lesion"]


def _white_matter() -> np.ndarray:
    """One class in two large, separate parts (both hemispheres): not one organ."""
    mask = np.zeros((12, 6, 4), np.uint8)
    mask[0:5] = 1
    mask[7:12] = 1
    return mask


def test_postprocess_does_nothing_unless_asked():
    mask = _white_matter()
    assert np.array_equal(postprocess(mask), mask)
    assert postprocess(mask, largest_component=True).sum() == mask.sum() // 2


def test_largest_component_for_some_classes_only():
    mask = _two_class_mask()
    out = postprocess(mask, largest_component=[1])
    assert out[8, 8, 0] == 0  # the liver island goes
    assert out[7, 1, 3] == 2  # the second lesion stays


def test_minimum_island_volume_per_class():
    mask = _two_class_mask()
    out = postprocess(mask, min_island_mm3={2: 5.0}, spacing=1.0)
    assert out[7, 1, 3] == 0 and out[8, 8, 0] == 1  # only lesion islands under 5 mm^3
    out = remove_small_islands(mask, {1: 5.0}, spacing=1.0)
    assert out[8, 8, 0] == 0 and out[7, 1, 3] == 2
    holes = postprocess(mask, fill_holes=[2])
    assert np.array_equal(holes, mask)


def test_options_take_class_names_and_say_what_they_do():
    assert resolve_postprocess(None, NAMES) is None
    assert resolve_postprocess(False, NAMES) is None
    assert resolve_postprocess({"largest_component": False}, NAMES) is None
    assert resolve_postprocess(True, NAMES) == {"largest_component": True}
    options = resolve_postprocess(
        {"largest_component": ["liver"], "min_island_mm3": {"lesion": 20}}, NAMES
    )
    assert options == {"largest_component": [1], "min_island_mm3": {2: 20.0}}
    text = describe_postprocess(options, NAMES)
    assert text == (  # in the order applied
        "remove islands under 20 mm³ from lesion; keep the largest connected component of liver"
    )
    assert describe_postprocess(None, NAMES) == "none"
    with pytest.raises(ConfigError, match="did you mean 'liver'"):
        resolve_postprocess({"largest_component": ["livr"]}, NAMES, where="evaluation.postprocess")
    with pytest.raises(ConfigError, match="evaluation.postprocess.largest_component"):
        resolve_postprocess({"largest_component": [3]}, NAMES, where="evaluation.postprocess")
    with pytest.raises(ConfigError, match="postprocess options"):
        resolve_postprocess({"largest": [1]}, NAMES)


def test_evaluation_reports_raw_predictions_by_default():
    records = _threshold_records(n=2)
    import medtransfer as mt

    preset = mt.transforms.presets.ct(roi_size=(32, 32, 16))
    report = evaluate_segmentation(
        Oracle(), records, preset, n_resamples=20, device="cpu", progress=False
    )
    assert report.metadata["postprocess"] is None
    assert not [r for r in report.summary if r["metric"].endswith("_post")]
    assert "Post-processing: none" in " ".join(methods_items(report))
    assert ["post-processing", "none"] in run_details(report)


def test_post_processed_dice_is_printed_beside_the_raw_one():
    records = _threshold_records(n=2)
    import medtransfer as mt

    preset = mt.transforms.presets.ct(roi_size=(32, 32, 16))
    report = evaluate_segmentation(
        Oracle(), records, preset, class_names=["body"], n_resamples=20, device="cpu",
        progress=False, postprocess={"largest_component": ["body"]},
    )  # fmt: skip
    assert report.metadata["postprocess"] == {"largest_component": [1]}
    (line,) = report.headline()
    assert line.startswith("Dice body 1.00") and "; post-processed " in line
    methods = " ".join(methods_items(report))
    assert "keep the largest connected component of body" in methods
    assert ["post-processing", "keep the largest connected component of body"] in run_details(
        report
    )
