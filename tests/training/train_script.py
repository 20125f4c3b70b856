"""Training run used by the SIGKILL-resume and torchrun tests (``python -m tests.training.train_script``).

Deterministic: seeded model, random augmentation (flip + noise), dropout, mid-epoch checkpoints.
"""

from __future__ import annotations

import argparse
import os
import signal

import torch

from medtransfer.training import Callback, FineTuner
from tests.training.helpers import TinyClassifier, classification_records

EPOCHS = 3
VAL_CASES = 11  # odd: unequal validation shards under 2 processes


class KillAt(Callback):
    """SIGKILL this process right after optimizer step ``step`` (no clean-up, like an OOM kill)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, tuner, step, loss):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def transforms():
    from monai.transforms import Compose, RandFlipd, RandGaussianNoised

    return Compose([RandFlipd("image", prob=0.5, spatial_axis=1), RandGaussianNoised("image", prob=0.5, std=0.1)])  # fmt: skip


def make_tuner(run_dir: str) -> FineTuner:
    torch.manual_seed(0)
    return FineTuner(
        TinyClassifier(dropout=0.3),
        batch_size=4,
        lr=1e-2,
        run_dir=run_dir,
        checkpoint_every=2,
        deterministic=True,
        progress="quiet",
    )


def run(run_dir: str, kill_at: int = 0, resume: bool = False, out: str | None = None) -> dict:
    records = classification_records(12)
    tuner = make_tuner(run_dir)
    callbacks = [KillAt(kill_at)] if kill_at else []
    history = tuner.fit(
        records,
        records[:VAL_CASES],
        epochs=EPOCHS,
        train_transform=transforms(),
        callbacks=callbacks,
        resume=resume,
    )
    result = {"model": tuner.model.state_dict(), "records": history.records}
    if out:
        rank = int(os.environ.get("RANK", "0"))
        torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    run(args.run_dir, args.kill_at, args.resume, args.out)
