"""`medtransfer inspect FILE`: the grid from the header (origin, direction), fast, quiet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom

import medtransfer as mt
from medtransfer.cli import main

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
SC_RGB_JPEG = CT_SMALL.with_name("SC_rgb_jpeg.dcm")


def test_image_info_equals_the_loaded_grid():
    for path in (CT_SMALL, CT_SMALL.with_name("MR_small.dcm")):
        info = mt.io.image_info(path)
        image = mt.io.load(path)
        assert info.shape == tuple(image.shape)
        assert np.allclose(info.affine, image.affine.numpy())
        assert info.dtype == "int16"


def test_a_shifted_label_shows_a_different_origin(tmp_path, capsys):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    mt.io.save(np.zeros((6, 6, 3), np.float32), tmp_path / "image.nii.gz", affine=affine)
    shifted = affine.copy()
    shifted[0, 3] = 10.0
    mt.io.save(np.zeros((6, 6, 3), np.uint8), tmp_path / "label.nii.gz", affine=shifted)
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "origin" in out and "direction" in out
    rows = {line.split()[0]: line for line in out.splitlines() if ".nii.gz" in line}
    assert "0.0, 0.0, 0.0" in rows["image.nii.gz"] and "10.0, 0.0, 0.0" in rows["label.nii.gz"]
    assert "1,0,0 0,1,0 0,0,1" in rows["label.nii.gz"] and "uint8" in rows["label.nii.gz"]


def test_inspect_of_one_file_imports_neither_monai_nor_torch():
    code = (
        "import sys; from medtransfer.cli import main; "
        f"main(['inspect', {str(CT_SMALL)!r}]); "
        "print('HEAVY', sorted(m for m in ('monai', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out and "158.1, 179.0, -75.7" in out


def test_pydicom_warnings_are_counted_not_dumped(capsys):
    assert main(["inspect", str(SC_RGB_JPEG)]) == 0
    err = capsys.readouterr().err
    assert "pydicom warning about non-standard header values hidden" in err
    assert "UserWarning" not in err


def test_series_rows_show_the_origin_of_the_loaded_volume(tmp_path, capsys):
    from tests.fixtures import write_series

    write_series(tmp_path)
    origin = mt.io.load(tmp_path).affine.numpy()[:3, 3]
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "origin" in out and ", ".join(f"{v:.1f}" for v in origin) in out
