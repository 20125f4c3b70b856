"""I3D inflation: kernels repeated along depth / k_d; constant-depth volumes give the 2D features."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import SEModule
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models.convnext import ConvNeXtBlock

import medtransfer as mt
from medtransfer.encoders.convert3d import convert_to_3d
from medtransfer.encoders.inflate import inflate_conv, inflate_conv_weights
from medtransfer.errors import EncoderError


def _close(a, b, rel=1e-4):
    """Equal up to float error relative to the magnitude of the reference features."""
    return torch.allclose(a, b, rtol=0, atol=rel * b.abs().max().item() + 1e-7)


def test_inflated_kernel_values():
    weight = torch.randn(4, 2, 3, 3)
    inflated = inflate_conv_weights(weight, 5)
    assert inflated.shape == (4, 2, 5, 3, 3)
    for d in range(5):
        assert torch.allclose(inflated[:, :, d], weight / 5)
    assert torch.allclose(inflated.sum(2), weight)


def test_inflated_conv_settings_and_depth_stride():
    conv = torch.nn.Conv2d(3, 8, 7, stride=2, padding=3)
    same = inflate_conv(conv)
    assert (same.kernel_size, same.stride, same.padding) == ((7, 7, 7), (2, 2, 2), (3, 3, 3))
    keep = inflate_conv(conv, depth_stride=1)
    assert (keep.kernel_size, keep.stride, keep.padding) == ((7, 7, 7), (1, 2, 2), (3, 3, 3))
    even = inflate_conv(torch.nn.Conv2d(3, 8, 4, stride=4), depth_stride=1)
    assert (even.kernel_size, even.stride) == ((1, 4, 4), (1, 4, 4))  # even kernels: planar


def _slice_features(name, weights, depth_stride, depth, out_indices=None, size=32):
    kwargs = {"weights": weights, "in_channels": 1, "out_indices": out_indices}
    enc2d = mt.encoders.create(name, **kwargs)
    enc3d = mt.encoders.create(name, spatial_dims=3, depth_stride=depth_stride, **kwargs)
    torch.manual_seed(0)
    image = torch.rand(1, 1, size, size)
    volume = image.unsqueeze(2).expand(-1, -1, depth, -1, -1).contiguous()
    with torch.no_grad():
        return enc2d(image), enc3d(volume), enc3d


@pytest.mark.slow
def test_constant_depth_volume_keeps_all_levels_resnet_depth_stride_1(resnet18_file):
    # Depth receptive field of resnet18 with depth kept: ~41 slices; 48 leaves the centre clean.
    feats2d, feats3d, enc3d = _slice_features("resnet18", resnet18_file, 1, depth=48)
    assert enc3d.depth_reductions == (1, 1, 1, 1, 1)
    for f2, f3 in zip(feats2d, feats3d):
        assert f3.shape[2] == 48
        assert _close(f3[:, :, 24], f2)
    # the border does differ (zero padding along depth): the comparison can fail
    assert not all(_close(f3[:, :, 0], f2) for f2, f3 in zip(feats2d, feats3d))


def test_constant_depth_volume_shallow_levels_isotropic(resnet18_file):
    feats2d, feats3d, _ = _slice_features("resnet18", resnet18_file, "same", 32, (0, 1, 2))
    for f2, f3, reduction in zip(feats2d, feats3d, (2, 4, 8)):
        assert f3.shape[2] == 32 // reduction
        assert _close(f3[:, :, f3.shape[2] // 2], f2)


@pytest.mark.slow
def test_constant_depth_volume_pretrained_same_padding(lite0_available):
    """tf_efficientnet_lite0: real ImageNet weights, TensorFlow SAME padding, depth kept."""
    feats2d, feats3d, _ = _slice_features("tf_efficientnet_lite0", "imagenet", 1, depth=64)
    for f2, f3 in zip(feats2d, feats3d):
        assert _close(f3[:, :, 32], f2)


@pytest.mark.slow
def test_constant_depth_convnext_blocks(tmp_path):
    """ConvNeXt blocks get an N-d forward; layer scales set to O(1) so the blocks matter."""
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto")
    for name, param in model.named_parameters():
        if name.endswith("gamma"):
            param.data.uniform_(0.5, 1.5)
    path = tmp_path / "convnext_atto.safetensors"
    save_file(model.state_dict(), str(path))
    # depth kept: even stem/downsample kernels become planar; the 4 blocks of levels 0-1
    # (7-deep depthwise convs) see 12 slices either side, so slice 16 of 32 is interior.
    feats2d, feats3d, _ = _slice_features("convnext_atto", path, 1, depth=32, out_indices=(0, 1))
    for f2, f3 in zip(feats2d, feats3d):
        assert _close(f3[:, :, 16], f2)
    assert not all(_close(f3[:, :, 0], f2) for f2, f3 in zip(feats2d, feats3d))


@pytest.mark.parametrize("conv_mlp", [False, True])
def test_convnext_block_nd_forward_matches_2d(conv_mlp):
    torch.manual_seed(0)
    block = ConvNeXtBlock(8, conv_mlp=conv_mlp, ls_init_value=1.0).eval()
    image = torch.rand(1, 8, 12, 12)
    with torch.no_grad():
        expected = block(image)
        block3d = convert_to_3d(torch.nn.Sequential(block), inflate_conv)
        volume = image.unsqueeze(2).expand(-1, -1, 9, -1, -1)
        got = block3d(volume)
    assert _close(got[:, :, 4], expected)


@pytest.mark.parametrize("se_type", ["efficientnet", "timm"])
def test_squeeze_excite_nd_pools_over_the_volume(se_type):
    torch.manual_seed(0)
    se = SqueezeExcite(8, rd_ratio=0.5) if se_type == "efficientnet" else SEModule(8)
    image = torch.rand(1, 8, 6, 6)
    with torch.no_grad():
        expected = se(image)
        se3d = convert_to_3d(torch.nn.Sequential(se), inflate_conv)
        got = se3d(image.unsqueeze(2).expand(-1, -1, 5, -1, -1))
        # every slice equals the 2D result: the squeeze averages over depth too
        assert all(_close(got[:, :, d], expected) for d in range(5))
        ramp = torch.rand(1, 8, 5, 6, 6)
        scale = se3d(ramp) / ramp
    # one gate per channel for the whole volume (a true 3D squeeze), not per slice
    assert torch.allclose(scale, scale[:, :, :1, :1, :1].expand_as(scale), atol=1e-5)


def test_bad_depth_stride():
    with pytest.raises(EncoderError, match="depth_stride"):
        mt.encoders.create("resnet18", weights=None, spatial_dims=3, depth_stride=2)


def test_layers_without_3d_rule_are_refused_at_conversion():
    class Blur2d(torch.nn.Module):  # a 2D-only layer medtransfer has no rule for
        def forward(self, x):
            return x

    with pytest.raises(EncoderError, match="Blur2d"):
        convert_to_3d(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), Blur2d()), inflate_conv)
    with pytest.raises(EncoderError, match="SplitAttn"):  # resnest: 2D shape unpacking inside
        mt.encoders.create("resnest14d", weights=None, spatial_dims=3)
