"""DICOM-SEG property codes: SNOMED CT from pydicom's dictionary, per-class codes, a warned fallback."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError, DataWarning
from medtransfer.io.dicom_seg import save_dicom_seg, segment_codes

pytest.importorskip("highdicom")

SHAPE = (8, 6, 4)


@pytest.fixture()
def series(tmp_path):
    folder = tmp_path / "mr"
    mt.io.write_dicom_series(np.zeros(SHAPE, np.float32), folder, affine=np.eye(4))
    return folder


def _mask(n_classes):
    mask = np.zeros(SHAPE, np.uint8)
    for value in range(1, n_classes + 1):
        mask[value, 1:4, value % SHAPE[2]] = value
    return mask


def _codes(path):
    """{label: (category value, type value, type meaning)} read back with pydicom only."""
    seg = pydicom.dcmread(path)
    return {
        s.SegmentLabel: (
            s.SegmentedPropertyCategoryCodeSequence[0].CodeValue,
            s.SegmentedPropertyTypeCodeSequence[0].CodeValue,
            s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning,
        )
        for s in seg.SegmentSequence
    }


def test_brain_tissues_and_organs_get_their_snomed_codes(series, tmp_path):
    labels = {1: "white matter", 2: "liver", 3: "Grey_Matter", 4: "CSF"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # every name is known: no fallback warning
        out = save_dicom_seg(_mask(4), series, tmp_path / "seg.dcm", labels=labels)
    codes = _codes(out)
    assert codes["white matter"] == ("91723000", "389080008", "White Matter")
    assert codes["liver"] == ("91723000", "10200004", "Liver")
    assert codes["Grey_Matter"] == ("91723000", "389081007", "Gray Matter")
    assert codes["CSF"][1] == "65216001"  # cerebrospinal fluid


def test_an_unknown_name_falls_back_to_tissue_with_a_warning(series, tmp_path):
    with pytest.warns(DataWarning, match=r"labels\[2\].*'blob'.*Tissue"):
        out = save_dicom_seg(_mask(2), series, tmp_path / "seg.dcm", {1: "liver", 2: "blob"})
    assert _codes(out)["blob"] == ("85756007", "85756007", "Tissue")


def test_per_class_codes_given_by_the_user(series, tmp_path):
    labels = {
        1: {"name": "WM", "category": ("91723000", "SCT", "Anatomical Structure"),
            "type": ("68523003", "SCT", "Cerebral white matter")},
        2: {"name": "cortex", "type": ["389081007", "SCT", "Gray matter"]},  # category from CID
        3: {"name": "spleen"},  # looked up by name
        4: ("lesion", pydicom.sr.codedict.codes.cid7150.MorphologicallyAbnormalStructure,
            pydicom.sr.codedict.codes.SCT.Lesion),  # the older tuple form still works
    }  # fmt: skip
    out = save_dicom_seg(_mask(4), series, tmp_path / "seg.dcm", labels=labels)
    codes = _codes(out)
    assert codes["WM"] == ("91723000", "68523003", "Cerebral white matter")
    assert codes["cortex"] == ("91723000", "389081007", "Gray matter")
    assert codes["spleen"][1] == "78961009"
    assert codes["lesion"][:2] == ("49755003", "52988006")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "type": ("1", "SCT")}, r"labels\[1\]\.type"),
        ({"name": "x", "category": ("91723000", "SCT", "Anatomical Structure")}, "type"),
        ({"name": "x", "type": ("123", "SCT", "Unlisted thing")}, r"labels\[1\]\.category"),
        ({"type": ("10200004", "SCT", "Liver")}, r"labels\[1\].*name"),
        ({"name": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_per_class_codes_name_the_field(series, tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message):
        save_dicom_seg(_mask(1), series, tmp_path / "seg.dcm", labels={1: spec})
    assert not (tmp_path / "seg.dcm").exists()


def test_lookup_uses_pydicom_dictionary_case_insensitively():
    from medtransfer.io.dicom_seg_codes import lookup_codes

    assert lookup_codes("WHITE MATTER")[1].value == "389080008"
    assert lookup_codes("gray-matter")[1].value == "389081007"
    assert lookup_codes("left hippocampus")[1].meaning == "Hippocampus"
    assert lookup_codes("Putamen")[1].meaning == "Putamen"
    assert lookup_codes("left white matter")[1].value == "389080008"
    assert lookup_codes("no such organ") is None
    assert segment_codes("no such organ")[1].meaning == "Tissue"  # the public fallback
