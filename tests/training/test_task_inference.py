"""FineTuner reads the task from the model and refuses a task that contradicts it (issue 11)."""

from __future__ import annotations

import pytest
import torch

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.training import FineTuner
from tests.training.helpers import TinyClassifier, TinySegmenter, segmentation_records


def _segmenter():
    torch.manual_seed(0)
    return mt.models.create_segmenter(
        "resnet18", 2, weights=None, decoder_channels=(16, 8, 8, 8, 4)
    )


def test_a_segmenter_without_task_trains_for_segmentation(tmp_path):
    records = segmentation_records(4, size=32)
    tuner = FineTuner(_segmenter(), run_dir=tmp_path / "run", progress="quiet", batch_size=2)
    assert tuner.task == "segmentation" and tuner.metric.name == "dice"
    history = tuner.fit(records[:2], records[2:], epochs=1)  # was: a PyTorch shape error
    assert 0.0 <= history.records[0]["dice"] <= 1.0


def test_a_classifier_and_a_plain_module_default_to_classification():
    classifier = mt.models.create_classifier("resnet18", 3, weights=None)
    assert FineTuner(classifier, progress="quiet").task == "classification"
    assert FineTuner(TinyClassifier(), progress="quiet").task == "classification"
    assert FineTuner(TinySegmenter(), task="segmentation", progress="quiet").task == "segmentation"


def test_a_task_that_contradicts_the_model_is_a_config_error():
    with pytest.raises(ConfigError, match=r"task='classification'.*Segmenter.*segmentation"):
        FineTuner(_segmenter(), task="classification")
    classifier = mt.models.create_classifier("resnet18", 2, weights=None)
    with pytest.raises(ConfigError, match=r"task='segmentation'.*Classifier.*classification"):
        FineTuner(classifier, task="segmentation")
    with pytest.raises(ConfigError, match="task='detection'"):
        FineTuner(classifier, task="detection")
