"""Real-anatomy datasets for benchmarks and diagnostics tests: subjects and sites from MNI152.

Not part of the runtime. nilearn (a dev dependency) ships the MNI152 2009c T1 (1 mm) with grey-
and white-matter probability maps; this module turns it into reproducible "subjects" (smooth random
deformation + small affine, bias field, gamma contrast, Rician noise) and "sites" (site "B": a
second scanner with a stronger bias field, a stronger gamma change, 2-3x the noise and 2x thicker
axial slices with partial-volume blur), and writes them as NIfTI with a CSV manifest, so every path
a user takes (``load_manifest``, presets, CLI) is exercised on real anatomy.

Two tasks: ``tissue`` (3-class segmentation: 0 background/CSF, 1 GM, 2 WM) and ``lesion``
(slab classification: does the central axial slice hold a white-matter lesion?). Subject ``i`` of a
dataset with seed ``s`` is drawn from ``SeedSequence((s, i))``: the same whatever the dataset size,
and for a given seed the anatomy is the same at both sites (only intensities differ).

Usage:
    python benchmarks/anatomy.py OUT --task tissue|lesion --n 12 --seed 0 --spacing 2 --site A
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib.util
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from medtransfer.errors import ConfigError

_FILES = {k: f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}
SITES = ("A", "B")
TASKS = ("tissue", "lesion")
#: per-site intensity model: bias field amplitude, gamma ranges, noise as a fraction of WM
_SITE = {
    "A": {"bias": 0.15, "gamma": ((0.8, 1.2),), "noise": (0.02, 0.04), "noise_x": 1.0},
    "B": {"bias": 0.3, "gamma": ((0.6, 0.7), (1.4, 1.6)), "noise": (0.02, 0.04), "noise_x": 2.5},
}


@dataclass(frozen=True, eq=False)
class Template:
    """The MNI152 template on an isotropic grid: T1 (float32, 0-255), GM/WM probabilities (0-1).

    Example:
        >>> t = load_template(4.0)
        >>> t.t1.shape, t.spacing, float(t.wm.max()) <= 1.0
        ((50, 59, 48), 4.0, True)
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    affine: np.ndarray
    spacing: float


