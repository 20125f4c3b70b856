"""Anatomy of the synthetic CT phantoms: random patient parameters and their rendering to voxels.

Pure numpy (+ ``scipy.ndimage``, imported when rendering). Geometry is drawn in *body units*: the
axial body outline is the unit circle in (u, v) (u towards the patient's right, v anterior) within
a reference field of view of 320 x 320 x 160 mm centred on the origin, and w runs from -1 (80 mm
below the centre) to +1 (80 mm above). The volume's shape and spacing choose which part of that
space is sampled. The public entry point is :mod:`medtransfer.data.synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HU",
    "LABELS",
    "REFERENCE_HALF_FOV_MM",
    "Ellipsoid",
    "Lesion",
    "PatientAnatomy",
    "draw_patient",
    "render_case",
]

#: Half size (mm) of the reference field of view that the body outline fills: 320 x 320 x 160 mm.
REFERENCE_HALF_FOV_MM: tuple[float, float, float] = (160.0, 160.0, 80.0)

#: Label values of the segmentation masks (lesion voxels are inside the liver and replace it).
LABELS: dict[int, str] = {0: "background", 1: "liver", 2: "lesion", 3: "spleen", 4: "kidney"}

#: Mean HU of each tissue (portal-venous phase CT) and the per-patient jitter (standard deviation).
HU: dict[str, tuple[float, float]] = {
    "air": (-1000.0, 0.0),
    "fat": (-100.0, 8.0),
    "muscle": (50.0, 5.0),
    "bowel": (30.0, 8.0),
    "liver": (100.0, 8.0),
    "spleen": (120.0, 8.0),
    "kidney_cortex": (170.0, 12.0),
    "kidney_medulla": (120.0, 10.0),
    "aorta": (160.0, 15.0),
    "bone_cancellous": (250.0, 30.0),
    "bone_cortical": (700.0, 50.0),
}


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in body units, rotated by ``angle`` (radians) in the axial plane."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    angle: float = 0.0

    def inside(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Boolean mask of the grid points inside the ellipsoid (broadcast over u, v, w)."""
        du, dv, dw = u - self.centre[0], v - self.centre[1], w - self.centre[2]
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        a = (du * cos + dv * sin) / self.radii[0]
        b = (dv * cos - du * sin) / self.radii[1]
        c = dw / self.radii[2]
        return a * a + b * b + c * c <= 1.0

    def point(self, local: np.ndarray) -> tuple[float, float, float]:
        """Body-unit coordinates of a point given in the ellipsoid's unit-ball frame."""
        a, b, c = (float(x) * r for x, r in zip(local, self.radii))
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        return (
            self.centre[0] + a * cos - b * sin,
            self.centre[1] + a * sin + b * cos,
            self.centre[2] + c,
        )


@dataclass(frozen=True)
class Lesion:
    """A liver lesion: position in the right liver lobe's unit-ball frame, size and contrast."""

    local: tuple[float, float, float]
    diameter_mm: float
    axis_ratios: tuple[float, float, float]
    contrast_hu: float  # lesion HU = liver HU - contrast (hypodense when > 0)


@dataclass(frozen=True)
class PatientAnatomy:
    """Everything that stays the same between the scans of one synthetic patient."""

    body_radii: tuple[float, float]  # fractions of the half field of view (u, v)
    body_centre_v: float
    fat_thickness: float  # subcutaneous fat, body units
    organs: dict[str, Ellipsoid]
    hu: dict[str, float]
    texture_seed: int
    lesions: tuple[Lesion, ...]


def _jitter(
    rng: np.random.Generator, values: tuple[float, ...], spread: float
) -> tuple[float, ...]:
    return tuple(float(x + rng.uniform(-spread, spread)) for x in values)


def _scale(rng: np.random.Generator, values: tuple[float, ...], spread: float) -> tuple[float, ...]:
    return tuple(float(x * rng.uniform(1 - spread, 1 + spread)) for x in values)


