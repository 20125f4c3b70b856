"""``evaluate_segmentation``: predict every case, score it against its reference, build a Report.

Each case is predicted with :func:`~medtransfer.evaluation.predict` on the image's own
voxel grid, so the reference label map is used exactly as stored (never resampled). Dice, HD95
and surface Dice come from :class:`~medtransfer.evaluation.SegmentationAccumulator`, once for
the raw prediction and once after post-processing; intervals are bootstrapped over cases.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from medtransfer.errors import ConfigError
from medtransfer.evaluation.accumulators.segmentation import SegmentationAccumulator
from medtransfer.evaluation.evaluate.ood_cases import ood_columns, quiet_ood, warn_flagged
from medtransfer.evaluation.evaluate.records import (
    case_ids,
    check_records,
    resolve_class_names,
    run_metadata,
)
from medtransfer.evaluation.inference.postprocess_options import (
    POSTPROCESS_OPTIONS,
    resolve_postprocess,
)
from medtransfer.evaluation.report.overlays import display_slice, pick_examples, resolve_window
from medtransfer.evaluation.report.report import Report

__all__ = ["POSTPROCESS_OPTIONS", "evaluate_segmentation", "reference_on_grid"]

_METRICS = ("dice", "nsd", "hd95")


def _load_image(image: Any) -> Any:
    if isinstance(image, (str, os.PathLike)):
        from medtransfer.io import load

        return load(image)
    return image


def reference_on_grid(label: Any, case_id: str, pred: Any) -> np.ndarray:
    """The reference label map as an integer array on the prediction's grid (checked)."""
    if isinstance(label, (str, os.PathLike)):
        from medtransfer.io import load

        label = load(label, dtype=None)
    affine = getattr(label, "affine", None)
    array = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if array.ndim == pred.ndim + 1 and array.shape[0] == 1:
        array = array[0]  # a channel-first label (1, *spatial)
    if tuple(array.shape) != tuple(pred.shape):
        raise ConfigError(
            f"case {case_id!r}: the label has shape {tuple(array.shape)} but the image "
            f"{tuple(pred.shape)}; the reference must be on the image's voxel grid."
        )
    if affine is not None and not _default_affine(affine):
        ref_affine = np.asarray(affine, dtype=np.float64)
        pred_affine = pred.affine.detach().cpu().numpy().astype(np.float64)
        if not np.allclose(ref_affine, pred_affine, atol=1e-3, rtol=1e-4):
            raise ConfigError(
                f"case {case_id!r}: the label's affine differs from the image's (another "
                "orientation or origin); resample the label onto the image grid first."
            )
    if not np.array_equal(array, np.round(array)):
        raise ConfigError(f"case {case_id!r}: the label holds non-integer values, not a label map.")
    return array.astype(np.int64, copy=False)


def _default_affine(affine: Any) -> bool:
    return bool(np.array_equal(np.asarray(affine, dtype=np.float64), np.eye(4)))


def _num_classes(model: Any, class_names: Any) -> int | None:
    count = getattr(model, "num_classes", None)
    if isinstance(count, int):
        return max(count, 2)  # a one-channel (sigmoid) model segments one class
    if isinstance(class_names, Mapping):
        return max(int(k) for k in class_names) + 1
    if isinstance(class_names, Sequence) and not isinstance(class_names, str):
        return len(class_names) + 1
    return None


def _rows(
    accumulators: dict[str, SegmentationAccumulator], names: list[str], **summary: Any
) -> list[dict[str, Any]]:
    estimates = {suffix: acc.summary(**summary) for suffix, acc in accumulators.items()}
    rows = []
    for metric in _METRICS:
        for suffix, by_metric in estimates.items():
            for name, est in zip(names, by_metric[metric]):
                rows.append({"metric": metric + suffix, "class": name, **est.as_dict()})
    return rows


