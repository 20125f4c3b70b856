"""Lesions for the real-anatomy datasets: white-matter lesions and the slab classification task.

Companion of ``benchmarks/anatomy.py`` (subjects, sites, the tissue task and the CLI), split off
to keep files short. Not part of the runtime. ``benchmarks/`` is not a package, so each file loads
the other by path (:func:`anatomy._sibling`); ``anatomy.add_lesions`` and
``anatomy.write_lesion_task`` are these functions.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from medtransfer.errors import ConfigError


def _sibling(name: str):
    """Load ``benchmarks/<name>.py`` once (benchmarks/ is not a package, nor on sys.path)."""
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses look their module up
        spec.loader.exec_module(module)
    return module


anatomy = _sibling("anatomy")


def _voxel_mm(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)


def add_lesions(
    subject: anatomy.Subject, rng: np.random.Generator, n: int, *, centre_slice: int | None = None,
    radius_mm: tuple[float, float] = (2.0, 5.0),
) -> anatomy.Subject:  # fmt: skip
    """A copy of ``subject`` with ``n`` soft-edged ellipsoidal white-matter lesions added.

    Each lesion has semi-axes drawn in ``radius_mm`` (default 2-5 mm, at half maximum), lies entirely in white matter (WM
    probability > 0.9 wherever it changes the image) and adds or subtracts 20-40 % of the local WM
    intensity (hyper- or hypointense, equally likely) to the T1, fading with a cosine edge. The
    tissue labels are unchanged (a lesion is in WM); ``lesion_mask`` marks it.
    ``centre_slice``: put every lesion centre in this axial slice (index along the third axis).

    Raises:
        ConfigError: ``n`` < 0, or no room for the lesions (e.g. a slice with too little WM).

    Example:
        >>> subject = anatomy.make_subject(anatomy.load_template(4.0), seed=0)
        >>> s = add_lesions(subject, np.random.default_rng(0), 2)
        >>> len(s.lesions), bool(s.lesion_mask.any()), bool((s.labels[s.lesion_mask] == 2).all())
        (2, True, True)
    """
    if n < 0:
        raise ConfigError(f"n must be >= 0 lesions, got {n!r}.")
    t1, mask, lesions = subject.t1.copy(), subject.lesion_mask.copy(), list(subject.lesions)
    wm, voxel = subject.wm, _voxel_mm(subject.affine)
    core = wm > 0.9
    if centre_slice is not None:
        core = np.zeros_like(core)
        core[:, :, centre_slice] = subject.wm[:, :, centre_slice] > 0.9
    candidates = np.argwhere(core)
    placed = 0
    for _ in range(200 * n):
        if placed == n or len(candidates) == 0:
            break
        centre = candidates[rng.integers(len(candidates))]
        radii_mm = rng.uniform(radius_mm[0], radius_mm[1], 3)
        half = radii_mm / voxel * 1.25  # the cosine edge reaches 1.25x the half-maximum radius
        lo, hi = centre - np.ceil(half).astype(int), centre + np.ceil(half).astype(int) + 1
        if (lo < 0).any() or (hi > np.array(wm.shape)).any():
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        offsets = np.ogrid[box]
        r = np.sqrt(
            sum(((o - c) * v / m) ** 2 for o, c, v, m in zip(offsets, centre, voxel, radii_mm))
        )
        support = r < 1.25
        if (wm[box][support] <= 0.9).any() or mask[box][support].any():
            continue
        around = tuple(slice(max(a - 3, 0), b + 3) for a, b in zip(lo, hi))
        local_wm = float(np.median(subject.t1[around][wm[around] > 0.9]))
        contrast = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.4))
        weight = np.where(
            r <= 0.75, 1.0, 0.5 + 0.5 * np.cos(np.pi * np.clip(r - 0.75, 0, 0.5) / 0.5)
        )
        t1[box] += (contrast * local_wm * weight).astype(np.float32)
        mask[box] |= r <= 1.0
        lesions.append(
            {"centre": tuple(int(c) for c in centre), "radii_mm": tuple(radii_mm.round(2).tolist()),
             "contrast": round(contrast, 3)}
        )  # fmt: skip
        placed += 1
    if placed < n:
        raise ConfigError(f"Could place only {placed} of n={n} lesions in white matter: ask fewer.")
    return replace(subject, t1=np.clip(t1, 0, None), lesion_mask=mask, lesions=tuple(lesions))


def _window(subject, centre: int, crop: int | None, rng: np.random.Generator, label: int):
    """In-plane origin and size of a case: the whole slice, or ``crop`` voxels around the first
    lesion (label 1) or a white-matter voxel of slice ``centre`` (label 0), inside the volume."""
    shape = subject.t1.shape[:2]
    if crop is None:
        return 0, 0, shape
    if not isinstance(crop, int) or not 8 <= crop <= min(shape):
        raise ConfigError(f"crop={crop!r} must be an integer from 8 to {min(shape)} voxels.")
    if label:
        x, y = subject.lesions[0]["centre"][:2]
    else:
        wm = np.argwhere(subject.wm[:, :, centre] > 0.9)
        x, y = wm[rng.integers(len(wm))]
    x, y = (int(v + rng.integers(-crop // 4, crop // 4 + 1)) for v in (x, y))
    x0 = int(np.clip(x - crop // 2, 0, shape[0] - crop))
    y0 = int(np.clip(y - crop // 2, 0, shape[1] - crop))
    return x0, y0, (crop, crop)


def write_lesion_task(
    folder: str | os.PathLike[str], n_cases: int, seed: int = 0, spacing: float = 2.0,
    slab: int = 5, site: str = "A", *, cases_per_subject: int = 4, crop: int | None = None,
    radius_mm: tuple[float, float] = (2.0, 5.0),
) -> Path:  # fmt: skip
    """Write a slab classification dataset: does the central axial slice hold a WM lesion?

    Case ``i`` is an (X, Y, ``slab``) T1 slab of subject ``i // cases_per_subject``, centred on
    an axial slice with abundant white matter (at least half the most of any slice). Labels are
    balanced: each pair of cases (2p, 2p+1) is one positive (1-2 lesions from
    :func:`add_lesions` centred in the central slice) and one negative (no lesion in the subject),
    in a seeded random order. Layout: ``slabs/slab-0000.nii.gz`` (float32, the affine of the slab's
    first slice) and ``manifest.csv`` with ``case_id,image,label,site,subject,patient_id,slice``
    (``subject`` = ``patient_id``, so splits can group a subject's slabs). ``crop``: an in-plane
    window of ``crop`` x ``crop`` voxels instead of the whole slice, around the first lesion
    (positives, shifted by up to a quarter of the window) or a white-matter voxel of the central
    slice (negatives), so that a lesion is a visible part of the image. ``radius_mm``: the range
    of the lesions' semi-axes (see :func:`add_lesions`).

    Returns:
        The manifest path.

    Example:
        >>> import tempfile
        >>> from medtransfer.data import load_manifest
        >>> path = write_lesion_task(tempfile.mkdtemp(), 2, spacing=4.0, slab=3)
        >>> sorted(r["label"] for r in load_manifest(path))
        [0, 1]
    """
    from medtransfer import io

    anatomy._check_task_arguments(n_cases, seed, site, slab)
    if not isinstance(cases_per_subject, int) or cases_per_subject < 1:
        raise ConfigError(f"cases_per_subject must be an integer >= 1, got {cases_per_subject!r}.")
    root, template, rows, subject = Path(folder), anatomy.load_template(spacing), [], None
    half = slab // 2
    for index in range(n_cases):
        number = index // cases_per_subject
        if subject is None or index % cases_per_subject == 0:
            subject = anatomy.make_subject(template, anatomy._subject_seed(seed, number), site=site)
            wm_per_slice = (subject.wm > 0.9).sum(axis=(0, 1))
            slices = np.flatnonzero(wm_per_slice >= 0.5 * wm_per_slice.max())
            slices = slices[(slices >= half) & (slices < subject.t1.shape[2] - half)]
            if len(slices) == 0:
                raise ConfigError(f"slab={slab} is too thick for this brain: use fewer slices.")
        flip = np.random.default_rng(np.random.SeedSequence((seed, index // 2, 2_000_000)))
        label = int((index % 2) ^ int(flip.integers(2)))
        rng = np.random.default_rng(np.random.SeedSequence((seed, number, 1000 + index)))
        centre = int(rng.choice(slices))
        case = (
            add_lesions(
                subject, rng, 1 + int(rng.integers(2)), centre_slice=centre, radius_mm=radius_mm
            )
            if label
            else subject
        )
        x0, y0, size = _window(case, centre, crop, rng, label)
        affine = subject.affine @ np.array(
            [[1, 0, 0, x0], [0, 1, 0, y0], [0, 0, 1, centre - half], [0, 0, 0, 1.0]]
        )
        case_id = f"slab-{index:04d}"
        io.save(
            case.t1[x0 : x0 + size[0], y0 : y0 + size[1], centre - half : centre + half + 1],
            root / "slabs" / f"{case_id}.nii.gz",
            affine=affine,
        )
        subject_id = f"sub-{number:03d}"
        rows.append(
            {"case_id": case_id, "image": f"slabs/{case_id}.nii.gz", "label": label, "site": site,
             "subject": subject_id, "patient_id": subject_id, "slice": centre}
        )  # fmt: skip
    return anatomy._write_manifest(root / "manifest.csv", rows)
