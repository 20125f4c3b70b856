"""The training and validation loops the FineTuner runs (one optimizer step, one epoch, one pass).

Kept apart from the FineTuner's set-up so each stays short; the same code runs on CPU and GPU,
in one process or under torchrun.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from medtransfer.errors import ModelError
from medtransfer.training.data_loading import EpochLoaders, split_batch
from medtransfer.training.distributed import DistContext, gather_objects, sum_across, unwrap
from medtransfer.training.metrics import TaskMetric, accuracy, auroc, multilabel_auroc
from medtransfer.training.progress import Progress

__all__ = ["LoopState", "Runtime", "train_epoch", "validate"]


@dataclass
class LoopState:
    """Where the loop is; saved in every checkpoint so a resume continues at the same batch."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed in the run
    step_in_epoch: int = 0  # optimizer steps completed in the current epoch
    loss_sum: float = 0.0  # running train-loss sum of the current epoch (sample-weighted)
    loss_count: int = 0
    samples: int = 0  # samples seen in the current epoch (throughput)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Runtime:
    """Everything one step needs: model (possibly DDP/compiled), optimizer, device, precision."""

    model: nn.Module
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None = None
    memory_format: torch.memory_format | None = None
    grad_accum: int = 1
    clip_grad: float | None = None
    ctx: DistContext = field(default_factory=DistContext)

    def to_device(self, x: torch.Tensor, image: bool = False) -> torch.Tensor:
        non_blocking = self.device.type == "cuda"
        if image and self.memory_format is not None and x.ndim in (4, 5):
            fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
            return x.to(self.device, non_blocking=non_blocking, memory_format=fmt)
        return x.to(self.device, non_blocking=non_blocking)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def _optimizer_step(rt: Runtime) -> None:
    if rt.clip_grad is not None:
        rt.scaler.unscale_(rt.optimizer)
        params = [p for g in rt.optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, rt.clip_grad)
    rt.scaler.step(rt.optimizer)
    rt.scaler.update()
    rt.optimizer.zero_grad(set_to_none=True)
    rt.scheduler.step()


def train_epoch(
    rt: Runtime,
    loaders: EpochLoaders,
    state: LoopState,
    *,
    epochs: int,
    max_steps: int | None,
    progress: Progress,
    on_step: Callable[[int, float], None],
    last_checkpoint: Callable[[], str],
) -> None:
    """Run (the rest of) epoch ``state.epoch``, skipping batches done before a resume.

    Skipped batches are still loaded so random transforms advance exactly as in an uninterrupted
    run. Raises ModelError on a non-finite loss, naming the step and the last good checkpoint.
    """
    batches = len(loaders)
    skip = state.step_in_epoch * rt.grad_accum
    progress.start_epoch(state.epoch, epochs, batches, done=min(skip, batches))
    rt.optimizer.zero_grad(set_to_none=True)
    with contextlib.closing(loaders.iterate(state.epoch)) as batches:
        for index, batch in enumerate(batches):
            if index < skip:
                continue
            image, target, case_ids = split_batch(batch)
            image, target = rt.to_device(image, image=True), rt.to_device(target)
            boundary = (index + 1) % rt.grad_accum == 0 or index + 1 == batches
            sync = (
                rt.model.no_sync() if rt.ctx.enabled and not boundary else contextlib.nullcontext()
            )
            with sync:
                with rt.autocast():
                    loss = rt.loss_fn(rt.model(image), target)
                value = float(loss.detach())
                if not math.isfinite(value):
                    cases = f" (cases {', '.join(map(str, case_ids))})" if case_ids else ""
                    raise ModelError(
                        f"Loss is {value} at epoch {state.epoch + 1}, step {state.step + 1}{cases}. "
                        f"Training stopped; the last good checkpoint is {last_checkpoint()}. Lower "
                        "lr, set clip_grad=1.0, or check the inputs for NaN/inf values."
                    )
                rt.scaler.scale(loss / rt.grad_accum).backward()
            n = int(image.shape[0])
            state.loss_sum += value * n
            state.loss_count += n
            state.samples += n
            if boundary:
                _optimizer_step(rt)
                state.step += 1
                state.step_in_epoch += 1
            progress.update(1, n, value, rt.optimizer.param_groups[0]["lr"])
            if boundary:
                on_step(state.step, value)
                if max_steps is not None and state.step >= max_steps:
                    break


def _slice_stack_eval(
    model: nn.Module, image: torch.Tensor, target: torch.Tensor, task: str, chunk: int
):
    """Validate whole volumes given as slice stacks (2D/2.5D eval presets): ``(B, Z, C, X, Y)``.

    Slices go through the 2D model ``chunk`` at a time; segmentation logits are restacked as
    volumes ``(B, K, X, Y, Z)`` (targets likewise) so metrics are per volume; classification
    logits are averaged over a volume's slices.
    """
    outputs = []
    for volume in image:
        logits = torch.cat(
            [_forward_eval(model, part, None, chunk) for part in volume.split(chunk)]
        )
        outputs.append(logits.permute(1, 2, 3, 0) if task == "segmentation" else logits.mean(0))
    logits = torch.stack(outputs)
    if task == "segmentation" and target.ndim == image.ndim:  # (B, Z, 1, X, Y) -> (B, 1, X, Y, Z)
        target = target.permute(0, 2, 3, 4, 1)
    return logits, target