def evaluate_segmentation(
    model: Any,
    records: Sequence[Mapping[str, Any]],
    preset: Any,
    *,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    roi_size: Sequence[int] | None = None,
    overlap: float = 0.25,
    tta: bool | Sequence[Sequence[int]] = False,
    postprocess: bool | Mapping[str, Any] | None = None,
    tolerance_mm: float = 2.0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    history: Any = None,
    keep_predictions: bool = False,
    display_window: Any = "auto",
    device: str | torch.device = "auto",
    batch_size: int = 4,
    image_key: str = "image",
    label_key: str = "label",
    progress: bool = True,
    ood: Any = None,
) -> Report:
    """Evaluate a segmenter on labelled records: Dice, HD95, surface Dice with 95% CIs.

    Args:
        model: the segmenter (``mt.models.create_segmenter`` or any ``(N, C, ...) -> (N, K, ...)``
            network).
        records: dicts with ``image`` and ``label`` (paths or in-memory images, label on the
            image's grid) and ``case_id`` (the only identifier the report keeps).
        preset: the ``(train, eval)`` pair used in training (its eval pipeline is applied).
        class_names: foreground class names (label 1, 2, ...) or ``{value: name}``.
        roi_size, overlap, tta, device, batch_size: passed to ``predict``.
        postprocess: opt-in. None or False: the raw predictions only; True: keep the largest
            component of every class; a dict of options of
            ``medtransfer.evaluation.postprocess`` whose classes may be names from
            ``class_names``: ``{"largest_component": ["liver"], "min_island_mm3": {"lesion":
            20}}`` (also ``fill_holes``, ``labels``, ``connectivity``). When given, metrics are
            reported with and without it (``*_post``) and the report says what was applied.
        tolerance_mm: surface Dice tolerance.
        n_resamples, confidence, seed: bootstrap over cases.
        history: the training History (or a dict of per-epoch lists) for the HTML curves.
        keep_predictions: keep ``{case_id: label map}`` in ``Report.predictions``.
        display_window: overlay grey levels: ``"auto"`` (CT abdomen window 40/400 for CT,
            percentiles otherwise), None (percentiles) or ``(level, width)``.
        image_key, label_key: record keys.
        progress: show a tqdm progress bar.
        ood: an :class:`~medtransfer.evaluation.OODDetector` of the model's training cases:
            each case gets ``ood_score`` and ``out_of_distribution`` columns, and one
            :class:`~medtransfer.evaluation.OutOfDistributionWarning` names the flagged cases.

    Returns:
        A :class:`~medtransfer.evaluation.Report` with task ``"segmentation"``.

    Raises:
        ConfigError: bad records, labels off the image grid, bad options.

    Example:
        >>> import torch, medtransfer as mt
        >>> records = mt.data.synthetic.phantoms(2, shape=(24, 24, 4))
        >>> preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
        >>> model = torch.nn.Conv2d(1, 5, 1)  # untrained: 5 classes, as the phantoms
        >>> report = evaluate_segmentation(model, records, preset, n_resamples=50,
        ...                                device="cpu", progress=False)
        >>> report.summary[0]["metric"], report.summary[0]["class"], len(report.cases)
        ('dice', 'class_1', 2)
    """
    from tqdm.auto import tqdm

    from medtransfer.evaluation.inference.postprocess import postprocess as apply_postprocess
    from medtransfer.evaluation.inference.predict import predict

    records = check_records(records, (image_key, label_key))
    ids = case_ids(records)
    num_classes = _num_classes(model, class_names)
    names_by_value = resolve_class_names(class_names, num_classes)
    options = resolve_postprocess(postprocess, names_by_value)
    kwargs = {"metrics": _METRICS, "tolerance_mm": tolerance_mm, "num_classes": num_classes}
    accumulators = {"": SegmentationAccumulator(**kwargs)}
    if options is not None:
        accumulators["_post"] = SegmentationAccumulator(**kwargs)
    candidates, predictions, window, ood_rows = [], {}, None, {}
    for cid, record in tqdm(
        list(zip(ids, records)), desc="evaluate", unit="case", disable=not progress
    ):
        image = _load_image(record[image_key])
        with quiet_ood():  # one warning for all flagged cases, below
            pred = predict(model, image, preset, roi_size=roi_size, overlap=overlap, tta=tta,
                           device=device, batch_size=batch_size, ood=ood, case_id=cid)  # fmt: skip
        ood_rows[cid] = ood_columns(pred.meta)
        ref = reference_on_grid(record[label_key], cid, pred)
        spacing = tuple(float(s) for s in pred.meta["spacing"])
        pred_np = pred.numpy()
        accumulators[""].update(pred_np[None, None], ref[None, None], spacing, [cid])
        if options is not None:
            cleaned = np.asarray(apply_postprocess(pred, **options).numpy())
            accumulators["_post"].update(cleaned[None, None], ref[None, None], spacing, [cid])
        array = np.asarray(image.numpy() if hasattr(image, "numpy") else image, dtype=np.float32)
        if window is None:
            modality = getattr(image, "meta", {}).get("modality")
            window = resolve_window(display_window, array, modality)
        candidates.append(
            display_slice(
                array, ref, pred_np, pred.affine.numpy(), case_id=cid, dice={}, window=window
            )
        )
        if keep_predictions:
            predictions[cid] = pred
    raw = accumulators[""]
    width = raw.values("dice").shape[1]
    names_by_value = {v: names_by_value.get(v, f"class_{v}") for v in range(1, width + 1)}
    names = list(names_by_value.values())
    summary = _rows(accumulators, names, n_resamples=n_resamples, confidence=confidence, seed=seed)
    cases = [{"case_id": cid, **ood_rows.get(cid, {})} for cid in ids]
    warn_flagged(ood_rows)
    for metric in _METRICS:
        for suffix, acc in accumulators.items():
            table = acc.values(metric)
            for row, values in zip(cases, table):
                row.update({f"{metric}{suffix}/{n}": float(v) for n, v in zip(names, values)})
    dice = raw.values("dice")
    with np.errstate(invalid="ignore"):
        scores = {
            cid: float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")
            for cid, d in zip(ids, dice)
        }
    overlays = [
        replace(o, dice={n: float(v) for n, v in zip(names, dice[ids.index(o.case_id)])})
        for o in pick_examples(candidates, scores)
    ]
    empty = raw.empty_counts()
    metadata = run_metadata(
        model, preset, len(ids), task="segmentation", class_names=names,
        tolerance_mm=tolerance_mm, postprocess=options, roi_size=roi_size, overlap=overlap,
        tta=tta, n_resamples=n_resamples, confidence=confidence, seed=seed,
        display_window=window,
        empty_counts={n: {k: int(v[j]) for k, v in empty.items()} for j, n in enumerate(names)},
    )  # fmt: skip
    return Report(
        "segmentation",
        summary=summary,
        cases=cases,
        metadata=metadata,
        history=history,
        overlays=overlays,
        predictions=predictions if keep_predictions else None,
    )
