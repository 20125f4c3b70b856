"""The saliency part of a classification report: which cases are shown, and their maps.

Cases are chosen from the scores the evaluation already has, then maps are computed for those
only (one backward pass each): for every class (binary: the positive class; multi-label: every
finding), among the cases that belong to it by the reference, the ones the model scored highest
(most confident) and lowest (least confident: the hardest, maybe missed, cases of that class).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medtransfer.errors import ConfigError, MedTransferWarning
from medtransfer.evaluation.explain.layers import feature_levels
from medtransfer.evaluation.explain.saliency import METHODS, POSITIVE, saliency_and_image
from medtransfer.evaluation.report.overlays import resolve_window
from medtransfer.evaluation.report.saliency_view import SaliencySlice, saliency_slice

__all__ = ["ShownCase", "pick_cases", "resolve_saliency", "saliency_overlays"]


@dataclass(frozen=True)
class ShownCase:
    """One case to explain: its position in the records, the class, why it is shown."""

    index: int
    target: int | str
    class_name: str
    role: str
    score: float
    multilabel: bool = False


def resolve_saliency(saliency: Any, cases: Any, model: Any) -> str | None:
    """The method for ``evaluate_classification(saliency=...)``, checked before any case runs.

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 1, weights=None)
        >>> resolve_saliency(True, 2, model), resolve_saliency(False, 2, model)
        ('gradcam', None)
    """
    if saliency is None or saliency is False:
        return None
    method = "gradcam" if saliency is True else saliency
    if method not in METHODS:
        raise ConfigError(
            f"saliency={saliency!r}: pass True (Grad-CAM), False, or one of {METHODS}."
        )
    if isinstance(cases, bool) or not isinstance(cases, int) or cases < 1:
        raise ConfigError(
            f"saliency_cases={cases!r} must be a positive integer (cases shown per class)."
        )
    feature_levels(model)  # a model without an encoder: ModelError now, not after the loop
    return method


def _columns(
    scores: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> list[tuple[int | str, str, np.ndarray, np.ndarray, bool]]:
    """(target, class name, scores, members, multi-label) for each class that is shown."""
    if scores.ndim == 1:
        return [(POSITIVE, names[-1], scores, labels == 1, False)]
    if labels.ndim == 2:
        return [(k, n, scores[:, k], labels[:, k] == 1, True) for k, n in enumerate(names)]
    return [(k, n, scores[:, k], labels == k, False) for k, n in enumerate(names)]


def pick_cases(
    scores: np.ndarray, labels: np.ndarray, names: Sequence[str], n_cases: int
) -> list[ShownCase]:
    """Per class, the ``ceil(n/2)`` highest-scored and ``floor(n/2)`` lowest-scored of its cases.

    Example:
        >>> picks = pick_cases(np.array([0.9, 0.2, 0.6, 0.4]), np.array([1, 0, 1, 1]),
        ...                    ["no lesion", "lesion"], 2)
        >>> [(p.index, p.class_name, p.role) for p in picks]
        [(0, 'lesion', 'most confident'), (3, 'lesion', 'least confident')]
    """
    picks = []
    for target, name, column, members, multilabel in _columns(scores, labels, names):
        ranked = [int(i) for i in np.flatnonzero(members) if np.isfinite(column[i])]
        ranked.sort(key=lambda i: -column[i])
        top = ranked[: math.ceil(n_cases / 2)]
        bottom = [i for i in ranked[::-1][: n_cases // 2] if i not in top]
        for role, chosen in (("most confident", top), ("least confident", bottom)):
            picks += [
                ShownCase(i, target, name, role, float(column[i]), multilabel) for i in chosen
            ]
    return picks


def saliency_overlays(
    model: torch.nn.Module,
    records: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    scores: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    preset: Any,
    *,
    method: str,
    n_cases: int,
    device: Any = "auto",
    image_key: str = "image",
    progress: bool = False,
) -> list[SaliencySlice]:
    """Maps of the cases :func:`pick_cases` chooses, as display slices for the report.

    A case whose map does not fit in the device's memory is left out with a warning: the rest
    of the evaluation is kept.
    """
    from tqdm.auto import tqdm

    shown, window = [], None
    for pick in tqdm(pick_cases(scores, labels, names, n_cases), desc="saliency", unit="map",
                     disable=not progress):  # fmt: skip
        try:
            heat, image = saliency_and_image(
                model, records[pick.index][image_key], preset, method, target=pick.target,
                multilabel=pick.multilabel, device=device, image_key=image_key,
            )  # fmt: skip
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError from torch 2.5 on
            warnings.warn(
                f"saliency of case {ids[pick.index]!r} did not fit in memory; it is not shown. "
                "Use device='cpu' or a smaller layer (saliency(..., layer=-2)).",
                MedTransferWarning,
                stacklevel=2,
            )
            continue
        array = image.numpy()
        if window is None:
            window = resolve_window("auto", array, image.meta.get("modality"))
        shown.append(
            saliency_slice(
                array,
                heat.numpy(),
                heat.affine.numpy(),
                case_id=ids[pick.index],
                class_name=pick.class_name,
                role=pick.role,
                score=pick.score,
                window=window,
                method=method,
                layer=str(heat.meta["layer"]),
            )  # fmt: skip
        )
    return shown
