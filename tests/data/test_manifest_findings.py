"""Multi-label findings columns of a manifest: label vectors, uncertain and missing policies."""

from __future__ import annotations

import json
import math

import pytest

import medtransfer as mt
from medtransfer.errors import ManifestError

ROWS = "image,patient_id,opacity,effusion,cardiomegaly\n" + "\n".join(
    [
        "a.png,p1,1,0,-1",
        "b.png,p2,0,,1",
        "c.png,p3,-1.0,1.0,0",
    ]
)


def _manifest(tmp_path, text=ROWS, name="manifest.csv"):
    for image in ("a.png", "b.png", "c.png"):
        (tmp_path / image).write_bytes(b"")
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


def _labels(records):
    return [[None if math.isnan(v) else v for v in r["label"]] for r in records]


FINDINGS = ["opacity", "effusion", "cardiomegaly"]


@pytest.mark.parametrize(
    ("uncertain", "missing", "expected"),
    [
        ("ignore", "ignore", [[1, 0, None], [0, None, 1], [None, 1, 0]]),
        ("positive", "ignore", [[1, 0, 1], [0, None, 1], [1, 1, 0]]),
        ("negative", "ignore", [[1, 0, 0], [0, None, 1], [0, 1, 0]]),
        ("ignore", "negative", [[1, 0, None], [0, 0, 1], [None, 1, 0]]),
    ],
)
def test_uncertain_and_missing_policies(tmp_path, uncertain, missing, expected):
    records = mt.data.load_manifest(
        _manifest(tmp_path), findings=FINDINGS, uncertain=uncertain, missing=missing
    )
    assert _labels(records) == expected
    assert all(isinstance(v, float) for r in records for v in r["label"])
    assert records[0]["opacity"] == "1" and records[0]["patient_id"] == "p1"  # columns kept


def test_order_of_findings_is_the_order_of_the_label(tmp_path):
    records = mt.data.load_manifest(_manifest(tmp_path), findings=["effusion", "opacity"])
    assert _labels(records)[0] == [0, 1]


def test_bad_cells_are_named_by_row_and_column_all_at_once(tmp_path):
    text = ROWS.replace("a.png,p1,1,0,-1", "a.png,p1,yes,0,-1").replace("0,,1", "0,2,1")
    with pytest.raises(ManifestError) as err:
        mt.data.load_manifest(_manifest(tmp_path, text), findings=FINDINGS)
    message = str(err.value)
    assert "2 problems" in message
    assert "row 2, field 'opacity': 'yes' is not 1 (present), 0 (absent), -1" in message
    assert "row 3, field 'effusion': '2'" in message


def test_a_missing_finding_column_suggests_the_closest(tmp_path):
    with pytest.raises(ManifestError, match=r"no column 'efusion' \(did you mean 'effusion'\?\)"):
        mt.data.load_manifest(_manifest(tmp_path), findings=["opacity", "efusion"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"findings": FINDINGS, "uncertain": "maybe"}, "uncertain='maybe'"),
        ({"findings": FINDINGS, "missing": "positive"}, "missing='positive'"),
        ({"findings": ["opacity", "opacity"]}, "distinct"),
        ({"findings": ["macro"]}, "may not be called"),
        ({"findings": FINDINGS, "label_key": "opacity"}, "replaces label_key"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ManifestError, match=match):
        mt.data.load_manifest(_manifest(tmp_path), **kwargs)


def test_json_manifest_numbers_null_and_booleans(tmp_path):
    for image in ("a.png", "b.png"):
        (tmp_path / image).write_bytes(b"")
    items = [
        {"image": "a.png", "opacity": 1, "effusion": None},
        {"image": "b.png", "opacity": False, "effusion": -1},
    ]
    (tmp_path / "m.json").write_text(json.dumps(items))
    records = mt.data.load_manifest(
        tmp_path / "m.json", findings=["opacity", "effusion"], uncertain="positive"
    )
    assert _labels(records) == [[1, None], [0, 1]]
