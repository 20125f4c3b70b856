"""torchrun with 2 CPU processes (gloo): identical weights on both ranks, metric = single-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training import train_script
from tests.training.helpers import classification_records, state_equal

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tests.training.train_script", str(tmp_path / "run"), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    assert state_equal(rank0["model"], rank1["model"])  # parameters and (synced) buffers
    assert rank0["records"][-1]["auroc"] == rank1["records"][-1]["auroc"]
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()  # written by rank 0

    tuner = train_script.make_tuner(str(tmp_path / "single"))
    tuner.model.load_state_dict(rank0["model"])
    single = tuner.validate(classification_records(12)[: train_script.VAL_CASES])
    ddp = rank0["records"][-1]
    assert single["auroc"] == pytest.approx(ddp["auroc"], abs=1e-9)
    assert single["accuracy"] == pytest.approx(ddp["accuracy"], abs=1e-9)
    assert single["val_loss"] == pytest.approx(ddp["val_loss"], rel=1e-5)
