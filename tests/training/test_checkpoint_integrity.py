"""Checkpoints carry a SHA-256 sidecar, verified before unpickling; resume falls back to the
previous good checkpoint when the last one is corrupt."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch

import medtransfer as mt
from medtransfer.errors import CheckpointError, DataWarning
from medtransfer.training import FineTuner, load_checkpoint, save_checkpoint
from tests.training.helpers import TinyClassifier, classification_records, state_equal


def _corrupt(path, n=64):
    """Overwrite ``n`` bytes in the middle of ``path`` (as a failing disk or a bad copy would)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + n] = bytes((b + 0x5A) % 256 for b in data[middle : middle + n])
    path.write_bytes(bytes(data))


def _tuner(run_dir, **kwargs):
    torch.manual_seed(0)
    options = {"batch_size": 4, "lr": 1e-2, "progress": "quiet", "run_dir": run_dir}
    return FineTuner(TinyClassifier(dropout=0.3), deterministic=True, **{**options, **kwargs})


def test_save_writes_a_sha256_sidecar_in_sha256sum_format(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(3)}})
    sidecar = tmp_path / "c.pt.sha256"
    assert sidecar.read_text() == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  c.pt\n"
    assert load_checkpoint(path)["model"]["w"].tolist() == [1.0, 1.0, 1.0]


def test_a_corrupt_checkpoint_is_refused_before_unpickling(tmp_path):
    path = save_checkpoint(tmp_path / "best.pt", {"model": {"w": torch.randn(4096)}})
    _corrupt(path)
    with pytest.raises(CheckpointError, match=r"best\.pt.*SHA-256"):
        load_checkpoint(path)


def test_a_checkpoint_without_sidecar_loads_with_a_warning(tmp_path):
    path = save_checkpoint(tmp_path / "old.pt", {"model": {"w": torch.ones(2)}})
    (tmp_path / "old.pt.sha256").unlink()  # written by medtransfer before sidecars existed
    with pytest.warns(DataWarning, match="no checksum"):
        assert load_checkpoint(path)["model"]["w"].tolist() == [1.0, 1.0]


def test_a_write_killed_between_sidecar_and_rename_leaves_a_loadable_checkpoint(
    tmp_path, monkeypatch
):
    path = save_checkpoint(tmp_path / "best.pt", {"model": {"w": torch.zeros(2)}})
    real_replace = os.replace

    def killed(src, dst):
        if str(dst) == str(path):
            raise KeyboardInterrupt  # the process dies right before the checkpoint's rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"model": {"w": torch.ones(2)}})
    monkeypatch.setattr(os, "replace", real_replace)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old checkpoint still verifies: no warning
        assert load_checkpoint(path)["model"]["w"].tolist() == [0.0, 0.0]


class StopAt(mt.training.Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, tuner, step, loss):
        if step == self.step:
            raise KeyboardInterrupt


def test_corrupt_last_checkpoint_resumes_from_the_previous_one_with_a_warning(tmp_path):
    records = classification_records(12)
    reference = _tuner(tmp_path / "ref")
    reference.fit(records, records, epochs=3)

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _tuner(run, checkpoint_every=2).fit(records, records, epochs=3, callbacks=[StopAt(4)])
    checkpoints = run / "checkpoints"
    assert load_checkpoint(checkpoints / "last.prev.pt")["loop"]["step"] == 3
    _corrupt(checkpoints / "last.pt")

    resumed = _tuner(run, checkpoint_every=2)
    with pytest.warns(DataWarning, match=r"last\.pt.*last\.prev\.pt"):
        history = resumed.fit(records, records, epochs=3, resume=True)
    assert state_equal(resumed.model.state_dict(), reference.model.state_dict())
    assert [r["train_loss"] for r in history.records] == [
        r["train_loss"] for r in reference.history.records
    ]


def test_both_checkpoints_corrupt_is_a_checkpoint_error(tmp_path):
    records = classification_records(8)
    run = tmp_path / "run"
    _tuner(run).fit(records, epochs=2)
    for name in ("last.pt", "last.prev.pt"):
        _corrupt(run / "checkpoints" / name)
    with pytest.raises(CheckpointError, match=r"last\.pt.*last\.prev\.pt") as info:
        _tuner(run).fit(records, epochs=3, resume=True)
    assert "overwrite" in str(info.value)
