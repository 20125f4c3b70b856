"""A checkpoint that does not fit a model: one sentence saying what differs (issue 11.8)."""

from __future__ import annotations

import pytest

import medtransfer as mt
from medtransfer.evaluation.inference.checkpoint_fit import (
    checkpoint_differences,
    describe_mismatch,
)

DECODER = [16, 16, 8, 8, 8]


def _seg(encoder="resnet18", classes=5, **kw):
    return mt.models.create_segmenter(encoder, classes, None, decoder_channels=DECODER, **kw)


@pytest.fixture(scope="module")
def base():
    return _seg().state_dict()


def test_a_fitting_checkpoint_has_no_differences(base):
    assert checkpoint_differences(base, _seg()) == []


def test_input_channels_and_classes_are_named(base):
    model = _seg(classes=2, in_channels=3)
    text = describe_mismatch(base, model)
    assert text == (
        "the checkpoint and this model differ in input channels (checkpoint 1, model 3) "
        "and outputs (classes incl. background) (checkpoint 5, model 2)"
    )
    assert len(text) < 200 and "missing" not in text


def test_spatial_dims_model_type_and_encoder(base):
    assert "spatial dimensions (checkpoint 2, model 3)" in describe_mismatch(
        base, _seg(spatial_dims=3)
    )
    classifier = mt.models.create_classifier("resnet18", 5, None)
    assert "model type (checkpoint segmenter, model classifier)" in describe_mismatch(
        base, classifier
    )
    text = describe_mismatch(base, _seg(encoder="resnet34"))
    assert text.startswith("the checkpoint and this model differ in encoder (")
    assert "missing" not in text


def test_decoder_widths_are_named(base):
    model = mt.models.create_segmenter("resnet18", 5, None, decoder_channels=[32, 16, 16, 8, 8])
    assert "decoder" in describe_mismatch(base, model)
