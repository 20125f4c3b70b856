"""``medtransfer export`` on the tiny phantom project: ONNX, TorchScript and a MONAI bundle."""

from __future__ import annotations

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.cli import main
from medtransfer.exporting import read_metadata
from tests.fixtures import write_tiny_project

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning"),
]

CLASSES = ["liver", "lesion", "spleen", "kidney"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    config = write_tiny_project(folder)
    assert main(["train", str(config)]) == 0
    return folder, folder / "runs" / "tiny" / "checkpoints" / "best.pt"


def test_export_torchscript_carries_the_run(run, capsys):
    folder, checkpoint = run
    out = folder / "model.ts"
    assert main(["export", str(checkpoint), "--format", "torchscript", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "torchscript ->" in printed and "max |difference|" in printed
    meta = read_metadata(out)
    assert meta["class_names"] == CLASSES and meta["num_classes"] == 5
    assert meta["input"]["shape"] == [1, 1, 32, 32] and meta["encoder"]["name"] == "resnet18"
    assert meta["extra"]["run_config"]["checkpoint"] == "best.pt"
    assert meta["extra"]["run_config"]["preprocessing"]["roi_size"] == [32, 32]
    # an existing file is kept without --overwrite (exit code 1: a runtime error)
    assert main(["export", str(checkpoint), "--format", "torchscript", "--output", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_export_onnx(run):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    folder, checkpoint = run
    out = folder / "model.onnx"
    assert main(["export", str(checkpoint), "--output", str(out)]) == 0  # onnx by default
    assert read_metadata(out)["format"] == "onnx"


def test_export_monai_bundle_segments_like_medtransfer_predict(run, capsys):
    pytest.importorskip("ignite")
    from monai.bundle import ConfigWorkflow

    folder, checkpoint = run
    bundle = folder / "bundle"
    code = main(["export", str(checkpoint), "--format", "monai-bundle", "--output", str(bundle)])
    assert code == 0
    assert "python -m monai.bundle run" in capsys.readouterr().out
    images = folder / "images"
    images.mkdir()
    image = folder / "data" / "imagesTr" / "phantom-000.nii.gz"
    (images / image.name).symlink_to(image)
    workflow = ConfigWorkflow(
        config_file=str(bundle / "configs" / "inference.json"), workflow_type="inference",
        bundle_root=str(bundle), dataset_dir=str(images), output_dir=str(folder / "bundle-masks"),
    )  # fmt: skip
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    masks = folder / "predict-masks"
    argv = ["predict", "--checkpoint", str(checkpoint), "--input", str(image), "--output", str(masks)]  # fmt: skip
    assert main(argv) == 0
    stem = image.name.removesuffix(".nii.gz")
    got = np.asarray(mt.io.load(folder / "bundle-masks" / f"{stem}_seg.nii.gz"))
    want = np.asarray(mt.io.load(masks / f"{stem}_seg.nii.gz"))
    assert got.shape == want.shape
    assert float((got != want).mean()) <= 1e-3, f"{int((got != want).sum())} voxels differ"


def test_export_of_a_missing_checkpoint_names_it(tmp_path, capsys):
    config = write_tiny_project(tmp_path)
    missing = tmp_path / "runs" / "tiny" / "checkpoints" / "best.pt"
    args = ["export", str(missing), "--config", str(config), "--output", str(tmp_path / "m.ts")]
    assert main(args) == 1
    assert "best.pt does not exist" in capsys.readouterr().err
