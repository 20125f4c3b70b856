"""LoRA: merged weights give the same outputs as the adapters; the export is a plain model."""

from __future__ import annotations

import torch
from torch import nn

import medtransfer as mt
from medtransfer.training import LoRA, LoRAConv, LoRALinear, inject_lora, merge_lora


def _randomise_adapters(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, (LoRAConv, LoRALinear)):
            nn.init.normal_(m.up.weight, std=0.05)


def test_merge_equals_unmerged_forward_on_a_2d_resnet_classifier():
    torch.manual_seed(0)
    model = mt.models.create_classifier("resnet18", 3, weights=None).eval()
    LoRA(rank=4, alpha=8).setup(model)
    _randomise_adapters(model)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        before = model(x)
        merged = merge_lora(model)(x)
    assert torch.allclose(before, merged, atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, (LoRAConv, LoRALinear)) for m in model.modules())
    fresh = mt.models.create_classifier("resnet18", 3, weights=None)
    fresh.load_state_dict(model.state_dict())  # same architecture as a model without adapters


def test_merge_equals_unmerged_for_3d_conv_and_linear():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(4 * 16, 3))
    assert inject_lora(net, rank=2) == 2
    _randomise_adapters(net)
    x = torch.rand(2, 2, 4, 4, 8)
    with torch.no_grad():
        before = net(x)
        after = merge_lora(net)(x)
    assert torch.allclose(before, after, atol=1e-5)


def test_adapters_start_as_identity_and_only_adapters_and_head_train():
    torch.manual_seed(0)
    model = mt.models.create_classifier("resnet18", 2, weights=None).eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        reference = model(x)
    LoRA(rank=2).setup(model)
    with torch.no_grad():
        assert torch.equal(model(x), reference)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(".down." in n or ".up." in n or n.startswith("head.") for n in names)


def test_finetuner_export_merges():
    from tests.training.helpers import TinyClassifier

    tuner = mt.training.FineTuner(TinyClassifier(), strategy=LoRA(rank=2), progress="quiet")
    tuner.strategy.setup(tuner.model)
    assert any(isinstance(m, LoRAConv) for m in tuner.model.modules())
    assert not any(isinstance(m, LoRAConv) for m in tuner.export().modules())


def test_lora_on_a_plain_sequential_adapts_the_body_and_trains_the_head():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))
    LoRA(rank=2).setup(net)
    assert isinstance(net[0], LoRAConv) and isinstance(net[3], nn.Linear)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"0.down.weight", "0.up.weight", "3.weight", "3.bias"}
