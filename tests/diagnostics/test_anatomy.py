"""Tests of benchmarks/anatomy.py: real-anatomy subjects, sites, lesions and datasets from MNI152.

The builder lives in benchmarks/ (not a package), so it is loaded by path. It needs the MNI152
template shipped with nilearn, a dev dependency: without nilearn the module is skipped.
All tests use a 4 mm grid (50 x 59 x 48) to stay fast.
"""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError

if importlib.util.find_spec("nilearn") is None:
    pytest.skip(
        "nilearn (dev dependency, holds the MNI152 template) is not installed: "
        "pip install -e '.[dev]'",
        allow_module_level=True,
    )

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it runs
        spec.loader.exec_module(module)
    return module


anatomy = _load("anatomy")
lesions = _load("anatomy_lesions")
SPACING = 4.0


@pytest.fixture(scope="module")
def template():
    return anatomy.load_template(SPACING)


@pytest.fixture(scope="module")
def subject(template):
    return anatomy.make_subject(template, (0, 0))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_template_grid_matches_the_nilearn_file(template):
    import nibabel as nib

    original = nib.load(str(anatomy.template_files()["t1"]))
    assert original.shape == (197, 233, 189)
    assert template.t1.shape == template.gm.shape == template.wm.shape == (50, 59, 48)
    np.testing.assert_allclose(template.affine, original.affine @ np.diag([4.0, 4.0, 4.0, 1.0]))
    np.testing.assert_allclose(template.affine[:3, 3], original.affine[:3, 3])
    assert template.t1.dtype == template.wm.dtype == np.float32
    assert template.gm.min() >= 0.0 and template.gm.max() <= 1.0 and template.wm.max() > 0.9
    # Voxel n of the 4 mm grid is voxel 4n of the 1 mm file (linear resampling, exact here).
    assert template.t1[10, 20, 30] == pytest.approx(float(original.dataobj[40, 80, 120]))
    assert anatomy.load_template(SPACING) is template  # cached
    with pytest.raises(ConfigError, match="spacing"):
        anatomy.load_template(0.1)


