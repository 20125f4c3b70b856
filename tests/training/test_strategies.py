"""Strategies: trainable-parameter counts, frozen parameters unchanged by a step, LR groups."""

from __future__ import annotations

import pytest
import torch

import medtransfer as mt
from medtransfer.errors import ConfigError, MedTransferError
from medtransfer.training import (
    BitFit,
    Discriminative,
    FullFineTune,
    GradualUnfreeze,
    LinearProbe,
    LoRA,
    count_parameters,
)
from medtransfer.training.optim import build_optimizer
from tests.training.helpers import TinyClassifier

RESNET18_TOTAL = 11_171_266


@pytest.fixture(scope="module")
def resnet_state():
    torch.manual_seed(0)
    model = mt.models.create_classifier("resnet18", 2, weights=None)
    return model.state_dict()


def _resnet(state):
    model = mt.models.create_classifier("resnet18", 2, weights=None)
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize(
    ("strategy", "trainable"),
    [
        (FullFineTune(), RESNET18_TOTAL),
        (LinearProbe(), 1_026),
        (BitFit(), 10_626),
        (LoRA(rank=4), 144_326),
        (GradualUnfreeze(train_norms=False), 1_026),
        (Discriminative(0.5), RESNET18_TOTAL),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, int) else str(v),
)
def test_trainable_parameter_counts_on_resnet18_classifier(resnet_state, strategy, trainable):
    model = _resnet(resnet_state)
    strategy.setup(model)
    assert count_parameters(model)[0] == trainable


def _one_step(model, strategy, x, y):
    strategy.setup(model)
    opt = build_optimizer(model, strategy, "adamw", 1e-2, 1e-2)
    model.train()
    strategy.train_mode(model)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


@pytest.mark.parametrize("strategy", [LinearProbe(), BitFit(), LoRA(rank=2)], ids=repr)
def test_frozen_parameters_and_frozen_norm_statistics_do_not_change(strategy):
    torch.manual_seed(0)
    model = TinyClassifier()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    _one_step(model, strategy, x, y)
    params = dict(model.named_parameters())
    for name, old in before.items():
        new = params.get(name) if name in params else params[name.replace(".weight", ".base.weight").replace(".bias", ".base.bias")]  # fmt: skip
        if new.requires_grad:
            assert not torch.equal(new, old), f"{name} should have trained"
        else:
            assert torch.equal(new, old), f"{name} is frozen but changed"
    if isinstance(strategy, LinearProbe):  # norms in eval mode: running stats untouched
        for name, buf in model.named_buffers():
            assert torch.equal(buf, buffers[name]), name


def test_gradual_unfreeze_opens_stages_top_down():
    model = TinyClassifier()
    s = GradualUnfreeze(head_epochs=1, epochs_per_stage=2, train_norms=False)
    s.setup(model)
    head = sum(p.numel() for p in model.head.parameters())
    stage1 = sum(p.numel() for p in model.parameter_groups()["stage1"])
    counts = []
    for epoch in range(5):
        s.on_epoch_start(model, epoch)
        counts.append(count_parameters(model)[0])
    total = count_parameters(model)[1]
    assert counts == [head, head + stage1, head + stage1, total, total]


def test_discriminative_learning_rates_decay_below_the_head():
    model = TinyClassifier()
    strategy = Discriminative(0.1)
    opt = build_optimizer(model, strategy, "adamw", 1.0, 0.0)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    groups = model.parameter_groups()
    assert {lr_of[id(p)] for p in groups["head"]} == {1.0}
    assert [lr_of[id(p)] for p in groups["stage1"]] == pytest.approx([0.1] * len(groups["stage1"]))
    assert [lr_of[id(p)] for p in groups["stem"]] == pytest.approx([0.01] * len(groups["stem"]))


def test_composed_strategy_freezes_and_scales():
    model = TinyClassifier()
    strategy = mt.training.finetuner.as_strategy([LoRA(rank=2), Discriminative(0.5)])
    strategy.setup(model)
    assert count_parameters(model)[0] < count_parameters(model)[1]
    assert min(strategy.lr_scales(model).values()) == 0.25


def test_bad_strategy_is_a_config_error():
    with pytest.raises(ConfigError, match="strategy"):
        mt.training.FineTuner(TinyClassifier(), strategy="lora")
    with pytest.raises(MedTransferError):
        Discriminative(decay=2.0)
