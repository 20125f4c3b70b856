"""The ``medtransfer`` command: exit codes, error output, inspect, weights."""

from __future__ import annotations

import timm
import torch
from safetensors.torch import save_file

import medtransfer as mt
from medtransfer.cli import main
from tests.fixtures import write_series

PHI = {"patient_name": "Doe^Jane", "patient_id": "MRN-12345678", "study_date": "19700101"}


def test_help_is_exit_code_0(capsys):
    assert main(["--help"]) == 0
    assert "inspect" in capsys.readouterr().out


def test_usage_errors_are_exit_code_2(capsys):
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["weights", "fetch"]) == 2  # NAME missing
    assert main(["predict", "--input", "x.nii.gz"]) == 2  # --checkpoint and --output missing
    assert "Traceback" not in capsys.readouterr().err


def test_config_errors_are_exit_code_2_without_traceback(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  manifest: m.csv\n  task: segmentation\ntraining:\n  epoch: 3\n")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "training.epoch: unknown key; did you mean 'epochs'?" in err
    assert "Traceback" not in err
    assert main(["train", str(config), "--set", "training"]) == 2
    assert "use KEY=VALUE" in capsys.readouterr().err


def test_runtime_errors_are_exit_code_1_and_debug_shows_the_traceback(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    assert main(["inspect", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"medtransfer: error: {missing} does not exist" in err and "Traceback" not in err
    assert main(["--debug", "inspect", str(missing)]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert main(["inspect", str(missing), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_inspect_dicom_series_hides_phi_unless_asked(tmp_path, capsys):
    write_series(tmp_path / "ct", series_description="abdomen venous", **PHI)
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "16x12x6" in out and "CT" in out
    assert "0.7x0.8x2.5" in out and "LPS" not in out.split("\n")[0]
    for value in [*PHI.values(), "abdomen venous"]:  # descriptions are free text: PHI too
        assert value not in out
    assert main(["inspect", str(tmp_path), "--show-phi"]) == 0
    out = capsys.readouterr().out
    assert all(value in out for value in [*PHI.values(), "abdomen venous"])


def test_inspect_nifti_and_dicom_file(tmp_path, capsys):
    case = mt.data.synthetic.phantoms(1, shape=(16, 16, 4))[0]
    nifti = mt.io.save(case["image"], tmp_path / "ct.nii.gz")
    assert main(["inspect", str(nifti)]) == 0
    out = capsys.readouterr().out
    assert "ct.nii.gz" in out and "16x16x4" in out and "LPS" in out and "float32" in out
    files = write_series(tmp_path / "series", **PHI)
    assert main(["inspect", str(files[0])]) == 0
    out = capsys.readouterr().out
    assert "16x12" in out and not any(value in out for value in PHI.values())


def test_weights_import_list_verify_and_corruption(tmp_path, capsys):
    torch.manual_seed(0)
    source = tmp_path / "resnet18.safetensors"
    save_file(timm.create_model("resnet18").state_dict(), str(source))
    assert main(["weights", "import", str(source), "--name", "resnet18"]) == 0
    cached = mt.encoders.cache_file("resnet18")
    assert str(cached) in capsys.readouterr().out and cached.is_file()

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and f"cache: {cached}" in out

    assert main(["weights", "verify", "resnet18"]) == 0
    assert "ok (checksum matches)" in capsys.readouterr().out

    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the cached weights
    cached.write_bytes(bytes(data))
    assert main(["weights", "verify", "resnet18"]) == 1
    assert "FAILED: Checksum mismatch" in capsys.readouterr().out


def test_weights_import_of_a_missing_file_and_fetch_offline(tmp_path, capsys):
    assert main(["weights", "import", str(tmp_path / "none.pth"), "--name", "resnet18"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["weights", "fetch", "resnet18"]) == 1
    err = capsys.readouterr().err
    assert "offline" in err and "medtransfer weights import FILE --name resnet18" in err
