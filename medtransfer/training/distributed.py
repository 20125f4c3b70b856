"""Multi-process training under ``torchrun``: process group, DDP wrapping, gathering results.

``torchrun --nproc_per_node=N script.py`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; the
FineTuner then initialises the process group (NCCL on GPUs, gloo on CPU), wraps the model in
DistributedDataParallel, shards the data, all-reduces losses and metrics, and lets rank 0 alone
write logs and checkpoints. Without those variables everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "gather_objects", "sum_across", "unwrap"]


@dataclass(frozen=True)
class DistContext:
    """Rank and world size of this process (``world_size == 1``: not distributed).

    Example:
        >>> DistContext().is_main, DistContext().enabled
        (True, False)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, backend: str | None = None) -> DistContext:
        """Join the process group described by torchrun's environment, if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1 and not (dist.is_available() and dist.is_initialized()):
            return cls()
        if not dist.is_initialized():
            backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
            dist.init_process_group(backend=backend)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """DistributedDataParallel around ``model`` (unchanged when not distributed)."""
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def broadcast_parameters(self, model: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (e.g. after a resume)."""
        if self.enabled:
            for tensor in list(model.parameters()) + list(model.buffers()):
                dist.broadcast(tensor.data, src=0)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def sum_across(values: list[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64)."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
