"""The best epoch on a tie of the selection metric goes to the lower validation loss."""

from __future__ import annotations

import math

from medtransfer.training import History


def _run(history: History, records: list[dict]) -> list[bool]:
    """What the FineTuner does per validated epoch: is it the best so far? then append."""
    best = []
    for record in records:
        best.append(history.is_improvement(record[history.metric], val_loss=record.get("val_loss")))
        history.append(record)
    return best


def test_auroc_tie_keeps_the_epoch_with_the_lower_validation_loss():
    history = History("auroc")
    records = [
        {"epoch": 1, "auroc": 1.0, "accuracy": 0.52, "val_loss": 0.69},
        {"epoch": 2, "auroc": 1.0, "accuracy": 1.0, "val_loss": 0.05},
        {"epoch": 3, "auroc": 1.0, "accuracy": 1.0, "val_loss": 0.07},  # tie, worse loss
        {"epoch": 4, "auroc": 0.9, "accuracy": 1.0, "val_loss": 0.01},  # lower metric
    ]
    assert _run(history, records) == [True, True, False, False]
    assert history.best_epoch == 2 and history.best_value == 1.0
    assert history.epochs_since_best() == 2


def test_a_lower_is_better_metric_breaks_ties_the_same_way_and_a_full_tie_keeps_the_first():
    history = History("hd95", higher_is_better=False)
    records = [
        {"epoch": 1, "hd95": 3.0, "val_loss": 0.5},
        {"epoch": 2, "hd95": 3.0, "val_loss": 0.4},
        {"epoch": 3, "hd95": 3.0, "val_loss": 0.4},  # same metric and loss: the earlier stays
    ]
    assert _run(history, records) == [True, True, False]
    assert history.best_epoch == 2


def test_a_tie_without_a_validation_loss_is_no_improvement():
    history = History("dice", records=[{"epoch": 1, "dice": 0.8, "val_loss": 0.3}])
    assert not history.is_improvement(0.8)
    assert not history.is_improvement(0.8, val_loss=math.nan)
    assert history.is_improvement(0.8, val_loss=0.2)
    assert history.is_improvement(0.81) and not history.is_improvement(0.79, val_loss=0.0)