def draw_patient(
    rng: np.random.Generator,
    *,
    has_lesion: bool,
    lesion_size_mm: tuple[float, float],
    lesion_contrast_hu: tuple[float, float],
    max_lesions: int,
) -> PatientAnatomy:
    """Draw one patient's anatomy, tissue HU and liver lesions from ``rng``."""
    organ_means = {
        "liver_right": ((0.42, 0.05, 0.35), (0.42, 0.60, 0.75), 0.0),
        "liver_left": ((-0.08, 0.35, 0.45), (0.36, 0.24, 0.45), 0.0),
        "spleen": ((-0.60, -0.25, 0.35), (0.17, 0.34, 0.45), -0.5),
        "kidney_right": ((0.40, -0.52, -0.45), (0.15, 0.21, 0.42), 0.35),
        "kidney_left": ((-0.40, -0.52, -0.30), (0.15, 0.21, 0.42), -0.35),
        "aorta": ((-0.10, -0.40, 0.0), (0.07, 0.10, 5.0), 0.0),
        "vertebra": ((0.0, -0.60, 0.0), (0.15, 0.20, 5.0), 0.0),
        "canal": ((0.0, -0.84, 0.0), (0.06, 0.07, 5.0), 0.0),
    }
    organs = {}
    for name, (centre, radii, angle) in organ_means.items():
        fixed = name in ("aorta", "vertebra", "canal")
        organs[name] = Ellipsoid(
            centre=_jitter(rng, centre, 0.015 if fixed else 0.05),
            radii=_scale(rng, radii, 0.05 if fixed else 0.12),
            angle=float(angle + rng.uniform(-0.15, 0.15)),
        )
    hu = {tissue: float(rng.normal(mean, sd)) for tissue, (mean, sd) in HU.items()}
    # Everything but the lesions is drawn first: the same seed without lesions gives the same body.
    body_radii = (float(rng.uniform(0.80, 0.92)), float(rng.uniform(0.56, 0.68)))
    body_centre_v = float(rng.uniform(-0.06, 0.0))
    fat_thickness = float(rng.uniform(0.05, 0.15))
    texture_seed = int(rng.integers(2**31))
    lesions: list[Lesion] = []
    if has_lesion:
        count = 1 + int(rng.choice(max_lesions, p=_count_probabilities(max_lesions)))
        for _ in range(count):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction) + 1e-12
            local = direction * 0.65 * rng.uniform(0.0, 1.0) ** (1 / 3)
            lesions.append(
                Lesion(
                    local=(float(local[0]), float(local[1]), float(local[2])),
                    diameter_mm=float(rng.uniform(*lesion_size_mm)),
                    axis_ratios=_scale(rng, (1.0, 1.0, 1.0), 0.2),
                    contrast_hu=float(rng.uniform(*lesion_contrast_hu)),
                )
            )
    return PatientAnatomy(
        body_radii=body_radii,
        body_centre_v=body_centre_v,
        fat_thickness=fat_thickness,
        organs=organs,
        hu=hu,
        texture_seed=texture_seed,
        lesions=tuple(lesions),
    )


def _count_probabilities(max_lesions: int) -> np.ndarray:
    weights = 0.5 ** np.arange(max_lesions)  # one lesion most often, then 2, 3, ...
    return weights / weights.sum()


def render_case(
    anatomy: PatientAnatomy,
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    noise_hu: tuple[float, float],
    lesion_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, float]]]:
    """Render one scan of a patient: float32 HU image, uint8 label map and lesion descriptions.

    Arrays are indexed (x, y, z) for the affine of :func:`phantom_affine` (i towards the patient's
    left, j posterior, k superior), so the liver is on the image's left as in radiology.
    ``rng`` draws the scan-to-scan changes: table position, lesion growth, noise.
    """
    from scipy import ndimage

    # Patient position differs a little between scans (body units, shared by every structure).
    shift = rng.uniform(-0.03, 0.03, size=2).tolist() + [float(rng.uniform(-0.08, 0.08))]
    au, av = anatomy.body_radii
    u_fov, v_fov, w_fov = (_axis_coordinates(*args) for args in zip(shape, spacing, range(3)))
    u = u_fov / au - shift[0]
    v = (v_fov - anatomy.body_centre_v) / av - shift[1]
    w = w_fov - shift[2]

    taper = 1.0 + 0.04 * w  # the abdomen is a little wider at the top of the volume
    radius2 = (u * u + v * v) / (taper * taper)
    body = radius2 <= 1.0
    cavity = radius2 <= (1.0 - anatomy.fat_thickness - 0.05) ** 2
    muscle_wall = (radius2 <= (1.0 - anatomy.fat_thickness) ** 2) & ~cavity

    hu = anatomy.hu
    image = np.full(shape, hu["air"], dtype=np.float32)
    image[np.broadcast_to(body, shape)] = hu["fat"]
    image[np.broadcast_to(muscle_wall, shape)] = hu["muscle"]
    cavity3 = np.broadcast_to(cavity, shape)
    bowel = _texture(anatomy.texture_seed, shape, ndimage) > 0.15
    image[cavity3] = np.where(bowel, hu["bowel"], hu["fat"])[cavity3]

    organs = anatomy.organs
    label = np.zeros(shape, dtype=np.uint8)

    body3 = np.broadcast_to(body, shape)

    def paint(
        mask: np.ndarray, value: float, label_value: int | None = None, within: np.ndarray = cavity3
    ) -> np.ndarray:
        mask = np.broadcast_to(mask, shape) & within
        image[mask] = value
        if label_value is not None:
            label[mask] = label_value
        return mask

    paint(organs["aorta"].inside(u, v, w), hu["aorta"])
    # The spine and its muscles sit in the posterior body wall, outside the abdominal cavity.
    for side in (-1.0, 1.0):
        erector = Ellipsoid((side * 0.2, -0.8, 0.0), (0.15, 0.13, 5.0))
        paint(erector.inside(u, v, w), hu["muscle"], within=body3)
    vertebra = organs["vertebra"]
    paint(vertebra.inside(u, v, w), hu["bone_cortical"], within=body3)
    inner = Ellipsoid(vertebra.centre, (vertebra.radii[0] * 0.75, vertebra.radii[1] * 0.75, 5.0))
    paint(inner.inside(u, v, w), hu["bone_cancellous"], within=body3)
    paint(organs["canal"].inside(u, v, w), hu["bowel"] - 20.0, within=body3)  # CSF-like
    for side in ("kidney_right", "kidney_left"):
        kidney = organs[side]
        paint(kidney.inside(u, v, w), hu["kidney_cortex"], 4)
        medulla = Ellipsoid(kidney.centre, tuple(r * 0.55 for r in kidney.radii), kidney.angle)
        paint(medulla.inside(u, v, w), hu["kidney_medulla"], 4)
    paint(organs["spleen"].inside(u, v, w), hu["spleen"], 3)
    liver = organs["liver_right"].inside(u, v, w) | organs["liver_left"].inside(u, v, w)
    liver = paint(liver, hu["liver"], 1)

    lesions = _paint_lesions(anatomy, (u, v, w), liver, spacing, lesion_scale, ndimage)
    for mask, contrast in lesions:
        image[mask] = hu["liver"] - contrast
        label[mask] = 2

    image = ndimage.gaussian_filter(image, sigma=(0.6, 0.6, 0.4))  # partial volume / scanner PSF
    noise = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma=(0.7, 0.7, 0))
    noise *= float(rng.uniform(*noise_hu)) / max(float(noise.std()), 1e-6)
    image += noise
    described = [
        {
            "diameter_mm": float(lesion.diameter_mm * lesion_scale),
            "contrast_hu": float(contrast),
            "voxels": int(mask.sum()),
        }
        for lesion, (mask, contrast) in zip(anatomy.lesions, lesions)
    ]
    return image, label, described


