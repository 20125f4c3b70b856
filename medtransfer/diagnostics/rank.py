"""``rank_encoders``: which pretrained encoder to fine-tune, estimated before any training.

Each candidate's encoder is built once, frozen, run over the labelled cases
(:mod:`~medtransfer.diagnostics.features`), and its features are scored by a transferability
score (:mod:`~medtransfer.diagnostics.scores`). A candidate that cannot be built (weights not
installed, a name timm does not know) is listed as skipped with the reason; the others are ranked.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from medtransfer.diagnostics.candidates import (
    Candidate,
    as_candidate,
    preset_identity,
    weights_identity,
)
from medtransfer.diagnostics.features import extract_features
from medtransfer.diagnostics.ranking import Ranking
from medtransfer.diagnostics.scores import NEEDS_SOURCE_PROBS, SCORES
from medtransfer.errors import ConfigError, EncoderError, MedTransferError, WeightsError

__all__ = ["rank_encoders"]


def candidate_encoder(candidate: Candidate | torch.nn.Module) -> tuple[str, Any]:
    """``(name, encoder)`` of a candidate: built from its fields, or a model's ``.encoder``."""
    if isinstance(candidate, torch.nn.Module):
        encoder = getattr(candidate, "encoder", candidate)
        if not hasattr(encoder, "out_channels"):
            raise ConfigError(
                f"A model candidate needs an .encoder like mt.models builds; got "
                f"{type(candidate).__name__}."
            )
        label = getattr(candidate, "label", None) or (
            f"{type(candidate).__name__} ({getattr(encoder, 'name', 'encoder')})"
        )
        return label, encoder
    from medtransfer import encoders

    encoder = encoders.create(
        candidate.encoder, weights=candidate.weights, in_channels=candidate.in_channels,
        spatial_dims=candidate.spatial_dims, conversion=candidate.conversion,
    )  # fmt: skip
    return candidate.name, encoder


def _source_head(candidate: Candidate | torch.nn.Module) -> tuple[Any, str | None]:
    """The ImageNet classifier of a 2D candidate, or None with the reason LEEP cannot run."""
    if not isinstance(candidate, Candidate):
        return None, "LEEP needs the source classifier; give the candidate as a name"
    if candidate.weights is None:
        return None, "random initialisation has no source classifier for LEEP"
    if candidate.spatial_dims == 3:
        return None, "LEEP needs a 2D source classifier; this candidate is 3D"
    from medtransfer import encoders

    try:
        head = encoders.create_imagenet_classifier(
            candidate.encoder, candidate.weights, in_channels=candidate.in_channels
        )
    except WeightsError as err:
        return None, f"no source classifier head in these weights ({err})"
    return head, None


def _skipped(name: str, method: str, reason: str) -> dict[str, Any]:
    return {"candidate": name, "score": None, "method": method, "feature_dim": None,
            "n_samples": None, "seconds": None, "status": "skipped", "reason": reason}  # fmt: skip


