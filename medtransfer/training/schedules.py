"""Learning-rate schedules stepped once per optimizer step: warmup + cosine, one-cycle, constant."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from medtransfer.errors import ConfigError

__all__ = ["SCHEDULES", "make_schedule", "warmup_cosine_factor"]

SCHEDULES = ("warmup_cosine", "one_cycle", "constant")


def warmup_cosine_factor(step: int, total: int, warmup: int, final: float = 0.0) -> float:
    """Multiplier of the base rate: linear warmup over ``warmup`` steps, then cosine to ``final``.

    Example:
        >>> [round(warmup_cosine_factor(s, 10, 2), 3) for s in (0, 1, 2, 6, 10)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _WarmupCosine:
    """A class, not a lambda: LambdaLR checkpoints its ``__dict__`` (plain numbers)."""

    def __init__(self, total: int, warmup: int) -> None:
        self.total = total
        self.warmup = warmup

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, self.total, self.warmup)


class _Constant:
    def __init__(self, warmup: int) -> None:
        self.warmup = warmup

    def __call__(self, step: int) -> float:
        return min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0


def make_schedule(
    optimizer: torch.optim.Optimizer,
    name: str,
    total_steps: int,
    warmup: float | int = 0.05,
) -> LRScheduler:
    """Build a per-step schedule.

    Args:
        optimizer: its groups' ``lr`` are the peak rates (per-group multipliers kept).
        name: "warmup_cosine", "one_cycle" (torch's OneCycleLR) or "constant".
        total_steps: optimizer steps in the whole run.
        warmup: warmup steps (int) or fraction of ``total_steps`` (float < 1).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = make_schedule(opt, "warmup_cosine", total_steps=10, warmup=2)
        >>> opt.param_groups[0]["lr"]
        0.5
    """
    if name not in SCHEDULES:
        raise ConfigError(f"schedule={name!r} is not one of {SCHEDULES}.")
    total_steps = max(1, int(total_steps))
    warm = int(round(warmup * total_steps)) if isinstance(warmup, float) else int(warmup)
    if name == "one_cycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        pct = min(0.5, max(warm / total_steps, 1.0 / total_steps)) if warm else 0.3
        return OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=pct)
    if name == "constant":
        return LambdaLR(optimizer, _Constant(warm))
    return LambdaLR(optimizer, _WarmupCosine(total_steps, warm))