@dataclass(frozen=True, eq=False)
class Subject:
    """One simulated subject: image, tissue probabilities, labels (0 bg, 1 GM, 2 WM) and lesions.

    ``lesion_mask`` marks the voxels inside a lesion's ellipsoid; ``lesions`` lists
    ``{"centre": (i, j, k), "radii_mm": (a, b, c), "contrast": float}`` (contrast > 0: brighter).

    Example:
        >>> s = make_subject(load_template(4.0), seed=0)
        >>> s.t1.dtype.name, s.labels.dtype.name, sorted(np.unique(s.labels).tolist())
        ('float32', 'uint8', [0, 1, 2])
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    site: str
    lesion_mask: np.ndarray
    lesions: tuple[dict, ...] = field(default=())


def _sibling(name: str):
    """Load ``benchmarks/<name>.py`` once (benchmarks/ is not a package, nor on sys.path)."""
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses look their module up
        spec.loader.exec_module(module)
    return module


def __getattr__(name: str):
    """``add_lesions`` and ``write_lesion_task`` live in ``anatomy_lesions.py`` (file length)."""
    if name in ("add_lesions", "write_lesion_task"):
        return getattr(_sibling("anatomy_lesions"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def template_files() -> dict[str, Path]:
    """Paths of the MNI152 T1/GM/WM files inside the installed nilearn (no nilearn import).

    Raises:
        ConfigError: nilearn is not installed (install it with ``pip install nilearn``).

    Example:
        >>> sorted(template_files())
        ['gm', 't1', 'wm']
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "benchmarks/anatomy.py needs the MNI152 template shipped with nilearn, which is not "
            "installed: run `pip install nilearn` (or `pip install -e '.[dev]'`)."
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    paths = {key: folder / name for key, name in _FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ConfigError(f"nilearn is installed but lacks {missing}: reinstall `nilearn>=0.10`.")
    return paths


@functools.lru_cache(maxsize=4)
def load_template(spacing: float = 2.0) -> Template:
    """The MNI152 template resampled (linear) to an isotropic ``spacing`` mm grid; cached.

    Voxel ``n`` of the new grid is voxel ``n * spacing`` of the 1 mm file, so the affine is the
    file's affine with its columns scaled by ``spacing`` and the same origin. Arrays are read-only.

    Example:
        >>> t = load_template(2.0)
        >>> t.t1.shape, t.affine[:3, 3].tolist()
        ((99, 117, 95), [-98.0, -134.0, -72.0])
    """
    import nibabel as nib

    spacing = float(spacing)
    if not 0.5 <= spacing <= 8.0:
        raise ConfigError(f"spacing must be between 0.5 and 8 mm, got {spacing!r}.")
    arrays, affine = {}, None
    for key, path in template_files().items():
        image = nib.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float32)
        shape = tuple(int((n - 1) // spacing) + 1 for n in data.shape)
        # Exact isotropic grid (zoom would stretch a non-divisible axis slightly).
        out = ndimage.affine_transform(data, np.full(3, spacing), output_shape=shape, order=1)
        out = out if key == "t1" else np.clip(out / 255.0, 0.0, 1.0)
        out = out.astype(np.float32)
        out.setflags(write=False)
        arrays[key], affine = out, image.affine @ np.diag([spacing, spacing, spacing, 1.0])
    affine.setflags(write=False)
    return Template(arrays["t1"], arrays["gm"], arrays["wm"], affine, spacing)


def tissue_labels(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Label map (uint8): 1 where GM is the larger map and > 0.5, 2 likewise for WM, else 0.

    Example:
        >>> tissue_labels(np.array([0.6, 0.2, 0.3]), np.array([0.3, 0.7, 0.3])).tolist()
        [1, 2, 0]
    """
    labels = np.zeros(gm.shape, np.uint8)
    labels[(gm > 0.5) & (gm >= wm)] = 1
    labels[(wm > 0.5) & (wm > gm)] = 2
    return labels


def _rng_pair(seed: int | tuple[int, ...]) -> tuple[np.random.Generator, np.random.Generator]:
    """Anatomy and intensity streams: the anatomy of a seed does not depend on the site."""
    if isinstance(seed, np.random.SeedSequence):  # a fresh copy: spawn() changes its state
        seed = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key)
    else:
        seed = np.random.SeedSequence(seed)
    anatomy, intensity = seed.spawn(2)
    return np.random.default_rng(anatomy), np.random.default_rng(intensity)


def _sample_coordinates(shape: tuple[int, ...], spacing: float, rng: np.random.Generator):
    """Voxel coordinates to sample the template at: small random affine + smooth displacement."""
    # One rotation of at most 5 degrees about a random axis (Rodrigues' formula).
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.0, 5.0))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    scales = rng.uniform(0.95, 1.05, 3)
    matrix = (rotation @ np.diag(1.0 / scales)).astype(np.float32)
    # Displacement: white noise on a 8 mm grid, Gaussian-smoothed, scaled to ~3 mm at most.
    coarse_shape = tuple(max(4, int(np.ceil(n * spacing / 8.0))) for n in shape)
    # Linear upsampling as three small matrix products (much faster than ndimage.zoom).
    weights = [_linear_weights(c, n) for c, n in zip(coarse_shape, shape)]
    centre = (np.array(shape, np.float32) - 1) / 2
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1) - centre[:, None]
    coords = matrix @ grid + centre[:, None]
    for axis in range(3):
        noise = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), 1.5, mode="wrap")
        noise *= rng.uniform(1.5, 3.0) / spacing / max(np.abs(noise).max(), 1e-6)
        fine = np.einsum("ia,abc->ibc", weights[0], noise.astype(np.float32))
        fine = np.einsum("jb,ibc->ijc", weights[1], fine)
        coords[axis] += np.einsum("kc,ijc->ijk", weights[2], fine).ravel()
    return coords


def _linear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix, end points aligned."""
    position = np.linspace(0, n_in - 1, n_out)
    low = np.minimum(np.floor(position).astype(int), n_in - 2)
    out = np.zeros((n_out, n_in), np.float32)
    out[np.arange(n_out), low] = 1 - (position - low)
    out[np.arange(n_out), low + 1] = position - low
    return out


def _bias_field(shape: tuple[int, ...], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative field: a random quadratic polynomial scaled to 1 +- amplitude."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, x * z, y * z, x * x - 1 / 3, y * y - 1 / 3, z * z - 1 / 3]
    poly = sum(float(c) * t for c, t in zip(rng.standard_normal(len(terms)), terms))
    poly = np.broadcast_to(poly, shape)
    return (1.0 + amplitude * poly / max(float(np.abs(poly).max()), 1e-6)).astype(np.float32)


def slice_pairs(volume: np.ndarray) -> np.ndarray:
    """2x thicker axial slices: slice pairs averaged (an odd last slice pairs with itself)."""
    padded = np.concatenate([volume, volume[:, :, -1:]], axis=2) if volume.shape[2] % 2 else volume
    return (0.5 * (padded[:, :, 0::2] + padded[:, :, 1::2])).astype(np.float32)


def thick_slices(volume: np.ndarray) -> np.ndarray:
    """Partial-volume blur of 2x thicker axial slices: average slice pairs, resample back (linear).

    Example:
        >>> thick_slices(np.arange(4.0).reshape(1, 1, 4)).ravel().tolist()
        [0.5, 1.0, 2.0, 2.5]
    """
    n, thick = volume.shape[2], slice_pairs(volume)  # centres at k = 0.5, 2.5, ...
    positions = np.clip((np.arange(n) - 0.5) / 2.0, 0, thick.shape[2] - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, thick.shape[2] - 1)
    weight = (positions - low).astype(np.float32)
    return (thick[:, :, low] * (1 - weight) + thick[:, :, high] * weight).astype(np.float32)


def make_subject(template: Template, seed: int | tuple[int, ...], *, site: str = "A", thick_grid: bool = False) -> Subject:  # fmt: skip
    """A distinct subject drawn from ``seed``: deformed anatomy, then the ``site``'s intensities.

    The anatomy (rotation <= 5 deg, scale 0.95-1.05, smooth displacement of a few mm, applied to
    T1, GM and WM alike) depends on ``seed`` only; the intensity model on the site: bias field
    (A: +-15 %, B: +-30 %), gamma (A: 0.8-1.2, B: 0.6-0.7 or 1.4-1.6), Rician noise (A: 2-4 % of
    the WM intensity, B: 2.5x that) and, for B, 2x thicker axial slices before the noise,
    blurred back onto the template grid. ``thick_grid`` (any site) writes 2x thicker slices on
    their own grid instead (z spacing doubled in the affine; T1, GM, WM, labels slice-pair means).

    Example:
        >>> t = load_template(4.0)
        >>> a, b = make_subject(t, 1), make_subject(t, 1, site="B")
        >>> bool((a.labels == b.labels).all()), bool((a.t1 == b.t1).all())
        (True, False)
    """
    if site not in SITES:
        raise ConfigError(f"site must be one of {SITES}, got {site!r}.")
    anatomy_rng, rng = _rng_pair(seed)
    shape = template.t1.shape
    coords = _sample_coordinates(shape, template.spacing, anatomy_rng)
    warped = {}
    for key in ("t1", "gm", "wm"):
        out = ndimage.map_coordinates(getattr(template, key), coords, order=1, mode="constant")
        warped[key] = out.reshape(shape)
    gm, wm = np.clip(warped["gm"], 0, 1), np.clip(warped["wm"], 0, 1)
    model = _SITE[site]
    # Same draws in the same order at both sites: site B is site A's subject on another scanner.
    u_gamma, u_side, u_bias, u_noise = rng.random(4)
    low, high = model["gamma"][int(u_side * len(model["gamma"]))]
    t1 = 255.0 * np.clip(warped["t1"] / 255.0, 0, None) ** (low + u_gamma * (high - low))
    t1 *= _bias_field(shape, model["bias"] * (0.5 + 0.5 * u_bias), rng)
    affine = np.array(template.affine)
    if thick_grid:  # thick voxel k is the centre of fine voxels 2k and 2k + 1
        t1, gm, wm = (slice_pairs(v) for v in (t1, gm, wm))
        shape, affine = t1.shape, affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0.5], [0, 0, 0, 1]])  # fmt: skip
    elif site == "B":
        t1 = thick_slices(t1)
    low, high = model["noise"]
    sigma = (low + u_noise * (high - low)) * model["noise_x"] * float(np.median(t1[wm > 0.9]))
    real = t1 + rng.normal(0.0, sigma, shape).astype(np.float32)
    imaginary = rng.normal(0.0, sigma, shape).astype(np.float32)
    t1 = np.sqrt(real * real + imaginary * imaginary).astype(np.float32)
    return Subject(
        t1=t1,
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        labels=tissue_labels(gm, wm),
        affine=affine,
        site=site,
        lesion_mask=np.zeros(shape, bool),
    )


def _subject_seed(seed: int, index: int) -> tuple[int, int]:
    """Entropy of subject ``index``: ``SeedSequence((seed, index))``, whatever the dataset size."""
    return (int(seed), int(index))


def _check_task_arguments(n: int, seed: int, site: str, slab: int = 1) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"the number of cases must be an integer >= 1, got {n!r}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}.")
    if site not in SITES:
        raise ConfigError(f"site must be one of {SITES}, got {site!r}.")
    if not isinstance(slab, (int, np.integer)) or slab < 1 or slab % 2 == 0:
        raise ConfigError(f"slab must be an odd number of slices >= 1, got {slab!r}.")


