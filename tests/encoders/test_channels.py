"""The in_channels rule: 1 -> sum of RGB kernels; C -> kernel i % 3 scaled by 3/C."""

from __future__ import annotations

import pytest
import torch

import medtransfer as mt
from medtransfer.encoders.channels import adapt_first_conv, adapt_input_kernel
from medtransfer.errors import EncoderError


def test_kernel_rule_values():
    weight = torch.randn(4, 3, 3, 3)
    assert torch.allclose(adapt_input_kernel(weight, 1), weight.sum(1, keepdim=True))
    five = adapt_input_kernel(weight, 5)
    assert five.shape == (4, 5, 3, 3)
    for i in range(5):
        assert torch.allclose(five[:, i], weight[:, i % 3] * 3 / 5)
    assert torch.equal(adapt_input_kernel(weight, 3), weight)
    with pytest.raises(EncoderError, match="in_channels"):
        adapt_input_kernel(weight, 0)


def test_grayscale_through_adapted_stem_equals_rgb_replica_through_original():
    torch.manual_seed(0)
    stem = torch.nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)
    gray = torch.rand(2, 1, 32, 32)
    expected = stem(gray.expand(-1, 3, -1, -1))
    assert torch.allclose(adapt_first_conv(stem, 1)(gray), expected, atol=1e-5)


def test_multichannel_keeps_activation_scale():
    torch.manual_seed(0)
    stem = torch.nn.Conv2d(3, 8, 3, padding=1)
    image = torch.rand(1, 1, 16, 16)
    # Five identical channels behave like the RGB replica: the 3/C scaling keeps the scale.
    out5 = adapt_first_conv(stem, 5)(image.expand(-1, 5, -1, -1))
    rgb_like = adapt_first_conv(stem, 1)(image) * 1.0
    channel_mean = stem.weight.mean()  # sanity: not a degenerate kernel
    assert channel_mean.abs() > 0
    # sum_i W[i % 3] * 3/5 over 5 channels = (2 W0 + 2 W1 + W2) * 3/5, compared numerically:
    w = stem.weight
    manual = torch.nn.functional.conv2d(
        image, ((2 * w[:, 0] + 2 * w[:, 1] + w[:, 2]) * 3 / 5).unsqueeze(1), stem.bias, padding=1
    )
    assert torch.allclose(out5, manual, atol=1e-5)
    assert 0.5 < out5.std() / rgb_like.std() < 2.0


def test_grouped_stem_is_refused():
    with pytest.raises(EncoderError, match="groups"):
        adapt_first_conv(torch.nn.Conv2d(3, 6, 3, groups=3), 1)


@pytest.mark.parametrize("name", ["resnet18", "tf_efficientnet_lite0"])
def test_encoder_grayscale_equivalence(name, resnet18_file, lite0_available):
    """A 1-channel encoder on g gives the 3-channel encoder's features on (g, g, g)."""
    weights = resnet18_file if name == "resnet18" else "imagenet"
    gray_encoder = mt.encoders.create(name, weights=weights, in_channels=1)
    rgb_encoder = mt.encoders.create(name, weights=weights, in_channels=3)
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        gray = gray_encoder(image)
        rgb = rgb_encoder(image.expand(-1, 3, -1, -1))
    for a, b in zip(gray, rgb):
        assert torch.allclose(a, b, atol=1e-4 * max(1.0, b.abs().max().item()))


def test_input_spec_follows_channel_rule():
    spec1 = mt.encoders.create("resnet18", weights=None, in_channels=1).input_spec
    spec5 = mt.encoders.create("resnet18", weights=None, in_channels=5).input_spec
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    assert spec1.mean == pytest.approx((sum(mean) / 3,)) and spec1.std == pytest.approx(
        (sum(std) / 3,)
    )
    assert spec5.mean == pytest.approx(tuple(mean[i % 3] for i in range(5)))
    assert spec5.value_range == (0.0, 1.0) and spec5.input_size == (224, 224)
    x = torch.full((5, 2, 2), 0.5)
    assert spec5.normalize(x)[0, 0, 0].item() == pytest.approx((0.5 - 0.485) / 0.229)
