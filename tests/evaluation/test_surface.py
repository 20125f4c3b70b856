"""HD95, ASSD and surface Dice: MONAI agreement, analytic cases, spacing and empty masks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.metrics import (
    HausdorffDistanceMetric,
    compute_average_surface_distance,
    compute_surface_dice,
)
from scipy import ndimage

from medtransfer.errors import ConfigError
from medtransfer.evaluation import (
    average_surface_distance,
    hausdorff95,
    surface_dice,
    surface_metrics,
)
from tests.evaluation.masks import ball, one_hot, random_label_maps

SPACINGS_3D = [(1.0, 1.0, 1.0), (0.7, 0.7, 2.5), (2.0, 1.0, 0.5)]


def _both_present(pred: np.ndarray, ref: np.ndarray, num_classes: int) -> np.ndarray:
    """(B, C-1) True where the class is in both masks."""
    axes = tuple(range(2, pred.ndim))
    present = [one_hot(x, num_classes)[:, 1:].any(axis=axes) for x in (pred, ref)]
    return present[0] & present[1]


def _pair_3d(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return random_label_maps(
        np.random.default_rng(seed), batch=3, shape=(16, 14, 12), num_classes=3
    )


def test_hd95_agrees_with_monai_with_per_case_anisotropic_spacing():
    pred, ref = _pair_3d(0)
    p, r = torch.from_numpy(one_hot(pred, 3)), torch.from_numpy(one_hot(ref, 3))
    metric = HausdorffDistanceMetric(percentile=95, include_background=False, reduction="none")
    expected = metric(p, r, spacing=[list(s) for s in SPACINGS_3D]).numpy()
    got = hausdorff95(pred, ref, spacing=np.array(SPACINGS_3D))
    both = _both_present(pred, ref, 3)
    assert both.sum() >= 5
    np.testing.assert_allclose(got[both], expected[both], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spacing", [None, (0.5, 3.0)])
def test_assd_and_nsd_agree_with_monai_2d(spacing):
    pred, ref = random_label_maps(np.random.default_rng(3), batch=4, shape=(32, 28), num_classes=3)
    p, r = torch.from_numpy(one_hot(pred, 3)), torch.from_numpy(one_hot(ref, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assd = compute_average_surface_distance(p, r, symmetric=True, spacing=spacing)
        nsd = compute_surface_dice(p, r, class_thresholds=[1.5, 3.0], spacing=spacing)
    out = surface_metrics(pred, ref, spacing=spacing, tolerance_mm=[1.5, 3.0])
    both = _both_present(pred, ref, 3)
    assert both.sum() >= 6
    np.testing.assert_allclose(out["assd"][both], assd.numpy()[both], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["nsd"][both], nsd.numpy()[both], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["hd95"], hausdorff95(pred, ref, spacing=spacing))


def _edt_reference(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple[float, float]:
    """HD95 and ASSD from scipy distance transforms of the surfaces (independent of MONAI)."""

    def edges(m):
        return m ^ ndimage.binary_erosion(m)

    ep, er = edges(pred), edges(ref)
    d_pr = ndimage.distance_transform_edt(~er, sampling=spacing)[ep]
    d_rp = ndimage.distance_transform_edt(~ep, sampling=spacing)[er]
    hd95 = max(np.quantile(d_pr, 0.95), np.quantile(d_rp, 0.95))
    return hd95, np.concatenate([d_pr, d_rp]).mean()


@pytest.mark.parametrize("spacing", SPACINGS_3D)
def test_spheres_match_a_scipy_distance_transform_reference(spacing):
    ref = ball((20, 20, 16), (10, 10, 8), 5)
    pred = ball((20, 20, 16), (11, 9, 8), 4)
    hd, asd = _edt_reference(pred, ref, spacing)
    out = surface_metrics(pred[None, None].astype(np.int64), ref[None, None], spacing=spacing)
    assert out["hd95"][0, 0] == pytest.approx(hd, rel=1e-6)
    assert out["assd"][0, 0] == pytest.approx(asd, rel=1e-6)


def test_disc_shifted_by_three_voxels_at_two_mm_is_six_mm():
    ref = ball((40, 40), (20, 20), 8)
    pred = np.roll(ref, 3, axis=1)
    out = surface_metrics(
        pred[None, None], ref[None, None].astype(np.int64), spacing=2.0, tolerance_mm=6.0
    )
    assert out["hd95"][0, 0] == pytest.approx(6.0)
    assert 0 < out["assd"][0, 0] <= 6.0
    assert out["nsd"][0, 0] == pytest.approx(1.0)
    assert surface_dice(pred[None, None], ref[None, None], spacing=2.0, tolerance_mm=1.0)[0, 0] < 1
    # only the shifted axis is scaled: spacing (1, 2) keeps the 3-voxel shift at 1 mm x 3
    assert hausdorff95(pred[None, None], ref[None, None], spacing=(2.0, 1.0))[0, 0] == 3.0


def test_identical_masks_have_zero_distance_and_full_surface_dice():
    ref = ball((12, 12, 12), (6, 6, 6), 4)[None, None]
    out = surface_metrics(ref, ref, spacing=(1, 1, 3), tolerance_mm=0.0)
    assert {k: v.tolist() for k, v in out.items()} == {
        "hd95": [[0.0]],
        "assd": [[0.0]],
        "nsd": [[1.0]],
    }


def _empty_pair(pred_on: bool, ref_on: bool) -> tuple[np.ndarray, np.ndarray]:
    pred = np.zeros((1, 1, 10, 6), dtype=np.int64)
    ref = np.zeros_like(pred)
    if pred_on:
        pred[0, 0, 2:5, 2:5] = 1
    if ref_on:
        ref[0, 0, 3:6, 2:5] = 1
    return pred, ref


@pytest.mark.parametrize(("pred_on", "ref_on"), [(False, True), (True, False)])
def test_one_empty_mask_gives_the_configured_distance_and_zero_nsd(pred_on, ref_on):
    pred, ref = _empty_pair(pred_on, ref_on)
    diagonal = math.hypot(9 * 2.0, 5 * 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MONAI's empty-mask warnings must not reach the user
        out = surface_metrics(pred, ref, spacing=(2.0, 1.0), tolerance_mm=1.0, num_classes=2)
    assert out["hd95"][0, 0] == pytest.approx(diagonal)
    assert out["assd"][0, 0] == pytest.approx(diagonal)
    assert out["nsd"][0, 0] == 0.0
    assert hausdorff95(pred, ref, empty_distance=math.inf)[0, 0] == math.inf
    assert average_surface_distance(pred, ref, empty_distance=100.0)[0, 0] == 100.0


def test_both_empty_is_nan_for_every_surface_metric():
    pred, ref = _empty_pair(False, False)
    out = surface_metrics(pred, ref, tolerance_mm=1.0, num_classes=2)
    assert all(np.isnan(v[0, 0]) for v in out.values())


def test_spacing_is_read_from_metatensor_meta():
    ref = ball((40, 40), (20, 20), 8)[None, None].astype(np.float32)
    pred = np.roll(ref, 3, axis=3)
    meta_ref = MetaTensor(torch.from_numpy(ref), meta={"spacing": (2.0, 2.0)})
    assert hausdorff95(pred, meta_ref)[0, 0] == pytest.approx(6.0)
    # spacing collated by a DataLoader: one tensor of shape (B,) per axis
    two = MetaTensor(torch.from_numpy(np.concatenate([ref, ref])))
    two.meta["spacing"] = [torch.tensor([2.0, 3.0]), torch.tensor([2.0, 3.0])]
    out = hausdorff95(np.concatenate([pred, pred]), two)
    np.testing.assert_allclose(out[:, 0], [6.0, 9.0])
    assert hausdorff95(pred, meta_ref, spacing=1.0)[0, 0] == pytest.approx(3.0)  # explicit wins


def test_spacing_falls_back_to_the_affine_of_a_metatensor():
    ref = np.zeros((1, 1, 16, 16), dtype=np.float32)
    ref[0, 0, 4:10, 4:10] = 1
    pred = np.roll(ref, 3, axis=3)
    affine = torch.diag(torch.tensor([-3.0, 2.0, 1.0, 1.0]))  # LPS-like flip: the norm counts
    assert hausdorff95(MetaTensor(torch.from_numpy(pred), affine=affine), ref)[0, 0] == 6.0
    both = MetaTensor(torch.from_numpy(ref), affine=affine, meta={"spacing": (1.0, 1.0)})
    assert hausdorff95(pred, both)[0, 0] == 3.0  # meta["spacing"] comes first
    plain = MetaTensor(torch.from_numpy(ref))  # identity affine: no information, 1 voxel
    assert hausdorff95(pred, plain)[0, 0] == 3.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"empty_distance": "max"}, "empty_distance"),
        ({"empty_distance": -1.0}, "empty_distance"),
        ({"tolerance_mm": [1.0, 2.0]}, "tolerance_mm"),
        ({"tolerance_mm": -1.0}, "tolerance_mm"),
    ],
)
def test_bad_surface_arguments(kwargs, match):
    pred, ref = _empty_pair(True, True)
    with pytest.raises(ConfigError, match=match):
        surface_metrics(pred, ref, **kwargs)


def test_surface_dice_requires_a_tolerance():
    pred, ref = _empty_pair(True, True)
    with pytest.raises(ConfigError, match="tolerance_mm"):
        surface_dice(pred, ref, tolerance_mm=None)
