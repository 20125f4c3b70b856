"""rank_encoders: informative features rank above uninformative ones; failures are rows, not crashes."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import medtransfer as mt
from medtransfer.encoders.spec import InputSpec
from medtransfer.errors import ConfigError


class FixedFeatures(nn.Module):
    """An 'encoder' whose deepest level is the image mean (informative) or seeded noise."""

    def __init__(self, informative: bool) -> None:
        super().__init__()
        self.informative = informative
        self.spatial_dims = 2
        self.out_channels = (4,)
        self.input_spec = InputSpec(mean=(0.0,), std=(1.0,))
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = x.shape[0]
        if self.informative:
            level = x.mean(dim=(1, 2, 3)).reshape(n, 1, 1, 1).repeat(1, 4, 2, 2)
            level = level + 0.05 * torch.randn(level.shape, generator=self.generator)
        else:
            level = torch.randn((n, 4, 2, 2), generator=self.generator)
        return [level]


class Holder(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder


def _cases(n: int = 24) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [
        {"image": torch.rand((3, 1, 8, 8), generator=g) + (i % 2), "label": i % 2} for i in range(n)
    ]


def _identity_pair():
    return (None, lambda sample: sample)


@pytest.mark.parametrize("method", ["logme", "h_score", "linear_probe"])
def test_informative_features_rank_first(method):
    good, noise = Holder(FixedFeatures(True)), Holder(FixedFeatures(False))
    ranking = mt.diagnostics.rank_encoders(
        [noise, good], _cases(), _identity_pair(), task="classification", method=method,
        progress=False, device="cpu",
    )  # fmt: skip
    assert [row["status"] for row in ranking.rows] == ["ok", "ok"]
    assert ranking.best == "Holder (encoder) #2"  # the second model given: the informative one
    assert ranking.rows[0]["score"] > ranking.rows[1]["score"]
    first = ranking.rows[0]
    assert first["feature_dim"] == 4 and first["n_samples"] == 24 and first["seconds"] >= 0


def test_missing_weights_and_unknown_names_are_skipped_with_the_reason(tmp_path):
    cases = [{"image": torch.rand(16, 16, 2), "label": i % 2} for i in range(6)]
    preset = functools.partial(mt.transforms.presets.mri, "classification", roi_size=(16, 16))
    missing = mt.diagnostics.Candidate("resnet18", weights=str(tmp_path / "none.safetensors"))
    ranking = mt.diagnostics.rank_encoders(
        ["resnet18:random", missing, "resnet1888"], cases, preset, task="classification",
        method="h_score", progress=False, device="cpu",
    )  # fmt: skip
    status = {row["candidate"]: (row["status"], row["reason"]) for row in ranking.rows}
    assert status["resnet18 · 2D · random init"] == ("ok", None)
    assert status[missing.name][0] == "skipped" and "none.safetensors" in status[missing.name][1]
    assert status["resnet1888 · 2D · ImageNet"][0] == "skipped"
    assert "Did you mean" in status["resnet1888 · 2D · ImageNet"][1]
    assert ranking.best == "resnet18 · 2D · random init"


def test_leep_needs_a_source_head_and_image_labels():
    cases = [{"image": torch.rand(16, 16, 2), "label": i % 2} for i in range(6)]
    preset = functools.partial(mt.transforms.presets.mri, "classification", roi_size=(16, 16))
    ranking = mt.diagnostics.rank_encoders(
        ["resnet18:random"], cases, preset, task="classification", method="leep", progress=False
    )
    assert ranking.rows[0]["status"] == "skipped"
    assert "no source classifier" in ranking.rows[0]["reason"]
    with pytest.raises(ConfigError, match="LEEP"):
        mt.diagnostics.rank_encoders(["resnet18"], cases, preset, task="segmentation", method="leep")  # fmt: skip


def test_bad_calls_are_config_errors():
    cases = _cases(4)
    with pytest.raises(ConfigError, match="method"):
        mt.diagnostics.rank_encoders(["resnet18"], cases, _identity_pair(), task="classification", method="logmee")  # fmt: skip
    with pytest.raises(ConfigError, match="twice"):
        mt.diagnostics.rank_encoders(["resnet18", "resnet18"], cases, _identity_pair(), task="classification")  # fmt: skip
    with pytest.raises(ConfigError, match="at least 2"):
        mt.diagnostics.rank_encoders(["resnet18"], cases[:1], _identity_pair(), task="classification")  # fmt: skip


def test_a_candidate_failing_during_extraction_is_skipped_not_fatal():
    wrong = Holder(mt.encoders.create("resnet18", weights=None, in_channels=3))  # images have 1
    good = Holder(FixedFeatures(True))
    ranking = mt.diagnostics.rank_encoders(
        [wrong, good], _cases(), _identity_pair(), task="classification", method="h_score",
        progress=False, device="cpu",
    )  # fmt: skip
    status = {row["candidate"]: (row["status"], row["reason"]) for row in ranking.rows}
    assert status["Holder (encoder)"] == ("ok", None)
    assert status["Holder (resnet18)"][0] == "skipped" and "EncoderError" in status["Holder (resnet18)"][1]  # fmt: skip
