"""FineTuner: fit a Classifier or Segmenter with a strategy, resumably, on CPU, GPU or torchrun."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from typing import Any

import torch
from torch import nn

from medtransfer.errors import ConfigError
from medtransfer.training.callbacks import Callback
from medtransfer.training.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from medtransfer.training.data_loading import EpochLoaders
from medtransfer.training.distributed import DistContext, sum_across, unwrap
from medtransfer.training.history import History
from medtransfer.training.loop import LoopState, Runtime, train_epoch, validate
from medtransfer.training.losses import positive_weights
from medtransfer.training.metrics import TaskMetric, resolve_metric
from medtransfer.training.optim import build_runtime, wrap_model
from medtransfer.training.progress import Progress
from medtransfer.training.resume import restore_training_state, training_state
from medtransfer.training.run_dir import RunDirectory, environment_info
from medtransfer.training.settings import TrainSettings, build_loaders, check_arguments
from medtransfer.training.strategies import Strategy, as_strategy, count_parameters
from medtransfer.training.task import TASKS, resolve_findings, resolve_task

__all__ = ["TASKS", "FineTuner"]


class FineTuner:
    """Fine-tune a task model: strategy, loss, schedule, validation, checkpoints, resume.

    Args:
        model: a :class:`~medtransfer.models.Classifier`, :class:`~medtransfer.models.Segmenter`
            or any module mapping images to logits.
        task: "classification", "segmentation", or None (default): read from the model, a
            ``Segmenter`` segments, a ``Classifier`` classifies; any other module classifies
            unless ``task="segmentation"``. A task contradicting the model is a ConfigError.
        strategy: a strategy or list of strategies (default :class:`FullFineTune`).
        lr: peak learning rate (per-group multipliers from the strategy apply on top).
        loss: "auto" or a name of :data:`~medtransfer.training.losses.LOSSES`, or a callable.
        optimizer: "adamw", "sgd" or a callable ``param_groups -> Optimizer``.
        weight_decay: decoupled weight decay (not applied to biases and norms).
        schedule, warmup: see :func:`~medtransfer.training.schedules.make_schedule`.
        metric: selection metric, "auto" (Dice / AUROC / accuracy), a name or a callable.
        class_weights: per-class loss weights.
        multilabel: K independent findings (masked BCE, macro AUROC, per-finding validation
            AUROC ``auroc/<finding>``); None (default) reads ``model.multilabel``. Labels are
            vectors of 1, 0, or NaN / -1 (not known: masked).
        pos_weight: multi-label: positive weight per finding in the BCE; "auto" (default):
            negatives / positives of each finding in the training records, capped to
            [1/10, 10] (:func:`~medtransfer.training.losses.positive_weights`; 1 each when
            ``train`` is a Dataset or DataLoader); None: 1 each; or a list.
        device: "auto" (CUDA if available), "cpu", "cuda", "cuda:1"...
        amp: "auto" (bf16 where supported else fp16 with a GradScaler, on CUDA only), True,
            False, "bf16" or "fp16".
        channels_last: "auto" (on CUDA), True or False.
        compile: wrap the model with ``torch.compile``.
        grad_accum: micro-batches per optimizer step.
        clip_grad: max gradient norm, or None.
        seed: seeds weights of added layers, data order and augmentation.
        deterministic: use deterministic algorithms (exact resume on GPU too; slower).
        run_dir: where config, metrics and checkpoints go (default ``runs/<task>-<time>``).
        batch_size, val_batch_size: samples per step and process (``num_samples`` crops of a
            record count ``num_samples``). num_workers, cache, cache_dir, loader: data loading
            for records (:class:`~medtransfer.training.data_loading.EpochLoaders`); ``cache=
            "disk"`` without ``cache_dir`` caches in ``run_dir/cache``. Each record's label is
            checked once against its image and the model's classes (:mod:`.label_checks`).
        roi_size, sw_batch_size: sliding-window validation for inputs larger than ``roi_size``.
        val_every: validate every N epochs (and after the last one).
        checkpoint_every: also save the training state every N optimizer steps (mid-epoch resume).
        progress: "bar", "epoch", "quiet" (or True/False).

    Example:
        >>> import tempfile, torch, medtransfer as mt
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.rand(8, 1, 32, 32), torch.arange(8) % 2)
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
        >>> tuner = FineTuner(model, run_dir=tempfile.mkdtemp(), progress="quiet")
        >>> history = tuner.fit(DataLoader(data, batch_size=4), DataLoader(data, batch_size=4), epochs=1)
        >>> len(history), sorted(history.records[0])[:3]
        (1, ['accuracy', 'auroc', 'epoch'])
    """

    def __init__(
        self,
        model: nn.Module,
        task: str | None = None,
        strategy: Strategy | Sequence[Strategy] | None = None,
        lr: float = 1e-3,
        loss: str | Callable = "auto",
        *,
        optimizer: str | Callable = "adamw",
        weight_decay: float = 1e-4,
        schedule: str = "warmup_cosine",
        warmup: float | int = 0.05,
        metric: str | Callable | TaskMetric = "auto",
        class_weights: Sequence[float] | None = None,
        multilabel: bool | None = None,
        pos_weight: Sequence[float] | str | None = "auto",
        device: str = "auto",
        amp: str | bool = "auto",
        channels_last: str | bool = "auto",
        compile: bool = False,
        grad_accum: int = 1,
        clip_grad: float | None = None,
        seed: int = 0,
        deterministic: bool = False,
        run_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        loader: str = "process",
        cache: str = "memory",
        cache_dir: str | os.PathLike[str] | None = None,
        roi_size: Sequence[int] | None = None,
        sw_batch_size: int = 4,
        val_every: int = 1,
        checkpoint_every: int | None = None,
        progress: str | bool = "bar",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        task = resolve_task(model, task)
        check_arguments(
            lr=lr, grad_accum=grad_accum, batch_size=batch_size, val_every=val_every,
            checkpoint_every=checkpoint_every, cache=cache, loader=loader, pos_weight=pos_weight,
        )  # fmt: skip
        findings = resolve_findings(model, multilabel, task)
        self.model = model
        self.strategy = as_strategy(strategy)
        num_outputs = getattr(model, "num_classes", None)
        self.metric = resolve_metric(metric, task, num_outputs, findings is not None)
        # built once: the runtime, loaders and lr_find read these, never the FineTuner itself
        self.settings = TrainSettings(
            task=task, num_outputs=num_outputs, findings=findings,
            pos_weight=pos_weight if isinstance(pos_weight, str | None) else tuple(pos_weight),
            lr=float(lr), loss=loss, optimizer=optimizer,
            weight_decay=weight_decay, schedule=schedule, warmup=warmup,
            class_weights=class_weights, device=device, amp=amp, channels_last=channels_last,
            compile=compile, grad_accum=grad_accum, clip_grad=clip_grad, seed=seed,
            deterministic=deterministic, batch_size=batch_size,
            val_batch_size=val_batch_size or batch_size, num_workers=num_workers, loader=loader,
            cache=cache, cache_dir=cache_dir,
            roi_size=tuple(roi_size) if roi_size is not None else None,
            sw_batch_size=sw_batch_size, val_every=val_every, checkpoint_every=checkpoint_every,
        )  # fmt: skip
        self._pos_weight = self.settings.pos_weight  # "auto": resolved by fit() from train
        self.progress = Progress(progress)  # validates the mode early
        self._progress_mode = progress
        self.run_dir_arg = run_dir
        self.run: RunDirectory | None = None
        self.history = History(self.metric.name, self.metric.higher_is_better)
        self.stop = False
        self._prepared = False

    @property
    def task(self) -> str:
        """The task, "classification" or "segmentation" (from the model and ``task=``)."""
        return self.settings.task

    # ----------------------------------------------------------------------------- set-up
    def _config(self, **fit_args: Any) -> dict[str, Any]:
        trainable, total = count_parameters(self.model)
        config = {f.name: getattr(self.settings, f.name) for f in fields(self.settings)}
        config.update(
            run_dir_arg=self.run_dir_arg,
            model=type(self.model).__name__,
            strategy=repr(self.strategy),
            metric=self.metric.name,
            pos_weight=self._pos_weight,
            trainable_parameters=trainable,
            total_parameters=total,
            fit=fit_args,
        )
        return config

    def _parameter_line(self) -> str:
        trainable, total = count_parameters(self.model)
        return (
            f"{self.strategy!r}: {trainable:,} of {total:,} parameters trainable "
            f"({100.0 * trainable / max(total, 1):.2f}%)"
        )

    def _prepare(self) -> None:
        if not self._prepared:  # once: LoRA adapters must not be injected twice
            self.strategy.setup(self.model)
            self._prepared = True

    def _build_runtime(self, ctx: DistContext, total_steps: int, train: Any = None) -> Runtime:
        self._prepare()
        settings = self.settings
        if settings.findings is not None and settings.pos_weight == "auto":
            records = isinstance(train, list) and train and isinstance(train[0], dict)
            if records:  # from the training labels; validate() reuses the last fit's weights
                self._pos_weight = tuple(positive_weights(train))
            weights = self._pos_weight if self._pos_weight != "auto" else None
            settings = replace(settings, pos_weight=weights)
        else:
            self._pos_weight = settings.pos_weight
        return build_runtime(self.model, self.strategy, settings, ctx, total_steps)

    def _loaders(self, data: Any, transform: Any, train: bool, ctx: DistContext) -> EpochLoaders:
        cache_dir = None  # cache="disk" without a cache_dir: run_dir/cache
        if self.settings.cache == "disk" and self.run is not None:
            cache_dir = self.run.path / "cache"
        return build_loaders(
            self.settings, data, transform, train=train, ctx=ctx, cache_dir=cache_dir
        )

    # ----------------------------------------------------------------------------- checkpoints
    def _save_state(self, rt: Runtime, state: LoopState) -> None:
        if self.run is not None and self.run.enabled:
            state_dict = training_state(rt, state, self.history)
            save_checkpoint(self.run.last_checkpoint, state_dict, keep_previous=True)

    def _last_checkpoint_text(self) -> str:
        path = self.run.last_checkpoint if self.run else None
        return str(path) if path is not None and path.is_file() else "none (none written yet)"

    # ----------------------------------------------------------------------------- fit
    def fit(
        self,
        train: Any,
        val: Any = None,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        callbacks: Sequence[Callback] = (),
        train_transform: Any = None,
        val_transform: Any = None,
        resume: bool | str = False,
        overwrite: bool = False,
    ) -> History:
        """Train, validate every ``val_every`` epochs, keep the best and last checkpoints.

        Args:
            train: list of records (dicts), a Dataset, or a DataLoader.
            val: same kinds, or None (no validation, no best checkpoint).
            epochs: number of epochs; or ``steps``: number of optimizer steps.
            callbacks: e.g. ``[EarlyStopping(patience=5)]``.
            train_transform, val_transform: MONAI transforms for records input.
            resume: True: continue from ``run_dir/checkpoints/last.pt`` (falling back to
                ``last.prev.pt`` with a warning when it is corrupt); nothing to resume is an
                error. "auto": resume if there is a checkpoint, else start a new run. False
                (default): start a new run.
            overwrite: start a new run even if ``run_dir`` holds an earlier run's history
                (metrics, checkpoints, reports): that history is deleted first. Without it, a
                new run in such a folder is refused. Not together with ``resume``.

        Returns:
            The :class:`History` (also ``self.history``).

        Raises:
            ConfigError: bad arguments.
            CheckpointError: nothing to resume with ``resume=True``; a history that a new run
                would overwrite without ``overwrite=True``; no checkpoint passes its checksum.
            ModelError: a non-finite loss (names the step and the last good checkpoint).
        """
        if (epochs is None) == (steps is None):
            raise ConfigError("fit() needs exactly one of epochs= or steps= (a positive int).")
        if (epochs or steps or 0) < 1:
            raise ConfigError(f"epochs/steps must be >= 1, got {epochs or steps}.")
        ctx = DistContext.from_env()
        self.run = RunDirectory.for_run(self.run_dir_arg, self.task, ctx)
        resuming, cleaned = self.run.start(resume, overwrite)
        ctx.barrier()  # rank 0 has deleted what overwrite deletes before any rank writes
        settings = self.settings
        seed_everything(settings.seed)
        previous_det = torch.are_deterministic_algorithms_enabled()
        if settings.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = not settings.deterministic
        train_loaders = self._loaders(train, train_transform, True, ctx)
        val_loaders = self._loaders(val, val_transform, False, ctx) if val is not None else None
        per_epoch = math.ceil(len(train_loaders) / settings.grad_accum)
        epochs = epochs if epochs is not None else math.ceil(steps / per_epoch)
        total_steps = steps if steps is not None else epochs * per_epoch
        rt = self._build_runtime(ctx, total_steps, train)
        self.progress = Progress(self._progress_mode, enabled=ctx.is_main)
        if cleaned:
            self.progress.message(cleaned)
        state = LoopState()
        self.history = History(self.metric.name, self.metric.higher_is_better)
        if resuming:
            state, self.history, used = restore_training_state(self.run.last_checkpoint, rt)
            if used != self.run.last_checkpoint:  # last.pt is corrupt: never rotate it
                self.run.set_aside_last()  # over the last.prev.pt resumed from
            self.progress.message(
                f"Resumed {self.run.path} at epoch {state.epoch + 1}, step {state.step}."
            )
        fit_args = {"epochs": epochs, "steps": steps, "total_steps": total_steps}
        self.run.write_json("config.json", self._config(**fit_args))
        self.run.write_json("environment.json", environment_info(str(rt.device), ctx.world_size))
        self.progress.message(self._parameter_line())
        self.stop = False
        for cb in callbacks:
            cb.on_fit_start(self)
        try:
            self._epochs(rt, state, train_loaders, val_loaders, epochs, steps, callbacks)
        finally:
            self.progress.close()
            self.run.close()
            torch.use_deterministic_algorithms(previous_det)
        for cb in callbacks:
            cb.on_fit_end(self)
        self.progress.message(f"Done: {self.history.summary()} | run dir {self.run.path}")
        return self.history

    def _epochs(self, rt, state, train_loaders, val_loaders, epochs, steps, callbacks) -> None:
        every = self.settings.checkpoint_every

        def on_step(step: int, loss: float) -> None:
            if every and step % every == 0:
                self._save_state(rt, state)
            for cb in callbacks:
                cb.on_step_end(self, step, loss)

        while state.epoch < epochs and not self.stop and not (steps and state.step >= steps):
            if self.strategy.on_epoch_start(self.model, state.epoch):
                # DDP must see the new trainable set
                rt.model = wrap_model(self.model, rt.ctx, rt.device, self.settings.compile)
                self.progress.message(f"epoch {state.epoch + 1}: {self._parameter_line()}")
            rt.model.train()
            self.strategy.train_mode(self.model)
            start, done_before = time.perf_counter(), state.samples
            train_epoch(
                rt, train_loaders, state, epochs=epochs, max_steps=steps, progress=self.progress,
                on_step=on_step, last_checkpoint=self._last_checkpoint_text,
            )  # fmt: skip
            loss_sum, count = sum_across([state.loss_sum, float(state.loss_count)], rt.ctx)
            seconds = time.perf_counter() - start
            record: dict[str, Any] = {
                "epoch": state.epoch + 1,
                "step": state.step,
                "train_loss": loss_sum / max(count, 1.0),
                "lr": rt.optimizer.param_groups[0]["lr"],
                "time_s": seconds,
                "samples_per_s": (state.samples - done_before) * rt.ctx.world_size / seconds,
            }
            last = state.epoch + 1 == epochs or bool(steps and state.step >= steps)
            every_n = self.settings.val_every
            if val_loaders is not None and ((state.epoch + 1) % every_n == 0 or last):
                rt.ctx.broadcast_parameters(self.model)  # same norm statistics on every rank
                record.update(self._validate(rt, val_loaders))
            value = record.get(self.metric.name)
            is_best = value is not None and self.history.is_improvement(
                value, val_loss=record.get("val_loss")
            )
            self.history.append(record)
            if is_best and self.run.enabled:
                payload = {"model": unwrap(rt.model).state_dict(), "epoch": state.epoch + 1}
                save_checkpoint(self.run.best_checkpoint, {**payload, "metric": value})
            state.epoch += 1
            state.step_in_epoch, state.loss_sum, state.loss_count, state.samples = 0, 0.0, 0, 0
            for cb in callbacks:
                cb.on_epoch_end(self, record)
            self._save_state(rt, state)
            self.run.write_metrics(self.history.records)
            self.progress.end_epoch(record, self.metric.name, is_best)

    # ----------------------------------------------------------------------------- other entry points
    def validate(self, val: Any, *, val_transform: Any = None) -> dict[str, float]:
        """Validation loss and metrics of the current model on ``val`` (records, Dataset, loader)."""
        ctx = DistContext.from_env()
        rt = self._build_runtime(ctx, total_steps=1)
        loaders = self._loaders(val, val_transform, False, ctx)
        return self._validate(rt, loaders)

    def _validate(self, rt: Runtime, loaders: EpochLoaders) -> dict[str, float]:
        s = self.settings
        return validate(
            rt, loaders, self.metric, s.task, roi_size=s.roi_size, sw_batch_size=s.sw_batch_size,
            findings=s.findings,
        )  # fmt: skip

    def load_best(self) -> nn.Module:
        """Load the best checkpoint's weights into ``self.model`` and return it."""
        if self.run is None or not self.run.best_checkpoint.is_file():
            raise ConfigError("No best checkpoint yet: fit() with validation data first.")
        self.model.load_state_dict(load_checkpoint(self.run.best_checkpoint)["model"])
        return self.model

    def export(self) -> nn.Module:
        """The trained model in plain form (LoRA adapters merged), for saving or inference."""
        return self.strategy.export(self.model)

    def lr_find(self, train: Any, **kwargs: Any):
        """Learning-rate range test on ``train``; see :func:`medtransfer.training.lr_find`."""
        from medtransfer.training.lr_find import lr_find

        self._prepare()
        return lr_find(self.model, train, self.settings, strategy=self.strategy, **kwargs)
