"""Resuming into a different model says what differs in one sentence, not a list of 60 keys."""

from __future__ import annotations

import pytest

import medtransfer as mt
from medtransfer.errors import ModelError


def _fit(tmp_path, num_classes: int, resume: bool):
    records = mt.data.synthetic.phantoms(2, task="classification", shape=(16, 16, 4), seed=0)
    preset = mt.transforms.presets.ct("classification", spatial_dims=3, roi_size=(16, 16, 4))
    model = mt.models.create_classifier(
        "resnet18", num_classes, weights=None, spatial_dims=3, conversion="inflate", seed=0
    )
    tuner = mt.training.FineTuner(
        model, lr=1e-3, batch_size=2, device="cpu", seed=0, run_dir=tmp_path
    )
    return tuner.fit(records, epochs=1, train_transform=preset[0], resume=resume)


def test_resume_into_a_model_with_other_outputs_names_the_difference(tmp_path):
    _fit(tmp_path, 2, resume=False)
    with pytest.raises(ModelError) as err:
        _fit(tmp_path, 3, resume=True)
    message = str(err.value)
    assert "differ in outputs" in message and "checkpoint 2, model 3" in message
    assert message.count("size mismatch") == 0 and len(message) < 600
