"""``diagnose shift``, the OOD reference stored by ``train``, ``evaluate``'s OOD columns and
``predict --adapt`` on the tiny phantom project."""

from __future__ import annotations

import json

import pytest

import medtransfer as mt
from medtransfer.cli import main
from tests.fixtures import write_tiny_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shift")
    config = write_tiny_project(folder)
    assert main(["train", str(config)]) == 0
    return folder, config


def test_train_stores_the_ood_reference_in_the_checkpoint(trained, capsys):
    folder, _ = trained
    payload = mt.training.load_checkpoint(folder / "runs" / "tiny" / "checkpoints" / "best.pt")
    detector = mt.evaluation.OODDetector.from_state(payload["ood"])
    assert detector.n_reference == 4  # the training split of 8 cases at 0.5
    assert detector.dim == 512  # resnet18's deepest level


def test_diagnose_shift_writes_results_and_evaluate_adds_the_section(trained, capsys):
    folder, config = trained
    site_b = mt.data.synthetic.phantoms(3, shape=(32, 32, 6), seed=7, output_dir=folder / "site_b")
    assert len(site_b) == 3
    code = main(["diagnose", "shift", str(config), "--target", str(folder / "site_b" / "manifest.csv")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "features of the trained model" in out and "Outputs:" in out
    saved = folder / "runs" / "tiny" / "diagnostics"
    report = mt.diagnostics.ShiftReport.from_json(saved / "shift-manifest.json")
    assert report.n_reference == 4 and report.n_target == 3
    assert (saved / "shift-manifest.md").is_file()
    checkpoint = folder / "runs" / "tiny" / "checkpoints" / "best.pt"
    assert main(["evaluate", str(config), "--checkpoint", str(checkpoint)]) == 0
    data = json.loads((folder / "runs" / "tiny" / "evaluation" / "report.json").read_text())
    assert [s["title"] for s in data["sections"]] == ["Domain shift (reference → target)"]
    assert all("ood_score" in case and "out_of_distribution" in case for case in data["cases"])


def test_diagnose_shift_names_a_missing_target(trained, capsys):
    folder, config = trained
    assert main(["diagnose", "shift", str(config), "--target", str(folder / "nope.csv")]) != 0
    assert "nope.csv" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["bn", "tent"])
def test_predict_adapts_to_the_inputs_first(trained, capsys, how):
    folder, _ = trained
    checkpoint = folder / "runs" / "tiny" / "checkpoints" / "best.pt"
    images = sorted((folder / "data" / "imagesTr").glob("*.nii.gz"))[:2]
    out_dir = folder / f"masks-{how}"
    args = ["predict", "--checkpoint", str(checkpoint), "--output", str(out_dir), "--adapt", how]
    assert main([*args, "--input", *map(str, images)]) == 0
    out = capsys.readouterr().out
    assert ("AdaBN" in out) and (how != "tent" or "TENT" in out)
    masks = sorted(out_dir.glob("*_seg.nii.gz"))
    assert len(masks) == 2
    assert mt.io.load(masks[0]).shape == mt.io.load(images[0]).shape
