"""Learning-rate range test (Smith 2015, as fastai's ``lr_find``): a suggestion and a plot.

The learning rate grows exponentially from ``start_lr`` to ``end_lr`` over ``num_iter`` steps
while the smoothed loss is recorded; the test stops early when the loss diverges. The model,
optimizer and RNG states are restored afterwards, so the test does not change the run.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from medtransfer.errors import ConfigError
from medtransfer.training.checkpoint import get_rng_state, set_rng_state
from medtransfer.training.data_loading import split_batch
from medtransfer.training.distributed import DistContext
from medtransfer.training.optim import build_runtime
from medtransfer.training.settings import TrainSettings, build_loaders
from medtransfer.training.strategies import Strategy, as_strategy

__all__ = ["LRFindResult", "lr_find", "suggest_lr"]


def suggest_lr(lrs: list[float], losses: list[float]) -> float:
    """The learning rate of the steepest descent of the (smoothed) loss against ``log(lr)``.

    Example:
        >>> lrs = [10 ** (-6 + i / 4) for i in range(20)]
        >>> losses = [1.0] * 8 + [0.9, 0.7, 0.5, 0.45, 0.44] + [0.5, 1, 2, 4, 8, 16, 32]
        >>> round(math.log10(suggest_lr(lrs, losses)), 2)
        -3.75
    """
    if len(lrs) < 3:
        return lrs[0] if lrs else float("nan")
    logs = [math.log10(lr) for lr in lrs]
    slopes = [(losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(1, len(lrs) - 1)]  # fmt: skip
    return lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]


@dataclass
class LRFindResult:
    """Learning rates tried, smoothed losses, and the suggested rate.

    Example:
        >>> r = LRFindResult([1e-4, 1e-3], [1.0, 0.5], 1e-3)
        >>> r.suggestion
        0.001
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float

    def plot(self, ax: Any = None) -> Any:
        """Loss against learning rate (log scale) with the suggestion marked; needs matplotlib."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:  # optional dependency
            raise ConfigError(
                "LRFindResult.plot() needs matplotlib: pip install matplotlib"
            ) from err
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(self.lrs, self.losses)
        ax.set_xscale("log")
        ax.axvline(self.suggestion, color="tab:red", linestyle="--", label=f"{self.suggestion:.1e}")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("smoothed loss")
        ax.legend()
        return ax


def lr_find(
    model: nn.Module,
    train: Any,
    settings: TrainSettings,
    *,
    strategy: Strategy | None = None,
    train_transform: Any = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    smoothing: float = 0.98,
    diverge: float = 4.0,
) -> LRFindResult:
    """Run the range test with ``settings``' loss, optimizer, precision and data loading.

    ``FineTuner.lr_find(train)`` calls this with its model, strategy and settings.

    Args:
        model: the model, already set up by ``strategy`` (frozen parts, adapters).
        train: training data (records, Dataset or DataLoader; batches repeat if too few).
        settings: a :class:`~medtransfer.training.settings.TrainSettings` (``tuner.settings``).
        strategy: gives the learning-rate groups and train mode (default FullFineTune).
        train_transform: MONAI transform for records input.
        start_lr, end_lr: range of learning rates (base rate; strategy multipliers apply).
        num_iter: steps (at most).
        smoothing: exponential smoothing of the loss (fastai's 0.98).
        diverge: stop when the smoothed loss exceeds ``diverge`` x its minimum.

    Returns:
        :class:`LRFindResult` (``.suggestion``, ``.plot()``).

    Example:
        >>> import torch, medtransfer as mt
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = DataLoader(TensorDataset(torch.rand(8, 3), torch.arange(8) % 2), batch_size=4)
        >>> settings = TrainSettings(task="classification", num_outputs=2, device="cpu")
        >>> result = lr_find(torch.nn.Linear(3, 2), data, settings, num_iter=5)
        >>> len(result.lrs) <= 5
        True
    """
    if not 0 < start_lr < end_lr or num_iter < 2:
        raise ConfigError("lr_find needs 0 < start_lr < end_lr and num_iter >= 2.")
    strategy = as_strategy(strategy)
    ctx = DistContext()
    rt = build_runtime(model, strategy, settings, ctx, total_steps=num_iter)
    loaders = build_loaders(settings, train, train_transform, train=True, ctx=ctx)
    saved_model = copy.deepcopy(model.state_dict())
    saved_rng = get_rng_state()
    ratios = [group["lr"] / settings.lr for group in rt.optimizer.param_groups]
    gamma = (end_lr / start_lr) ** (1.0 / (num_iter - 1))
    lrs: list[float] = []
    losses: list[float] = []
    avg, best = 0.0, math.inf
    rt.model.train()
    strategy.train_mode(model)
    epoch = 0  # data repeat if one epoch has fewer than num_iter batches
    try:
        done = False
        while not done:
            with contextlib.closing(loaders.iterate(epoch)) as batches:
                for batch in batches:
                    lr = start_lr * gamma ** len(lrs)
                    for group, ratio in zip(rt.optimizer.param_groups, ratios):
                        group["lr"] = lr * ratio
                    image, target, _ = split_batch(batch)
                    image, target = rt.to_device(image, image=True), rt.to_device(target)
                    with rt.autocast():
                        loss = rt.loss_fn(rt.model(image), target)
                    rt.optimizer.zero_grad(set_to_none=True)
                    rt.scaler.scale(loss).backward()
                    rt.scaler.step(rt.optimizer)
                    rt.scaler.update()
                    value = float(loss.detach())
                    avg = smoothing * avg + (1 - smoothing) * value
                    smoothed = avg / (1 - smoothing ** (len(lrs) + 1))
                    lrs.append(lr)
                    losses.append(smoothed)
                    best = min(best, smoothed)
                    if (
                        not math.isfinite(smoothed)
                        or smoothed > diverge * best
                        or len(lrs) >= num_iter
                    ):
                        done = True
                        break
            epoch += 1
    finally:
        model.load_state_dict(saved_model)
        set_rng_state(saved_rng)
    finite = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    lrs, losses = [p[0] for p in finite], [p[1] for p in finite]
    return LRFindResult(lrs, losses, suggest_lr(lrs, losses))
