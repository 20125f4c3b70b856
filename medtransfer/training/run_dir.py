"""The run directory: config, environment, metrics and checkpoints, every file written atomically.

Layout::

    run_dir/
        config.json               resolved FineTuner and fit() settings, strategy, parameter counts
        environment.json          Python/package versions, device, world size
        metrics.jsonl             one JSON line per epoch (the History records)
        checkpoints/last.pt       full training state (resume), and last.pt.sha256
        checkpoints/last.prev.pt  the one before (fallback when last.pt is corrupt)
        checkpoints/best.pt       model weights of the best validation epoch
        tensorboard/              event files (when tensorboard is installed)
        cache/                    default folder of cache="disk"
        evaluation/               reports of ``medtransfer evaluate``

A run's *history* (metrics, checkpoints, reports) is never overwritten implicitly: see
:func:`check_run_folder`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from medtransfer.errors import CheckpointError, ConfigError
from medtransfer.io.atomic import atomic_path, output_path_error
from medtransfer.training.checkpoint import previous_path
from medtransfer.training.distributed import DistContext, gather_objects

__all__ = ["API_WORDING", "CLI_WORDING", "RunDirectory", "check_run_folder", "environment_info"]

# The history of a run (what overwriting loses) and everything ``overwrite`` removes.
HISTORY = ("metrics.jsonl", "checkpoints", "evaluation")
OUTPUTS = (*HISTORY, "config.json", "environment.json", "tensorboard", "cache")
# Temporaries of medtransfer.io.atomic_path: ".<name>.<random>.tmp<suffix>".
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp(\.[^/]*)?$")

API_WORDING = {
    "resume": "resume=True",
    "overwrite": "overwrite=True",
    "elsewhere": "choose another run_dir",
}
CLI_WORDING = {
    "resume": "--resume",
    "overwrite": "--overwrite",
    "elsewhere": "set output.run_dir to another folder (e.g. --set output.run_dir=runs/new)",
}

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

    @classmethod
    def for_run(
        cls, path: str | os.PathLike[str] | None, task: str, ctx: DistContext
    ) -> RunDirectory:
        """``path``, or a new ``runs/<task>-<time>`` folder (never an earlier run's); every rank
        uses rank 0's folder, only rank 0 writes."""
        if path is None:
            stem = Path("runs") / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
            path, n = stem, 1
            while path.exists():
                path, n = stem.with_name(f"{stem.name}-{n}"), n + 1
        path = gather_objects(str(path), ctx)[0]
        return cls(path, enabled=ctx.is_main)

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def previous_checkpoint(self) -> Path:
        return previous_path(self.last_checkpoint)

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "best.pt"

    def has_checkpoint(self) -> bool:
        """Whether there is a training state to resume (``last.pt`` or ``last.prev.pt``)."""
        return self.last_checkpoint.is_file() or self.previous_checkpoint.is_file()

    def history(self) -> list[str]:
        """The run outputs an overwrite would lose (relative names), e.g. ``['metrics.jsonl']``.

        Example:
            >>> import tempfile
            >>> RunDirectory(tempfile.mkdtemp()).history()
            []
        """
        found = []
        for name in HISTORY:
            path = self.path / name
            if path.is_file():
                found.append(name)
            elif path.is_dir():
                found += sorted(
                    p.relative_to(self.path).as_posix()
                    for p in path.rglob("*")
                    if p.is_file() and not _TEMPORARY.match(p.name) and p.suffix != ".sha256"
                )
        return found

    def start(self, resume: bool | str = False, overwrite: bool = False) -> tuple[bool, str]:
        """Prepare the folder for ``fit``: :func:`check_run_folder`, then (rank 0) delete the
        outputs when ``overwrite``, and stale temporaries of atomic writes.

        Returns:
            Whether to resume, and a message about removed temporaries ("" if none).

        Example:
            >>> import tempfile
            >>> RunDirectory(tempfile.mkdtemp()).start(resume="auto")
            (False, '')
        """
        resuming = check_run_folder(self.path, resume, overwrite)
        if overwrite:
            self.remove_outputs()
        removed = self.remove_stale_temporaries()
        if not removed:
            return resuming, ""
        from medtransfer.evaluation.wording import count

        megabytes = sum(size for _, size in removed) / 2**20
        return resuming, (
            f"Removed {count(len(removed), 'temporary file')} ({megabytes:.1f} MB) that an interrupted "
            f"run left in {self.path}."
        )

    def set_aside_last(self) -> None:
        """Rename a corrupt ``last.pt`` to ``last.pt.corrupt`` (kept for inspection), so the
        next save does not rotate it over the good ``last.prev.pt``."""
        last = self.last_checkpoint
        if self.enabled and last.is_file():
            os.replace(last, last.with_name(last.name + ".corrupt"))
            last.with_name(last.name + ".sha256").unlink(missing_ok=True)

    def remove_outputs(self) -> None:
        """Delete the run's outputs (:data:`OUTPUTS`) to start over; other files stay."""
        if not self.enabled:
            return
        for name in OUTPUTS:
            path = self.path / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
            except OSError as err:  # e.g. a read-only folder: say which and what to do
                raise output_path_error(path, err) from err

    def remove_stale_temporaries(self) -> list[tuple[Path, int]]:
        """Delete temporaries of atomic writes a killed process left (``.last.pt.*.tmp.pt``).

        Looks in the run folder, ``checkpoints/`` and ``evaluation/``; returns the removed
        files and their sizes. Call it before this run writes anything.
        """
        removed: list[tuple[Path, int]] = []
        if not self.enabled:
            return removed
        for folder in (self.path, self.path / "checkpoints", self.path / "evaluation"):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if _TEMPORARY.match(path.name) and path.is_file() and not path.is_symlink():
                    with contextlib.suppress(OSError):  # not ours to delete: leave it
                        size = path.stat().st_size
                        path.unlink()
                        removed.append((path, size))
        return removed

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


def check_run_folder(
    path: str | os.PathLike[str],
    resume: bool | str = False,
    overwrite: bool = False,
    wording: Mapping[str, str] = API_WORDING,
) -> bool:
    """Decide whether a run in ``path`` resumes; refuse anything that would lose its history.

    - ``resume=True``: continue from ``checkpoints/last.pt`` (or ``last.prev.pt``); nothing to
      resume is an error.
    - ``resume="auto"``: continue if there is a checkpoint, else start a new run, which needs a
      folder without history (metrics, checkpoints, reports).
    - ``resume=False``: start a new run, which needs a folder without history.
    - ``overwrite=True`` (with ``resume=False``): start a new run even over a history (the
      caller then deletes it with :meth:`RunDirectory.remove_outputs`).

    Args:
        path: the run folder (it need not exist).
        wording: how the messages name the options (:data:`API_WORDING`, :data:`CLI_WORDING`).

    Returns:
        True to resume, False to start a new run.

    Raises:
        ConfigError: ``resume`` is not True/False/"auto", or both resume and overwrite.
        CheckpointError: nothing to resume, or a history would be overwritten.

    Example:
        >>> import tempfile
        >>> check_run_folder(tempfile.mkdtemp(), resume="auto")
        False
    """
    if resume not in (True, False, "auto") or not isinstance(overwrite, bool):
        raise ConfigError(
            f"resume={resume!r}, overwrite={overwrite!r}: resume must be True, False or "
            '"auto" and overwrite True or False.'
        )
    if resume and overwrite:
        raise ConfigError(
            f"{wording['resume']} and {wording['overwrite']} contradict each other: resume "
            "continues the run in the folder, overwrite deletes it and starts over; pass one."
        )
    run = RunDirectory(path)
    if overwrite:
        return False
    if resume and run.has_checkpoint():
        return True
    history = run.history()
    listed = ", ".join(history[:5]) + (f" and {len(history) - 5} more" if len(history) > 5 else "")
    if resume is True:
        why = f"there is nothing to resume in {run.path}: no {run.last_checkpoint.relative_to(run.path)}"  # fmt: skip
        if history:
            raise CheckpointError(
                f"{wording['resume']}: {why}, but the folder holds an earlier run's history "
                f"({listed}). Pass {wording['overwrite']} to delete it and start over, or "
                f"{wording['elsewhere']}."
            )
        raise CheckpointError(
            f"{wording['resume']}: {why}. Leave out {wording['resume']} to start a new run there."
        )
    if history:
        how = (
            f"pass {wording['resume']} to continue it, "
            if run.has_checkpoint()
            else f"it has no {run.last_checkpoint.relative_to(run.path)} to resume from; "
        )
        raise CheckpointError(
            f"{run.path} already holds a run ({listed}); {how}pass {wording['overwrite']} to "
            f"delete its history and start over, or {wording['elsewhere']}."
        )
    return False
