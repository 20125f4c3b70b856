"""A run's defences against a new site: the out-of-distribution reference kept in its checkpoints,
and ``medtransfer predict --adapt``.

After ``medtransfer train`` the trained model embeds its training cases; the
:class:`~medtransfer.evaluation.OODDetector` fitted on them (threshold calibrated on held-out
training cases) is stored under ``"ood"`` in the run's checkpoints, so that ``evaluate`` and
``predict`` warn about cases unlike anything the model was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medtransfer.errors import ConfigError

__all__ = ["ADAPT_METHODS", "adapt_model", "ood_detector", "store_ood"]

#: ``--adapt`` choices: batch-norm statistics (AdaBN), or AdaBN then TENT.
ADAPT_METHODS = ("bn", "tent")
OOD_KEY = "ood"


def store_ood(
    model: Any, records: Sequence[dict], preset: Any, checkpoints: Sequence[Path], *,
    device: str = "cpu", seed: int = 0,
) -> Any:  # fmt: skip
    """Fit the detector on ``records`` (the training split) and add it to each checkpoint.

    Returns the detector, or None (with a printed reason) when there are too few cases.
    """
    import medtransfer as mt

    if len(records) < 4:
        print(f"No out-of-distribution reference: {len(records)} training cases (4 needed).")
        return None
    embeddings = mt.evaluation.embed_records(model, records, preset, device=device)
    detector = mt.evaluation.OODDetector.fit(embeddings, seed=seed)
    for path in checkpoints:
        if path.is_file():
            payload = mt.training.load_checkpoint(path)
            payload.pop("format", None)
            mt.training.save_checkpoint(path, {**payload, OOD_KEY: detector.state_dict()})
    print(f"Out-of-distribution reference: {len(records)} training cases, {detector.method} "
          f"threshold {detector.threshold:.3g} (stored in the checkpoints)")  # fmt: skip
    return detector


def ood_detector(checkpoint: Path) -> Any:
    """The detector stored in a checkpoint, or None for runs trained before it existed."""
    import medtransfer as mt

    state = mt.training.load_checkpoint(checkpoint).get(OOD_KEY)
    return mt.evaluation.OODDetector.from_state(state) if state else None


def adapt_model(
    model: Any, images: Sequence[Path], preset: Any, how: str, device: str, ood: Any = None
) -> Any:
    """``--adapt bn|tent``: the model adapted to the (unlabelled) images about to be predicted.

    With ``ood`` the images are scored first, by the model the detector was fitted with (an
    adapted model's features no longer match the stored reference).
    """
    import medtransfer as mt
    from medtransfer.evaluation.inference.ood import warn_if_out_of_distribution

    if how not in ADAPT_METHODS:
        raise ConfigError(f"--adapt {how!r}: choose one of {', '.join(ADAPT_METHODS)}.")
    records = [{"image": str(path)} for path in images]
    if ood is not None:
        embeddings = mt.evaluation.embed_records(model, records, preset, device=device)
        for path, embedding in zip(images, embeddings):
            warn_if_out_of_distribution(ood, embedding, Path(path).name)
    if how == "bn":
        adapted = mt.diagnostics.adapt_batchnorm(model, records, preset, device=device)
        print(f"Adapted batch-norm statistics to the {len(records)} input image(s) (AdaBN)")
    else:
        adapted = mt.diagnostics.tent(model, records, preset, device=device)
        print(f"Adapted to the {len(records)} input image(s): AdaBN, then TENT")
    return adapted.eval()
