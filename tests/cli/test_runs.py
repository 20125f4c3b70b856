"""train -> evaluate -> predict through the command on tiny phantoms written to a temp folder."""

from __future__ import annotations

import pytest

import medtransfer as mt
from medtransfer.cli import main
from tests.fixtures import write_tiny_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_run")
    return folder, write_tiny_project(folder)


def test_train_evaluate_predict(trained, capsys):
    folder, config = trained
    assert main(["train", str(config)]) == 0
    out = capsys.readouterr().out
    run_dir = folder / "runs" / "tiny"
    assert f"Run directory: {run_dir}" in out
    checkpoint = run_dir / "checkpoints" / "best.pt"
    assert checkpoint.is_file() and (run_dir / "run_config.yaml").is_file()

    # the same run again without --resume is refused (usage error), with --resume it continues
    assert main(["train", str(config)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", str(config), "--resume"]) == 0
    assert "Resumed" in capsys.readouterr().out

    assert main(["evaluate", str(config), "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "Dice liver" in out and str(run_dir / "evaluation" / "report.html") in out
    assert (run_dir / "evaluation" / "report.html").is_file()

    image = sorted((folder / "data" / "imagesTr").glob("*.nii.gz"))[0]
    masks = folder / "masks"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(image),
                 "--output", str(masks)]) == 0  # fmt: skip
    mask = mt.io.load(masks / image.name.replace(".nii.gz", "_seg.nii.gz"), dtype=None)
    assert tuple(mask.shape) == tuple(mt.io.load(image).shape)
    assert str(masks.resolve()) in capsys.readouterr().out

    series = folder / "dicom" / "case"
    mt.io.write_dicom_series(mt.io.load(image), series)
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(series),
                 "--output", str(masks), "--format", "dicom-seg"]) == 0  # fmt: skip
    assert (masks / "case_seg.dcm").is_file()


def test_evaluate_with_a_missing_checkpoint_is_a_runtime_error(trained, capsys):
    _, config = trained
    assert main(["evaluate", str(config), "--checkpoint", "/no/best.pt"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_kfold_split_holds_out_the_test_patients_first(trained):
    from medtransfer.cli.config import load_config
    from medtransfer.cli.runs import _records, _split

    _, config = trained
    cfg = load_config(
        config, {"data.split": {"folds": 3, "fold": 1, "fractions": [0.5, 0.25, 0.25]}}
    )
    records, _ = _records(cfg)
    train, val, test = _split(cfg, records)
    ids = [{r["patient_id"] for r in part} for part in (train, val, test)]
    assert len(test) == 2 and all(
        a.isdisjoint(b) for a, b in [(ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2])]
    )
    assert len(train) + len(val) + len(test) == 8
