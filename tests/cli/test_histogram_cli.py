"""``preprocessing.histogram``: landmarks learned by ``train`` on the training split, saved in the
run folder and used by ``evaluate`` and ``predict``; refused for presets other than mri."""

from __future__ import annotations

import pytest

import medtransfer as mt
from medtransfer.cli import main
from medtransfer.cli.config import load_config
from medtransfer.errors import ConfigError
from tests.fixtures import write_tiny_project

pytestmark = pytest.mark.slow
MRI = ["--set", "preprocessing.preset=mri", "--set", "preprocessing.histogram=learn"]


def test_train_learns_the_landmarks_and_evaluate_and_predict_use_them(tmp_path, capsys):
    config = write_tiny_project(tmp_path)
    assert main(["train", str(config), *MRI]) == 0
    run_dir = tmp_path / "runs" / "tiny"
    path = run_dir / "histogram_landmarks.json"
    landmarks = mt.transforms.load_landmarks(path)
    assert landmarks["n_images"] == 4  # the training split: 8 cases at fraction 0.5
    assert "Histogram landmarks of 4 training cases" in capsys.readouterr().out
    checkpoint = run_dir / "checkpoints" / "best.pt"
    saved = run_dir / "run_config.yaml"
    assert "histogram: learn" in saved.read_text()
    assert main(["evaluate", str(saved), "--checkpoint", str(checkpoint)]) == 0
    image = sorted((tmp_path / "data" / "imagesTr").glob("*.nii.gz"))[0]
    assert main(["predict", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "m"), "--input", str(image)]) == 0  # fmt: skip
    path.unlink()  # evaluate without the run's landmarks: a clear error naming the file
    assert main(["evaluate", str(saved), "--checkpoint", str(checkpoint), "--overwrite"]) != 0
    assert "histogram_landmarks.json" in capsys.readouterr().err


def test_histogram_is_for_the_mri_preset(tmp_path):
    config = write_tiny_project(tmp_path)
    with pytest.raises(ConfigError, match="histogram: is for preset 'mri'"):
        load_config(config, {"preprocessing.histogram": "learn"})
