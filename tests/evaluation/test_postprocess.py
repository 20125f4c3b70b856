"""Post-processing: exact outputs on constructed masks, anisotropic spacing, types preserved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.evaluation.inference.postprocess import (
    fill_holes,
    keep_largest_component,
    postprocess,
    remove_small_islands,
)


def _two_class_mask() -> np.ndarray:
    mask = np.zeros((10, 10, 4), np.uint8)
    mask[1:6, 1:6, :] = 1  # liver: 5 x 5 x 4 = 100 voxels
    mask[8:10, 8:10, 0] = 1  # a 4-voxel liver island
    mask[2:4, 2:4, 1:3] = 2  # lesion inside the liver: 8 voxels
    mask[7, 1, 3] = 2  # a 1-voxel lesion island
    return mask


def test_keep_largest_component_per_class():
    mask = _two_class_mask()
    out = keep_largest_component(mask)
    expected = mask.copy()
    expected[8:10, 8:10, 0] = 0
    expected[7, 1, 3] = 0
    assert np.array_equal(out, expected) and out.dtype == np.uint8
    only_liver = keep_largest_component(mask, labels=[1])
    assert only_liver[7, 1, 3] == 2 and only_liver[8, 8, 0] == 0


def test_connectivity_decides_what_touches():
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = mask[1, 1] = mask[3, 3] = 1  # (0,0)-(1,1) touch by a corner only
    assert keep_largest_component(mask).sum() == 2
    assert keep_largest_component(mask, connectivity=1).sum() == 1


def test_remove_small_islands_uses_anisotropic_spacing():
    mask = np.zeros((12, 3, 3), np.uint8)
    mask[0:2, 0, 0] = 1  # 2 voxels
    mask[4:8, 0, 0] = 1  # 4 voxels
    mask[10, 0, 0] = 1  # 1 voxel
    # voxel = 0.5 x 1 x 3 mm = 1.5 mm^3: components of 3, 6 and 1.5 mm^3
    out = remove_small_islands(mask, 3.0, spacing=(0.5, 1.0, 3.0))
    assert out[:, 0, 0].tolist() == [1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    image = mt.io.make_image(mask, np.diag([0.5, 1.0, 3.0, 1.0]), source="m")
    from_affine = remove_small_islands(image, 3.1)  # the 3 mm^3 component now goes too
    assert from_affine[:, 0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert isinstance(from_affine, type(image)) and torch.equal(from_affine.affine, image.affine)
    with pytest.raises(ConfigError, match="spacing"):
        remove_small_islands(mask, 3.0)


def test_fill_holes_never_overwrites_another_class():
    mask = np.zeros((7, 7), np.uint8)
    mask[1:6, 1:6] = 1
    mask[2, 2] = 0  # a hole
    mask[4, 4] = 2  # a lesion inside: not a hole of the background
    out = fill_holes(mask)
    expected = mask.copy()
    expected[2, 2] = 1
    assert np.array_equal(out, expected)


def test_fill_holes_per_slice_closes_tubes():
    tube = np.zeros((5, 5, 3), np.uint8)
    tube[1:4, 1:4, :] = 1
    tube[2, 2, :] = 0  # open at both ends: not a 3D hole
    assert fill_holes(tube)[2, 2].tolist() == [0, 0, 0]
    assert fill_holes(tube, slice_axis=2)[2, 2].tolist() == [1, 1, 1]


def test_postprocess_combines_steps_and_keeps_types():
    mask = _two_class_mask()
    mask[4, 4, 1] = 0  # a hole inside the liver
    tensor = torch.as_tensor(mask)
    out = postprocess(tensor, largest_component=True, fill_holes=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    expected = _two_class_mask()
    expected[8:10, 8:10, 0] = 0
    expected[7, 1, 3] = 0
    assert np.array_equal(out.numpy(), expected)
    islands_only = postprocess(mask, largest_component=False, min_island_mm3=5, spacing=1.0)
    assert islands_only[8, 8, 0] == 0 and islands_only[7, 1, 3] == 0 and islands_only[4, 4, 1] == 0
    untouched = postprocess(mask, largest_component=False)
    assert np.array_equal(untouched, mask)


def test_bad_inputs():
    with pytest.raises(ConfigError, match="probabilities"):
        keep_largest_component(np.full((3, 3), 0.4))
    with pytest.raises(ConfigError, match="background"):
        fill_holes(np.zeros((3, 3), np.uint8), labels=[0])
    with pytest.raises(ConfigError, match="min_volume"):
        remove_small_islands(np.zeros((3, 3), np.uint8), -1, spacing=1.0)
