"""MR robust scaling and encoder normalisation: exact values, channels, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtransfer.errors import ConfigError
from medtransfer.transforms import EncoderNormalized, RobustScaled, robust_scale


def test_robust_scale_uses_foreground_percentiles():
    values = torch.arange(1.0, 101.0)  # foreground 1..100
    image = torch.cat([torch.zeros(300), values]).reshape(1, 4, 100)  # 3/4 background
    out = robust_scale(image, lower=1.0, upper=99.0)
    low, high = np.percentile(values.numpy(), [1.0, 99.0])
    expected = np.clip((image.numpy() - low) / (high - low), 0, 1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert out[0, 0].abs().max() == 0  # background stays 0
    assert out.min() == 0 and out.max() == 1


def test_robust_scale_with_background_in_percentiles_differs():
    image = torch.cat([torch.zeros(300), torch.arange(1.0, 101.0)]).reshape(1, 400)
    with_zeros = robust_scale(image, lower=50, upper=100, nonzero=False)
    assert with_zeros[0, 300] == pytest.approx(1 / 100)  # median is 0 with the background


def test_robust_scale_is_per_channel_and_handles_empty_channels():
    image = torch.stack([torch.linspace(0, 10, 11), torch.linspace(0, 1000, 11), torch.zeros(11)])
    out = robust_scale(image, lower=0, upper=100)
    torch.testing.assert_close(out[0], out[1])
    assert out[2].abs().sum() == 0


def test_robust_scaled_dict_and_bad_percentiles():
    d = RobustScaled("image", lower=0, upper=100)({"image": torch.tensor([[0.0, 2.0, 4.0, 6.0]])})
    assert d["image"].tolist() == [[0.0, 0.0, 0.5, 1.0]]
    with pytest.raises(ConfigError, match="percentiles"):
        RobustScaled("image", lower=99, upper=1)
    with pytest.raises(ConfigError, match=r"\[0, 100\]"):
        robust_scale(torch.ones(1, 3), lower=-5, upper=50)


def test_encoder_normalisation_per_channel_imagenet():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    image = torch.full((3, 2, 2), 0.5)
    out = EncoderNormalized("image", mean, std)({"image": image})["image"]
    expected = [(0.5 - m) / s for m, s in zip(mean, std)]
    assert out[:, 0, 0].tolist() == pytest.approx(expected)


def test_encoder_normalisation_value_range_and_stack_channel_axis():
    stack = torch.ones(4, 2, 3, 3)  # (Z, C, X, Y)
    norm = EncoderNormalized(
        "image", (0.0, 100.0), (1.0, 10.0), value_range=(0, 255), channel_dim=1
    )
    out = norm({"image": stack})["image"]
    assert out[:, 0].unique().tolist() == [255.0]
    assert out[:, 1].unique().tolist() == pytest.approx([15.5])


def test_encoder_normalisation_from_spec_duck_typed():
    class Spec:  # stands in for an encoder's InputSpec; transforms never import encoders
        mean, std, value_range = (0.449,), (0.226,), (0.0, 1.0)

    out = EncoderNormalized.from_spec("image", Spec())({"image": torch.full((1, 2), 0.449)})
    assert out["image"].abs().max() < 1e-6


def test_encoder_normalisation_errors():
    with pytest.raises(ConfigError, match="std"):
        EncoderNormalized("image", 0.5, 0.0)
    with pytest.raises(ConfigError, match="mean has 3 values but std has 1"):
        EncoderNormalized("image", (0.1, 0.2, 0.3), 0.2)
    norm = EncoderNormalized("image", (0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="3 mean/std values but 'image' has 1 channels"):
        norm({"image": torch.zeros(1, 4, 4)})
