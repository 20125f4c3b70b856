"""`medtransfer inspect` shows no header value that may identify a patient unless --show-phi."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from medtransfer.cli import main
from tests.fixtures import edit_dicom, write_series

SECRETS = {
    "series_description": "Doe Jane follow-up",  # free text: names end up here
    "patient_name": "Doe^Jane",
    "patient_id": "MRN-12345678",
    "study_date": "19700101",
}


def test_series_description_and_identifiers_need_show_phi(tmp_path, capsys):
    files = write_series(tmp_path / "ct", **SECRETS)
    for path in files:
        edit_dicom(path, PatientBirthDate="19450101", StudyDescription="Jane's scan")
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "CT" in out and "1 series" in out
    for secret in [*SECRETS.values(), "19450101", "Jane"]:
        assert secret not in out
    assert "description" not in out.splitlines()[0]

    assert main(["inspect", str(tmp_path), "--show-phi"]) == 0
    out = capsys.readouterr().out
    assert all(value in out for value in SECRETS.values())
    assert "description" in out.splitlines()[0]


def test_nifti_description_field_is_not_shown(tmp_path, capsys):
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    image.header["descrip"] = b"Doe^Jane 1970"
    image.header["aux_file"] = b"MRN-1234"
    nib.save(image, str(tmp_path / "t1.nii.gz"))
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "t1.nii.gz" in out and "Doe" not in out and "MRN" not in out


def test_help_says_what_show_phi_shows(capsys):
    assert main(["inspect", "--help"]) == 0
    assert "series descriptions" in capsys.readouterr().out
