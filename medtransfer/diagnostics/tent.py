"""``tent``: entropy minimisation of the BatchNorm scales and shifts on an unlabelled target.

TENT (Wang, Shelhamer, Liu, Olshausen, Darrell, "Tent: Fully Test-Time Adaptation by Entropy
Minimization", ICLR 2021), bounded to a fixed number of optimizer steps, between two AdaBN
re-estimations (:mod:`~medtransfer.diagnostics.adapt_bn`), with a guard against its failure mode:
a collapse to one predicted class.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medtransfer.diagnostics.adapt_bn import (
    TargetTiles,
    batchnorm_layers,
    check_positive,
    forward_logits,
    reestimate_batchnorm,
    working_copy,
)
from medtransfer.errors import ConfigError, MedTransferWarning, ModelError

__all__ = ["COLLAPSE_SHARE", "tent"]

#: :func:`tent` warns when the majority predicted class rises above this share of predictions.
COLLAPSE_SHARE = 0.98


def _shuffled_batches(
    target: TargetTiles, sizes: Counter, batch_size: int, seed: int
) -> Iterator[torch.Tensor]:
    """Endless random batches: cases in a new order each epoch, their tiles through a shuffle
    pool of up to four batches per tile shape (``sizes``: how many tiles of each shape exist)."""
    rng = np.random.default_rng(seed)
    pool: dict[tuple, list[torch.Tensor]] = {}
    while True:
        for index in rng.permutation(len(target)):
            for tile in target.tiles(int(index)):
                shape = tuple(tile.shape)
                same = pool.setdefault(shape, [])
                same.append(tile)
                exist = max(1, sizes[shape])
                if len(same) >= min(4 * batch_size, exist):
                    take = min(batch_size, exist)
                    chosen = set(rng.choice(len(same), size=take, replace=False).tolist())
                    yield torch.stack([same[i] for i in sorted(chosen)])
                    pool[shape] = [t for i, t in enumerate(same) if i not in chosen]


def _predicted(logits: torch.Tensor) -> torch.Tensor:
    """Class index of every prediction (pixel or case): argmax, or ``logit > 0`` for one output."""
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def _class_counts(logits: torch.Tensor) -> np.ndarray:
    classes = max(2, int(logits.shape[1]))
    return torch.bincount(_predicted(logits).flatten(), minlength=classes).cpu().numpy()


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each prediction: softmax over dim 1, binary for one output."""
    logits = logits.float()
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits, torch.sigmoid(logits), reduction="none")[:, 0]  # fmt: skip
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(1)


