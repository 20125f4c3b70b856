"""Candidates: the short string form, defaults from a run config, models and presets built right."""

from __future__ import annotations

import functools

import pytest
import torch

import medtransfer as mt
from medtransfer.diagnostics import Candidate, as_candidate
from medtransfer.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("resnet18", {"weights": "imagenet", "context": 0, "spatial_dims": 2, "conversion": None}),
        ("resnet18:random", {"weights": None}),
        ("resnet18:2.5d", {"context": 1, "spatial_dims": 2}),
        ("resnet18:2.5D-7:random", {"context": 3, "weights": None}),
        ("resnet18:3d", {"spatial_dims": 3, "conversion": "inflate"}),
        ("resnet18:3d-acs", {"spatial_dims": 3, "conversion": "acs"}),
    ],
)
def test_strings_parse_to_fields(text, fields):
    candidate = as_candidate(text)
    for name, value in fields.items():
        assert getattr(candidate, name) == value


def test_defaults_fill_what_the_string_leaves_open():
    defaults = {"context": 2, "channels": 2, "weights": "/w.pt"}
    plain = as_candidate("resnet18", **defaults)
    assert (plain.context, plain.channels, plain.in_channels, plain.weights) == (2, 2, 10, "/w.pt")
    flat = as_candidate("resnet18:3d-acs:random", **defaults)  # a form option replaces the form
    assert (flat.context, flat.spatial_dims, flat.weights, flat.in_channels) == (0, 3, None, 2)


@pytest.mark.parametrize(
    ("text", "match"),
    [("resnet18:2.5d-4", "odd"), ("resnet18:4d", "unknown option"), ("", "string like")],
)
def test_bad_strings_say_what_is_allowed(text, match):
    with pytest.raises(ConfigError, match=match):
        as_candidate(text)


def test_inconsistent_fields_are_refused():
    with pytest.raises(ConfigError, match="needs spatial_dims=2"):
        Candidate("resnet18", context=1, spatial_dims=3)
    with pytest.raises(ConfigError, match="needs spatial_dims=3"):
        Candidate("resnet18", conversion="acs")


def test_names_differ_by_form_and_init():
    names = {as_candidate(t).name for t in ("resnet18", "resnet18:random", "resnet18:2.5d")}
    assert len(names) == 3
    assert Candidate("resnet18", label="mine").name == "mine"
    assert as_candidate("resnet18").with_weights(None).name.endswith("random init")


def test_build_model_and_preset_follow_the_candidate():
    candidate = as_candidate("resnet18:2.5d:random")
    model = candidate.build_model("segmentation", 3, seed=0, decoder_channels=(16, 16, 8, 8, 8))
    again = candidate.build_model("segmentation", 3, seed=0, decoder_channels=(16, 16, 8, 8, 8))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))  # fmt: skip
    assert model.encoder.in_channels == 3 and model(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)  # fmt: skip
    preset = functools.partial(mt.transforms.presets.mri, "segmentation", roi_size=(16, 16))
    _, evaluate = candidate.preset(preset, model)
    out = evaluate({"image": torch.rand(20, 20, 6) + 1, "label": torch.zeros(20, 20, 6)})
    assert out["image"].shape[1] == 3  # three neighbouring slices as channels
    pair = (None, evaluate)
    assert candidate.preset(pair, model) is pair
    with pytest.raises(ConfigError, match="task"):
        candidate.build_model("detection", 2)


def test_one_partial_serves_2d_and_3d_candidates():
    """A 2D roi_size in the partial is left out for a 3D candidate (the preset's default)."""
    preset = functools.partial(mt.transforms.presets.mri, "segmentation", roi_size=(16, 16))
    for text in ("resnet18:random", "resnet18:3d-acs:random"):
        candidate = as_candidate(text)
        model = candidate.build_model("segmentation", 2, seed=0)
        train, _ = candidate.preset(preset, model)
        assert train is not None