def _write_manifest(path: Path, rows: list[dict]) -> Path:
    from medtransfer import io

    with io.atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_tissue_task(
    folder: str | os.PathLike[str], n_subjects: int, seed: int = 0, spacing: float = 2.0,
    site: str = "A", thick_grid: bool = False,
) -> Path:  # fmt: skip
    """Write a GM/WM segmentation dataset: one T1 and one label map (uint8) per subject.

    Layout: ``images/sub-000.nii.gz`` (float32), ``labels/sub-000.nii.gz`` (uint8: 0 background
    and CSF, 1 GM, 2 WM) and ``manifest.csv`` with ``case_id,image,label,site`` (paths relative to
    the manifest). Subject ``i`` is ``make_subject(template, SeedSequence((seed, i)), site=site,
    thick_grid=thick_grid)`` (``thick_grid``: 2x thicker slices on their own grid).

    Returns:
        The manifest path.

    Example:
        >>> import tempfile
        >>> from medtransfer.data import load_manifest
        >>> path = write_tissue_task(tempfile.mkdtemp(), 1, spacing=4.0)
        >>> [(r["case_id"], r["site"]) for r in load_manifest(path)]
        [('sub-000', 'A')]
    """
    from medtransfer import io

    _check_task_arguments(n_subjects, seed, site)
    root, template, rows = Path(folder), load_template(spacing), []
    for index in range(n_subjects):
        subject = make_subject(template, _subject_seed(seed, index), site=site, thick_grid=thick_grid)  # fmt: skip
        case_id = f"sub-{index:03d}"
        io.save(subject.t1, root / "images" / f"{case_id}.nii.gz", affine=subject.affine)
        io.save(subject.labels, root / "labels" / f"{case_id}.nii.gz", affine=subject.affine)
        rows.append(
            {"case_id": case_id, "image": f"images/{case_id}.nii.gz",
             "label": f"labels/{case_id}.nii.gz", "site": site}
        )  # fmt: skip
    return _write_manifest(root / "manifest.csv", rows)


