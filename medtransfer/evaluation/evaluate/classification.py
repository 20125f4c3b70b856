"""``evaluate_classification``: score every case with a classifier, build a Report.

Each record goes through the preset's eval pipeline and one forward pass; logits become
probabilities (a sigmoid for one output or for multi-label records, else a softmax; two classes
are reduced to the probability of class 1). A 2D model on a stack of slices (``SliceStackd``)
gives one probability per slice and the case gets their mean. Metrics, intervals and curves come
from :class:`~medtransfer.evaluation.ClassificationAccumulator` and its functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from medtransfer.errors import ConfigError
from medtransfer.evaluation.accumulators.classification import ClassificationAccumulator
from medtransfer.evaluation.evaluate.ood_cases import ood_score, warn_flagged
from medtransfer.evaluation.evaluate.records import (
    case_ids,
    check_records,
    eval_pipeline,
    run_metadata,
)
from medtransfer.evaluation.explain.report_cases import resolve_saliency, saliency_overlays
from medtransfer.evaluation.inference.classify import probabilities
from medtransfer.evaluation.inference.ood import case_embedding
from medtransfer.evaluation.metrics.calibration import calibration_bins
from medtransfer.evaluation.metrics.multilabel import label_counts, resolve_thresholds
from medtransfer.evaluation.metrics.ranking import auroc, roc_curve
from medtransfer.evaluation.report.report import Report
from medtransfer.transforms.pipeline_errors import run_pipeline

__all__ = ["evaluate_classification"]


def _label(value: Any, case_id: str) -> int | list[int | float]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim > 1 or array.dtype.kind not in "biuf":
        raise ConfigError(
            f"case {case_id!r}: label {value!r} must be a class index (int) or a list of 1/0 "
            "indicators (multi-label; NaN or -1: not known)."
        )
    if array.ndim == 1:  # multi-label: 1/0 stay ints, NaN / -1 (not known) stay floats
        return [int(v) if v in (0, 1) else float(v) for v in array.astype(float)]
    return int(array)


def _names(class_names: Sequence[str] | None, k: int, binary: bool) -> list[str]:
    if class_names is not None:
        names = [str(n) for n in class_names]
        if len(names) != (2 if binary else k):
            raise ConfigError(
                f"class_names={list(names)}: give {2 if binary else k} names, one per class "
                "(including the negative class 0 for a binary task)."
            )
        return names
    return ["negative", "positive"] if binary else [f"class_{i}" for i in range(k)]


def _curves(scores: np.ndarray, labels: np.ndarray, names: list[str], n_bins: int) -> dict:
    columns = (
        [(names[1], scores, labels)]
        if scores.ndim == 1
        else [
            (name, scores[:, k], labels[:, k] if labels.ndim == 2 else (labels == k).astype(int))
            for k, name in enumerate(names)
        ]
    )
    roc = []
    for name, s, y in columns:
        s, y = s[y >= 0], y[y >= 0]  # multi-label: known labels only (NaN and -1 fail this)
        if 0 < int(np.sum(y)) < len(y):  # a curve needs both outcomes
            fpr, tpr, _ = roc_curve(s, y)
            roc.append({"class": name, "fpr": fpr.tolist(), "tpr": tpr.tolist(),
                        "auroc": float(auroc(s, y))})  # fmt: skip
    if labels.ndim == 2:  # multi-label: each finding on its known cases
        known = [labels[:, k] >= 0 for k in range(labels.shape[1])]
        bins = [
            calibration_bins(scores[m, k], labels[m, k], n_bins)[0]
            for k, m in enumerate(known)
            if m.any()
        ]
        names = [n for n, m in zip(names, known) if m.any()]
    else:
        bins = calibration_bins(scores, labels, n_bins)
    bin_names = (
        [names[1]] if scores.ndim == 1 else ["top class"] if labels.ndim == 1 else list(names)
    )
    calibration = [
        {"class": name, "edges": b.edges.tolist(), "counts": b.counts.tolist(),
         "confidence": b.confidence.tolist(), "accuracy": b.accuracy.tolist(), "ece": b.ece}
        for name, b in zip(bin_names, bins)
    ]  # fmt: skip
    return {"roc": roc, "calibration": calibration}


def evaluate_classification(
    model: torch.nn.Module,
    records: Sequence[Mapping[str, Any]],
    preset: Any,
    *,
    class_names: Sequence[str] | None = None,
    threshold: float | Sequence[float] | Mapping[str, float] | None = None,
    n_bins: int = 10,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    history: Any = None,
    device: str | torch.device = "auto",
    image_key: str = "image",
    label_key: str = "label",
    progress: bool = True,
    ood: Any = None,
    saliency: bool | str = False,
    saliency_cases: int = 2,
) -> Report:
    """Evaluate a classifier on labelled records: AUROC, sensitivity, specificity, calibration.

    Args:
        model: a classifier ``(N, C, ...) -> (N, K)`` logits (``mt.models.create_classifier``).
        records: dicts with ``image``, ``label`` (class index, or for multi-label findings a
            list of 1/0, NaN or -1 meaning not known: skipped by the metrics of that finding)
            and ``case_id`` (the only identifier the report keeps).
        preset: the ``(train, eval)`` pair of a classification preset, as in training.
        class_names: names of all classes, e.g. ``["no lesion", "lesion"]`` (multi-label: the
            findings, default ``model.class_names`` when the model has them).
        threshold: decision threshold for binary/multi-label tasks (None: 0.5; argmax for
            multi-class); multi-label also one per finding or ``{finding: number}``. Choose
            it on validation data (:func:`~medtransfer.evaluation.choose_thresholds`), not on
            these cases.
        n_bins: calibration bins.
        n_resamples, confidence, seed: bootstrap over cases.
        history: the training History (or a dict of per-epoch lists) for the HTML curves.
        device: where the forward pass runs.
        image_key, label_key: record keys.
        progress: show a tqdm progress bar.
        ood: an :class:`~medtransfer.evaluation.OODDetector` of the model's training cases:
            each case gets ``ood_score`` and ``out_of_distribution`` columns, and one
            :class:`~medtransfer.evaluation.OutOfDistributionWarning` names the flagged cases.
        saliency: opt-in saliency maps in the report: True (Grad-CAM), ``"gradcampp"``, or
            False. For each class (binary: the positive class; multi-label: each finding), the
            cases of that class the model scored highest and lowest are shown with their
            :func:`~medtransfer.evaluation.saliency` map (one backward pass per shown case).
            Needs a model with an encoder (``mt.models.create_classifier``).
        saliency_cases: cases shown per class: the ``ceil(n/2)`` most and ``floor(n/2)`` least
            confident.

    Returns:
        A :class:`~medtransfer.evaluation.Report` with task ``"classification"``.

    Example:
        >>> import torch, medtransfer as mt
        >>> records = mt.data.synthetic.phantoms(4, task="classification", shape=(16, 16, 4))
        >>> preset = mt.transforms.presets.ct("classification", roi_size=(16, 16, 4))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
        >>> report = evaluate_classification(model, records, preset, n_resamples=50, progress=False)
        >>> report.task, [row["case_id"] for row in report.cases][:2]
        ('classification', ['phantom-000', 'phantom-001'])
    """
    from tqdm.auto import tqdm

    from medtransfer.evaluation.inference.predict import resolve_device

    records = check_records(records, (image_key, label_key))
    ids = case_ids(records)
    method = resolve_saliency(saliency, saliency_cases, model)
    pipeline = eval_pipeline(preset)
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    model.to(device)
    all_scores, all_labels, ood_rows = [], [], {}
    try:
        for cid, record in tqdm(
            list(zip(ids, records)), desc="evaluate", unit="case", disable=not progress
        ):
            label = _label(record[label_key], cid)
            x = run_pipeline(pipeline, dict(record))[image_key]
            stacked = "slice_stack" in getattr(x, "meta", {})
            batch = torch.as_tensor(x).float()
            batch = batch if stacked else batch[None]
            if ood is not None:
                embedding = case_embedding(model, batch, device=device)
                score, flagged = ood_score(ood, embedding)
                ood_rows[cid] = {"ood_score": score, "out_of_distribution": flagged}
            with torch.no_grad():
                out = model(batch.to(device))
            out = out[0] if isinstance(out, (list, tuple)) else out
            multilabel = isinstance(label, list) or bool(getattr(model, "multilabel", False))
            all_scores.append(probabilities(out.detach().float().cpu(), multilabel, cid))
            all_labels.append(label)
    finally:
        model.train(was_training)
    scores, labels = np.stack(all_scores), np.asarray(all_labels)
    binary = scores.ndim == 1
    multilabel = labels.ndim == 2
    if class_names is None and multilabel:
        class_names = getattr(model, "class_names", None)
    names = _names(class_names, 1 if binary else scores.shape[1], binary)
    cut = resolve_thresholds(threshold, names) if multilabel else threshold
    acc = ClassificationAccumulator(
        threshold=cut, n_bins=n_bins, class_names=None if binary else names
    )
    acc.update(scores, labels, case_ids=ids)
    summary = []
    for key, est in acc.summary(n_resamples, confidence, seed).items():
        metric, _, cls = key.partition("/")
        summary.append({"metric": metric, "class": cls or "all", **est.as_dict()})
    cut = 0.5 if cut is None else cut
    cases = []
    for cid, s, y in zip(ids, scores, labels):
        label = [int(v) if v >= 0 else None for v in y] if multilabel else y.tolist()
        row: dict[str, Any] = {"case_id": cid, "label": label, **ood_rows.get(cid, {})}
        if binary:
            row.update(score=float(s), prediction=int(s >= cut))
        else:
            row.update({f"score/{n}": float(v) for n, v in zip(names, s)})
            row["prediction"] = (
                (s >= cut).astype(int).tolist() if labels.ndim == 2 else int(s.argmax())
            )
        cases.append(row)
    warn_flagged(ood_rows)
    findings: dict[str, Any] = {}
    if multilabel:  # one threshold per finding, and the finding's label counts
        threshold = dict(zip(names, np.asarray(cut).tolist()))
        findings = {"multilabel": True, "label_counts": label_counts(labels, names)}
    metadata = run_metadata(
        model, preset, len(ids), task="classification", class_names=names, threshold=threshold,
        n_bins=n_bins, n_resamples=n_resamples, confidence=confidence, seed=seed, **findings,
    )  # fmt: skip
    shown = []  # maps of the shown cases only: one backward pass each
    if method is not None:
        shown = saliency_overlays(
            model, records, ids, scores, labels, names, preset, method=method,
            n_cases=saliency_cases, device=device, image_key=image_key, progress=progress,
        )  # fmt: skip
    return Report(
        "classification",
        summary=summary,
        cases=cases,
        metadata=metadata,
        history=history,
        curves=_curves(scores, labels, names, n_bins),
        saliency=shown,
    )
