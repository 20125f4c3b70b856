"""Unsupervised adaptation to a new site: AdaBN statistics, TENT's bounded updates, its guard."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from torch import nn

import medtransfer as mt
from medtransfer.diagnostics.adapt_bn import _tiles, batch_tiles
from medtransfer.diagnostics.tent import _collapse_reason, _entropy
from medtransfer.errors import ConfigError, MedTransferWarning, ModelError
from medtransfer.evaluation.inference.geometry import prepare_pipeline
from medtransfer.models.padding import pad_to_multiple
from medtransfer.transforms.pipeline_errors import run_pipeline


@pytest.fixture(scope="module")
def preset():
    return mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))


@pytest.fixture(scope="module")
def target():
    """Two unlabelled cases (4 slices each): the label is dropped, as at a new site."""
    cases = mt.data.synthetic.phantoms(2, shape=(24, 24, 4), seed=3)
    return [{"image": c["image"], "case_id": c["case_id"]} for c in cases]


def eval_inputs(records, preset) -> torch.Tensor:
    """What the model sees: the eval pipeline's image part, by hand (2D: all slices, stacked)."""
    loader, rest, key = prepare_pipeline(preset, "image")
    return torch.cat([run_pipeline(rest, loader({key: r["image"]}))[key].as_tensor() for r in records])  # fmt: skip


def tiny(num_classes: int = 3, batchnorm: bool = True) -> nn.Sequential:
    """Conv -> norm -> ReLU, twice, then a 1x1 head: BatchNorm, or GroupNorm only."""
    torch.manual_seed(0)
    norm = nn.BatchNorm2d if batchnorm else (lambda channels: nn.GroupNorm(2, channels))
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), norm(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), norm(8), nn.ReLU(),
        nn.Conv2d(8, num_classes, 1),
    )  # fmt: skip


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


# --- AdaBN ------------------------------------------------------------------------------------


def test_running_stats_are_the_pooled_statistics_of_all_target_slices(target, preset):
    """8 slices in batches of 3, 3, 2: the first BN's stats are those of its input over all 8
    (torch's momentum=None average of per-batch statistics would miss the between-batch part)."""
    model = tiny()
    adapted = mt.diagnostics.adapt_batchnorm(model, target, preset, batch_size=3)
    with torch.no_grad():
        h = model[0](eval_inputs(target, preset))
    bn = adapted[1]
    torch.testing.assert_close(bn.running_mean, h.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, h.var((0, 2, 3), correction=1), rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked) == 3
    per_batch = torch.stack([h[i : i + 3].var((0, 2, 3)) for i in (0, 3, 6)]).mean(0)
    assert not torch.allclose(per_batch, bn.running_var, rtol=1e-3)  # the naive estimate differs


@pytest.mark.parametrize(
    "kind, spatial_dims, context",
    [("segmenter", 2, 0), ("classifier", 2, 1), ("segmenter", 3, 0)],
    ids=["2D segmenter", "2.5D classifier", "3D segmenter"],
)
def test_real_models_first_batchnorm_matches_its_input_statistics(target, kind, spatial_dims, context):  # fmt: skip
    roi = (32, 32) if spatial_dims == 2 else (16, 16, 4)
    preset = mt.transforms.presets.ct(spatial_dims=spatial_dims, roi_size=roi, context=context)
    create = mt.models.create_segmenter if kind == "segmenter" else mt.models.create_classifier
    model = create("test_resnet", 2, weights=None, in_channels=2 * context + 1, spatial_dims=spatial_dims, seed=0)  # fmt: skip
    adapted = mt.diagnostics.adapt_batchnorm(model, target, preset, batch_size=4)
    stem = model.encoder.body.conv1  # deep stem: conv, BN, act, ...; the conv sees no BN
    if spatial_dims == 2:
        x = eval_inputs(target, preset)
    else:  # 24x24x4 volumes (cropped to the body, padded to >= roi): tiles of 16x16x4
        from medtransfer.diagnostics.adapt_bn import TargetTiles

        tiles = TargetTiles(target, preset, "image")
        x = torch.stack([t for i in range(len(target)) for t in tiles.tiles(i)])
        assert x.shape[2:] == (16, 16, 4) and len(x) > len(target)
    with torch.no_grad():  # the model zero-pads its input to a multiple of its stride
        h = stem[0](pad_to_multiple(x, model.encoder.input_spec.size_divisor)[0])
    dims = [0, *range(2, h.ndim)]
    first = adapted.encoder.body.conv1[1]
    torch.testing.assert_close(first.running_mean, h.mean(dims), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first.running_var, h.var(dims), rtol=1e-4, atol=1e-5)
    for before, after in zip(batchnorms(model), batchnorms(adapted)):  # every BN re-estimated
        assert not torch.allclose(before.running_var, after.running_var)


