"""Saliency overlays of a classification report: the slice shown, its figure, the HTML part.

Each shown case and class keeps one display slice: the axial slice through the peak of the map
(3D, in radiological orientation as the segmentation overlays), or the image itself (2D), with
grey values after the display window and the map as uint8, so the report holds a few small
arrays and its JSON only the case ids and slice indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medtransfer.errors import ConfigError
from medtransfer.evaluation.report.format import format_value, json_safe
from medtransfer.evaluation.report.overlays import _radiological, _to_uint8

if TYPE_CHECKING:
    from medtransfer.evaluation.report.report import Report

__all__ = ["METHOD_NAMES", "SaliencySlice", "saliency_figure", "saliency_html", "saliency_slice"]

METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++"}


@dataclass(frozen=True)
class SaliencySlice:
    """One display slice of a case's saliency map for one class (or finding).

    Attributes:
        case_id: the case (the only identifier shown).
        class_name: the class or finding the map explains.
        role: ``"most confident"`` or ``"least confident"`` (among the cases of that class).
        score: the model's probability of that class for the case.
        slice_index: index of the axial slice shown, and ``n_slices`` their number (1 in 2D).
        image: (rows, cols) uint8 grey values after the display window.
        heat: (rows, cols) uint8 saliency, 255 at the case's peak.
        aspect: row spacing / column spacing.
        radiological: True when reoriented to the radiological view (3D images).
        method, layer: how the map was made (``"gradcam"``, the module hooked).
        window: ``(level, width)`` used for ``image``, or None (percentile scaling).
    """

    case_id: str
    class_name: str
    role: str
    score: float
    slice_index: int
    n_slices: int
    image: np.ndarray
    heat: np.ndarray
    aspect: float = 1.0
    radiological: bool = True
    method: str = "gradcam"
    layer: str = ""
    window: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Everything but the pixels (for JSON)."""
        return {
            "case_id": self.case_id,
            "class": self.class_name,
            "role": self.role,
            "score": json_safe(self.score),
            "slice_index": self.slice_index,
            "n_slices": self.n_slices,
            "method": self.method,
            "layer": self.layer,
            "window": None if self.window is None else list(self.window),
        }


def saliency_slice(
    image: Any,
    heat: Any,
    affine: Any,
    *,
    case_id: str,
    class_name: str,
    role: str,
    score: float,
    window: tuple[float, float] | None,
    method: str = "gradcam",
    layer: str = "",
) -> SaliencySlice:
    """The display slice of one case's map: the axial slice through its peak (3D).

    Args:
        image: the source image (2D or 3D array) on the map's grid.
        heat: the saliency map in [0, 1], same shape.
        affine: 4x4 voxel-to-world matrix of the grid (identity display for 2D).
        case_id, class_name, role, score, method, layer: for the caption and the JSON.
        window: ``(level, width)`` for the grey values, or None for the 1-99th percentiles.

    Example:
        >>> import numpy as np
        >>> heat = np.zeros((6, 5, 4)); heat[2, 1, 3] = 1.0
        >>> s = saliency_slice(np.zeros((6, 5, 4)), heat, np.diag([-1.0, -2.0, 3.0, 1.0]),
        ...                    case_id="c1", class_name="lesion", role="most confident",
        ...                    score=0.9, window=(40, 400))
        >>> s.slice_index, s.image.shape, int(s.heat.max()), s.aspect
        (3, (5, 6), 255, 2.0)
    """
    img, sal = np.asarray(image, dtype=np.float32), np.asarray(heat, dtype=np.float32)
    if img.shape != sal.shape:
        raise ConfigError(f"image {img.shape} and saliency {sal.shape} must share one grid.")
    volume = img.ndim == 3
    if img.ndim == 2:
        index, count, aspect = 0, 1, 1.0
    elif img.ndim == 3:
        from nibabel.orientations import apply_orientation

        transform, spacing = _radiological(img, np.asarray(affine, dtype=np.float64))
        img, sal = (apply_orientation(a, transform) for a in (img, sal))
        index = int(sal.max(axis=(0, 1)).argmax())
        count = int(img.shape[2])
        img, sal = img[:, :, index].T, sal[:, :, index].T
        aspect = float(spacing[1] / spacing[0])
    else:
        raise ConfigError(f"saliency overlays need 2D or 3D images, got shape {img.shape}.")
    return SaliencySlice(
        case_id=str(case_id),
        class_name=str(class_name),
        role=role,
        score=float(score),
        slice_index=index,
        n_slices=count,
        image=_to_uint8(img, window),
        heat=np.round(np.clip(sal, 0.0, 1.0) * 255).astype(np.uint8),
        aspect=aspect,
        radiological=volume,
        method=method,
        layer=layer,
        window=window,
    )


def saliency_figure(item: SaliencySlice, size: float = 2.9) -> Any:
    """The slice in grey with the map as a translucent heat map (transparent where it is 0)."""
    from medtransfer.evaluation.report.plots import _figure

    rows, cols = item.image.shape
    height = size * rows * item.aspect / max(cols, 1)
    fig = _figure(size, min(max(height, 1.2), 1.6 * size))
    ax = fig.add_subplot()
    ax.imshow(item.image, cmap="gray", vmin=0, vmax=255, aspect=item.aspect,
              interpolation="nearest")  # fmt: skip
    heat = item.heat.astype(np.float32) / 255.0
    ax.imshow(heat, cmap="jet", vmin=0.0, vmax=1.0, alpha=0.55 * heat, aspect=item.aspect,
              interpolation="bilinear")  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    if item.radiological:
        ax.text(0.01, 0.5, "R", color="white", transform=ax.transAxes, fontsize=8, va="center")
        ax.text(0.97, 0.5, "L", color="white", transform=ax.transAxes, fontsize=8, va="center")
    return fig


def _caption(item: SaliencySlice) -> str:
    text = (
        f"{item.class_name}, {item.role}: case {item.case_id}, "
        f"P({item.class_name}) = {format_value(item.score, digits=3)}."
    )
    if item.radiological:
        text += f" Axial slice {item.slice_index + 1} of {item.n_slices} (through the peak)."
    return text


def saliency_html(report: Report) -> str:
    """The report's saliency part: an explanation, then one row of figures per class."""
    from medtransfer.evaluation.report.html_page import e, figure_html

    items: Sequence[SaliencySlice] = report.saliency
    if not items:
        return ""
    method = METHOD_NAMES.get(items[0].method, items[0].method)
    layers = ", ".join(dict.fromkeys(i.layer for i in items if i.layer))
    parts = [
        "<h2>Saliency: where the model found its evidence</h2>",
        f'<p class="small">{e(method)} of each class\'s score at {e(layers or "the encoder")}, '
        "normalised to its peak per case (red: strongest). For every class, the cases of that "
        "class (by the reference) that the model scored highest and lowest. A map shows what "
        "the score depended on, not whether that is the lesion: read it with the image.</p>",
    ]
    for name in dict.fromkeys(i.class_name for i in items):
        figures = []
        for item in (i for i in items if i.class_name == name):
            caption = _caption(item)
            figures.append(
                f"<figure class=overlay>{figure_html(saliency_figure(item), caption)}"
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
        parts.append(f"<h3>{e(name)}</h3>{''.join(figures)}")
    return "\n".join(parts)
