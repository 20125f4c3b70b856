"""A researcher's first day through the command (issue 11: items 2, 6, 7, 8, 9, 10, 11).

One tiny segmentation run is trained with ``--set`` overrides; the tests then evaluate and
predict with it the ways a new user does, including the wrong ways.
"""

from __future__ import annotations

import csv
import re
import shlex

import pytest
import yaml

import medtransfer as mt
from medtransfer.cli import main
from tests.fixtures import write_tiny_project

pytestmark = pytest.mark.slow

# The run is trained with a narrower decoder than the config file says.
OVERRIDES = [
    "--set",
    "model.decoder_channels=[16, 16, 8, 8, 8]",
    "--set",
    "output.run_dir=runs/set",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("first_day")
    config = write_tiny_project(folder)
    with pytest.MonkeyPatch.context() as patch:
        lines = []
        patch.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
        assert main(["train", str(config), *OVERRIDES]) == 0
    run_dir = folder / "runs" / "set"
    return folder, config, run_dir, "\n".join(lines)


def _variant(run_dir, tmp_path, **evaluation):
    """The run's config with other evaluation settings (same model)."""
    data = yaml.safe_load((run_dir / "run_config.yaml").read_text())
    data["evaluation"].update(evaluation)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_next_command_evaluates_the_run_config_and_works(run, capsys):
    _, _, run_dir, out = run
    (line,) = [x for x in out.splitlines() if x.startswith("Next: ")]
    command = shlex.split(line.removeprefix("Next: "))
    assert command[:3] == ["medtransfer", "evaluate", str(run_dir / "run_config.yaml")]
    assert main(command[1:]) == 0
    out = capsys.readouterr().out
    assert "Dice liver" in out and "Post-processing: none" in out


def test_a_checkpoint_that_does_not_fit_says_what_differs(run, capsys):
    _, config, run_dir, _ = run
    checkpoint = run_dir / "checkpoints" / "best.pt"
    assert main(["evaluate", str(config), "--checkpoint", str(checkpoint), "--output",
                 str(run_dir / "other")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "decoder" in err and "model.decoder_channels" in err
    assert str(run_dir / "run_config.yaml") in err
    assert "Missing key" not in err and "Unexpected key" not in err and len(err) < 800


def test_predict_saves_the_raw_prediction_unless_the_config_opts_in(run, capsys, tmp_path):
    folder, _, run_dir, _ = run
    checkpoint = run_dir / "checkpoints" / "best.pt"
    image = sorted((folder / "data" / "imagesTr").glob("*.nii.gz"))[0]
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(image),
                 "--output", str(tmp_path / "raw")]) == 0  # fmt: skip
    assert "Post-processing: none" in capsys.readouterr().out
    raw = mt.io.load(tmp_path / "raw" / image.name.replace(".nii.gz", "_seg.nii.gz"), dtype=None)

    variant = _variant(run_dir, tmp_path, postprocess={"largest_component": ["liver"]})
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(image),
                 "--output", str(tmp_path / "post"), "--config", str(variant)]) == 0  # fmt: skip
    assert (
        "Post-processing: keep the largest connected component of liver" in capsys.readouterr().out
    )
    post = mt.io.load(tmp_path / "post" / image.name.replace(".nii.gz", "_seg.nii.gz"), dtype=None)
    expected = mt.evaluation.postprocess(raw, largest_component=[1])
    assert (post.numpy() == expected.numpy()).all()


def test_evaluate_prints_the_post_processed_dice_beside_the_raw_one(run, capsys, tmp_path):
    _, _, run_dir, _ = run
    variant = _variant(run_dir, tmp_path, postprocess={"largest_component": ["liver", "spleen"]})
    assert main(["evaluate", str(variant), "--checkpoint", str(run_dir / "checkpoints" / "best.pt"),
                 "--output", str(tmp_path / "eval")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Post-processing: keep the largest connected component of liver, spleen" in out
    liver = [x for x in out.splitlines() if x.startswith("Dice liver")]
    assert len(liver) == 1 and "; post-processed " in liver[0]
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "keep the largest connected component of liver, spleen" in html


def test_dicom_seg_needs_a_dicom_series_and_says_so_before_inference(run, capsys, monkeypatch):
    folder, _, run_dir, _ = run

    def no_inference(*args, **kwargs):
        raise AssertionError("inference ran")

    monkeypatch.setattr(mt.evaluation, "predict", no_inference)
    image = sorted((folder / "data" / "imagesTr").glob("*.nii.gz"))[0]
    code = main(["predict", "--checkpoint", str(run_dir / "checkpoints" / "best.pt"), "--input",
                 str(image), "--output", str(folder / "seg"), "--format", "dicom-seg"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "dicom-seg needs a DICOM series" in err and image.name in err
    assert not (folder / "seg").exists()


def test_segmentation_class_names_that_miss_label_values_fail_before_training(run, capsys):
    _, config, _, _ = run
    code = main(["train", str(config), "--set", "data.class_names=[liver]", "--set",
                 "output.run_dir=runs/few_names"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "data.class_names" in err and "0..1" in err and re.search(r"phantom-\d+ \(values 0, 1, 2", err)  # fmt: skip
    assert not (config.parent / "runs" / "few_names" / "metrics.jsonl").exists()


def _classification_csv(folder):
    """The phantoms' manifest with a text diagnosis column (no 'label' class column)."""
    rows = list(csv.DictReader((folder / "data" / "manifest.csv").open()))
    path = folder / "data" / "diagnosis.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "case_id", "diagnosis"])
        for i, row in enumerate(rows):
            writer.writerow([row["image"], row["case_id"], "malignant" if i % 2 else "benign"])
    return path


CLASSIFICATION = """
data:
  manifest: data/diagnosis.csv
  task: classification
  label_key: diagnosis
  class_names: [benign, malignant]
  split: {fractions: [0.5, 0.25, 0.25]}
preprocessing: {spatial_dims: 3, roi_size: [32, 32, 8]}
model: {encoder: resnet18, weights: null}
training: {steps: 1, batch_size: 2, device: cpu}
evaluation: {n_resamples: 20}
output: {run_dir: runs/cls}
"""


def test_classification_from_a_csv_of_diagnosis_names(run, capsys):
    folder = run[0]
    _classification_csv(folder)
    config = folder / "cls.yaml"
    config.write_text(CLASSIFICATION)
    assert main(["train", str(config)]) == 0
    assert (folder / "runs" / "cls" / "checkpoints").is_dir()
    capsys.readouterr()

    code = main(["train", str(config), "--set", "data.label_key=diagnosys", "--overwrite"])
    assert code == 2
    err = capsys.readouterr().err
    assert "data.label_key" in err and "did you mean 'diagnosis'" in err.lower()

    code = main(["train", str(config), "--set", "data.class_names=[malignant]", "--overwrite"])
    assert code == 2
    err = capsys.readouterr().err
    assert "data.class_names" in err and "row" in err
