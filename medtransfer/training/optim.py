"""Optimizer, device and precision choices for the FineTuner."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from medtransfer.errors import ConfigError
from medtransfer.training.distributed import DistContext
from medtransfer.training.loop import Runtime
from medtransfer.training.losses import make_loss
from medtransfer.training.schedules import make_schedule
from medtransfer.training.settings import TrainSettings
from medtransfer.training.strategies import Strategy

__all__ = ["build_optimizer", "build_runtime", "resolve_amp", "resolve_device", "wrap_model"]

OPTIMIZERS = ("adamw", "sgd")


def param_groups(
    model: nn.Module, strategy: Strategy, lr: float, weight_decay: float
) -> list[dict]:
    """Optimizer groups by (learning-rate scale, decay): every parameter, frozen ones included.

    Frozen parameters have no gradient, so optimizers skip them; keeping them in the optimizer
    lets strategies unfreeze later (GradualUnfreeze) without rebuilding it, and keeps the
    optimizer's state dict stable for resume. Biases and norms (1-D tensors) get no weight decay.

    Example:
        >>> from medtransfer.training.strategies import FullFineTune
        >>> groups = param_groups(torch.nn.Linear(3, 2), FullFineTune(), 0.1, 0.01)
        >>> [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups]
        [(0.1, 0.01, 1), (0.1, 0.0, 1)]
    """
    scales = strategy.lr_scales(model)
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        key = (scales.get(id(p), 1.0), p.ndim > 1)
        groups.setdefault(key, []).append(p)
    return [
        {"params": ps, "lr": lr * scale, "weight_decay": weight_decay if decay else 0.0}
        for (scale, decay), ps in sorted(
            groups.items(), key=lambda item: (item[0][0], not item[0][1])
        )
    ]


def build_optimizer(
    model: nn.Module,
    strategy: Strategy,
    name: str | Callable,
    lr: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """AdamW (default) or SGD with Nesterov momentum over :func:`param_groups`, or ``name(groups)``."""
    groups = param_groups(model, strategy, lr, weight_decay)
    if callable(name):
        return name(groups)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    raise ConfigError(f"optimizer={name!r} is not one of {OPTIMIZERS} or a callable.")


def resolve_device(device: str | torch.device, ctx: DistContext) -> torch.device:
    """The evaluation's device rule, then this process's GPU under torchrun.

    ``"auto"``, ``"cpu"``, ``"cuda:1"``... are read by ``resolve_device`` of
    :mod:`medtransfer.evaluation` (one rule for training and inference); a CUDA device without an
    index becomes ``cuda:LOCAL_RANK``.

    Example:
        >>> resolve_device("cpu", DistContext())
        device(type='cpu')
    """
    from medtransfer.evaluation import resolve_device as device_rule

    resolved = device_rule(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", ctx.local_rank)
    return resolved


def resolve_amp(amp: str | bool, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: "auto" is bf16 on CUDA GPUs that support it, else fp16; off on CPU.

    Example:
        >>> resolve_amp("auto", torch.device("cpu")) is None
        True
    """
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp is False or amp is None:
        return None
    if amp is True:
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if amp in ("bf16", "fp16"):
        return torch.bfloat16 if amp == "bf16" else torch.float16
    raise ConfigError(f"amp={amp!r} must be 'auto', True, False, 'bf16' or 'fp16'.")


def _memory_format(model: nn.Module, setting: str | bool, device: torch.device):
    if not (setting is True or (setting == "auto" and device.type == "cuda")):
        return None
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if not convs:
        return None
    return torch.channels_last if convs[0].weight.ndim == 4 else torch.channels_last_3d


def wrap_model(
    model: nn.Module, ctx: DistContext, device: torch.device, compile: bool
) -> nn.Module:
    """``model`` wrapped for the run: DDP under torchrun, then ``torch.compile`` when asked."""
    wrapped = ctx.wrap(model, device)
    return torch.compile(wrapped) if compile else wrapped


def build_runtime(
    model: nn.Module,
    strategy: Strategy,
    settings: TrainSettings,
    ctx: DistContext,
    total_steps: int,
) -> Runtime:
    """Device, memory format, precision, optimizer, loss, schedule and wrapped model of a run.

    ``model`` is moved to the device; the strategy must already be set up (it decides the
    learning-rate groups).
    """
    device = resolve_device(settings.device, ctx)
    model = model.to(device)
    memory_format = _memory_format(model, settings.channels_last, device)
    if memory_format is not None:
        model.to(memory_format=memory_format)
    amp_dtype = resolve_amp(settings.amp, device)
    optimizer = build_optimizer(
        model, strategy, settings.optimizer, settings.lr, settings.weight_decay
    )
    loss_fn = settings.loss
    if not callable(loss_fn):
        pos_weight = settings.pos_weight
        loss_fn = make_loss(
            settings.task,
            loss_fn,
            num_outputs=settings.num_outputs,
            class_weights=settings.class_weights,
            multilabel=settings.findings is not None,
            pos_weight=None if isinstance(pos_weight, str) else pos_weight,
        )
    if isinstance(loss_fn, nn.Module):
        loss_fn = loss_fn.to(device)
    return Runtime(
        model=wrap_model(model, ctx, device, settings.compile),
        loss_fn=loss_fn,
        optimizer=optimizer,
        scheduler=make_schedule(optimizer, settings.schedule, total_steps, settings.warmup),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        device=device,
        amp_dtype=amp_dtype,
        memory_format=memory_format,
        grad_accum=settings.grad_accum,
        clip_grad=settings.clip_grad,
        ctx=ctx,
    )
