"""load_manifest: CSV, JSON list and MSD dataset.json; path resolution; all problems in one error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medtransfer.data import case_id_from_path, load_manifest
from medtransfer.errors import InputPathError, ManifestError, MedTransferError


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0")


def test_csv_resolves_relative_paths_against_the_manifest_folder(tmp_path, monkeypatch):
    _touch(tmp_path, "images/a.nii.gz", "labels/a.nii.gz", "images/b.nii")
    (tmp_path / "dicom" / "c").mkdir(parents=True)
    (tmp_path / "m.csv").write_text(
        "image,label,patient_id,site\n"
        "images/a.nii.gz,labels/a.nii.gz,p1,north\n"
        "images/b.nii,1,p1,\n"
        "dicom/c,tumour,p2,south\n"
    )
    monkeypatch.chdir(tmp_path.parent)  # the working folder must not matter
    records = load_manifest(tmp_path / "m.csv")
    assert [r["case_id"] for r in records] == ["a", "b", "c"]
    assert records[0]["image"] == str(tmp_path / "images" / "a.nii.gz")
    assert records[0]["label"] == str(tmp_path / "labels" / "a.nii.gz")
    assert records[1]["label"] == 1  # numeric label: a class value
    assert records[2]["label"] == "tumour"  # plain text label: a class name, not a file
    assert records[2]["image"] == str(tmp_path / "dicom" / "c")  # a DICOM series folder
    assert [r["patient_id"] for r in records] == ["p1", "p1", "p2"]
    assert records[0]["site"] == "north" and records[1]["site"] is None  # extra column kept


def test_patient_id_defaults_to_case_id_and_absolute_paths_are_kept(tmp_path):
    _touch(tmp_path, "data/x.nii.gz")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text(f"image,case_id\n{tmp_path / 'data' / 'x.nii.gz'},X1\n")
    [record] = load_manifest(tmp_path / "sub" / "m.csv")
    assert record == {
        "image": str(tmp_path / "data" / "x.nii.gz"),
        "case_id": "X1",
        "patient_id": "X1",
        "label": None,
    }


def test_tsv_and_parent_relative_paths(tmp_path):
    _touch(tmp_path, "x.nii.gz")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.tsv").write_text("image\tlabel\n../x.nii.gz\t0\n")
    [record] = load_manifest(tmp_path / "sub" / "m.tsv")
    assert record["image"] == str(tmp_path / "x.nii.gz") and record["label"] == 0


def test_json_list_keeps_types(tmp_path):
    _touch(tmp_path, "a.nii.gz")
    entries = [{"image": "a.nii.gz", "label": 2, "age": 61, "patient_id": 7}]
    (tmp_path / "m.json").write_text(json.dumps(entries))
    [record] = load_manifest(tmp_path / "m.json")
    assert record["label"] == 2 and record["age"] == 61
    assert record["patient_id"] == "7"  # identifiers are text
    assert record["image"] == str(tmp_path / "a.nii.gz")


def test_msd_dataset_json(tmp_path):
    _touch(tmp_path, "imagesTr/liver_0.nii.gz", "labelsTr/liver_0.nii.gz")
    _touch(
        tmp_path, "imagesTr/liver_1.nii.gz", "labelsTr/liver_1.nii.gz", "imagesTs/liver_9.nii.gz"
    )
    dataset = {
        "name": "Liver",
        "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "numTraining": 2,
        "training": [
            {"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"},
            {"image": "./imagesTr/liver_1.nii.gz", "label": "./labelsTr/liver_1.nii.gz"},
        ],
        "test": ["./imagesTs/liver_9.nii.gz"],
    }
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    records = load_manifest(tmp_path / "dataset.json")
    assert [(r["case_id"], r["subset"]) for r in records] == [
        ("liver_0", "training"),
        ("liver_1", "training"),
        ("liver_9", "test"),
    ]
    assert records[0]["label"] == str(tmp_path / "labelsTr" / "liver_0.nii.gz")
    assert records[2]["label"] is None and records[2]["patient_id"] == "liver_9"
    training = load_manifest(tmp_path / "dataset.json", subset="training")
    assert [r["case_id"] for r in training] == ["liver_0", "liver_1"]
    with pytest.raises(ManifestError, match="no record has subset 'validation'"):
        load_manifest(tmp_path / "dataset.json", subset="validation")


def test_all_bad_rows_are_reported_at_once(tmp_path):
    _touch(tmp_path, "ok.nii.gz", "lab.nii.gz")
    (tmp_path / "m.csv").write_text(
        "image,label,case_id\n"
        "ok.nii.gz,lab.nii.gz,c1\n"
        "missing1.nii.gz,lab.nii.gz,c2\n"
        "ok.nii.gz,labels/missing2.nii.gz,c3\n"
        ",lab.nii.gz,c4\n"
        "ok.nii.gz,lab.nii.gz,c1\n"
        "too,many,fields,here\n"
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "m.csv")
    message = str(info.value)
    assert "has 5 problems" in message
    assert (
        f"row 3 (case 'c2'), field 'image': file not found: {tmp_path / 'missing1.nii.gz'}"
        in message
    )
    assert "row 4 (case 'c3'), field 'label': file not found" in message
    assert str(tmp_path / "labels" / "missing2.nii.gz") in message
    assert "row 5 (case 'c4'), field 'image': empty" in message
    assert "row 6 (case 'c1'): duplicate case_id 'c1' (also row 2)" in message
    assert "row 7 has 4 fields but the header has 3" in message
    assert f"resolved against {tmp_path}" in message
    assert isinstance(info.value, MedTransferError)


def test_unreadable_file_is_reported(tmp_path, monkeypatch):
    _touch(tmp_path, "secret.nii.gz", "fine.nii.gz")
    (tmp_path / "m.csv").write_text("image\nsecret.nii.gz\nfine.nii.gz\n")
    real_access = os.access

    def access(path, mode):  # permission bits cannot deny root, so simulate a protected file
        return False if Path(path).name == "secret.nii.gz" else real_access(path, mode)

    monkeypatch.setattr("medtransfer.data.manifest.os.access", access)
    with pytest.raises(ManifestError, match="has 1 problem:") as info:
        load_manifest(tmp_path / "m.csv")
    assert "row 2 (case 'secret'), field 'image': not readable (check permissions)" in str(
        info.value
    )


def test_check_files_off_still_resolves(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps([{"image": "elsewhere/a.nii.gz"}]))
    [record] = load_manifest(tmp_path / "m.json", check_files=False)
    assert record["image"] == str(tmp_path / "elsewhere" / "a.nii.gz")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("m.csv", "path,label\na.nii.gz,1\n", "no 'image' column \\(columns: path, label\\)"),
        ("m.csv", "", "is empty"),
        ("m.json", '{"image": "a"', "not valid JSON \\(line 1"),
        ("m.json", '{"images": []}', "expected a JSON list of records or an MSD dataset.json"),
        ("m.json", '["a.nii.gz"]', "entry 0 is a JSON str"),
        ("m.json", '{"training": {"image": "a"}}', "'training' must be a list"),
        ("m.yaml", "image: a", "unknown format '.yaml'"),
    ],
)
def test_malformed_manifests(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(ManifestError, match=match):
        load_manifest(tmp_path / name)


def test_missing_manifest_is_an_input_path_error(tmp_path):
    with pytest.raises(InputPathError, match="Manifest not found"):
        load_manifest(tmp_path / "nope.csv")
    with pytest.raises(InputPathError, match="is a folder"):
        load_manifest(tmp_path)


def test_case_id_from_path():
    assert case_id_from_path("/a/b/ct_01.nii.gz") == "ct_01"
    assert case_id_from_path("x/IMG.DCM") == "IMG"
    assert case_id_from_path("series/001/") == "001"
    assert case_id_from_path("a/.nii") == ".nii"  # nothing left to strip
