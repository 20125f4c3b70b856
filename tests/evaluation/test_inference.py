"""predict: geometry round trip (orientation, crop, resampling, padding), 2D/2.5D/3D, TTA, errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, MapTransform

import medtransfer as mt
from medtransfer.errors import ConfigError, MedTransferError, ModelError
from medtransfer.evaluation.inference.predict import predict
from medtransfer.evaluation.inference.tta import all_flips, tta_flips
from tests.fixtures import Oracle

THRESHOLD_HU = 40.0  # the oracle's cut-off: the abdomen window maps 40 HU to 0.5


def _source(shape=(20, 16, 6)) -> MetaTensor:
    """A phantom re-expressed in a non-RAS, anisotropic orientation (axes permuted, flipped)."""
    image = mt.data.synthetic.phantoms(1, shape=shape, spacing=(16.0, 20.0, 26.0))[0]["image"]
    array = image.as_tensor().numpy()[::-1].transpose(1, 0, 2).copy()  # (j, -i, k)
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, shape[0] - 1
    swap = np.eye(4)[[1, 0, 2, 3]]
    affine = image.affine.numpy() @ flip @ swap
    return mt.io.make_image(array.astype(np.float32), affine, source="memory")


def _expected(source: MetaTensor) -> np.ndarray:
    return (source.as_tensor().numpy() > THRESHOLD_HU).astype(np.uint8)


def test_source_fixture_is_not_ras():
    assert "".join(nib.orientations.aff2axcodes(_source().affine.numpy())) == "PRS"


@pytest.mark.parametrize("spatial_dims", [3, 2])
def test_without_resampling_the_round_trip_is_exact(spatial_dims):
    source = _source()
    preset = mt.transforms.presets.ct(spatial_dims=spatial_dims, roi_size=(32,) * spatial_dims)
    mask = predict(Oracle(), source, preset, device="cpu")
    assert tuple(mask.shape) == tuple(source.shape) and mask.dtype == torch.uint8
    assert np.array_equal(mask.affine.numpy(), source.affine.numpy())
    assert np.array_equal(mask.numpy(), _expected(source))


def test_2_5d_uses_the_centre_slice_of_each_stack():
    source = _source()
    preset = mt.transforms.presets.ct(spatial_dims=2, context=1, roi_size=(32, 32))
    mask = predict(Oracle(centre=1), source, preset, device="cpu", batch_size=4)
    assert np.array_equal(mask.numpy(), _expected(source))


def test_resampled_reoriented_nifti_saves_with_the_source_affine(tmp_path):
    source = _source()
    path = mt.io.save(source, tmp_path / "ct.nii.gz")
    preset = mt.transforms.presets.ct(spacing=(10.0, 8.0, 13.0), roi_size=(16, 16, 16))
    mask = predict(Oracle(), path, preset, device="cpu", overlap=0.5)
    saved = mt.io.load(mt.io.save(mask, tmp_path / "mask.nii.gz"), dtype=None)
    reference = mt.io.load(path)
    assert tuple(saved.shape) == tuple(reference.shape)
    assert np.array_equal(saved.affine.numpy(), reference.affine.numpy())
    dice = mt.evaluation.dice(saved.numpy()[None, None], _expected(reference)[None, None])
    # interpolated twice (to the 10 x 8 x 13 mm grid and back) on a tiny coarse volume: the
    # edges of thin structures move by a voxel; without resampling the result is exact (above)
    assert dice[0, -1] > 0.9


def test_probabilities_sum_to_one_and_match_the_labels():
    source = _source()
    preset = mt.transforms.presets.ct(spacing=(12.0, 12.0, 12.0), roi_size=(16, 16, 16))
    probs = predict(Oracle(), source, preset, device="cpu", output="probabilities")
    labels = predict(Oracle(), source, preset, device="cpu")
    assert tuple(probs.shape) == (2, *source.shape) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(0), torch.ones(()), atol=1e-5)
    assert torch.equal(probs.argmax(0).to(torch.uint8), labels.as_tensor())


def test_resample_mode_agrees_with_inversion():
    source = _source()
    preset = mt.transforms.presets.ct(spacing=(12.0, 12.0, 12.0), roi_size=(16, 16, 16))
    inverted = predict(Oracle(), source, preset, device="cpu", restore="invert")
    resampled = predict(Oracle(), source, preset, device="cpu", restore="resample")
    assert np.array_equal(resampled.affine.numpy(), source.affine.numpy())
    assert (inverted.numpy() == resampled.numpy()).mean() > 0.98


class CropOneVoxel(MapTransform):
    """Crops the first voxel along x, updating the affine but recording no operation."""

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            shift = torch.eye(4, dtype=torch.float64)
            shift[0, 3] = 1.0
            out = MetaTensor(
                image.as_tensor()[:, 1:].clone(),
                meta=dict(image.meta),
                applied_operations=list(image.applied_operations),
            )
            out.affine = image.affine @ shift
            d[key] = out
        return d


def test_non_invertible_pipeline_falls_back_to_resampling():
    source = _source()
    _, evaluate = mt.transforms.presets.ct(roi_size=(16, 16, 16))
    steps = list(evaluate.transforms)
    custom = Compose([*steps[:2], CropOneVoxel("image", allow_missing_keys=True), *steps[2:]])
    mask = predict(Oracle(), source, custom, device="cpu")
    assert np.array_equal(mask.affine.numpy(), source.affine.numpy())
    expected = _expected(source)
    expected[-1] = 0  # RAS x voxel 0 is source i = last (flipped axis): cropped away
    assert np.array_equal(mask.numpy(), expected)
    with pytest.raises(ConfigError, match="cannot be inverted"):
        predict(Oracle(), source, custom, device="cpu", restore="invert")


def test_tta_and_sigmoid_models():
    source = _source()
    preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
    mask = predict(Oracle(sigmoid=True), source, preset, device="cpu", tta=True)
    assert set(np.unique(mask.numpy())) <= {0, 1}
    assert np.array_equal(mask.numpy(), _expected(source))  # the oracle is flip-equivariant
    assert tta_flips(True, 2) == [(), (0,), (1,)] and len(all_flips(3)) == 8
    with pytest.raises(ConfigError, match="axes"):
        tta_flips([(3,)], 2)


def test_real_segmenter_3d_and_mri_and_xray_presets():
    source = _source((16, 12, 8))
    seg3d = mt.models.create_segmenter("resnet18", 3, weights=None, spatial_dims=3)
    mri = mt.transforms.presets.mri(roi_size=(16, 16, 16))
    mask = predict(seg3d, source - source.min(), mri, device="auto")
    assert tuple(mask.shape) == tuple(source.shape) and int(mask.max()) <= 2
    assert seg3d.training  # training flag restored

    xray = mt.transforms.presets.xray("segmentation", roi_size=(32, 32))
    seg2d = mt.models.create_segmenter("resnet18", 2, weights=None)
    film = mt.io.make_image(
        np.random.default_rng(0).random((40, 30), np.float32), np.eye(4), source="m"
    )
    probs = predict(seg2d, film, xray, device="cpu", output="probabilities")
    assert tuple(probs.shape) == (2, 40, 30)


def test_errors_name_the_problem():
    source = _source()
    preset3d = mt.transforms.presets.ct(roi_size=(16, 16, 16))
    seg2d = mt.models.create_segmenter("resnet18", 2, weights=None)
    with pytest.raises(ModelError, match="spatial_dims=2"):
        predict(seg2d, source, preset3d, device="cpu")
    preset25 = mt.transforms.presets.ct(spatial_dims=2, context=1, roi_size=(32, 32))
    with pytest.raises(ModelError, match="3"):
        predict(seg2d, source, preset25, device="cpu")
    for kwargs, text in [
        ({"output": "mask"}, "output"),
        ({"overlap": 1.0}, "overlap"),
        ({"restore": "nearest"}, "restore"),
        ({"roi_size": (8, 8)}, "roi_size"),
        ({"device": "gpu"}, "device"),
    ]:
        with pytest.raises(ConfigError, match=text):
            predict(Oracle(), source, preset3d, **kwargs)
    classifier = mt.models.create_classifier("resnet18", 2, weights=None, spatial_dims=3)
    with pytest.raises(ModelError, match="segmentation model"):
        predict(classifier, source, preset3d, device="cpu")
    with pytest.raises(ConfigError, match="preset"):
        predict(Oracle(), source, "ct")
    with pytest.raises(MedTransferError):
        predict(Oracle(), "/no/such/image.nii.gz", preset3d, device="cpu")


def test_dicom_series_to_dicom_seg_end_to_end(tmp_path):
    hd = pytest.importorskip("highdicom")
    from medtransfer.io.dicom_seg import save_dicom_seg

    source = _source()
    files = mt.io.write_dicom_series(
        source, tmp_path / "ct", file_names=[f"{9 - k}.dcm" for k in range(6)]
    )
    preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
    mask = predict(Oracle(), tmp_path / "ct", preset, device="cpu")
    loaded = mt.io.load(tmp_path / "ct")
    assert np.array_equal(mask.affine.numpy(), loaded.affine.numpy())
    assert np.array_equal(mask.numpy(), _expected(loaded))
    seg = hd.seg.segread(save_dicom_seg(mask, tmp_path / "ct", tmp_path / "seg.dcm", {1: "body"}))
    assert np.allclose(loaded.affine.numpy(), source.affine.numpy(), atol=1e-4)  # same k order
    uids = [pydicom.dcmread(f).SOPInstanceUID for f in files]
    frames = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    assert np.array_equal(frames, mask.numpy().transpose(2, 1, 0))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_a_2d_nifti_is_predicted_on_its_own_2d_grid(tmp_path, spatial_dims):
    # one slice of the non-RAS phantom, saved as a 2D NIfTI: the docs accept 2D inputs
    source2d = _source()[:, :, 3]
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(source2d.numpy(), _source().affine.numpy()), path)
    reference = mt.io.load(path)
    assert reference.ndim == 2
    preset = mt.transforms.presets.ct(spatial_dims=spatial_dims, roi_size=(32,) * spatial_dims)
    mask = predict(Oracle(), path, preset, device="cpu")
    assert tuple(mask.shape) == tuple(reference.shape)
    assert np.array_equal(mask.affine.numpy(), reference.affine.numpy())
    assert np.array_equal(mask.numpy(), _expected(reference))
    saved = mt.io.load(mt.io.save(mask, tmp_path / "mask.nii.gz"), dtype=None)
    assert tuple(saved.shape) == tuple(reference.shape)


def test_a_single_dicom_file_is_predicted_on_its_grid():
    path = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    reference = mt.io.load(path)
    preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(64, 64))
    mask = predict(Oracle(), path, preset, device="cpu")
    assert tuple(mask.shape) == (128, 128)
    assert np.array_equal(mask.affine.numpy(), reference.affine.numpy())
    assert np.array_equal(mask.numpy(), _expected(reference))
