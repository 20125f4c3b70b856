"""Task models: shapes and gradients for task x {2D, 2.5D, 3D} x two encoder families, padding,
deep supervision, parameter groups, and the comparison with MONAI's FlexibleUNet."""

from __future__ import annotations

import pytest
import torch

import medtransfer as mt
from medtransfer.errors import ModelError

FAMILIES = ["resnet18", "tf_efficientnet_lite0"]
# (spatial_dims, in_channels, input spatial size): 2D slice, 2.5D (k=2 -> 5 slices), 3D volume
LAYOUTS = {"2d": (2, 1, (64, 64)), "2.5d": (2, 5, (64, 64)), "3d": (3, 1, (32, 32, 32))}


def _step(model: torch.nn.Module, x: torch.Tensor, target_fn) -> torch.Tensor:
    model.train()
    out = model(x)
    loss = target_fn(out)
    loss.backward()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_segmenter_forward_backward(family, layout):
    spatial_dims, in_channels, size = LAYOUTS[layout]
    model = mt.models.create_segmenter(
        family, 3, weights=None, in_channels=in_channels, spatial_dims=spatial_dims
    )
    x = torch.rand(2, in_channels, *size)
    target = torch.randint(0, 3, (2, *size))
    out = _step(model, x, lambda o: torch.nn.functional.cross_entropy(o, target))
    assert out.shape == (2, 3, *size)
    groups = model.parameter_groups()
    assert all(p.grad is not None for p in groups["stem"] + groups["decoder"] + groups["head"])


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_classifier_forward_backward(family, layout):
    spatial_dims, in_channels, size = LAYOUTS[layout]
    model = mt.models.create_classifier(
        family, 2, weights=None, in_channels=in_channels, spatial_dims=spatial_dims
    )
    x = torch.rand(2, in_channels, *size)
    out = _step(model, x, lambda o: torch.nn.functional.cross_entropy(o, torch.tensor([0, 1])))
    assert out.shape == (2, 2)
    assert all(p.grad is not None for p in model.parameter_groups()["stem"])
    assert model.forward_features(x).shape == (2, model.encoder.out_channels[-1])


def test_three_d_defaults_to_inflation_and_acs_is_available():
    assert (
        mt.models.create_classifier("resnet18", 1, weights=None, spatial_dims=3).encoder.conversion
        == "inflate"
    )
    acs = mt.models.create_segmenter("resnet18", 2, weights=None, spatial_dims=3, conversion="acs")
    assert acs.encoder.conversion == "acs"
    assert acs(torch.rand(1, 1, 32, 32, 32)).shape == (1, 2, 32, 32, 32)


def test_sizes_that_are_not_multiples_of_the_stride_are_padded_and_cropped_back():
    model = mt.models.create_segmenter("resnet18", 2, weights=None).eval()
    x = torch.rand(1, 1, 45, 70)
    out = model(x)
    assert out.shape == (1, 2, 45, 70)
    padded = torch.nn.functional.pad(x, (0, 26, 0, 19))  # what pad="auto" does: zeros at the end
    torch.testing.assert_close(out, model(padded)[..., :45, :70])


def test_pad_error_names_the_valid_sizes():
    model = mt.models.create_segmenter("resnet18", 2, weights=None, pad="error")
    with pytest.raises(ModelError, match=r"\(64, 96\)"):
        model(torch.rand(1, 1, 45, 70))


def test_deep_supervision_returns_coarser_predictions_only_in_training():
    model = mt.models.create_segmenter("resnet18", 2, weights=None, deep_supervision=True)
    outputs = model.train()(torch.rand(2, 1, 64, 64))
    assert isinstance(outputs, list) and len(outputs) == 4
    assert all(o.shape == (2, 2, 64, 64) for o in outputs)
    assert model.eval()(torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)


@pytest.mark.parametrize(
    "family", ["resnet18", "tf_efficientnet_lite0", "convnext_atto", "densenet121"]
)
def test_parameter_groups_cover_every_parameter_once(family):
    model = mt.models.create_segmenter(family, 2, weights=None)
    groups = model.parameter_groups()
    assert list(groups)[0] == "stem" and list(groups)[-2:] == ["decoder", "head"]
    assert len(groups) == len(model.encoder.out_channels) + 2
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}


def test_pretrained_weights_reach_the_task_model():
    encoder = mt.encoders.create("tf_efficientnet_lite0", weights="imagenet", in_channels=1)
    model = mt.models.create_classifier(
        "tf_efficientnet_lite0", 2, weights="imagenet", in_channels=1
    )
    for (name, a), b in zip(encoder.state_dict().items(), model.encoder.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_bad_arguments_are_model_errors():
    encoder = mt.encoders.create("resnet18", weights=None)
    with pytest.raises(ModelError, match="pooling"):
        mt.models.Classifier(encoder, 2, pooling="median")
    with pytest.raises(ModelError, match="decoder"):
        mt.models.Segmenter(encoder, 2, decoder="deeplab")
    with pytest.raises(ModelError, match="decoder_channels"):
        mt.models.Segmenter(encoder, 2, decoder_channels=(32, 16))
    with pytest.raises(ModelError, match="num_classes"):
        mt.models.Segmenter(encoder, 0)


def test_same_shapes_as_monai_flexibleunet_with_the_same_encoder():
    from monai.networks.nets import FlexibleUNet

    ours = mt.models.create_segmenter("efficientnet_b0", 3, weights=None).eval()
    monai = FlexibleUNet(
        1, 3, backbone="efficientnet-b0", pretrained=False, decoder_channels=(256, 128, 64, 32, 16)
    ).eval()
    x = torch.rand(1, 1, 96, 128)
    with torch.no_grad():
        assert ours(x).shape == monai(x).shape == (1, 3, 96, 128)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # MONAI keeps EfficientNet's unused 1280-channel head conv and ImageNet classifier in its encoder
    assert count(monai.encoder) - count(ours.encoder) > 1_500_000
    assert count(ours.decoder) == pytest.approx(count(monai.decoder), rel=0.35)


def test_seed_makes_random_layers_repeatable_without_touching_the_global_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = mt.models.create_segmenter("resnet18", 3, weights=None, seed=7)
    b = mt.models.create_segmenter("resnet18", 3, weights=None, seed=7)
    assert torch.equal(torch.rand(1), expected_next)  # global state untouched
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    c = mt.models.create_segmenter("resnet18", 3, weights=None, seed=8)
    assert not torch.equal(a.head.weight, c.head.weight)
