"""A run SIGKILLed mid-epoch and resumed ends exactly like an uninterrupted run (CPU, deterministic)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from medtransfer.training import load_checkpoint
from tests.training import train_script
from tests.training.helpers import state_equal

REPO = Path(__file__).resolve().parents[2]
METRIC_KEYS = ("epoch", "step", "train_loss", "val_loss", "accuracy", "auroc")


def _metrics(records):
    return [{k: r.get(k) for k in METRIC_KEYS} for r in records]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    reference = train_script.run(str(tmp_path / "reference"))
    killed_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # 3 batches per epoch, checkpoints every 2 steps: killed after step 5 (epoch 2, batch 2),
    # the last checkpoint is step 4, so step 5 is lost and must be replayed identically.
    proc = subprocess.run(
        [sys.executable, "-m", "tests.training.train_script", str(killed_dir), "--kill-at", "5"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    last = load_checkpoint(killed_dir / "checkpoints" / "last.pt")
    assert last["loop"]["step"] == 4 and last["loop"]["step_in_epoch"] == 1
    resumed = train_script.run(str(killed_dir), resume=True)
    assert state_equal(resumed["model"], reference["model"])
    assert _metrics(resumed["records"]) == _metrics(reference["records"])