def tent(
    model: nn.Module,
    target_records: Sequence[Mapping[str, Any]],
    preset: Any,
    *,
    steps: int = 10,
    lr: float = 1e-3,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    inplace: bool = False,
    seed: int = 0,
    progress: bool = False,
    image_key: str = "image",
    return_log: bool = False,
) -> nn.Module | tuple[nn.Module, list[dict[str, float]]]:
    """TENT: a few entropy-minimising steps on the BatchNorm scales and shifts, without labels.

    1. AdaBN (:func:`~medtransfer.diagnostics.adapt_batchnorm`) re-estimates the running
       statistics on the target.
    2. Only the BatchNorm affine parameters (weight, bias) are trainable; BatchNorms normalise by
       the statistics of each batch, everything else is in eval mode. ``steps`` Adam updates (as
       the paper's CIFAR runs; its ImageNet runs used SGD with momentum 0.9, which needs its own
       learning rate) minimise the mean Shannon entropy of the predictions: the softmax per pixel
       (segmentation) or per case (classification; per slice for 2D models), a binary entropy
       for one-output (sigmoid) models. Batches are random tiles of random cases (``seed``).
    3. The running statistics are re-estimated on the target once more, so that the model in
       eval mode (what :func:`~medtransfer.evaluation.predict` uses) sees target statistics.

    **Failure mode.** Entropy minimisation rewards confidence, not correctness: with many
    steps, a large ``lr``, or small or one-class batches it can collapse to predicting one class
    everywhere (entropy zero, the model useless). Keep ``steps`` and ``lr`` small, check the
    result on a few labelled target cases when you can, and heed the guard: the predicted class
    distribution over all target tiles is counted during the AdaBN passes before and after
    adapting (BatchNorms on batch statistics, as while adapting), and a
    :class:`~medtransfer.errors.MedTransferWarning` is raised when a class predicted before is no
    longer predicted, or when the majority class's share rises above :data:`COLLAPSE_SHARE`
    while the other classes' share more than halves. The model is returned anyway.

    Args:
        model, target_records, preset, device, inplace, progress, image_key: as in
            :func:`adapt_batchnorm`.
        steps: the total number of optimizer updates (not epochs).
        lr: Adam's learning rate.
        batch_size: tiles (2D: slices) per step; at most the number of target tiles.
        seed: seeds the order of cases and tiles.
        return_log: also return a list with one dict per step: ``step`` (1-based), ``entropy``
            (mean entropy of that step's batch before its update, nats) and ``majority_share``
            (the share of that batch's predictions in its most predicted class).

    Returns:
        The adapted model (a copy unless ``inplace``; eval mode; the ``requires_grad`` flags as
        they were), or ``(model, log)`` with ``return_log=True``.

    Raises:
        ConfigError, ModelError: as in :func:`adapt_batchnorm`; ModelError also when no
            BatchNorm has affine parameters.

    Example:
        >>> import medtransfer as mt
        >>> preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
        >>> model = mt.models.create_segmenter("test_resnet", 2, weights=None, seed=0)
        >>> target = [{"image": c["image"]} for c in mt.data.synthetic.phantoms(2, shape=(24, 24, 4))]
        >>> adapted, log = tent(model, target, preset, steps=3, return_log=True)
        >>> [entry["step"] for entry in log], sorted(log[0])
        ([1, 2, 3], ['entropy', 'majority_share', 'step'])
    """
    check_positive(steps=steps, batch_size=batch_size)
    if not isinstance(lr, int | float) or isinstance(lr, bool) or not lr > 0:
        raise ConfigError(f"lr={lr!r} must be a positive number (1e-4 to 1e-3 is usual).")
    target = TargetTiles(target_records, preset, image_key)
    model, device = working_copy(model, inplace, device)
    norms = batchnorm_layers(model, "TENT")
    affine = [p for norm in norms for p in (norm.weight, norm.bias) if p is not None]
    if not affine:
        raise ModelError(
            "TENT adapts BatchNorm scales and shifts, and this model's BatchNorms have none "
            "(affine=False); use adapt_batchnorm instead."
        )

    def counter(total: list[np.ndarray]) -> Callable[[torch.Tensor], None]:
        return lambda out: total.append(_class_counts(out))

    counts: list[np.ndarray] = []
    batches = target.batches(batch_size, progress, "TENT: AdaBN", seed=seed)
    sizes = reestimate_batchnorm(model, norms, batches, device, counter(counts))
    before = np.sum(counts, axis=0)
    flags = {p: p.requires_grad for p in model.parameters()}
    log: list[dict[str, float]] = []
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in affine:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(affine, lr=float(lr))
        for norm in norms:
            norm.train()
        stream = _shuffled_batches(target, sizes, batch_size, seed)
        from tqdm.auto import tqdm

        for step in tqdm(range(1, steps + 1), desc="TENT", unit="step", disable=not progress):
            out = forward_logits(model, next(stream).to(device))
            loss = _entropy(out).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            counted = _class_counts(out.detach())
            share = float(counted.max() / counted.sum())
            log.append({"step": step, "entropy": float(loss.detach()), "majority_share": share})
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None
        model.eval()
    counts = []
    batches = target.batches(batch_size, progress, "TENT: AdaBN", seed=seed)
    reestimate_batchnorm(model, norms, batches, device, counter(counts))
    after = np.sum(counts, axis=0)
    reason = _collapse_reason(before, after)
    if reason is not None:
        warnings.warn(
            f"TENT may have collapsed: {reason}. Entropy minimisation rewards confidence, not "
            f"correctness; use fewer steps (now {steps}) or a smaller lr (now {lr}), larger "
            "batches, or adapt_batchnorm alone, and check on a few labelled target cases.",
            MedTransferWarning,
            stacklevel=2,
        )
    return (model, log) if return_log else model


def _collapse_reason(
    before: np.ndarray, after: np.ndarray, share: float = COLLAPSE_SHARE
) -> str | None:
    """Why the predicted class counts ``after`` look collapsed compared with ``before``, or None.

    Collapsed: a class predicted before is predicted nowhere after, or the majority class's
    share rises above ``share`` while the share of all other classes more than halves (small
    structures make a background share above 0.98 common in segmentation: the rise matters).
    """
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    if before.sum() == 0 or after.sum() == 0:
        return None
    lost = [int(k) for k in np.flatnonzero((before > 0) & (after == 0))]
    if lost:
        return f"class(es) {lost} predicted before adapting are predicted nowhere after it"
    was, now = before.max() / before.sum(), after.max() / after.sum()
    if now > share and now > was and (1 - now) < 0.5 * (1 - was):
        return f"the majority class's share of predictions rose from {was:.3f} to {now:.3f}"
    return None