def _axis_coordinates(n: int, spacing: float, axis: int) -> np.ndarray:
    """Coordinates along one array axis in units of the reference half field of view."""
    coords = (np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * (
        spacing / REFERENCE_HALF_FOV_MM[axis]
    )
    if axis < 2:  # i runs to the patient's left, j runs posterior (radiological orientation)
        coords = -coords
    return coords.reshape([-1 if a == axis else 1 for a in range(3)])


def _texture(seed: int, shape: tuple[int, int, int], ndimage: object) -> np.ndarray:
    """Smooth random field in about [-1, 1]: bowel loops and mesenteric fat inside the abdomen."""
    coarse_shape = tuple(max(2, n // 6) for n in shape)
    coarse = np.random.default_rng(seed).normal(size=coarse_shape).astype(np.float32)
    zoom = [n / c for n, c in zip(shape, coarse_shape)]
    field = ndimage.zoom(coarse, zoom, order=1, grid_mode=True, mode="grid-mirror")  # type: ignore[attr-defined]
    return field[: shape[0], : shape[1], : shape[2]]


def _paint_lesions(
    anatomy: PatientAnatomy,
    grid: tuple[np.ndarray, np.ndarray, np.ndarray],
    liver: np.ndarray,
    spacing: tuple[float, float, float],
    lesion_scale: float,
    ndimage: object,
) -> list[tuple[np.ndarray, float]]:
    """Masks (inside the liver, never empty) and contrasts of the patient's lesions."""
    if not anatomy.lesions or not liver.any():
        return []
    u, v, w = grid
    au, av = anatomy.body_radii
    # Millimetres per body unit along each axis, to make lesions round in physical space.
    half_fov = REFERENCE_HALF_FOV_MM
    mm_per_unit = (au * half_fov[0], av * half_fov[1], half_fov[2])
    depth = None
    result = []
    for lesion in anatomy.lesions:
        centre = anatomy.organs["liver_right"].point(np.asarray(lesion.local))
        radius_mm = lesion.diameter_mm * lesion_scale / 2.0
        radii = tuple(radius_mm * r / mm for r, mm in zip(lesion.axis_ratios, mm_per_unit))
        mask = Ellipsoid(centre, radii).inside(u, v, w) & liver
        if not mask.any():  # outside this field of view: move it to the deepest liver voxel
            if depth is None:
                depth = ndimage.distance_transform_edt(liver, sampling=spacing)  # type: ignore[attr-defined]
            index = np.unravel_index(int(np.argmax(depth)), liver.shape)
            centre = (float(u.flat[index[0]]), float(v.flat[index[1]]), float(w.flat[index[2]]))
            mask = Ellipsoid(centre, radii).inside(u, v, w) & liver
            mask[index] = True
        result.append((mask, lesion.contrast_hu))
    return result
