"""Multi-label findings in training: masked BCE, positive weights, macro AUROC selection."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import medtransfer as mt
from medtransfer.errors import ConfigError
from medtransfer.training import FineTuner
from medtransfer.training.label_checks import CheckLabelAgainstImaged
from medtransfer.training.losses import (
    MAX_POS_WEIGHT,
    MaskedBCEWithLogits,
    make_loss,
    positive_weights,
)
from medtransfer.training.metrics import multilabel_auroc, resolve_metric
from tests.training.helpers import TinyClassifier

NAN = float("nan")


def _by_hand(logits, target, pos_weight):
    """-[w y log s(x) + (1 - y) log(1 - s(x))], mean over the known entries."""
    total, count = 0.0, 0
    for row_x, row_y in zip(logits, target):
        for k, (x, y) in enumerate(zip(row_x, row_y)):
            if math.isnan(y) or y < 0:
                continue
            p = 1 / (1 + math.exp(-x))
            total -= pos_weight[k] * y * math.log(p) + (1 - y) * math.log(1 - p)
            count += 1
    return total / count


def test_masked_bce_equals_a_computation_by_hand():
    logits = [[2.0, -1.0, 0.5], [-0.3, 1.5, -2.0], [0.0, 0.7, 1.2]]
    target = [[1.0, 0.0, NAN], [0.0, -1.0, 1.0], [NAN, 1.0, 0.0]]
    loss = MaskedBCEWithLogits()(torch.tensor(logits), torch.tensor(target))
    assert float(loss) == pytest.approx(_by_hand(logits, target, [1, 1, 1]), rel=1e-6)
    weights = [2.0, 0.5, 3.0]
    weighted = MaskedBCEWithLogits(weights)(torch.tensor(logits), torch.tensor(target))
    assert float(weighted) == pytest.approx(_by_hand(logits, target, weights), rel=1e-6)
    # without unknown entries it is torch's BCEWithLogitsLoss(pos_weight=...)
    full = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    reference = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weights))
    expected = reference(torch.tensor(logits), full)
    assert torch.allclose(MaskedBCEWithLogits(weights)(torch.tensor(logits), full), expected)


def test_unknown_entries_get_no_gradient_and_an_all_unknown_batch_is_zero():
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.4]], requires_grad=True)
    MaskedBCEWithLogits()(logits, torch.tensor([[1.0, NAN], [-1.0, 0.0]])).backward()
    assert logits.grad[0, 1] == 0 and logits.grad[1, 0] == 0
    assert logits.grad[0, 0] != 0 and logits.grad[1, 1] != 0
    empty = MaskedBCEWithLogits()(torch.zeros(2, 2), torch.full((2, 2), NAN))
    assert float(empty) == 0.0


def test_positive_weights_are_negatives_over_positives_capped():
    labels = [[1, 0, 1], [0, 0, 1], [0, NAN, 1], [0, 1, 0], [0, -1, 1]]
    # 1 pos / 4 neg; 1 pos / 2 neg (NaN and -1 not counted); 4 pos / 1 neg
    assert positive_weights(labels) == [4.0, 2.0, 0.25]
    rare = [[1]] + [[0]] * 99
    assert positive_weights(rare) == [MAX_POS_WEIGHT]
    assert positive_weights([[0], [0]]) == [1.0]  # no positives: nothing to weigh
    records = [{"label": row} for row in labels]
    assert positive_weights(records) == positive_weights(labels)


def test_make_loss_picks_masked_bce_for_multilabel():
    loss = make_loss("classification", num_outputs=3, multilabel=True, pos_weight=[1, 2, 3])
    assert isinstance(loss.loss, MaskedBCEWithLogits)
    assert loss.loss.pos_weight.tolist() == [1, 2, 3]
    with pytest.raises(ConfigError, match="multi-label findings train with 'bce'"):
        make_loss("classification", "ce", num_outputs=3, multilabel=True)


def test_multilabel_auroc_skips_unknown_labels_and_resolves_as_selection_metric():
    logits = torch.tensor([[2.0, 0.1], [-1.0, 0.9], [0.5, 5.0], [-2.0, 0.2]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, NAN], [0.0, 0.0]])
    assert multilabel_auroc(logits, target, average=None) == [1.0, 1.0]
    target[2, 1] = 0.0  # now known and negative, with the highest score: AUROC drops
    assert multilabel_auroc(logits, target, average=None)[1] == pytest.approx(2 / 3)
    metric = resolve_metric("auto", "classification", 2, multilabel=True)
    assert metric.name == "auroc" and not metric.per_case


def test_label_check_of_a_multilabel_model():
    check = CheckLabelAgainstImaged("classification", num_classes=3, multilabel=True)
    check({"label": [1.0, NAN, -1.0], "case_id": "a"})
    with pytest.raises(ConfigError, match="case 'b'.*vector of 3 findings"):
        check({"label": 1, "case_id": "b"})
    with pytest.raises(ConfigError, match="case 'c'"):
        check({"label": [1.0, 0.0], "case_id": "c"})
    with pytest.raises(ConfigError, match="case 'd'"):
        check({"label": [1.0, 0.0, 2.0], "case_id": "d"})


def _records(n: int, seed: int) -> list[dict]:
    """Two independent findings: a bright square top-left, one bottom-right; some unknown."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        a, b = (int(v) for v in rng.integers(0, 2, size=2))
        image = rng.normal(0.0, 0.5, size=(1, 16, 16)).astype(np.float32)
        image[:, 2:7, 2:7] += 2.0 * a
        image[:, 9:14, 9:14] += 2.0 * b
        label = [float(a), NAN if i % 5 == 0 else float(b)]
        records.append({"image": torch.from_numpy(image), "label": label, "case_id": f"c{i}"})
    return records


def test_tiny_multilabel_run_improves_macro_auroc(tmp_path):
    train, val = _records(48, 0), _records(32, 1)
    torch.manual_seed(0)
    model = TinyClassifier(num_classes=2)
    model.multilabel, model.class_names = True, ["left", "right"]
    tuner = FineTuner(model, lr=1e-2, batch_size=8, progress="quiet", run_dir=tmp_path / "run")
    before = tuner.validate(val)
    history = tuner.fit(train, val, epochs=4)
    after = history.records[-1]
    assert set(after) >= {"auroc", "auroc/left", "auroc/right", "val_loss"}
    assert after["auroc"] >= 0.95 and after["auroc"] > before["auroc"] + 0.2
    assert after["auroc"] == pytest.approx((after["auroc/left"] + after["auroc/right"]) / 2)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["findings"] == ["left", "right"] and config["metric"] == "auroc"
    assert config["pos_weight"] == pytest.approx(positive_weights(train))


def test_multilabel_flag_and_pos_weight_arguments(tmp_path):
    model = mt.models.create_classifier(
        "resnet18", 2, weights=None, multilabel=True, class_names=["opacity", "effusion"]
    )
    tuner = FineTuner(model, pos_weight=[2.0, 3.0], progress="quiet", run_dir=tmp_path / "r")
    assert tuner.settings.findings == ("opacity", "effusion")
    assert tuner.settings.pos_weight == (2.0, 3.0)
    plain = FineTuner(TinyClassifier(num_classes=3), multilabel=True, progress="quiet")
    assert plain.settings.findings == ("finding_0", "finding_1", "finding_2")
    with pytest.raises(ConfigError, match="pos_weight"):
        FineTuner(model, pos_weight="balanced", progress="quiet")
