"""Classification labels from a CSV: the label column, class names to indices, bad rows named."""

from __future__ import annotations

import pytest

import medtransfer as mt
from medtransfer.errors import ManifestError


def _manifest(tmp_path, rows: str, header: str = "image,finding,site") -> str:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.nii.gz").write_bytes(b"")
    path = tmp_path / "cases.csv"
    path.write_text(f"{header}\n{rows}")
    return path


def test_class_names_and_integer_labels_become_indices(tmp_path):
    path = _manifest(tmp_path, "a.nii.gz,benign,x\nb.nii.gz,malignant,y\nc.nii.gz,1,y\n")
    records = mt.data.load_manifest(path, label_key="finding", class_names=["benign", "malignant"])
    assert [r["label"] for r in records] == [0, 1, 1]
    assert all(isinstance(r["label"], int) for r in records)
    assert records[0]["finding"] == "benign"  # the column itself is kept


def test_integer_labels_without_class_names(tmp_path):
    path = _manifest(tmp_path, "a.nii.gz,0,x\nb.nii.gz,2.0,y\n")
    assert [r["label"] for r in mt.data.load_manifest(path, label_key="finding")] == [0, 2]


def test_every_bad_label_row_is_named_in_one_error(tmp_path):
    path = _manifest(tmp_path, "a.nii.gz,,x\nb.nii.gz,malignent,y\nc.nii.gz,7,y\n")
    with pytest.raises(ManifestError) as err:
        mt.data.load_manifest(path, label_key="finding", class_names=["benign", "malignant"])
    message = str(err.value)
    assert "3 problems" in message
    assert "row 2, field 'finding': empty" in message
    assert "row 3, field 'finding': 'malignent' is not one of class_names" in message
    assert "did you mean 'malignant'" in message
    assert "row 4, field 'finding': class index 7 is outside 0..1" in message


def test_text_labels_without_class_names_ask_for_them(tmp_path):
    path = _manifest(tmp_path, "a.nii.gz,benign,x\n")
    with pytest.raises(ManifestError, match="pass class_names"):
        mt.data.load_manifest(path, label_key="finding")


def test_a_missing_label_column_suggests_the_close_one(tmp_path):
    path = _manifest(tmp_path, "a.nii.gz,benign,x\n")
    with pytest.raises(ManifestError, match=r"no column 'findings'.*Did you mean 'finding'"):
        mt.data.load_manifest(path, label_key="findings")


def test_label_paths_stay_paths_for_segmentation(tmp_path):
    path = _manifest(tmp_path, "a.nii.gz,b.nii.gz,x\n", header="image,mask_file,site")
    records = mt.data.load_manifest(path, label_key="mask_file")
    assert records[0]["label"] == str(tmp_path / "b.nii.gz")


def test_bad_class_names_are_refused(tmp_path):
    path = _manifest(tmp_path, "a.nii.gz,benign,x\n")
    with pytest.raises(ManifestError, match="distinct"):
        mt.data.load_manifest(path, label_key="finding", class_names=["a", "a"])