def test_original_is_untouched_and_no_weight_changes(target, preset):
    model = mt.models.create_segmenter("test_resnet", 2, weights=None, seed=0)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = mt.diagnostics.adapt_batchnorm(model, target, preset)
    assert adapted is not model and model.training and not adapted.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    for (name, p), q in zip(model.named_parameters(), adapted.parameters()):
        assert torch.equal(p, q), name  # conv and BN affine weights unchanged
    assert adapted.head.weight.data_ptr() != model.head.weight.data_ptr()
    same = mt.diagnostics.adapt_batchnorm(model, target, preset, inplace=True)
    assert same is model
    assert not torch.equal(model.encoder.body.bn1.running_mean, state["encoder.body.bn1.running_mean"])  # fmt: skip


def test_adabn_undoes_most_of_an_intensity_shift():
    """A model whose BNs hold source statistics, on a target scanned 1.3x + 60 HU: its target
    output moves towards its output on the matching source images once AdaBN runs on the target."""
    preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32), window=(0, 3000), foreground_threshold=None)  # fmt: skip
    source = [{"image": c["image"]} for c in mt.data.synthetic.phantoms(2, shape=(32, 32, 4), seed=1)]  # fmt: skip
    target = [
        {"image": MetaTensor(s["image"].as_tensor() * 1.3 + 60.0, meta=dict(s["image"].meta))}
        for s in source
    ]
    model = mt.models.create_segmenter("test_resnet", 2, weights=None, seed=0)
    at_source = mt.diagnostics.adapt_batchnorm(model, source, preset)  # "trained" at the source
    at_target = mt.diagnostics.adapt_batchnorm(at_source, target, preset)
    xs, xt = eval_inputs(source, preset), eval_inputs(target, preset)
    with torch.no_grad():
        reference = at_source(xs).softmax(1)
        before = (at_source(xt).softmax(1) - reference).abs().mean().item()
        after = (at_target(xt).softmax(1) - reference).abs().mean().item()
    assert after < 0.5 * before, (before, after)  # measured: 0.33 -> 0.08


def test_records_from_files_without_labels(tmp_path, preset):
    cases = mt.data.synthetic.phantoms(2, shape=(24, 24, 4), output_dir=tmp_path)
    records = [{"image": c["image"]} for c in cases]
    assert isinstance(records[0]["image"], str)
    adapted = mt.diagnostics.adapt_batchnorm(tiny(), records, preset, max_cases=1)
    assert int(adapted[1].num_batches_tracked) == 1  # max_cases=1: the first case's 4 slices


def test_errors(target, preset):
    with pytest.raises(ModelError, match="BatchNorm.*GroupNorm"):
        mt.diagnostics.adapt_batchnorm(tiny(batchnorm=False), target, preset)
    with pytest.raises(ModelError, match="TENT adapts BatchNorm"):
        mt.diagnostics.tent(tiny(batchnorm=False), target, preset, steps=1)
    with pytest.raises(ConfigError, match="target_records is empty"):
        mt.diagnostics.adapt_batchnorm(tiny(), [], preset)
    with pytest.raises(ConfigError, match="'phantom-000' has no 'image'"):
        mt.diagnostics.adapt_batchnorm(tiny(), [{"case_id": "phantom-000", "img": 1}], preset)
    with pytest.raises(ConfigError, match="batch_size"):
        mt.diagnostics.adapt_batchnorm(tiny(), target, preset, batch_size=0)
    model_3d = mt.models.create_segmenter("test_resnet", 2, weights=None, spatial_dims=3, seed=0)
    with pytest.raises(ModelError, match="3D but the preset"):
        mt.diagnostics.adapt_batchnorm(model_3d, target, preset)


def test_tiles_cover_the_image_and_last_batch_of_one_joins_the_previous():
    image = torch.arange(2 * 40 * 20, dtype=torch.float32).reshape(2, 40, 20)
    tiles = _tiles(image, (16, 16))
    assert len(tiles) == 3 * 2 and all(t.shape == (2, 16, 16) for t in tiles)
    covered = torch.cat([t.flatten() for t in tiles]).unique()
    assert torch.equal(covered, image.flatten())
    sizes = [len(b) for b in batch_tiles(iter([torch.zeros(1, 4, 4)] * 7), 3)]
    assert sizes == [3, 4]


