"""The encoder contract: families x in_channels x spatial_dims, argument and weight errors."""

from __future__ import annotations

import logging

import pytest
import timm
import torch
from safetensors.torch import save_file

import medtransfer as mt
from medtransfer.encoders import sources
from medtransfer.errors import EncoderError, MedTransferError, WeightsError

FAMILY_MODELS = {
    "resnet": "resnet18",
    "efficientnet": "efficientnet_b0",
    "convnext": "convnext_atto",
    "densenet": "densenet121",
}
SIZE_2D, SIZE_3D = 64, 32


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("in_channels", [1, 3, 5])
@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_contract_shapes(family, in_channels, spatial_dims):
    name = FAMILY_MODELS[family]
    encoder = mt.encoders.create(
        name, weights=None, in_channels=in_channels, spatial_dims=spatial_dims
    )
    size = SIZE_2D if spatial_dims == 2 else SIZE_3D
    x = torch.rand(1, in_channels, *([size] * spatial_dims))
    with torch.no_grad():
        features = encoder(x)
    assert isinstance(features, list) and len(features) == len(encoder.out_channels)
    assert len(encoder.reductions) == len(features)
    assert list(encoder.reductions) == sorted(encoder.reductions)
    depth_reductions = encoder.depth_reductions if spatial_dims == 3 else ()
    for i, feature in enumerate(features):
        expected = [size // encoder.reductions[i]] * 2
        if spatial_dims == 3:
            expected = [size // depth_reductions[i], *expected]
        assert tuple(feature.shape) == (1, encoder.out_channels[i], *expected)
    assert encoder.spatial_dims == spatial_dims and encoder.in_channels == in_channels
    assert len(encoder.input_spec.mean) == in_channels == len(encoder.input_spec.std)
    assert len(encoder.input_spec.size_divisor) == spatial_dims
    assert encoder.conversion == (None if spatial_dims == 2 else "inflate")
    assert encoder.weights is None


def test_known_pyramids():
    expected = {
        "resnet18": ((64, 64, 128, 256, 512), (2, 4, 8, 16, 32)),
        "efficientnet_b0": ((16, 24, 40, 112, 320), (2, 4, 8, 16, 32)),
        "convnext_atto": ((40, 80, 160, 320), (4, 8, 16, 32)),
        "densenet121": ((64, 256, 512, 1024, 1024), (2, 4, 8, 16, 32)),
    }
    for name, (channels, reductions) in expected.items():
        encoder = mt.encoders.create(name, weights=None)
        assert (encoder.out_channels, encoder.reductions) == (channels, reductions)


@pytest.mark.parametrize("family", ["resnet", "efficientnet", "convnext"])  # densenet: inflate only
def test_acs_contract(family):
    encoder = mt.encoders.create(
        FAMILY_MODELS[family], weights=None, in_channels=1, spatial_dims=3, conversion="acs"
    )
    with torch.no_grad():
        features = encoder(torch.rand(1, 1, 32, 32, 32))
    for feature, channels, reduction in zip(features, encoder.out_channels, encoder.reductions):
        assert tuple(feature.shape) == (1, channels, *([32 // reduction] * 3))


def test_out_indices_and_depth_stride():
    encoder = mt.encoders.create(
        "resnet18", weights=None, spatial_dims=3, out_indices=(1, 3), depth_stride=1
    )
    assert encoder.out_channels == (64, 256) and encoder.reductions == (4, 16)
    assert encoder.depth_reductions == (1, 1)
    assert encoder.input_spec.size_divisor == (1, 16, 16)
    with torch.no_grad():
        shapes = [tuple(f.shape) for f in encoder(torch.rand(1, 1, 5, 32, 32))]
    assert shapes == [(1, 64, 5, 8, 8), (1, 256, 5, 2, 2)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "resnet_18"}, "Did you mean resnet18"),
        ({"name": "resnet18.nope"}, "resnet18.a1_in1k"),
        ({"name": "resnet18", "in_channels": 0}, "in_channels"),
        ({"name": "resnet18", "in_channels": 2.5}, "in_channels"),
        ({"name": "resnet18", "in_channels": True}, "in_channels"),
        ({"name": "resnet18", "spatial_dims": 4}, "spatial_dims"),
        ({"name": "resnet18", "spatial_dims": 3, "conversion": "2.5d"}, "conversion"),
        ({"name": "resnet18", "conversion": "acs"}, "spatial_dims=3"),
        ({"name": "resnet18", "out_indices": (7,)}, "out_indices"),
    ],
)
def test_bad_arguments_raise_encoder_error(kwargs, match):
    with pytest.raises(EncoderError, match=match):
        mt.encoders.create(weights=None, **kwargs)


def test_wrong_input_shape_is_explained():
    encoder = mt.encoders.create("resnet18", weights=None, in_channels=1)
    with pytest.raises(EncoderError, match=r"C=1"):
        encoder(torch.rand(1, 3, 32, 32))
    with pytest.raises(EncoderError, match=r"\(N, C, H, W\)"):
        encoder(torch.rand(1, 32, 32))


def _saved(tmp_path, state, name="w.safetensors"):
    path = tmp_path / name
    save_file(state, str(path))
    return path


def test_classifier_with_other_num_classes_is_dropped_and_logged(tmp_path, caplog):
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10)
    path = _saved(tmp_path, model.state_dict())
    with caplog.at_level(logging.INFO, logger="medtransfer.encoders"):
        encoder = mt.encoders.create("resnet18", weights=path, in_channels=3)
    assert sorted(encoder.dropped_keys) == ["fc.bias", "fc.weight"]
    assert "fc.weight" in caplog.text and "fc.bias" in caplog.text
    assert torch.equal(encoder.body.layer4[1].conv2.weight, model.layer4[1].conv2.weight)
    assert encoder.weights.sha256 == sources.sha256_file(path)


def test_headless_weights_are_accepted(tmp_path):
    state = timm.create_model("resnet18", num_classes=0).state_dict()
    encoder = mt.encoders.create("resnet18", weights=_saved(tmp_path, state), in_channels=3)
    assert encoder.dropped_keys == ()


@pytest.mark.parametrize("damage", ["missing", "unexpected", "shape"])
def test_other_key_problems_are_errors_never_random(tmp_path, damage):
    state = timm.create_model("resnet18").state_dict()
    if damage == "missing":
        del state["layer2.0.conv1.weight"]
    elif damage == "unexpected":
        state["layer5.conv.weight"] = torch.zeros(1)
    else:
        state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(WeightsError) as info:
        mt.encoders.create("resnet18", weights=_saved(tmp_path, state))
    assert {"missing": "layer2.0.conv1.weight", "unexpected": "layer5", "shape": "conv1.weight"}[
        damage
    ] in str(info.value)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = _saved(tmp_path, timm.create_model("resnet34").state_dict())
    with pytest.raises(WeightsError, match="do not fit"):
        mt.encoders.create("resnet18", weights=path)


def test_all_user_errors_are_medtransfer_errors():
    for call in (
        lambda: mt.encoders.create("nope"),
        lambda: mt.encoders.create("resnet18", weights="/no/such/file.pth"),
        lambda: mt.encoders.list_encoders(families=("not_a_family",)),
    ):
        with pytest.raises(MedTransferError):
            call()


def test_public_names_are_exported():
    for name in mt.encoders.__all__:
        assert getattr(mt.encoders, name) is not None
