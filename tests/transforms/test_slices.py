"""2D / 2.5D slice stacking: content, edges, exact inversion, geometry, slabs."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from medtransfer.errors import ConfigError
from medtransfer.transforms import (
    SlabToChannelsd,
    SliceStackd,
    SliceUnstackd,
    slab_to_channels,
    stack_slices,
    unstack_slices,
)


def _volume(channels=1, shape=(5, 4, 6)):
    data = torch.rand(channels, *shape, generator=torch.Generator().manual_seed(0))
    affine = torch.tensor(
        [[-2.0, 0, 0, 10], [0, -2.0, 0, 20], [0, 0, 3.0, -30], [0, 0, 0, 1]], dtype=torch.float64
    )
    return MetaTensor(data, affine=affine)


@pytest.mark.parametrize("padding", ["edge", "zero"])
@pytest.mark.parametrize("context", [0, 1, 2])
def test_channel_c_of_slice_z_is_the_volume_at_z_minus_k_plus_c(context, padding):
    volume = _volume()
    stack = stack_slices(volume, context, padding)
    depth = volume.shape[-1]
    assert stack.shape == (depth, 2 * context + 1, 5, 4)
    for z in range(depth):
        for c in range(2 * context + 1):
            source = z - context + c
            if 0 <= source < depth:
                expected = volume[0, ..., source]
            elif padding == "edge":
                expected = volume[0, ..., min(max(source, 0), depth - 1)]
            else:
                expected = torch.zeros_like(volume[0, ..., 0])
            assert torch.equal(stack[z, c].as_tensor(), torch.as_tensor(expected))


def test_multichannel_stack_is_channel_major():
    volume = _volume(channels=2)
    stack = stack_slices(volume, context=1)
    assert stack.shape == (6, 6, 5, 4)
    assert torch.equal(stack[3, 0 * 3 + 2].as_tensor(), volume[0, ..., 4].as_tensor())
    assert torch.equal(stack[3, 1 * 3 + 0].as_tensor(), volume[1, ..., 2].as_tensor())


@pytest.mark.parametrize("context", [0, 2])
def test_unstack_inverts_stack_exactly_with_geometry(context):
    volume = _volume(channels=2)
    stack = stack_slices(volume, context)
    assert stack.meta["slice_stack"] == {"context": context, "padding": "edge"}
    back = unstack_slices(stack, context=context)
    assert torch.equal(back.as_tensor(), volume.as_tensor())
    assert torch.equal(back.affine, volume.affine)
    assert "slice_stack" not in back.meta


def test_unstack_predictions_list_with_reference_geometry():
    volume = _volume()
    predictions = [torch.full((3, 5, 4), float(z)) for z in range(6)]  # one (C, X, Y) per slice
    back = unstack_slices(predictions, reference=volume)
    assert back.shape == (3, 5, 4, 6)
    assert back[:, :, :, 4].unique().tolist() == [4.0]
    assert torch.equal(back.affine, volume.affine)


def test_slab_from_a_crop_equals_the_stacked_slice_and_moves_affine():
    volume, k, z = _volume(), 2, 3
    slab = volume[..., z - k : z + k + 1]  # MetaTensor slicing keeps affine of slab start
    slab = MetaTensor(slab.as_tensor(), affine=volume.affine.clone())
    slab.affine[2, 3] += 3.0 * (z - k)
    sample = slab_to_channels(slab)
    assert torch.equal(sample.as_tensor(), stack_slices(volume, k)[z].as_tensor())
    centre = slab_to_channels(slab, centre_only=True)
    assert torch.equal(centre.as_tensor(), volume[:, :, :, z].as_tensor())
    world = centre.affine @ torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    assert world[2].item() == pytest.approx(-30 + 3.0 * z)


def test_dictionary_twins_round_trip():
    d = {"image": _volume(), "label": _volume().round()}
    d = SliceStackd("image", context=1)(SliceStackd("label")(d))
    assert d["image"].shape == (6, 3, 5, 4) and d["label"].shape == (6, 1, 5, 4)
    d["pred"] = d["label"].clone()
    out = SliceUnstackd("pred", reference_key="image")(d)
    assert torch.equal(out["pred"].as_tensor(), _volume().round().as_tensor())
    slab = SlabToChannelsd("image")({"image": torch.zeros(1, 4, 4, 5)})
    assert slab["image"].shape == (5, 4, 4)


def test_errors():
    with pytest.raises(ConfigError, match="context"):
        stack_slices(_volume(), context=-1)
    with pytest.raises(ConfigError, match="padding='reflect'.*'edge', 'zero'"):
        stack_slices(_volume(), padding="reflect")
    with pytest.raises(ConfigError, match=r"\(C, X, Y, Z\)"):
        stack_slices(torch.zeros(4, 4, 4))
    with pytest.raises(ConfigError, match="odd depth"):
        slab_to_channels(torch.zeros(1, 4, 4, 2))
    with pytest.raises(ConfigError, match="multiple of 2k\\+1"):
        unstack_slices(torch.zeros(3, 4, 2, 2), context=1)
