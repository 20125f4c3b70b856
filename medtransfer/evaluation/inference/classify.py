"""``classify``: a trained classifier on images without labels, one row of probabilities each.

Each image goes through the preset's eval pipeline and one forward pass (a 2D model on a stack
of slices averages its slices). Logits become probabilities as in
:func:`~medtransfer.evaluation.evaluate_classification`: a sigmoid for one output or for a
multi-label model (``model.multilabel``), else a softmax. Decisions: multi-label findings at
their own thresholds (0.5 by default), binary at ``threshold``, several classes by argmax.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose

from medtransfer.errors import ConfigError, ModelError
from medtransfer.evaluation.inference.geometry import prepare_pipeline
from medtransfer.evaluation.metrics.multilabel import resolve_thresholds
from medtransfer.transforms.pipeline_errors import run_pipeline

__all__ = ["classify", "probabilities"]


def probabilities(logits: torch.Tensor, multilabel: bool, case_id: str) -> np.ndarray:
    """(slices, K) logits of one case -> its scores: () binary, (K,) otherwise.

    Example:
        >>> probabilities(torch.tensor([[0.0, 0.0]]), True, "a").tolist()
        [0.5, 0.5]
    """
    if logits.ndim != 2:
        raise ModelError(
            f"case {case_id!r}: the model returned shape {tuple(logits.shape)}; a classifier "
            "returns (N, num_classes) logits."
        )
    if logits.shape[1] == 1 and not multilabel:
        return torch.sigmoid(logits[:, 0]).mean(0).numpy()
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)
    probs = probs.mean(0).numpy()
    return probs[1] if probs.shape[0] == 2 and not multilabel else probs


def _case_id(item: Any, index: int) -> str:
    if isinstance(item, Mapping):
        item = item.get("case_id") or item.get("image") or f"case_{index:04d}"
    from medtransfer.data import case_id_from_path

    return case_id_from_path(str(item)) if isinstance(item, str | os.PathLike) else str(item)


def classify(
    model: torch.nn.Module,
    images: Sequence[Any],
    preset: Any,
    *,
    class_names: Sequence[str] | None = None,
    threshold: Any = None,
    device: str | torch.device = "auto",
    image_key: str | None = None,
) -> list[dict[str, Any]]:
    """Probabilities and decisions of a classifier for images (no labels needed).

    Args:
        model: a classifier ``(N, C, ...) -> (N, K)`` logits.
        images: paths (NIfTI, DICOM, PNG...), in-memory images, or records with ``image``
            (and ``case_id``).
        preset: the ``(train, eval)`` pair the model was trained with.
        class_names: names of the outputs (default ``model.class_names``, else ``class_0``...;
            binary: the positive class).
        threshold: binary: a number (0.5); multi-label: a number, one per finding or
            ``{finding: number}`` (chosen on validation data).
        device: where the forward pass runs.
        image_key: the pipeline's image key (default: its loader's first key).

    Returns:
        One dict per image: ``case_id``, ``score/<name>`` per output (binary: ``score``), and
        ``prediction`` (a 0/1 list for findings, the class index otherwise).

    Example:
        >>> import torch, medtransfer as mt
        >>> preset = mt.transforms.presets.xray(roi_size=(32, 32), mean=0.5, std=0.25, augment=False)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 2))
        >>> model.multilabel, model.class_names = True, ["opacity", "effusion"]
        >>> rows = classify(model, [torch.rand(40, 40)], preset, device="cpu")
        >>> sorted(rows[0]), len(rows[0]["prediction"])
        (['case_id', 'prediction', 'score/effusion', 'score/opacity'], 2)
    """
    from medtransfer.evaluation.inference.predict import resolve_device

    loader, rest, key = prepare_pipeline(preset, image_key)
    pipeline = Compose([loader, rest])
    device = resolve_device(device)
    multilabel = bool(getattr(model, "multilabel", False))
    was_training = model.training
    model.eval().to(device)
    scores, ids = [], []
    try:
        for index, item in enumerate(images):
            cid = _case_id(item, index)
            data = dict(item) if isinstance(item, Mapping) else {key: item}
            x = run_pipeline(pipeline, data)[key]
            batch = torch.as_tensor(x).float()
            batch = batch if "slice_stack" in getattr(x, "meta", {}) else batch[None]
            with torch.no_grad():
                out = model(batch.to(device))
            out = out[0] if isinstance(out, list | tuple) else out
            scores.append(probabilities(out.detach().float().cpu(), multilabel, cid))
            ids.append(cid)
    finally:
        model.train(was_training)
    names = class_names or getattr(model, "class_names", None)
    return _rows(ids, scores, names, threshold, multilabel)


def _rows(
    ids: list[str], scores: list[np.ndarray], names: Any, threshold: Any, multilabel: bool
) -> list[dict[str, Any]]:
    if not scores:
        return []
    binary, k = np.ndim(scores[0]) == 0, int(np.size(scores[0]))
    if names is None:
        names = ["positive"] if binary else [f"class_{i}" for i in range(k)]
    names = [str(n) for n in names][-1:] if binary else [str(n) for n in names]
    if len(names) != k:
        raise ConfigError(f"class_names has {len(names)} names for {k} outputs; give one each.")
    cuts = resolve_thresholds(threshold, names) if multilabel else None
    rows = []
    for cid, s in zip(ids, scores):
        row: dict[str, Any] = {"case_id": cid}
        if binary:
            cut = 0.5 if threshold is None else float(threshold)
            row.update(score=float(s), prediction=int(s >= cut))
            rows.append(row)
            continue
        row.update({f"score/{n}": float(v) for n, v in zip(names, s)})
        row["prediction"] = (s >= cuts).astype(int).tolist() if multilabel else int(np.argmax(s))
        rows.append(row)
    return rows
