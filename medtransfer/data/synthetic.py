"""Synthetic CT phantoms: seeded, fast, learnable abdominal CT volumes with masks and tumour labels.

Each case is an axial slab of an upper abdomen in portal-venous phase: a body ellipse with
subcutaneous fat, an abdominal muscle wall, bowel/mesenteric fat texture, spine, aorta, and the
labelled organs liver, spleen and kidneys, plus 0..3 hypodense lesions inside the liver. Anatomy,
tissue HU, lesion presence/size/contrast, table position and noise vary from case to case; the same
``seed`` always gives the same cases, and the first cases do not change when ``n`` grows.

Label map values (:data:`LABELS`): 0 background, 1 liver, 2 lesion, 3 spleen, 4 kidney.
Mean tissue HU and their per-patient spread: :data:`HU` (see ``docs/data.md`` for the table).

Geometry: arrays are indexed (i, j, k) with the affine ``diag(-sx, -sy, sz)`` (RAS+, nibabel
convention), centred on the origin: i runs towards the patient's left, j posterior, k superior,
as in a CT exported from a scanner. The body is a real-sized abdomen (about 280 x 200 mm, 160 mm
of it from the lower liver to the kidneys) centred in the volume; the default ``spacing`` makes the
field of view 320 x 320 x 160 mm whatever the shape, a smaller spacing zooms in on the centre.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.data.phantom_anatomy import (
    HU,
    LABELS,
    REFERENCE_HALF_FOV_MM,
    draw_patient,
    render_case,
)
from medtransfer.errors import ConfigError

__all__ = ["HU", "LABELS", "phantom_affine", "phantoms", "write_phantoms"]

_TASKS = ("segmentation", "classification")
_FORMATS = ("nifti", "dicom")
_DEFAULT_FOV_MM = tuple(2.0 * h for h in REFERENCE_HALF_FOV_MM)


def phantom_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """The 4x4 RAS+ affine of a phantom: ``diag(-sx, -sy, sz)`` with the volume centred on 0.

    Args:
        shape: array shape (i, j, k).
        spacing: voxel size in mm along i, j, k.

    Returns:
        A float64 (4, 4) array mapping voxel indices to RAS+ millimetres.

    Example:
        >>> phantom_affine((4, 4, 2), (2.0, 2.0, 5.0))[:3, 3].tolist()
        [3.0, 3.0, -2.5]
    """
    affine = np.diag([-float(spacing[0]), -float(spacing[1]), float(spacing[2]), 1.0])
    affine[:3, 3] = [
        spacing[0] * (shape[0] - 1) / 2.0,
        spacing[1] * (shape[1] - 1) / 2.0,
        -spacing[2] * (shape[2] - 1) / 2.0,
    ]
    return affine


def phantoms(
    n: int,
    task: str = "segmentation",
    seed: int = 0,
    shape: Sequence[int] = (64, 64, 32),
    spacing: Sequence[float] | None = None,
    *,
    lesion_probability: float = 0.5,
    lesion_size_mm: tuple[float, float] = (15.0, 45.0),
    lesion_contrast_hu: tuple[float, float] = (40.0, 80.0),
    max_lesions: int = 3,
    noise_hu: tuple[float, float] = (5.0, 15.0),
    cases_per_patient: int = 1,
    output_dir: str | os.PathLike[str] | None = None,
    image_format: str = "nifti",
) -> list[dict[str, Any]]:
    """Generate ``n`` synthetic abdominal CT cases (in memory, or written to ``output_dir``).

    Each record is a plain dict:

    - ``"image"``: ``monai.data.MetaTensor`` float32 HU, shape ``shape``, RAS+ ``.affine``,
      ``meta["spacing"]``;
    - ``"label"``: segmentation -> uint8 label-map MetaTensor (:data:`LABELS`);
      classification -> ``int`` 1 if the case contains a lesion, else 0;
    - ``"mask"`` (classification only): the label-map MetaTensor;
    - ``"case_id"`` (``"phantom-007"``, or ``"phantom-007-1"`` with several cases per patient) and
      ``"patient_id"`` (``"phantom-007"``): synthetic, no PHI;
    - ``"has_lesion"`` (bool), ``"n_lesions"``, ``"lesions"`` (list of ``{"diameter_mm",
      "contrast_hu", "voxels"}``) and ``"lesion_slices"`` (sorted k indices of slices containing a
      lesion: the slice-level classification labels).

    Args:
        n: number of cases (>= 1).
        task: ``"segmentation"`` or ``"classification"``.
        seed: random seed; same seed, same cases.
        shape: array shape (i, j, k), each >= 8 except k >= 1.
        spacing: voxel size in mm; the default gives a 320 x 320 x 160 mm field of view that
            holds the whole body; a smaller field of view shows the centre of the abdomen.
        lesion_probability: chance that a patient has liver lesions.
        lesion_size_mm: range of lesion diameters in mm.
        lesion_contrast_hu: range of liver-minus-lesion HU (hypodense lesions when positive).
        max_lesions: most lesions per patient (1 is the most common count, then 2, ...).
        noise_hu: range of the image noise standard deviation in HU.
        cases_per_patient: scans per synthetic patient (same anatomy and lesions, different
            position, lesion growth and noise), to exercise patient-level splits.
        output_dir: when given, write the cases there with :func:`write_phantoms` and return
            records with file paths (as :func:`~medtransfer.data.load_manifest` would).
        image_format: ``"nifti"`` or ``"dicom"`` (used with ``output_dir``).

    Returns:
        ``n`` records, in case order.

    Raises:
        ConfigError: an argument is out of range (the message names it).

    Example:
        >>> from medtransfer.data.synthetic import phantoms
        >>> cases = phantoms(4, task="classification", seed=0, shape=(32, 32, 8))
        >>> [c["case_id"] for c in cases]
        ['phantom-000', 'phantom-001', 'phantom-002', 'phantom-003']
        >>> tuple(cases[0]["image"].shape), cases[0]["label"] in (0, 1)
        ((32, 32, 8), True)
    """
    shape_t, spacing_t = _check_arguments(
        n, task, seed, shape, spacing, lesion_probability, lesion_size_mm, lesion_contrast_hu,
        max_lesions, noise_hu, cases_per_patient, image_format,
    )  # fmt: skip
    records = []
    for index in range(n):
        patient, scan = divmod(index, cases_per_patient)
        # One stream per patient (anatomy) and one per scan: case i never depends on n.
        patient_rng = np.random.default_rng([seed, patient])
        has_lesion = bool(patient_rng.random() < lesion_probability)
        anatomy = draw_patient(
            patient_rng,
            has_lesion=has_lesion,
            lesion_size_mm=lesion_size_mm,
            lesion_contrast_hu=lesion_contrast_hu,
            max_lesions=max_lesions,
        )
        scan_rng = np.random.default_rng([seed, patient, scan + 1])
        growth = 1.0 if scan == 0 else float(scan_rng.uniform(0.8, 1.25))
        image, label, lesions = render_case(anatomy, scan_rng, shape_t, spacing_t, noise_hu, growth)
        patient_id = f"phantom-{patient:03d}"
        case_id = patient_id if cases_per_patient == 1 else f"{patient_id}-{scan}"
        records.append(_record(image, label, lesions, case_id, patient_id, task, spacing_t))
    if output_dir is not None:
        return write_phantoms(records, output_dir, image_format=image_format)
    return records


def _record(
    image: np.ndarray,
    label: np.ndarray,
    lesions: list[dict[str, float]],
    case_id: str,
    patient_id: str,
    task: str,
    spacing: tuple[float, float, float],
) -> dict[str, Any]:
    from medtransfer import io

    affine = phantom_affine(image.shape, spacing)
    extra = {"case_id": case_id, "patient_id": patient_id, "modality": "CT", "format": "synthetic"}
    mask = io.make_image(label, affine, source=case_id, extra=extra)
    record: dict[str, Any] = {
        "image": io.make_image(image, affine, source=case_id, extra=extra),
        "label": mask,
    }
    lesion_slices = [int(k) for k in np.flatnonzero((label == 2).any(axis=(0, 1)))]
    if task == "classification":
        record = {"image": record["image"], "label": int(bool(lesions)), "mask": mask}
    record.update(
        case_id=case_id,
        patient_id=patient_id,
        has_lesion=bool(lesions),
        n_lesions=len(lesions),
        lesions=lesions,
        lesion_slices=lesion_slices,
    )
    return record


def write_phantoms(
    records: Sequence[dict[str, Any]],
    output_dir: str | os.PathLike[str],
    *,
    image_format: str = "nifti",
    suffix: str = ".nii.gz",
    manifest_name: str | None = "manifest.csv",
) -> list[dict[str, Any]]:
    """Write in-memory phantom records to files and return the records with file paths.

    Layout (MSD-like): NIfTI images in ``imagesTr/<case_id><suffix>``, or one DICOM series folder
    per case in ``dicom/<case_id>/`` (``image_format="dicom"``); label maps (segmentation masks,
    also for classification records) in ``labelsTr/<case_id><suffix>``. A CSV manifest with the
    columns ``image, label, [mask,] case_id, patient_id, has_lesion, n_lesions`` (paths relative to
    the manifest) is written unless ``manifest_name`` is None, so
    ``load_manifest(output_dir / "manifest.csv")`` reads them back.

    Args:
        records: records from :func:`phantoms` (in memory).
        output_dir: folder to write into (created if needed).
        image_format: ``"nifti"`` or ``"dicom"``.
        suffix: NIfTI suffix, ``".nii.gz"`` or ``".nii"``. Files are byte-for-byte reproducible
            (DICOM UIDs are derived from the case_id and pixel values).
        manifest_name: file name of the CSV manifest, or None for no manifest.

    Returns:
        New records: ``"image"`` and, for segmentation, ``"label"`` are absolute path strings;
        classification keeps its int ``"label"`` and stores the mask path in ``"mask"``.

    Example:
        >>> import tempfile
        >>> from medtransfer.data.synthetic import phantoms, write_phantoms
        >>> folder = tempfile.mkdtemp()
        >>> files = write_phantoms(phantoms(2, shape=(16, 16, 4)), folder)
        >>> files[0]["image"].endswith("imagesTr/phantom-000.nii.gz")
        True
    """
    from medtransfer import io

    if image_format not in _FORMATS:
        raise ConfigError(f"image_format must be one of {_FORMATS}, got {image_format!r}.")
    if suffix not in (".nii.gz", ".nii"):
        raise ConfigError(f"suffix must be '.nii.gz' or '.nii', got {suffix!r}.")
    root = Path(os.path.abspath(Path(output_dir).expanduser()))
    written = []
    for record in records:
        case_id = record["case_id"]
        classification = not hasattr(record["label"], "affine")
        mask = record["mask"] if classification else record["label"]
        if image_format == "nifti":
            image_path = io.save(record["image"], root / "imagesTr" / f"{case_id}{suffix}")
        else:
            series = root / "dicom" / case_id
            io.write_dicom_series(
                record["image"],
                series,
                modality="CT",
                series_description="medtransfer synthetic phantom",
                patient_id=record["patient_id"],
                patient_name=record["patient_id"],
                case_id=case_id,
                uid_seed=_uid_seed(record["image"], case_id),
            )
            image_path = series
        mask_path = io.save(mask, root / "labelsTr" / f"{case_id}{suffix}")
        out = {key: value for key, value in record.items() if key not in ("image", "label", "mask")}
        out["image"] = str(image_path)
        if classification:
            out["label"] = record["label"]
            out["mask"] = str(mask_path)
        else:
            out["label"] = str(mask_path)
        written.append(out)
    if manifest_name is not None:
        _write_manifest(written, root / manifest_name)
    return written


def _uid_seed(image: Any, case_id: str) -> str:
    """Seed for the DICOM UIDs: same pixels, same UIDs (rewriting gives identical files)."""
    array = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:32]
    return f"medtransfer-phantom/{case_id}/{digest}"


def _write_manifest(records: list[dict[str, Any]], path: Path) -> None:
    columns = ["image", "label", "case_id", "patient_id", "has_lesion", "n_lesions"]
    if any("mask" in record for record in records):
        columns.insert(2, "mask")
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for record in records:
            row = []
            for column in columns:
                value = record[column]
                if column in ("image", "label", "mask") and isinstance(value, str):
                    value = os.path.relpath(value, path.parent)  # the folder stays movable
                row.append(value)
            writer.writerow(row)
    os.replace(tmp, path)


def _check_arguments(
    n: Any,
    task: Any,
    seed: Any,
    shape: Any,
    spacing: Any,
    lesion_probability: float,
    lesion_size_mm: tuple[float, float],
    lesion_contrast_hu: tuple[float, float],
    max_lesions: int,
    noise_hu: tuple[float, float],
    cases_per_patient: int,
    image_format: str,
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    def integer(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    problems = []
    if not integer(n) or n < 1:
        problems.append(f"n must be an integer >= 1, got {n!r}")
    if task not in _TASKS:
        problems.append(f"task must be one of {_TASKS}, got {task!r}")
    if not integer(seed) or seed < 0:
        problems.append(f"seed must be an integer >= 0, got {seed!r}")
    shape_ok = (
        len(tuple(shape)) == 3
        and all(integer(s) for s in shape)
        and min(shape[0], shape[1]) >= 8
        and shape[2] >= 1
    )
    if not shape_ok:
        problems.append(f"shape must be 3 integers (i, j >= 8, k >= 1), got {shape!r}")
    if spacing is not None and (len(tuple(spacing)) != 3 or not all(float(s) > 0 for s in spacing)):
        problems.append(f"spacing must be 3 positive numbers in mm, got {spacing!r}")
    if not 0.0 <= lesion_probability <= 1.0:
        problems.append(f"lesion_probability must be in [0, 1], got {lesion_probability!r}")
    for name, pair, low, strict in (
        ("lesion_size_mm", lesion_size_mm, 0.0, True),
        ("lesion_contrast_hu", lesion_contrast_hu, -np.inf, False),
        ("noise_hu", noise_hu, 0.0, False),
    ):
        pair = tuple(pair)
        ok = len(pair) == 2 and low <= pair[0] <= pair[1] and not (strict and pair[0] == low)
        if not ok:
            bound = f"{low:g} {'<' if strict else '<='} " if np.isfinite(low) else ""
            problems.append(
                f"{name} must be a (low, high) range with {bound}low <= high, got {pair!r}"
            )
    if not integer(max_lesions) or max_lesions < 1:
        problems.append(f"max_lesions must be an integer >= 1, got {max_lesions!r}")
    if not integer(cases_per_patient) or cases_per_patient < 1:
        problems.append(f"cases_per_patient must be an integer >= 1, got {cases_per_patient!r}")
    if image_format not in _FORMATS:
        problems.append(f"image_format must be one of {_FORMATS}, got {image_format!r}")
    if problems:
        raise ConfigError("phantoms(): " + "; ".join(problems) + ".")
    shape_t = (int(shape[0]), int(shape[1]), int(shape[2]))
    if spacing is None:
        spacing = [fov / size for fov, size in zip(_DEFAULT_FOV_MM, shape_t)]
    return shape_t, (float(spacing[0]), float(spacing[1]), float(spacing[2]))
