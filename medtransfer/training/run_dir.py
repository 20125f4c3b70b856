"""The run directory: config, environment, metrics and checkpoints, every file written atomically.

Layout::

    run_dir/
        config.json          resolved FineTuner and fit() settings, strategy, parameter counts
        environment.json     Python/package versions, device, world size
        metrics.jsonl        one JSON line per epoch (the History records)
        checkpoints/last.pt  full training state (resume)
        checkpoints/best.pt  model weights of the best validation epoch
        tensorboard/         event files (when tensorboard is installed)
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from medtransfer.io.atomic import atomic_path

__all__ = ["RunDirectory", "environment_info"]

_PACKAGES = ("medtransfer", "torch", "torchvision", "monai", "timm", "numpy", "safetensors")


def environment_info(device: str, world_size: int = 1) -> dict[str, Any]:
    """Versions and hardware of this run (no host names or user paths).

    Example:
        >>> "torch" in environment_info("cpu")["packages"]
        True
    """
    import torch

    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
        "device": device,
        "world_size": world_size,
        "cuda": torch.version.cuda,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


class RunDirectory:
    """Writes a run's files; does nothing on ranks other than 0 (``enabled=False``).

    Example:
        >>> import tempfile
        >>> run = RunDirectory(tempfile.mkdtemp())
        >>> run.write_json("config.json", {"lr": 1e-3}).name
        'config.json'
    """

    def __init__(self, path: str | os.PathLike[str], enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._tensorboard: Any = None

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "best.pt"

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        target = self.path / name
        if self.enabled:
            with atomic_path(target) as tmp:
                tmp.write_text(json.dumps(_json_safe(data), indent=2) + "\n")
        return target

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.jsonl`` from the full history (atomic; consistent after a resume)."""
        if not self.enabled:
            return
        lines = "".join(json.dumps(_json_safe(r)) + "\n" for r in records)
        with atomic_path(self.path / "metrics.jsonl") as tmp:
            tmp.write_text(lines)
        if records:
            self._log_tensorboard(records[-1])

    def _log_tensorboard(self, record: dict[str, Any]) -> None:
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._tensorboard = False
                return
            self._tensorboard = SummaryWriter(str(self.path / "tensorboard"))
        if self._tensorboard is False:
            return
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self._tensorboard.add_scalar(key, value, record["epoch"])
        self._tensorboard.flush()

    def close(self) -> None:
        if self._tensorboard:
            self._tensorboard.close()
        self._tensorboard = None