def _is_slice_stack(model: nn.Module, image: torch.Tensor) -> bool:
    encoder = getattr(model, "encoder", None)
    return getattr(encoder, "spatial_dims", None) == 2 and image.ndim == 5


def _forward_eval(model: nn.Module, image: torch.Tensor, roi_size: Any, sw_batch: int):
    if roi_size is not None and any(s > r for s, r in zip(image.shape[2:], roi_size)):
        from monai.inferers import sliding_window_inference

        def predictor(x: torch.Tensor) -> torch.Tensor:
            out = model(x)
            return out[0] if isinstance(out, (list, tuple)) else out

        return sliding_window_inference(image, roi_size, sw_batch, predictor, overlap=0.25)
    out = model(image)
    return out[0] if isinstance(out, (list, tuple)) else out


@torch.no_grad()
def validate(
    rt: Runtime,
    loaders: EpochLoaders,
    metric: TaskMetric,
    task: str,
    *,
    roi_size: tuple[int, ...] | None = None,
    sw_batch_size: int = 4,
    findings: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Validation loss and metrics over all ranks' shards (identical to a single-process pass).

    ``findings`` (the names of a multi-label model's outputs) makes the targets ``(N, K)``
    vectors: AUROC per finding (``"auroc/<finding>"``) and their macro mean ``"auroc"``.

    Returns:
        ``{"val_loss": ..., metric.name: ..., "accuracy"/"auroc" (classification)}``.
    """
    # DDP's forward broadcasts buffers: ranks with unequal shard sizes would wait on each other.
    model = unwrap(rt.model) if rt.ctx.enabled else rt.model
    model.eval()
    start = time.perf_counter()
    loss_sum, count = 0.0, 0
    per_case: list[Any] = []
    logits_all: list[torch.Tensor] = []
    targets_all: list[torch.Tensor] = []
    with contextlib.closing(loaders.iterate(0)) as batches:
        for batch in batches:
            image, target, _ = split_batch(batch)
            image, target = rt.to_device(image, image=True), rt.to_device(target)
            with rt.autocast():
                if _is_slice_stack(model, image):
                    logits, target = _slice_stack_eval(
                        model, image, target, task, sw_batch_size * 4
                    )
                else:
                    logits = _forward_eval(model, image, roi_size, sw_batch_size)
                loss = rt.loss_fn(logits, target)
            logits = logits.float()
            n = int(image.shape[0])
            loss_sum += float(loss) * n
            count += n
            if task == "classification":
                logits_all.append(logits.cpu())
                flat = target.cpu().reshape(n, -1)
                targets_all.append(flat if findings is not None else flat[:, 0])
            if metric.per_case:
                scores = torch.as_tensor(metric.fn(logits, target)).float().cpu()
                per_case.extend(scores.reshape(n, -1).tolist())
    loss_sum, count = sum_across([loss_sum, float(count)], rt.ctx)
    results = {"val_loss": loss_sum / max(count, 1.0), "val_time_s": time.perf_counter() - start}
    order = loaders.indices()
    payload = (order, per_case, logits_all, targets_all)
    gathered = gather_objects(payload, rt.ctx)
    if metric.per_case:
        results[metric.name] = _nanmean(_in_order(gathered, 1))
    if task == "classification":
        logits = torch.cat([torch.cat(g[2]) for g in gathered if g[2]])
        targets = torch.cat([torch.cat(g[3]) for g in gathered if g[3]])
        order_all = torch.tensor([i for g in gathered for i in g[0]][: len(targets)])
        if len(order_all) == len(targets):
            sort = torch.argsort(order_all)
            logits, targets = logits[sort], targets[sort]
        if findings is not None:  # multi-label: AUROC per finding, macro mean
            per_label = multilabel_auroc(logits, targets, average=None)
            results["auroc"] = multilabel_auroc(logits, targets)
            results.update({f"auroc/{name}": v for name, v in zip(findings, per_label)})
        else:
            results["accuracy"] = float(accuracy(logits, targets).mean())
        if logits.shape[1] <= 2 and findings is None:
            results["auroc"] = auroc(logits, targets)
        if not metric.per_case:
            results[metric.name] = float(metric.fn(logits, targets))
    return results


def _in_order(gathered: list[Any], slot: int) -> list[Any]:
    """Concatenate per-rank lists, sorted by global sample index when the counts agree."""
    pairs = [(i, v) for g in gathered for i, v in zip(g[0], g[slot])]
    if sum(len(g[slot]) for g in gathered) == len(pairs):
        return [v for _, v in sorted(pairs, key=lambda p: p[0])]
    return [v for g in gathered for v in g[slot]]


def _nanmean(rows: list[list[float]]) -> float:
    values = torch.tensor([v for row in rows for v in row], dtype=torch.float64)
    return float(values.nanmean()) if values.numel() else float("nan")
