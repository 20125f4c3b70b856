"""Tiny generated DICOM/NIfTI data for the tests (no downloads; everything in temp folders)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import torch
from torch import nn

import medtransfer as mt

PYDICOM_TEST_FILES = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from Euler angles (radians) about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_affine(
    spacing=(0.7, 0.8, 2.5), angles=(0.0, 0.0, 0.0), origin=(10.0, -20.0, 30.0), flips=(-1, -1, 1)
) -> np.ndarray:
    """A RAS+ affine with the given voxel size, rotation and origin (flips like DICOM's LPS)."""
    affine = np.eye(4)
    affine[:3, :3] = rotation(*angles) @ np.diag(np.asarray(flips) * np.asarray(spacing))
    affine[:3, 3] = origin
    return affine


def ct_volume(shape=(16, 12, 6), seed: int = 0) -> np.ndarray:
    """Integer-valued HU volume where every voxel differs from its neighbours (order shows)."""
    rng = np.random.default_rng(seed)
    volume = rng.integers(-1000, 1500, size=shape).astype(np.float32)
    volume[..., :] += np.arange(shape[2], dtype=np.float32) * 3  # slice index leaks into values
    return volume


def write_series(folder: Path, volume=None, affine=None, **kwargs) -> list[Path]:
    """Write ``volume`` (default :func:`ct_volume`) as a DICOM series; returns files in slice order."""
    volume = ct_volume() if volume is None else volume
    affine = make_affine() if affine is None else affine
    return mt.io.write_dicom_series(volume, folder, affine=affine, **kwargs)


def edit_dicom(path: Path, **attributes) -> None:
    """Set DICOM attributes (keyword=value) of one file in place."""
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def world(affine: np.ndarray, ijk) -> np.ndarray:
    """World coordinates of voxel indices through ``affine``."""
    return (np.asarray(affine) @ np.append(np.asarray(ijk, float), 1.0))[:3]


def enhanced_ct(files: Sequence[Path]):
    """One legacy-converted enhanced CT file (highdicom) whose frames are ``files``, in that order.

    highdicom is optional (the ``seg`` extra): callers ``pytest.importorskip("highdicom")`` first.
    """
    import highdicom as hd

    return hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=[pydicom.dcmread(f) for f in files],
        series_instance_uid=hd.UID(),
        series_number=9,
        sop_instance_uid=hd.UID(),
        instance_number=1,
    )


def file_digests(folder: Path, keep: Callable[[Path], bool] = lambda path: True) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` that ``keep`` accepts, by relative POSIX path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and keep(p)
    }


def read_files(folder: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The bytes of those of ``names`` that exist under ``folder`` (a run's history, to compare)."""
    return {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}


# A CLI run small enough for 2 busy CPU cores: 8 phantoms, 2 steps, random init.
TINY_RUN_CONFIG = """
data:
  manifest: data/manifest.csv
  task: segmentation
  class_names: [liver, lesion, spleen, kidney]
  split: {fractions: [0.5, 0.25, 0.25]}
preprocessing:
  spatial_dims: 2
  roi_size: [32, 32]
  num_samples: 2
model:
  encoder: resnet18
  weights: null
  decoder_channels: [32, 16, 16, 8, 8]
training:
  epochs: null
  steps: 2
  batch_size: 4
  device: cpu
evaluation:
  n_resamples: 20
output:
  run_dir: runs/tiny
"""


def write_tiny_project(folder: Path) -> Path:
    """8 phantoms (with manifest.csv) in ``folder/data`` and :data:`TINY_RUN_CONFIG` as
    ``folder/tiny.yaml``, whose run folder is ``folder/runs/tiny``; returns the config's path."""
    mt.data.synthetic.phantoms(8, shape=(32, 32, 6), seed=1, output_dir=folder / "data")
    config = folder / "tiny.yaml"
    config.write_text(TINY_RUN_CONFIG)
    return config


class Oracle(nn.Module):
    """Two-class 'segmenter' without weights: class 1 where the windowed centre channel > 0.5.

    Through a CT preset (window 40 HU -> 0.5) it segments everything denser than 40 HU, so the
    expected masks of a test follow from its image alone. ``sigmoid=True``: one logit channel.
    """

    def __init__(self, centre: int = 0, sigmoid: bool = False) -> None:
        super().__init__()
        self.centre, self.sigmoid = centre, sigmoid
        self.scale = nn.Parameter(torch.tensor(50.0))  # so .to(device) has something to move

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x[:, self.centre : self.centre + 1] - 0.5) * self.scale
        return logit if self.sigmoid else torch.cat([-logit, logit], dim=1)