# --- TENT -------------------------------------------------------------------------------------


def test_tent_changes_only_batchnorm_affine_parameters_in_exactly_steps_updates(target, preset, monkeypatch):  # fmt: skip
    calls = []
    step = torch.optim.Adam.step

    def counting(self, *args, **kwargs):
        calls.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    model = tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    adapted, log = mt.diagnostics.tent(model, target, preset, steps=7, lr=1e-2, batch_size=3, return_log=True)  # fmt: skip
    assert len(calls) == 7 and [e["step"] for e in log] == list(range(1, 8))
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # the original untouched
    affine = {f"{i}.{p}" for i in (1, 4) for p in ("weight", "bias")}
    for name, p in adapted.named_parameters():
        assert torch.equal(p, state[name]) != (name in affine), name
        assert p.requires_grad and p.grad is None  # flags as they were
    # the running statistics were re-estimated after the updates: AdaBN again changes nothing
    again = mt.diagnostics.adapt_batchnorm(adapted, target, preset, batch_size=3)
    torch.testing.assert_close(again[4].running_var, adapted[4].running_var)
    assert not adapted.training


def test_entropy_on_the_target_decreases(target, preset):
    """Every step sees all 8 slices (batch_size=8): the batch entropy falls at every step, and
    the adapted model in eval mode is more confident on the target than AdaBN alone."""
    model = tiny()
    adapted, log = mt.diagnostics.tent(model, target, preset, steps=6, lr=1e-2, batch_size=8, return_log=True)  # fmt: skip
    entropies = [e["entropy"] for e in log]
    assert all(b < a for a, b in zip(entropies, entropies[1:])), entropies
    x = eval_inputs(target, preset)
    with torch.no_grad():
        before = _entropy(mt.diagnostics.adapt_batchnorm(model, target, preset)(x)).mean()
        after = _entropy(adapted(x)).mean()
    assert after < before
    assert all(0.0 < e["majority_share"] <= 1.0 for e in log)


def test_collapse_warns_on_a_large_learning_rate(target, preset):
    """lr=1: the 65 of 8192 pixels the 2-class model gave class 1 vanish, the entropy is ~0."""
    with pytest.warns(MedTransferWarning, match=r"TENT may have collapsed: class\(es\) \[1\]"):
        _, log = mt.diagnostics.tent(tiny(2), target, preset, steps=15, lr=1.0, batch_size=8, return_log=True)  # fmt: skip
    assert log[-1]["majority_share"] == 1.0 and log[-1]["entropy"] < 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedTransferWarning)  # a gentle run: no warning
        mt.diagnostics.tent(tiny(), target, preset, steps=2, lr=1e-3, batch_size=8)


def test_collapse_guard():
    assert "class(es) [2]" in _collapse_reason(np.array([50, 40, 10]), np.array([60, 40, 0]))
    assert "0.900 to 0.990" in _collapse_reason(np.array([90, 10]), np.array([990, 10]))
    assert _collapse_reason(np.array([975, 25]), np.array([985, 15])) is None  # small organ
    assert _collapse_reason(np.array([60, 40]), np.array([80, 20])) is None


def test_entropy_of_softmax_and_sigmoid_outputs():
    assert _entropy(torch.zeros(2, 4, 3, 3)).shape == (2, 3, 3)
    assert math.isclose(_entropy(torch.zeros(1, 4)).item(), math.log(4), rel_tol=1e-6)
    assert math.isclose(_entropy(torch.zeros(1, 1)).item(), math.log(2), rel_tol=1e-6)
    p = torch.sigmoid(torch.tensor(2.0))
    expected = -(p * p.log() + (1 - p) * (1 - p).log())
    assert math.isclose(_entropy(torch.full((1, 1), 2.0)).item(), expected.item(), rel_tol=1e-5)


def test_tent_on_a_one_output_classifier(target):
    preset = mt.transforms.presets.ct("classification", spatial_dims=2, roi_size=(32, 32))
    model = mt.models.create_classifier("test_resnet", 1, weights=None, seed=0)
    adapted, log = mt.diagnostics.tent(model, target, preset, steps=2, batch_size=4, return_log=True)  # fmt: skip
    assert len(log) == 2 and 0.0 <= log[0]["entropy"] <= math.log(2) + 1e-6
    assert adapted(torch.zeros(1, 1, 32, 32)).shape == (1, 1)