def test_missing_nilearn_says_how_to_install(monkeypatch):
    monkeypatch.setattr(anatomy.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install nilearn"):
        anatomy.template_files()


def test_subjects_are_deterministic_and_distinct(template, subject):
    again = anatomy.make_subject(template, (0, 0))
    for key in ("t1", "gm", "wm", "labels"):
        np.testing.assert_array_equal(getattr(subject, key), getattr(again, key))
    other = anatomy.make_subject(template, (0, 1))
    assert not np.array_equal(subject.labels, other.labels)
    assert np.abs(subject.t1 - other.t1).mean() > 1.0


def test_labels_are_plausible_tissue(template, subject):
    assert set(np.unique(subject.labels).tolist()) == {0, 1, 2}
    assert subject.labels.dtype == np.uint8
    gm, wm = (subject.labels == 1).mean(), (subject.labels == 2).mean()
    assert 0.08 < gm < 0.18 and 0.04 < wm < 0.12  # of the whole field of view
    assert 0.25 < wm / (gm + wm) < 0.5  # WM share of the brain tissue
    # The deformation changes the anatomy but keeps it recognisable.
    template_wm = anatomy.tissue_labels(template.gm, template.wm) == 2
    dice = _dice(subject.labels == 2, template_wm)
    assert 0.7 < dice < 0.99
    # The image follows the labels: WM is brighter than GM on T1.
    assert subject.t1[subject.labels == 2].mean() > 1.1 * subject.t1[subject.labels == 1].mean()


def test_site_b_is_another_scanner_with_the_same_anatomy(template, subject):
    site_b = anatomy.make_subject(template, (0, 0), site="B")
    np.testing.assert_array_equal(site_b.labels, subject.labels)
    np.testing.assert_array_equal(site_b.wm, subject.wm)
    background = (subject.gm + subject.wm) < 1e-3
    ratio = site_b.t1[background].std() / subject.t1[background].std()
    assert ratio > 1.5
    assert not np.allclose(site_b.t1, subject.t1)
    # Thicker slices: neighbouring axial slices are more alike (partial-volume blur).
    diff_a = np.abs(np.diff(subject.t1, axis=2))[~background[:, :, 1:]].mean()
    diff_b = np.abs(np.diff(site_b.t1, axis=2))[~background[:, :, 1:]].mean()
    assert diff_b < 1.5 * diff_a * ratio  # noise grew by `ratio`, structure along z did not
    with pytest.raises(ConfigError, match="site"):
        anatomy.make_subject(template, 0, site="C")


def test_thick_slices_average_pairs():
    volume = np.arange(6.0, dtype=np.float32).reshape(1, 1, 6)
    np.testing.assert_allclose(anatomy.thick_slices(volume).ravel(), [0.5, 1.0, 2.0, 3.0, 4.0, 4.5])


def test_lesions_lie_in_white_matter_and_change_intensity(subject):
    with_lesions = anatomy.add_lesions(subject, np.random.default_rng(3), 3)
    assert len(with_lesions.lesions) == 3
    changed = with_lesions.t1 != subject.t1
    assert changed.any() and (subject.wm[changed] > 0.9).all()
    assert with_lesions.lesion_mask.any() and (subject.labels[with_lesions.lesion_mask] == 2).all()
    np.testing.assert_array_equal(with_lesions.labels, subject.labels)
    for lesion in with_lesions.lesions:
        centre = lesion["centre"]
        step = with_lesions.t1[centre] - subject.t1[centre]
        local_wm = np.median(subject.t1[subject.wm > 0.9])
        assert np.sign(step) == np.sign(lesion["contrast"])
        assert 0.1 * local_wm < abs(step) < 0.6 * local_wm
        assert all(2.0 <= r <= 5.0 for r in lesion["radii_mm"])
    assert not subject.lesion_mask.any()  # the input subject is left alone
    on_slice = anatomy.add_lesions(subject, np.random.default_rng(4), 2, centre_slice=24)
    assert [lesion["centre"][2] for lesion in on_slice.lesions] == [24, 24]
    with pytest.raises(ConfigError, match="lesions"):
        anatomy.add_lesions(subject, np.random.default_rng(0), 1, centre_slice=0)  # no WM


def test_tissue_task_files_and_manifest(tmp_path):
    manifest = anatomy.write_tissue_task(tmp_path / "two", 2, seed=5, spacing=SPACING)
    records = mt.data.load_manifest(manifest)
    assert [r["case_id"] for r in records] == ["sub-000", "sub-001"]
    assert manifest.read_text().splitlines()[0] == "case_id,image,label,site"
    image = mt.io.load(records[0]["image"])
    label = mt.io.load(records[0]["label"], dtype=None)
    template = anatomy.load_template(SPACING)
    assert tuple(image.shape) == tuple(label.shape) == (50, 59, 48)
    np.testing.assert_allclose(np.asarray(image.affine), template.affine, atol=1e-4)
    assert set(np.unique(np.asarray(label)).tolist()) == {0, 1, 2}
    expected = anatomy.make_subject(template, (5, 0))
    np.testing.assert_array_equal(np.asarray(image), expected.t1)
    # Subject i does not depend on the dataset size.
    alone = anatomy.write_tissue_task(tmp_path / "one", 1, seed=5, spacing=SPACING)
    first = mt.data.load_manifest(alone)[0]
    np.testing.assert_array_equal(np.asarray(mt.io.load(first["image"])), np.asarray(image))


def test_lesion_task_is_balanced_and_grouped_by_subject(tmp_path):
    manifest = anatomy.write_lesion_task(tmp_path, 4, seed=1, spacing=SPACING, slab=3)
    records = mt.data.load_manifest(manifest)
    assert sorted(r["label"] for r in records) == [0, 0, 1, 1]
    assert {r["subject"] for r in records} == {"sub-000"}  # 4 cases per subject by default
    assert {r["site"] for r in records} == {"A"}
    template = anatomy.load_template(SPACING)
    subject = anatomy.make_subject(template, (1, 0))
    for record in records:
        slab = mt.io.load(record["image"])
        centre = int(record["slice"])
        assert tuple(slab.shape) == (50, 59, 3)
        expected_origin = template.affine @ [0, 0, centre - 1, 1]
        np.testing.assert_allclose(np.asarray(slab.affine)[:3, 3], expected_origin[:3], atol=1e-4)
        clean = subject.t1[:, :, centre - 1 : centre + 2]
        changed = np.abs(np.asarray(slab) - clean) > 1e-3
        if record["label"] == 1:
            assert changed[:, :, 1].any()  # a lesion centred on the central slice
        else:
            assert not changed.any()


def test_cli_writes_a_dataset(tmp_path, capsys):
    assert anatomy.main([str(tmp_path), "--task", "lesion", "--n", "2", "--spacing", "4"]) == 0
    out = capsys.readouterr().out
    assert "manifest.csv" in out and "per case" in out
    assert len(mt.data.load_manifest(tmp_path / "manifest.csv")) == 2


@pytest.mark.parametrize("module", [anatomy, lesions], ids=["anatomy", "anatomy_lesions"])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_lesion_task_crop_is_a_window_of_the_subject(tmp_path):
    """A cropped negative case is exactly the subject's voxels where its affine puts them."""
    manifest = anatomy.write_lesion_task(tmp_path, 4, spacing=4.0, slab=3, crop=16)
    records = mt.data.load_manifest(manifest)
    assert sorted(r["label"] for r in records) == [0, 0, 1, 1]
    subject = anatomy.make_subject(anatomy.load_template(4.0), anatomy._subject_seed(0, 0))
    for record in records:
        image = mt.io.load(record["image"])
        assert tuple(image.shape) == (16, 16, 3)
        shift = np.linalg.inv(subject.affine) @ np.asarray(image.meta["original_affine"])
        x0, y0, z0 = (int(round(v)) for v in shift[:3, 3])
        window = subject.t1[x0 : x0 + 16, y0 : y0 + 16, z0 : z0 + 3]
        same = np.allclose(window, image.numpy(), atol=1e-3)
        assert same == (record["label"] == 0)  # a positive holds a lesion the subject lacks
    with pytest.raises(ConfigError, match="crop"):
        anatomy.write_lesion_task(tmp_path / "bad", 2, spacing=4.0, slab=3, crop=4)
