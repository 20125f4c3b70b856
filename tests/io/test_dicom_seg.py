"""save_dicom_seg: frames mapped to source instances by position, read back with highdicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError, SeriesError
from medtransfer.io.dicom_seg import save_dicom_seg, segment_codes

hd = pytest.importorskip("highdicom")

# Oblique-ish axes (i -> posterior, j -> right), slices going inferior: the loaded order is
# neither the writing order, nor the file-name order, nor the InstanceNumber order.
AFFINE = np.array(
    [[0.0, -0.8, 0.0, 10.0], [-0.7, 0.0, 0.0, 20.0], [0.0, 0.0, 2.5, -30.0], [0.0, 0.0, 0.0, 1.0]]
)
SHAPE = (12, 10, 5)


@pytest.fixture()
def series(tmp_path):
    volume = np.random.default_rng(0).normal(0, 50, SHAPE).astype(np.float32)
    folder = tmp_path / "ct"
    mt.io.write_dicom_series(
        volume,
        folder,
        affine=AFFINE,
        instance_numbers=[3, 1, 5, 2, 4],
        file_names=[f"{n}.dcm" for n in "cabed"],
    )
    return folder


def _mask(loaded):
    mask = np.zeros(tuple(loaded.shape), np.uint8)
    mask[2:6, 3:7, 1:4] = 1
    mask[7:9, 1:3, 2] = 2
    mask[0, 0, 0] = 1  # a corner voxel in the first loaded slice: catches flipped axes/slices
    return mask


def _instances_by_loaded_slice(folder, loaded):
    """SOP instance UID of each loaded slice k, found from the loaded affine (not from our code)."""
    by_z = {}
    for path in folder.iterdir():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        lps = np.array(ds.ImagePositionPatient, float)
        ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
        k = (np.linalg.inv(loaded.affine.numpy()) @ ras)[2]
        by_z[int(round(k))] = ds.SOPInstanceUID
    return [by_z[k] for k in range(loaded.shape[2])]


def test_read_back_slice_by_slice(series, tmp_path):
    loaded = mt.io.load(series)
    assert loaded.affine[2, 2] < 0  # loaded order is the reverse of the writing order
    mask = _mask(loaded)
    image = mt.io.make_image(mask, loaded.affine.numpy(), source="mask")
    out = save_dicom_seg(image, series, tmp_path / "seg.dcm", labels={1: "liver", 2: "lesion"})

    seg = hd.seg.segread(out)
    uids = _instances_by_loaded_slice(series, loaded)
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=True
    )
    for k in range(mask.shape[2]):
        assert np.array_equal(frames[k], mask[:, :, k].T), f"slice {k}"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == loaded.meta["series_uid"]
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "lesion"]
    assert seg.SegmentSequence[1].SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "medtransfer" and algorithm.AlgorithmVersion == mt.__version__
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert seg.StudyInstanceUID == pydicom.dcmread(next(series.iterdir())).StudyInstanceUID
    assert not list(tmp_path.glob(".seg.dcm.*"))  # atomic write left no temporary file


def test_thresholded_series_round_trips(series, tmp_path):
    loaded = mt.io.load(series)
    mask = mt.io.make_image(
        (loaded.numpy() > 0).astype(np.uint8), loaded.affine.numpy(), source="m"
    )
    out = save_dicom_seg(mask, series, tmp_path / "seg.dcm", labels={1: "Liver_Tumour"})
    seg = hd.seg.segread(out)
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=_instances_by_loaded_slice(series, loaded), combine_segments=True
    )
    assert np.array_equal(frames, mask.numpy().transpose(2, 1, 0))


def test_default_labels_and_empty_segment(series, tmp_path):
    mask = _mask(mt.io.load(series))
    out = save_dicom_seg(mask, series, tmp_path / "a.dcm")
    assert [s.SegmentLabel for s in hd.seg.segread(out).SegmentSequence] == [
        "Segment 1",
        "Segment 2",
    ]
    mask[mask == 2] = 0  # a named class that the model did not find
    out = save_dicom_seg(mask, series, tmp_path / "b.dcm", labels={1: "liver", 2: "lesion"})
    assert len(hd.seg.segread(out).SegmentSequence) == 2


def test_errors(series, tmp_path):
    loaded = mt.io.load(series)
    mask = _mask(loaded)
    with pytest.raises(SeriesError, match="shape"):
        save_dicom_seg(mask[:, :, :4], series, tmp_path / "x.dcm", labels={1: "a", 2: "b"})
    with pytest.raises(SeriesError, match="shape"):
        save_dicom_seg(mask.transpose(1, 0, 2), series, tmp_path / "x.dcm", {1: "a", 2: "b"})
    shifted = loaded.affine.numpy().copy()
    shifted[:3, 3] += 5.0
    with pytest.raises(SeriesError, match="affine"):
        save_dicom_seg(mt.io.make_image(mask, shifted, source="m"), series, tmp_path / "x.dcm")
    with pytest.raises(ConfigError, match=r"\[2\]"):
        save_dicom_seg(mask, series, tmp_path / "x.dcm", labels={1: "liver"})
    with pytest.raises(ConfigError, match="non-integer"):
        save_dicom_seg(mask * 0.5, series, tmp_path / "x.dcm")
    with pytest.raises(ConfigError, match="background"):
        save_dicom_seg(mask, series, tmp_path / "x.dcm", labels={0: "bg", 1: "a", 2: "b"})
    with pytest.raises(mt.errors.InputPathError):
        save_dicom_seg(mask, tmp_path / "missing", tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_segment_codes_lookup():
    assert segment_codes("Left kidney")[1].value == "64033007"
    assert segment_codes("liver")[0].meaning == "Anatomical Structure"
    assert segment_codes("something else")[1].meaning == "Tissue"
