"""medtransfer.training: fine-tune task models with strategies, resumably, on CPU, GPU or torchrun.

Example:
    >>> import medtransfer as mt
    >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
    >>> tuner = mt.training.FineTuner(model, strategy=mt.training.LinearProbe(), progress="quiet")
    >>> tuner.strategy
    LinearProbe()
"""

from __future__ import annotations

from medtransfer.training.callbacks import Callback, EarlyStopping
from medtransfer.training.checkpoint import load_checkpoint, save_checkpoint
from medtransfer.training.finetuner import FineTuner
from medtransfer.training.history import History
from medtransfer.training.lora import LoRAConv, LoRALinear, inject_lora, merge_lora
from medtransfer.training.losses import LOSSES, FocalLoss, make_loss
from medtransfer.training.lr_find import LRFindResult, lr_find
from medtransfer.training.metrics import TaskMetric
from medtransfer.training.schedules import SCHEDULES, make_schedule
from medtransfer.training.settings import TrainSettings
from medtransfer.training.strategies import (
    STRATEGIES,
    BitFit,
    Discriminative,
    FullFineTune,
    GradualUnfreeze,
    LinearProbe,
    LoRA,
    Strategy,
    count_parameters,
)

__all__ = [
    "LOSSES",
    "SCHEDULES",
    "STRATEGIES",
    "BitFit",
    "Callback",
    "Discriminative",
    "EarlyStopping",
    "FineTuner",
    "FocalLoss",
    "FullFineTune",
    "GradualUnfreeze",
    "History",
    "LRFindResult",
    "LinearProbe",
    "LoRA",
    "LoRAConv",
    "LoRALinear",
    "Strategy",
    "TaskMetric",
    "TrainSettings",
    "count_parameters",
    "inject_lora",
    "load_checkpoint",
    "lr_find",
    "make_loss",
    "make_schedule",
    "merge_lora",
    "save_checkpoint",
]
