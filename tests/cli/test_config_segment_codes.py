"""output.segment_codes: per-class SNOMED CT codes of the DICOM-SEG that predict writes."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

from medtransfer.cli.config import load_config
from medtransfer.errors import ConfigError

BRAIN = (
    "data:\n  manifest: cases/manifest.csv\n  task: segmentation\n"
    "  class_names: [white matter, grey matter, lesion]\n"
)
CODES = (
    "output:\n  segment_codes:\n"
    "    white matter:\n"
    "      category: [91723000, SCT, Anatomical Structure]\n"
    "      type: [68523003, SCT, Cerebral white matter]\n"
    "    3: {type: [52988006, SCT, Lesion]}\n"
)


def _load(tmp_path: Path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return load_config(path)


def test_codes_reach_the_seg_labels(tmp_path):
    cfg = _load(tmp_path, BRAIN + CODES)
    white = cfg.output.segment_codes["white matter"]
    assert white.category == ("91723000", "SCT", "Anatomical Structure")  # YAML numbers as text
    labels = cfg.seg_labels(cfg.data.class_names)
    assert labels == {
        1: {"name": "white matter", "category": ("91723000", "SCT", "Anatomical Structure"),
            "type": ("68523003", "SCT", "Cerebral white matter")},
        2: "grey matter",  # looked up by name in pydicom's dictionary
        3: {"name": "lesion", "type": ("52988006", "SCT", "Lesion")},
    }  # fmt: skip
    assert _load(tmp_path, BRAIN).seg_labels(["a"]) == {1: "a"}
    assert _load(tmp_path, BRAIN).seg_labels(None) is None


def test_codes_are_checked_against_class_names_read_later(tmp_path):
    # class names from an MSD dataset.json are only known when predict runs
    text = BRAIN.replace("  class_names: [white matter, grey matter, lesion]\n", "") + CODES
    cfg = _load(tmp_path, text)
    with pytest.raises(ConfigError, match=r"output\.segment_codes.*white matter.*not a class"):
        cfg.seg_labels(["liver", "spleen"])


def test_codes_for_an_unknown_class_are_refused(tmp_path):
    text = BRAIN + "output:\n  segment_codes:\n    white mater: {type: [1, SCT, x]}\n"
    with pytest.raises(ConfigError, match=r"output\.segment_codes.*did you mean 'white matter'"):
        _load(tmp_path, text)


def test_a_code_needs_value_scheme_and_meaning(tmp_path):
    text = BRAIN + "output:\n  segment_codes:\n    lesion: {type: [52988006, SCT]}\n"
    with pytest.raises(ConfigError, match=r"output\.segment_codes\.lesion\.type"):
        _load(tmp_path, text)


def test_predict_passes_the_codes(tmp_path, monkeypatch):
    """predict_command hands save_dicom_seg the labels built from the config."""
    import medtransfer as mt
    import medtransfer.cli.predict as predict
    import medtransfer.cli.runs as runs

    cfg = _load(tmp_path, BRAIN + CODES)
    seen = {}
    monkeypatch.setattr(runs, "_load", lambda *a, **k: cfg)
    monkeypatch.setattr(runs, "_normalisation_of_run", lambda c, _: c)
    monkeypatch.setattr(runs, "_trained_model", lambda c, *a: (None, c))
    monkeypatch.setattr(runs, "_preset", lambda *a: None)
    monkeypatch.setattr(predict, "ood_detector", lambda _: None)  # no checkpoint to read
    monkeypatch.setattr("medtransfer.cli.checks.check_predict_inputs", lambda *a: None)
    monkeypatch.setattr(mt.evaluation, "predict", lambda *a, **k: "mask")
    monkeypatch.setattr(mt.io, "save_dicom_seg", lambda m, i, o, labels: seen.update(labels) or o)
    config = tmp_path / "run.yaml"
    args = Namespace(config=config, checkpoint=tmp_path / "c.pt", input=[tmp_path / "ct"],
                     output=tmp_path / "out", format="dicom-seg", adapt=None)  # fmt: skip
    assert predict.predict_command(args) == 0
    assert seen[1]["type"][0] == "68523003" and seen[2] == "grey matter"
