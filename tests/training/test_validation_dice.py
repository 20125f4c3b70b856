"""Validation Dice is the evaluation's Dice: same empty-mask policy, same numbers on the same cases.

The oracle thresholds the windowed input (40 HU -> 0.5); one case's reference is empty although
the oracle finds tissue there. The evaluation scores that case 0 (a false positive), so the
training must too (it used to give NaN and drop the case from the mean).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.training.distributed import DistContext
from medtransfer.training.metrics import dice_per_case
from medtransfer.training.optim import resolve_device

THRESHOLD_HU = 40.0


class Oracle(nn.Module):
    """Two-class 'segmenter': class 1 where the windowed input is above 0.5 (40 HU)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(50.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x[:, :1] - 0.5) * self.scale
        return torch.cat([-logit, logit], dim=1)


def _records() -> list[dict]:
    records = []
    for i, case in enumerate(mt.data.synthetic.phantoms(3, shape=(32, 28, 6))):
        image = case["image"]
        mask = (image.as_tensor().numpy() > THRESHOLD_HU).astype(np.uint8)
        if i == 2:
            mask[:] = 0  # empty reference; the oracle still predicts tissue
        label = mt.io.make_image(mask, image.affine.numpy(), source="memory")
        records.append({"image": image, "label": label, "case_id": case["case_id"]})
    return records


def test_dice_per_case_follows_the_evaluation_empty_mask_policy():
    logits = torch.zeros(3, 2, 4, 4)
    logits[:2, 1, :2] = 1.0  # cases 0, 1 predict the top rows; case 2 predicts nothing
    target = torch.zeros(3, 1, 4, 4)
    target[0, 0, :2] = 1  # case 1: empty reference; case 2: both empty
    got = dice_per_case(logits, target).numpy()
    want = mt.evaluation.dice(logits.argmax(1, keepdim=True), target, num_classes=2)
    np.testing.assert_array_equal(got, want)
    assert got[0, 0] == 1.0 and got[1, 0] == 0.0 and math.isnan(got[2, 0])


def test_validation_dice_equals_the_evaluation_report_with_an_empty_reference(tmp_path):
    records = _records()
    preset = mt.transforms.presets.ct(roi_size=(32, 32, 16))
    tuner = mt.training.FineTuner(
        Oracle(), task="segmentation", device="cpu", val_batch_size=1, progress="quiet",
        run_dir=tmp_path / "run",
    )  # fmt: skip
    validation = tuner.validate(records, val_transform=preset[1])
    report = mt.evaluation.evaluate_segmentation(
        Oracle(), records, preset, class_names=["dense"], n_resamples=20, device="cpu",
        progress=False,
    )  # fmt: skip
    per_case = [row["dice/dense"] for row in report.cases]
    assert per_case[:2] == [1.0, 1.0] and per_case[2] == 0.0
    assert validation["dice"] == pytest.approx(report.estimate("dice", "dense")["value"])
    assert validation["dice"] == pytest.approx(2.0 / 3.0)


def test_training_and_evaluation_read_devices_by_one_rule():
    assert resolve_device("cpu", DistContext()) == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("gpu", DistContext())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda", DistContext())
    with pytest.raises(ConfigError, match="CUDA is not available"):
        mt.evaluation.resolve_device("cuda:0")
