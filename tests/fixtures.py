"""Tiny generated DICOM/NIfTI data for the tests (no downloads; everything in temp folders)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom

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