def main(argv: list[str] | None = None) -> int:
    """Command line: write a tissue or lesion dataset and print what was written and how fast."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output folder (created; files are overwritten)")
    parser.add_argument("--task", choices=TASKS, default="tissue")
    parser.add_argument("--n", type=int, default=12, help="subjects (tissue) or slabs (lesion)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spacing", type=float, default=2.0, help="isotropic voxel size in mm")
    parser.add_argument("--site", choices=SITES, default="A")
    parser.add_argument("--slab", type=int, default=5, help="slices per slab (lesion task)")
    args = parser.parse_args(argv)
    sys.modules.setdefault("anatomy", sys.modules[__name__])  # one copy when run as a script
    start = time.perf_counter()
    load_template(args.spacing)
    loaded = time.perf_counter()
    if args.task == "tissue":
        manifest = write_tissue_task(args.out, args.n, args.seed, args.spacing, args.site)
    else:
        write_lesion_task = _sibling("anatomy_lesions").write_lesion_task
        manifest = write_lesion_task(
            args.out, args.n, args.seed, args.spacing, args.slab, args.site
        )
    done = time.perf_counter()
    print(
        f"wrote {args.n} {args.task} cases (site {args.site}, {args.spacing:g} mm, seed "
        f"{args.seed}) -> {manifest}\ntemplate {loaded - start:.2f} s, cases {done - loaded:.2f} s "
        f"({(done - loaded) / args.n:.2f} s per case)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
