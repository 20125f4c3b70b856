"""ONNX and TorchScript exports: the written file reproduces the PyTorch model and carries metadata."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import torch

import medtransfer as mt
from medtransfer.errors import ExportError, OutputPathError
from medtransfer.exporting import formats, read_metadata

TOLERANCE = 1e-4
CLASSES = ["liver", "lesion"]


def _seg2d():
    model = mt.models.create_segmenter("test_resnet", 3, weights=None, in_channels=3, seed=0)
    spec = model.encoder.input_spec
    preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(48, 40), context=1, input_spec=spec)
    return model, preset


def _seg3d():
    model = mt.models.create_segmenter("test_resnet", 3, weights=None, spatial_dims=3, seed=0)
    spec = model.encoder.input_spec
    preset = mt.transforms.presets.ct(spatial_dims=3, roi_size=(32, 32, 16), input_spec=spec)
    return model, preset


def _classifier():
    model = mt.models.create_classifier("test_resnet", 2, weights=None, seed=0)
    spec = model.encoder.input_spec
    preset = mt.transforms.presets.ct("classification", roi_size=(40, 40), input_spec=spec)
    return model, preset


MODELS = {"segmenter-2.5d": _seg2d, "segmenter-3d": _seg3d, "classifier": _classifier}
EXPECTED = {  # (input shape of the preset's roi_size, output shape)
    "segmenter-2.5d": ((1, 3, 48, 40), (1, 3, 48, 40)),
    "segmenter-3d": ((1, 1, 32, 32, 16), (1, 3, 32, 32, 16)),
    "classifier": ((1, 1, 40, 40), (1, 2)),
}


def _eager(model, x):
    with torch.no_grad():
        return model.eval()(x).numpy()


def _check_metadata(meta, name, model):
    input_shape, output_shape = EXPECTED[name]
    assert meta["medtransfer_version"] == mt.__version__
    assert meta["class_names"] == CLASSES
    assert meta["task"] == ("classification" if name == "classifier" else "segmentation")
    assert meta["spatial_dims"] == len(input_shape) - 2
    assert meta["input"]["shape"] == list(input_shape)
    assert meta["output"]["shape"] == list(output_shape)
    spec = model.encoder.input_spec
    assert meta["encoder"]["input_spec"]["mean"] == pytest.approx(list(spec.mean))
    assert meta["encoder"]["input_spec"]["size_divisor"] == list(spec.size_divisor)
    steps = [s["_target_"] for s in meta["preprocessing"]["steps"]]
    assert steps[0] == "medtransfer.transforms.LoadVolumed"
    assert "medtransfer.transforms.CTWindowd" in steps
    assert steps[-1] == "medtransfer.transforms.EncoderNormalized"
    context = {"segmenter-2.5d": 1, "segmenter-3d": None, "classifier": 0}[name]  # 0: 2D slices
    assert meta["preprocessing"]["slice_context"] == context
    assert meta["extra"] == {"site": "A"}


@pytest.mark.parametrize("name", list(MODELS))
def test_torchscript_round_trip_and_metadata(tmp_path, name):
    model, preset = MODELS[name]()
    path = tmp_path / "model.ts"
    result = mt.export(
        model, path, "torchscript", preset=preset, class_names=CLASSES, metadata={"site": "A"}
    )
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOLERANCE
    assert result.files == (path,)
    _check_metadata(read_metadata(path), name, model)
    # the batch axis is free: any batch of the export's spatial size
    x = torch.randn((3, *EXPECTED[name][0][1:]), generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(formats.run_torchscript(path, x), _eager(model, x), atol=TOLERANCE)


@pytest.mark.slow  # torch.onnx's exporter takes 10-20 s per model on 2 busy cores
@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_round_trip_with_onnxruntime_and_metadata(tmp_path, name):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    model, preset = MODELS[name]()
    path = tmp_path / "model.onnx"
    result = mt.export(
        model, path, "onnx", preset=preset, class_names=CLASSES, metadata={"site": "A"}
    )
    assert result.note is None
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOLERANCE
    _check_metadata(read_metadata(path), name, model)
    x = torch.randn((1, *EXPECTED[name][0][1:]), generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(formats.run_onnx(path, x), _eager(model, x), atol=TOLERANCE)


def test_without_a_preset_the_example_sets_the_input_and_nothing_describes_preprocessing(tmp_path):
    model = mt.models.create_classifier("test_resnet", 4, weights=None, seed=0)
    result = mt.export(model, tmp_path / "c.ts", "ts", example=(2, 1, 32, 48))
    meta = read_metadata(tmp_path / "c.ts")
    assert result.format == "torchscript" and result.check_input == (2, 1, 32, 48)
    assert meta["preprocessing"] is None and meta["class_names"] is None
    assert meta["input"]["shape"] == [2, 1, 32, 48] and meta["output"]["activation"] == "softmax"


def test_the_model_is_not_changed(tmp_path):
    model, _ = _seg3d()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mt.export(model, tmp_path / "m.ts", "torchscript", example=(1, 1, 32, 32, 32))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- errors
def test_unknown_format_names_the_allowed_ones(tmp_path):
    model, _ = _classifier()
    with pytest.raises(ExportError, match="onnx, torchscript, monai-bundle"):
        mt.export(model, tmp_path / "m.pb", format="tensorflow")


def test_an_existing_file_is_replaced_only_on_request(tmp_path):
    model, _ = _classifier()
    path = tmp_path / "m.ts"
    path.write_text("keep me")
    with pytest.raises(OutputPathError, match="overwrite=True"):
        mt.export(model, path, "torchscript", example=(1, 1, 32, 32))
    assert path.read_text() == "keep me"
    mt.export(model, path, "torchscript", example=(1, 1, 32, 32), overwrite=True)
    assert read_metadata(path)["task"] == "classification"


def test_missing_onnx_packages_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # import fails
    model, _ = _classifier()
    with pytest.raises(ExportError, match="pip install onnx onnxscript"):
        mt.export(model, tmp_path / "m.onnx", "onnx", example=(1, 1, 32, 32))
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_without_onnxruntime_is_written_and_says_it_was_not_checked(tmp_path, monkeypatch):
    pytest.importorskip("onnxscript")
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    model = torch.nn.Conv2d(1, 2, 3, padding=1)
    result = mt.export(model, tmp_path / "m.onnx", "onnx", example=(1, 1, 8, 8))
    assert result.max_abs_diff is None and "pip install onnxruntime" in result.note
    assert read_metadata(tmp_path / "m.onnx")["task"] == "unknown"


class _DataDependent(torch.nn.Module):
    def forward(self, x):
        return {"logits": x}  # not a tensor: nothing to trace into a graph


def test_a_model_that_cannot_be_traced_is_an_export_error(tmp_path):
    with pytest.raises(ExportError, match="only models returning one tensor"):
        mt.export(_DataDependent(), tmp_path / "m.ts", "torchscript", example=(1, 1, 8, 8))


def test_a_model_without_an_encoder_needs_an_example(tmp_path):
    with pytest.raises(ExportError, match="pass example="):
        mt.export(torch.nn.Conv2d(1, 1, 1), tmp_path / "m.ts", "torchscript")


def test_an_example_of_the_wrong_layout_is_refused(tmp_path):
    model, _ = _seg3d()
    with pytest.raises(ExportError, match=r"\(N, C, X, Y, Z\) with C=1"):
        mt.export(model, tmp_path / "m.ts", "torchscript", example=(1, 1, 32, 32))


def test_a_round_trip_beyond_tolerance_removes_the_file(tmp_path, monkeypatch):
    model, _ = _classifier()
    monkeypatch.setattr(formats, "run_torchscript", lambda path, x: np.full((2, 2), 1e3))
    with pytest.raises(ExportError, match="differs from the PyTorch model"):
        mt.export(model, tmp_path / "m.ts", "torchscript", example=(1, 1, 32, 32))
    assert not (tmp_path / "m.ts").exists()


def test_read_metadata_of_a_file_that_is_not_an_export(tmp_path):
    other = tmp_path / "other.ts"
    other.write_text("not a zip")
    with pytest.raises(ExportError, match="not a TorchScript archive"):
        read_metadata(other)
    with pytest.raises(mt.errors.InputPathError):
        read_metadata(tmp_path / "missing.onnx")


def test_mt_export_stays_the_function_after_every_submodule_is_imported():
    import medtransfer.exporting as exporting

    for module in pkgutil.iter_modules(exporting.__path__):
        importlib.import_module(f"medtransfer.exporting.{module.name}")
    assert mt.export is exporting.export and callable(mt.export)
    assert "export" in dir(mt)
