"""build_runtime and lr_find take a TrainSettings, not a FineTuner (no private attributes read)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import medtransfer as mt
from medtransfer.training.distributed import DistContext
from medtransfer.training.optim import build_runtime
from medtransfer.training.settings import TrainSettings

from .helpers import TinyClassifier, classification_records


def test_finetuner_builds_its_settings_once_and_they_are_frozen(tmp_path):
    tuner = mt.training.FineTuner(
        TinyClassifier(), lr=0.02, clip_grad=1.0, grad_accum=2, device="cpu",
        run_dir=tmp_path / "run", progress="quiet",
    )  # fmt: skip
    s = tuner.settings
    assert isinstance(s, TrainSettings)
    assert (s.task, s.num_outputs, s.lr, s.clip_grad, s.grad_accum) == (
        "classification", 2, 0.02, 1.0, 2,
    )  # fmt: skip
    assert tuner.task == "classification"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lr = 1.0  # type: ignore[misc]


def test_build_runtime_needs_only_model_strategy_and_settings():
    settings = TrainSettings(
        task="classification", num_outputs=2, lr=0.1, optimizer="sgd", device="cpu",
        grad_accum=3, clip_grad=0.5, schedule="constant", warmup=0,
    )  # fmt: skip
    model = TinyClassifier()
    rt = build_runtime(model, mt.training.LinearProbe(), settings, DistContext(), total_steps=5)
    assert isinstance(rt.optimizer, torch.optim.SGD)
    assert rt.device == torch.device("cpu") and rt.amp_dtype is None
    assert (rt.grad_accum, rt.clip_grad) == (3, 0.5)
    assert {g["lr"] for g in rt.optimizer.param_groups} == {0.1}


def test_lr_find_runs_from_settings_without_a_finetuner():
    model = TinyClassifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = TrainSettings(task="classification", num_outputs=2, device="cpu", batch_size=4)
    result = mt.training.lr_find(
        model, classification_records(8), settings, num_iter=6, start_lr=1e-4, end_lr=1.0
    )
    assert 2 <= len(result.lrs) <= 6 and result.lrs[0] == pytest.approx(1e-4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
