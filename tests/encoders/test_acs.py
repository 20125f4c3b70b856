"""ACS convolutions: thirds of the output channels on axial/coronal/sagittal planes, 2D params."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.layers.conv2d_same import Conv2dSame

import medtransfer as mt
from medtransfer.encoders.acs import ACSConv3d, acs_conv, acs_split
from medtransfer.errors import EncoderError


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_split_matches_reference_implementation():
    assert acs_split(64) == (22, 21, 21)
    assert acs_split(32) == (11, 11, 10)
    assert acs_split(3) == (1, 1, 1)
    assert sum(acs_split(1000)) == 1000


def test_same_parameters_as_2d():
    conv = torch.nn.Conv2d(4, 9, 3, padding=1)
    acs = acs_conv(conv)
    assert _n_params(acs) == _n_params(conv) == 9 * 4 * 9 + 9
    assert acs.weight is conv.weight  # the pretrained kernel itself, not a copy


@pytest.mark.parametrize("stride", [1, 2])
def test_each_third_is_the_2d_conv_on_its_plane(stride):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 7, 3, stride=stride, padding=1)
    acs = acs_conv(conv)
    x = torch.rand(1, 2, 8, 10, 12)
    with torch.no_grad():
        out = acs(x)
        a, c, _ = acs.split  # (3, 2, 2)
        w, b = conv.weight, conv.bias
        axial = slice(0, a)
        coronal = slice(a, a + c)
        sagittal = slice(a + c, 7)
        for d in range(0, 8, stride):  # axial plane (H, W) at depth d
            ref = F.conv2d(x[:, :, d], w[axial], b[axial], stride, 1)
            assert torch.allclose(out[:, axial, d // stride], ref, atol=1e-6)
        for h in range(0, 10, stride):  # coronal plane (D, W) at row h
            ref = F.conv2d(x[:, :, :, h], w[coronal], b[coronal], stride, 1)
            assert torch.allclose(out[:, coronal, :, h // stride], ref, atol=1e-6)
        for col in range(0, 12, stride):  # sagittal plane (D, H) at column col
            ref = F.conv2d(x[..., col], w[sagittal], b[sagittal], stride, 1)
            assert torch.allclose(out[:, sagittal, :, :, col // stride], ref, atol=1e-6)


def test_depthwise_conv_splits_by_groups():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
    acs = acs_conv(conv)
    x = torch.rand(1, 6, 5, 5, 5)
    with torch.no_grad():
        out = acs(x)
        # channels 0-1 axial, 2-3 coronal, 4-5 sagittal; each reads only its own input channel
        ref_axial = F.conv2d(x[:, :2, 2], conv.weight[:2], None, 1, 1, groups=2)
        ref_sagittal = F.conv2d(x[:, 4:, :, :, 3], conv.weight[4:], None, 1, 1, groups=2)
    assert torch.allclose(out[:, :2, 2], ref_axial, atol=1e-6)
    assert torch.allclose(out[:, 4:, :, :, 3], ref_sagittal, atol=1e-6)


def test_same_padding_conv_keeps_shape():
    conv = Conv2dSame(3, 6, 3, stride=2)
    out = ACSConv3d(conv, same=True)(torch.rand(1, 3, 9, 10, 11))
    assert out.shape == (1, 6, 5, 5, 6)  # ceil(n / 2) in every dimension, like TF "SAME"


@pytest.mark.parametrize("name", ["resnet18", "tf_efficientnet_lite0", "convnext_atto"])
def test_encoder_parameter_counts(name):
    enc2d = mt.encoders.create(name, weights=None, in_channels=1)
    acs = mt.encoders.create(name, weights=None, in_channels=1, spatial_dims=3, conversion="acs")
    inflated = mt.encoders.create(name, weights=None, in_channels=1, spatial_dims=3)
    assert _n_params(acs) == _n_params(enc2d)
    assert _n_params(inflated) > _n_params(enc2d)


def test_acs_encoder_planar_equivalence_at_the_stem(resnet18_file):
    """The ACS stem's axial channels on a volume equal the 2D stem's on each slice."""
    enc2d = mt.encoders.create("resnet18", weights=resnet18_file, in_channels=1)
    acs = mt.encoders.create(
        "resnet18", weights=resnet18_file, in_channels=1, spatial_dims=3, conversion="acs"
    )
    x = torch.rand(1, 1, 8, 32, 32)
    a = acs.body.conv1.split[0]
    with torch.no_grad():
        out = acs.body.conv1(x)
        for d in range(0, 8, 2):
            assert torch.allclose(
                out[:, :a, d // 2], enc2d.body.conv1(x[:, :, d])[:, :a], atol=1e-5
            )


def test_acs_refuses_depth_stride_1_and_bad_sizes():
    with pytest.raises(EncoderError, match="depth_stride"):
        mt.encoders.create(
            "resnet18", weights=None, spatial_dims=3, conversion="acs", depth_stride=1
        )
    enc = mt.encoders.create("resnet18", weights=None, spatial_dims=3, conversion="acs")
    with pytest.raises(EncoderError, match="multiple of"):
        enc(torch.rand(1, 1, 33, 32, 32))
