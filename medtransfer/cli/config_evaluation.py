"""The ``evaluation`` section of a run config and its opt-in ``postprocess`` subsection.

:mod:`medtransfer.cli.config` re-exports both (like the sections of
:mod:`medtransfer.cli.config_sections`).

Example:
    >>> EvaluationConfig().postprocess.enabled()  # post-processing is opt-in
    False
    >>> EvaluationConfig.model_validate({"postprocess": True}).postprocess.largest_component
    True
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from medtransfer.cli.config_sections import _Section
from medtransfer.evaluation import postprocess

__all__ = ["EvaluationConfig", "PostprocessConfig"]

ClassList = bool | list[int | str]
Volume = Annotated[float, Field(ge=0)]
# The defaults of ``mt.evaluation.postprocess`` (every step off): one place for them.
_POST = {n: p.default for n, p in inspect.signature(postprocess).parameters.items()}


class PostprocessConfig(_Section):
    """Opt-in clean-up of predicted masks, per class (``mt.evaluation.postprocess``)."""

    largest_component: ClassList = Field(
        _POST["largest_component"],
        description="classes (names or label values) reduced to their largest connected "
        "component, e.g. [liver]; true: every class. For one organ, never for white matter or "
        "lesions",
    )
    min_island_mm3: Volume | dict[int | str, Volume] | None = Field(
        _POST["min_island_mm3"],
        description="remove components under this volume (mm³), or {class: volume}",
    )
    fill_holes: ClassList = Field(
        _POST["fill_holes"], description="classes whose enclosed holes are filled"
    )
    connectivity: Literal[1, 2, 3] | None = Field(
        _POST["connectivity"], description="null: full (26 neighbours in 3D); 1: faces only"
    )

    def enabled(self) -> bool:
        """Whether any step is asked for."""
        return bool(self.largest_component or self.min_island_mm3 is not None or self.fill_holes)

    def class_entries(self) -> dict[str, list[int | str]]:
        """``{option: classes named in it}`` (options given as lists or mappings)."""
        out: dict[str, list[int | str]] = {}
        for name in ("largest_component", "fill_holes"):
            value = getattr(self, name)
            if isinstance(value, list):
                out[name] = list(value)
        if isinstance(self.min_island_mm3, dict):
            out["min_island_mm3"] = list(self.min_island_mm3)
        return out


class EvaluationConfig(_Section):
    """Arguments of ``mt.evaluation.evaluate_segmentation`` / ``evaluate_classification``."""

    subset: Literal["test", "val"] = Field("test", description="held-out split to evaluate")
    tolerance_mm: float = Field(2.0, gt=0, description="surface Dice tolerance")
    postprocess: PostprocessConfig = Field(
        default_factory=PostprocessConfig,
        description="opt-in, per class (null/false: none; true: largest component of every class)",
    )
    tta: bool = Field(False, description="flip test-time augmentation (segmentation)")
    threshold: (
        Annotated[float, Field(ge=0, le=1)]
        | dict[str, Annotated[float, Field(ge=0, le=1)]]
        | Literal["youden", "sensitivity"]
        | None
    ) = Field(
        None,
        description="decision threshold (binary, findings; null: 0.5): a number, {finding: "
        "number}, or youden / sensitivity: chosen per finding on the validation split",
    )
    target_sensitivity: float = Field(
        0.9, gt=0, le=1, description="threshold: sensitivity, the sensitivity to reach"
    )
    n_resamples: int = Field(2000, ge=10, description="bootstrap resamples for the 95% CIs")
    saliency: bool | Literal["gradcam", "gradcampp"] = Field(
        False,
        description="classification: saliency overlays (Grad-CAM) of the most and least "
        "confident cases per class or finding in the report (true: gradcam)",
    )

    @field_validator("postprocess", mode="before")
    @classmethod
    def _postprocess_shorthand(cls, value: Any) -> Any:
        if value is None or value is False:
            return {}
        if value is True:
            return {"largest_component": True}
        return value
