"""Check each record's label against its image before training uses it (once per case).

A label map of another shape, shifted in space, holding probabilities or classes the model does
not have would otherwise train without a word (or die in the loss with an index error). The
FineTuner inserts :class:`CheckLabelAgainstImaged` right after the loader of the train and
validation pipelines, so the check sees the files as stored (before any resampling or crop) and,
being deterministic, is cached with the rest of the pipeline's deterministic prefix.

Shape, affine (same tolerance) and integer values are checked as
:func:`~medtransfer.evaluation.evaluate_segmentation` checks its references; training adds the
value range against the model's ``num_classes``. Cases are named by ``case_id``.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, MapTransform

from medtransfer.errors import ConfigError
from medtransfer.transforms.loading import LoadVolumed

__all__ = ["CheckLabelAgainstImaged", "with_label_check"]


class CheckLabelAgainstImaged(MapTransform):
    """Refuse a record whose label does not fit its image or the model's classes.

    Segmentation (after :class:`~medtransfer.transforms.LoadVolumed`, channel-first): the label
    must have the image's spatial shape and affine and hold integers ``0..num_classes-1``.
    Classification: the label must be a class value ``0..num_classes-1`` (or a multi-hot vector
    of ``num_classes`` zeros and ones). A single-logit model (``num_classes=1``) has classes 0, 1.
    A multi-label model (``multilabel=True``) needs a vector of ``num_classes`` findings, each
    1, 0, or NaN / -1 (not known: masked by the loss).

    Args:
        task: "segmentation" or "classification".
        num_classes: the model's number of outputs; None checks integers >= 0 only.
        image_key, label_key: record keys.
        geometry: compare shape and affine with the image (segmentation; needs loaded,
            channel-first tensors). False checks the label's values only.
        multilabel: classification with K independent findings (see above).

    Raises:
        ConfigError: naming the case id, both files and the mismatch.

    Example:
        >>> import torch
        >>> check = CheckLabelAgainstImaged("segmentation", num_classes=3)
        >>> record = {"image": torch.zeros(1, 4, 4, 2), "label": torch.ones(1, 4, 4, 2)}
        >>> check(record)["label"].shape
        torch.Size([1, 4, 4, 2])
        >>> check({**record, "label": torch.full((1, 4, 4, 2), 3.0), "case_id": "ct-7"})
        Traceback (most recent call last):
        ...
        medtransfer.errors.ConfigError: case 'ct-7': the label holds value 3 but the model has 3 classes (0..2, 0 = background). Image: in-memory image; label: in-memory label. Fix the label map, or create the model with num_classes=4.
    """

    def __init__(
        self,
        task: str,
        num_classes: int | None = None,
        image_key: str = "image",
        label_key: str = "label",
        geometry: bool = True,
        multilabel: bool = False,
    ) -> None:
        super().__init__([label_key], allow_missing_keys=True)
        self.task, self.image_key, self.label_key = task, image_key, label_key
        self.multilabel = multilabel
        self.findings = None if num_classes is None else int(num_classes)
        self.num_classes = None if num_classes is None else max(int(num_classes), 2)
        self.geometry = geometry

    def __call__(self, data: Mapping[Hashable, Any]) -> Mapping[Hashable, Any]:
        if self.label_key not in data:
            return data  # a record without a label (inference): nothing to check
        case = str(data.get("case_id", "(no case_id)"))
        label = data[self.label_key]
        if self.task == "classification" and self.multilabel:
            _check_findings(label, case, self.findings)
        elif self.task == "classification":
            _check_class_value(label, case, self.num_classes)
        elif isinstance(label, (torch.Tensor, np.ndarray)):
            image = data.get(self.image_key)
            where = f"Image: {_source(image, 'image')}; label: {_source(label, 'label')}."
            _check_label_values(label, case, self.num_classes, where)
            if self.geometry and isinstance(image, torch.Tensor):
                _check_grid(image, label, case)
        return data


def with_label_check(
    transform: Any,
    task: str,
    num_classes: int | None,
    keys: tuple[str, str] = ("image", "label"),
    *,
    multilabel: bool = False,
) -> Compose:
    """``transform`` with a :class:`CheckLabelAgainstImaged` right after its loader.

    Segmentation: after the first ``LoadVolumed`` that loads both keys (all presets), else
    first with ``geometry=False`` (in-memory tensors: values only). Classification: first (the
    label is the record's class value). The given pipeline is not modified: a shallow copy
    of a ``Compose`` (same transforms, same random state) gets the check.

    Example:
        >>> import medtransfer as mt
        >>> train, _ = mt.transforms.presets.ct(roi_size=(16, 16, 8))
        >>> [type(t).__name__ for t in with_label_check(train, "segmentation", 5).transforms][:3]
        ['LoadVolumed', 'CheckLabelAgainstImaged', 'Orientationd']
    """
    steps = list(getattr(transform, "transforms", ()) if isinstance(transform, Compose) else ())
    at, geometry = 0, False
    if task == "segmentation":
        for i, step in enumerate(steps):
            if isinstance(step, LoadVolumed) and set(keys) <= set(step.keys):
                at, geometry = i + 1, True
                break
    check = CheckLabelAgainstImaged(
        task, num_classes, *keys, geometry=geometry, multilabel=multilabel
    )
    if transform is None:
        return Compose([check])
    if not isinstance(transform, Compose):
        return Compose([check, transform])
    checked = copy.copy(transform)
    checked.transforms = [*steps[:at], check, *steps[at:]]
    return checked


def _source(value: Any, kind: str) -> str:
    meta = getattr(value, "meta", None)
    name = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
    return str(name) if name else f"in-memory {kind}"


def _grid(x: torch.Tensor) -> str:
    affine = np.asarray(getattr(x, "affine", np.eye(4)), dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    origin = ", ".join(f"{v:g}" for v in affine[:3, 3])
    return (
        f"shape {tuple(x.shape[1:])}, origin ({origin}) mm, "
        f"spacing ({', '.join(f'{v:g}' for v in spacing)}) mm"
    )


def _check_grid(image: torch.Tensor, label: Any, case: str) -> None:
    """Shape and affine as ``evaluate_segmentation`` checks them (same rules and tolerance)."""
    from medtransfer.evaluation.evaluate.segmentation import reference_on_grid

    label = label if isinstance(label, torch.Tensor) else torch.as_tensor(label)
    affine = getattr(image, "affine", None)
    grid = SimpleNamespace(  # what reference_on_grid reads of the image (its prediction's grid)
        shape=tuple(image.shape[1:]),
        ndim=image.ndim - 1,
        affine=torch.as_tensor(np.eye(4) if affine is None else affine),
    )
    try:
        reference_on_grid(label, case, grid)
    except ConfigError as err:
        raise ConfigError(
            f"{err} Image {_source(image, 'image')}: {_grid(image)}; label "
            f"{_source(label, 'label')}: {_grid(label)}. Check that the manifest pairs this "
            "image with its own label."
        ) from None


def _check_label_values(label: Any, case: str, num_classes: int | None, where: str) -> None:
    values = torch.as_tensor(label.as_tensor() if hasattr(label, "as_tensor") else label)
    if not values.numel() or values.dtype == torch.bool:
        return
    if values.is_floating_point() and not bool(torch.all(values == torch.round(values))):
        raise ConfigError(
            f"case {case!r}: the label holds non-integer values (e.g. a probability map), not a "
            f"label map. {where} Threshold or argmax it into class indices."
        )
    low, high = int(values.min()), int(values.max())
    if low < 0:
        raise ConfigError(f"case {case!r}: the label holds value {low}; labels start at 0. {where}")
    if num_classes is not None and high >= num_classes:
        from medtransfer.evaluation.wording import count

        raise ConfigError(
            f"case {case!r}: the label holds value {high} but the model has "
            f"{count(num_classes, 'class', 'classes')} "
            f"(0..{num_classes - 1}, 0 = background). {where} Fix the label map, or create the "
            f"model with num_classes={high + 1}."
        )


def _check_findings(label: Any, case: str, findings: int | None) -> None:
    size = "" if findings is None else f"{findings} "
    hint = (
        f"case {case!r}: label {label!r} is not a vector of {size}findings (each 1, 0, or NaN / "
        "-1: not known). Load the manifest with findings=[...] (data.findings in a config), "
        "one column per finding of the model."
    )
    if isinstance(label, (str, bytes)) or label is None:
        raise ConfigError(hint)
    try:
        values = np.asarray(
            label.detach().cpu() if isinstance(label, torch.Tensor) else label, dtype=np.float64
        )
    except (TypeError, ValueError):
        raise ConfigError(hint) from None
    known = values[~np.isnan(values)] if values.ndim == 1 else values
    if (
        values.ndim != 1
        or (findings is not None and values.size != findings)
        or not np.isin(known, (0, 1, -1)).all()
    ):
        raise ConfigError(hint)


def _check_class_value(label: Any, case: str, num_classes: int | None) -> None:
    from medtransfer.evaluation.wording import count

    top = f"0..{num_classes - 1}" if num_classes is not None else "0, 1, 2..."
    classes = f"; {count(num_classes, 'class', 'classes')}" if num_classes else ""
    hint = (
        f"case {case!r}: label {label!r} is not a class value of this model (an integer in {top}"
        f"{classes}). Map class names to integers in the manifest, or create the model with the "
        "right num_classes."
    )
    if isinstance(label, (str, bytes)) or label is None:
        raise ConfigError(hint)
    try:
        values = np.asarray(label.detach().cpu() if isinstance(label, torch.Tensor) else label)
    except (TypeError, ValueError):
        raise ConfigError(hint) from None
    if values.dtype.kind not in "biuf":
        raise ConfigError(hint)
    if values.size == 1:
        value = float(values.reshape(-1)[0])
        if value != round(value) or value < 0 or (num_classes and value >= num_classes):
            raise ConfigError(hint)
    elif not (values.ndim == 1 and values.size == num_classes and np.isin(values, (0, 1)).all()):
        raise ConfigError(hint)  # a vector must be multi-hot over the model's classes
