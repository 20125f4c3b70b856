"""Losses (class weights, focal, Dice+CE, deep supervision), schedules, History, progress."""

from __future__ import annotations

import sys

import pytest
import torch

from medtransfer.errors import ConfigError
from medtransfer.training import History, make_loss, make_schedule
from medtransfer.training.checkpoint import load_checkpoint, save_checkpoint
from medtransfer.training.progress import Progress


def test_class_weights_change_cross_entropy_and_focal():
    logits, target = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 1])
    plain = make_loss("classification", "ce")(logits, target)
    weighted = make_loss("classification", "ce", class_weights=[1.0, 5.0])(logits, target)
    assert torch.allclose(plain, weighted)  # all targets in one class: weights cancel
    mixed = torch.tensor([0, 1])
    assert not torch.allclose(
        make_loss("classification", "focal")(logits, mixed),
        make_loss("classification", "focal", class_weights=[1.0, 5.0])(logits, mixed),
    )


def test_bce_for_a_single_logit_uses_pos_weight():
    loss = make_loss("classification", "auto", num_outputs=1, class_weights=[1.0, 3.0])
    logits, target = torch.zeros(2, 1), torch.tensor([1, 0])
    expected = (3 * torch.log(torch.tensor(2.0)) + torch.log(torch.tensor(2.0))) / 2
    assert torch.allclose(loss(logits, target), expected)


def test_dice_ce_deep_supervision_and_bad_names():
    loss = make_loss("segmentation")
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    good = torch.zeros(2, 2, 8, 8)
    good[:, 1] = target[:, 0] * 20 - 10
    bad = -good
    assert loss(good, target) < loss(bad, target)
    assert loss([good, good], target) == pytest.approx(float(loss(good, target)))
    with pytest.raises(ConfigError, match="focal"):
        make_loss("segmentation", "focal")


@pytest.mark.parametrize("name", ["warmup_cosine", "one_cycle", "constant"])
def test_schedules_round_trip_through_a_weights_only_checkpoint(tmp_path, name):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1.0)
    sched = make_schedule(opt, name, total_steps=20, warmup=4)
    lrs = []
    for _ in range(20):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    save_checkpoint(tmp_path / "s.pt", {"scheduler": sched.state_dict()})
    fresh = make_schedule(torch.optim.AdamW([param], lr=1.0), name, total_steps=20, warmup=4)
    fresh.load_state_dict(load_checkpoint(tmp_path / "s.pt")["scheduler"])
    assert fresh.last_epoch == sched.last_epoch
    if name != "constant":
        assert max(lrs) == pytest.approx(1.0, abs=0.05) and lrs[-1] < 0.05


def test_history_plot_draws_or_names_matplotlib_when_it_is_missing(monkeypatch):
    history = History(
        "dice", records=[{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "dice": 0.5}]
    )
    assert history.plot() is not None
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="matplotlib"):
        history.plot()


def test_progress_quiet_prints_nothing_and_epoch_mode_prints_a_line(capsys):
    record = {"epoch": 1, "train_loss": 0.5, "dice": 0.7, "time_s": 1.0, "samples_per_s": 8.0}
    quiet = Progress("quiet")
    quiet.start_epoch(0, 1, 2)
    quiet.update(1, 4, 0.5, 1e-3)
    quiet.end_epoch(record, "dice", True)
    assert capsys.readouterr().out == ""
    Progress("epoch").end_epoch(record, "dice", True)
    assert "dice 0.7000 *best*" in capsys.readouterr().out
    with pytest.raises(ConfigError):
        Progress("loud")