def rank_encoders(
    candidates: Sequence[str | Candidate | torch.nn.Module],
    records: Sequence[Mapping[str, Any]],
    preset: tuple[Any, Any] | Callable[..., tuple[Any, Any]],
    *,
    task: str,
    method: str = "logme",
    max_samples: int = 4000,
    seed: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Ranking:
    """Rank pretrained encoders for a task by a transferability score of their frozen features.

    Args:
        candidates: encoder names with options (``"tf_efficientnet_lite0:2.5d"``, see
            :func:`~medtransfer.diagnostics.as_candidate`), :class:`Candidate` objects, or built
            models with an ``encoder`` (scored on the model's encoder as it is).
        records: labelled cases (``image`` and ``label``), e.g. the training split.
        preset: a ``(train, eval)`` pair or a preset callable (``functools.partial(
            mt.transforms.presets.mri, "segmentation", roi_size=(96, 96))``), called per
            candidate with its ``input_spec``, ``context`` and ``spatial_dims`` so each encoder
            sees the input form and normalisation it will be fine-tuned with.
        task: ``"classification"`` or ``"segmentation"``.
        method: ``"logme"`` (default; You et al., ICML 2021), ``"h_score"``, ``"leep"`` (2D
            candidates with an ImageNet head only) or ``"linear_probe"`` (slower reference).
        max_samples: cases (classification) or class-balanced pixels (segmentation) scored.
        seed, batch_size: sampling seed; slices per forward pass.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        cache_dir: keep features on disk (re-ranking with another method is then cheap).
        progress: a progress bar per candidate.

    Returns:
        A :class:`~medtransfer.diagnostics.Ranking`, best first, skipped candidates last.

    Example:
        >>> import functools, torch, medtransfer as mt
        >>> cases = [{"image": torch.rand(32, 32, 2), "label": i % 2} for i in range(8)]
        >>> preset = functools.partial(mt.transforms.presets.mri, "classification")
        >>> ranking = mt.diagnostics.rank_encoders(
        ...     ["resnet18:random", "no_such_net"], cases, preset, task="classification",
        ...     method="h_score", progress=False)
        >>> [row["status"] for row in ranking.rows]
        ['ok', 'skipped']
    """
    if method not in SCORES:
        raise ConfigError(f"method={method!r} is not one of {sorted(SCORES)}.")
    if method in NEEDS_SOURCE_PROBS and task != "classification":
        raise ConfigError(
            "LEEP scores image-level predictions of the source classifier; for segmentation "
            "use method='logme', 'h_score' or 'linear_probe'."
        )
    if not candidates:
        raise ConfigError("rank_encoders needs at least one candidate.")
    records = list(records)
    if len(records) < 2:
        raise ConfigError(f"rank_encoders needs at least 2 labelled cases; got {len(records)}.")
    parsed = [c if isinstance(c, torch.nn.Module) else as_candidate(c) for c in candidates]
    names = [getattr(c, "name", None) for c in parsed]
    repeated = sorted({n for n in names if n is not None and names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"Candidates listed twice: {repeated}; give each once (or distinct labels)."
        )
    from medtransfer.evaluation import resolve_device

    torch_device = resolve_device(device)
    rows = []
    seen: dict[str, int] = {}
    for raw, candidate in zip(candidates, parsed):
        start = time.perf_counter()
        try:
            name, encoder = candidate_encoder(candidate)
            seen[name] = seen.get(name, 0) + 1
            name = name if seen[name] == 1 else f"{name} #{seen[name]}"  # two built models
        except (WeightsError, EncoderError) as err:
            rows.append(_skipped(getattr(candidate, "name", str(raw)), method, str(err)))
            continue
        head = None
        if method in NEEDS_SOURCE_PROBS:
            head, reason = _source_head(candidate)
            if head is None:
                rows.append(_skipped(name, method, reason or "no source classifier"))
                continue
        try:
            transform = candidate_eval_transform(candidate, preset, encoder)
            features = extract_features(
                encoder, records, transform, task=task, max_samples=max_samples, seed=seed,
                batch_size=batch_size, source_head=head, device=torch_device,
                cache_key=_key(candidate, preset), cache_dir=cache_dir, progress=progress,
                label=name,
            )  # fmt: skip
        except (MedTransferError, torch.cuda.OutOfMemoryError) as err:
            rows.append(_skipped(name, method, f"{type(err).__name__}: {err}"))
            continue
        try:
            score = _score(method, features, task)
        except MedTransferError as err:
            rows.append(_skipped(name, method, f"cannot score: {err}"))
            continue
        rows.append({"candidate": name, "score": score, "method": method,
                     "feature_dim": features.dim, "n_samples": len(features.labels),
                     "seconds": round(time.perf_counter() - start, 3), "status": "ok",
                     "reason": None})  # fmt: skip
    metadata = _metadata(records, task, max_samples, seed, torch_device)
    return Ranking(method=method, task=task, rows=rows, metadata=metadata)


def candidate_eval_transform(candidate: Any, preset: Any, encoder: Any) -> Any:
    """The eval pipeline for ``encoder``: a pair's second item, an eval ``Compose`` itself, or a
    preset callable called with the encoder's input spec (and the candidate's context and
    dimensions)."""
    from monai.transforms import Compose

    if isinstance(preset, Compose):
        return preset
    if isinstance(candidate, Candidate):
        holder = type("_Model", (), {"encoder": encoder})()
        return candidate.preset(preset, holder)[1]
    if isinstance(preset, tuple) and len(preset) == 2:
        return preset[1]
    return preset(input_spec=encoder.input_spec, spatial_dims=encoder.spatial_dims)[1]


def _key(candidate: Any, preset: Any) -> str | None:
    """Cache key: the candidate's fields and weights and the preset; None (no cache) for a built
    model (its weights may have changed) or a preset that cannot be identified."""
    identity = preset_identity(preset)
    if not isinstance(candidate, Candidate) or identity is None:
        return None
    return json.dumps([repr(candidate), weights_identity(candidate), identity], default=str)


def _score(method: str, features: Any, task: str) -> float:
    if method in NEEDS_SOURCE_PROBS:
        return float(SCORES[method](features.source_probs, features.labels))
    if method == "linear_probe" and task == "segmentation":  # folds never split a case's pixels
        return float(SCORES[method](features.features, features.labels, groups=features.cases))
    return float(SCORES[method](features.features, features.labels))


def _metadata(records, task, max_samples, seed, device) -> dict[str, Any]:
    from medtransfer import __version__

    sampling = (
        "class-balanced pixel hypercolumns of all pyramid levels"
        if task == "segmentation"
        else "deepest pyramid level, global average pooled (mean over slices)"
    )
    return {"n_cases": len(records), "max_samples": max_samples, "seed": seed,
            "device": str(device), "features": sampling, "medtransfer": __version__,
            "date": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
