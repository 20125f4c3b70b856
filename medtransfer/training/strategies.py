"""Fine-tuning strategies: which parameters train, at which learning rate, and when.

A strategy is a small object with four hooks the :class:`~medtransfer.training.FineTuner` calls:
``setup(model)`` once (freeze, inject adapters), ``lr_scales(model)`` (per-parameter learning-rate
multipliers), ``on_epoch_start(model, epoch)`` (schedules such as gradual unfreezing) and
``train_mode(model)`` (after ``model.train()``, e.g. keep frozen norms in eval mode). Strategies
compose: ``LoRA() + Discriminative()`` or ``[LoRA(), Discriminative()]`` apply in order and multiply
their learning-rate scales.

Models are split with their ``parameter_groups()`` (``stem``, ``stage1``..., ``decoder``, ``head``
for medtransfer's Classifier and Segmenter); any other module is split into its last child
(``head``) and the rest (``stem``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from torch import nn

from medtransfer.errors import ConfigError
from medtransfer.training.lora import inject_lora, lora_parameters, merge_lora

__all__ = [
    "BitFit",
    "ComposedStrategy",
    "Discriminative",
    "FullFineTune",
    "GradualUnfreeze",
    "STRATEGIES",
    "LinearProbe",
    "LoRA",
    "Strategy",
    "as_strategy",
    "count_parameters",
    "model_groups",
]

NEW_GROUPS = ("decoder", "head")  # randomly initialised parts: always trained at the full rate
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def model_groups(model: nn.Module) -> OrderedDict[str, list[nn.Parameter]]:
    """Parameter groups of ``model``, shallow to deep (``parameter_groups()`` when it has one).

    Example:
        >>> from torch import nn
        >>> list(model_groups(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))))
        ['stem', 'head']
    """
    groups = getattr(model, "parameter_groups", None)
    if callable(groups):
        return OrderedDict(groups())
    children = list(model.children())
    if len(children) < 2:
        return OrderedDict(head=list(model.parameters()))
    body = [p for child in children[:-1] for p in child.parameters()]
    return OrderedDict(stem=body, head=list(children[-1].parameters()))


def _pretrained_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for name, ps in model_groups(model).items() if name not in NEW_GROUPS for p in ps]


def _pretrained_modules(model: nn.Module) -> list[nn.Module]:
    if isinstance(getattr(model, "encoder", None), nn.Module):
        return [model.encoder]
    ids = {id(p) for p in _pretrained_params(model)}
    children = [c for c in model.children() if list(c.parameters())]
    return [c for c in children if all(id(p) in ids for p in c.parameters())]


def _norm_params(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    return [p for root in modules for m in root.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)]  # fmt: skip


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts.

    Example:
        >>> from torch import nn
        >>> count_parameters(nn.Linear(3, 2))
        (8, 8)
    """
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


class Strategy:
    """Base class: trains every parameter at the base learning rate (override the hooks)."""

    def setup(self, model: nn.Module) -> None:
        """Prepare ``model`` once before the optimizer is built (freeze, add adapters)."""

    def lr_scales(self, model: nn.Module) -> dict[int, float]:
        """Learning-rate multipliers by ``id(parameter)``; missing parameters get 1."""
        return {}

    def on_epoch_start(self, model: nn.Module, epoch: int) -> bool:
        """Change which parameters train at ``epoch``; return True when something changed."""
        return False

    def train_mode(self, model: nn.Module) -> None:
        """Adjust module modes after ``model.train()`` (e.g. frozen norms to eval)."""

    def export(self, model: nn.Module) -> nn.Module:
        """Turn the trained model into a plain one for deployment (default: unchanged)."""
        return model

    def __add__(self, other: Strategy) -> ComposedStrategy:
        return ComposedStrategy([self, other])

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class FullFineTune(Strategy):
    """Train every parameter (the default).

    When to use: random initialisation, or a first run on pretrained weights with a few hundred
    cases or more; it is the safe baseline the others are compared with.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        >>> FullFineTune().setup(net); count_parameters(net)
        (30, 30)
    """

    def setup(self, model: nn.Module) -> None:
        for p in model.parameters():
            p.requires_grad_(True)


class LinearProbe(Strategy):
    """Freeze the pretrained encoder (its norms in eval mode); train the decoder and head only.

    When to use: very few labelled cases (tens), or to measure how good frozen features are.

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
        >>> LinearProbe().setup(model); count_parameters(model)[0]
        1026
    """

    def setup(self, model: nn.Module) -> None:
        for p in model.parameters():
            p.requires_grad_(True)
        for p in _pretrained_params(model):
            p.requires_grad_(False)

    def train_mode(self, model: nn.Module) -> None:
        for root in _pretrained_modules(model):
            for m in root.modules():
                if isinstance(m, _NORMS):
                    m.eval()


class BitFit(Strategy):
    """Train only biases and normalisation parameters of the encoder, plus decoder and head.

    When to use: few cases and a domain close to the pretraining one; about 0.1-1 % of the
    encoder's parameters train, so it overfits little and stores tiny deltas.

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
        >>> BitFit().setup(model); count_parameters(model)[0]
        10626
    """

    def setup(self, model: nn.Module) -> None:
        pretrained = _pretrained_params(model)
        for p in model.parameters():
            p.requires_grad_(True)
        for p in pretrained:
            p.requires_grad_(False)
        keep = {id(p) for p in _norm_params(_pretrained_modules(model))}
        keep |= {id(p) for root in _pretrained_modules(model) for n, p in root.named_parameters() if n.endswith("bias")}  # fmt: skip
        for p in pretrained:
            if id(p) in keep:
                p.requires_grad_(True)


class GradualUnfreeze(Strategy):
    """Train the head first, then unfreeze encoder stages top-down (fastai's ``fine_tune``).

    Args:
        head_epochs: epochs with only the decoder and head (and norms, see ``train_norms``).
        epochs_per_stage: epochs between two unfreezings, deepest stage first.
        train_norms: keep normalisation parameters trainable while frozen (fastai's default).

    When to use: pretrained weights and a small dataset, when full fine-tuning from the start
    destroys features early (loss spikes in the first epoch).

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
        >>> s = GradualUnfreeze(head_epochs=1, epochs_per_stage=1, train_norms=False)
        >>> s.setup(model); _ = s.on_epoch_start(model, 0); count_parameters(model)[0]
        1026
        >>> _ = s.on_epoch_start(model, 1); count_parameters(model)[0]  # + stage4
        8394754
    """

    def __init__(self, head_epochs: int = 1, epochs_per_stage: int = 1, train_norms: bool = True):
        if head_epochs < 0 or epochs_per_stage < 1:
            raise ConfigError("GradualUnfreeze needs head_epochs >= 0 and epochs_per_stage >= 1.")
        self.head_epochs = head_epochs
        self.epochs_per_stage = epochs_per_stage
        self.train_norms = train_norms
        self._unfrozen: int | None = None

    def stages_unfrozen(self, epoch: int) -> int:
        """How many encoder groups (deepest first) train at ``epoch``."""
        if epoch < self.head_epochs:
            return 0
        return 1 + (epoch - self.head_epochs) // self.epochs_per_stage

    def setup(self, model: nn.Module) -> None:
        self._unfrozen = None
        self.on_epoch_start(model, 0)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> bool:
        count = self.stages_unfrozen(epoch)
        if count == self._unfrozen:
            return False
        self._unfrozen = count
        groups = model_groups(model)
        encoder = [name for name in groups if name not in NEW_GROUPS]
        trainable = set(encoder[len(encoder) - count :]) if count else set()
        for name, params in groups.items():
            for p in params:
                p.requires_grad_(name in NEW_GROUPS or name in trainable)
        if self.train_norms:
            for p in _norm_params(_pretrained_modules(model)):
                p.requires_grad_(True)
        return True


class Discriminative(Strategy):
    """Layer-wise learning-rate decay: the head at ``lr``, each encoder group below it ``decay`` x.

    Decoder and head (new layers) use the base rate; encoder group ``k`` from the top uses
    ``lr * decay**k``. Changes no ``requires_grad``: compose it with a freezing strategy.

    Args:
        decay: factor between neighbouring groups (0 < decay <= 1).

    When to use: pretrained weights with enough data to fine-tune everything; low layers hold
    generic features that should move less.

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
        >>> scales = Discriminative(0.5).lr_scales(model)
        >>> sorted(set(scales.values()))
        [0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0]
    """

    def __init__(self, decay: float = 0.5) -> None:
        if not 0.0 < decay <= 1.0:
            raise ConfigError(f"Discriminative decay must be in (0, 1], got {decay}.")
        self.decay = decay

    def lr_scales(self, model: nn.Module) -> dict[int, float]:
        groups = model_groups(model)
        encoder = [name for name in groups if name not in NEW_GROUPS]
        scales: dict[int, float] = {}
        for depth, name in enumerate(reversed(encoder), start=1):
            for p in groups[name]:
                scales[id(p)] = self.decay**depth
        for name in NEW_GROUPS:
            for p in groups.get(name, []):
                scales[id(p)] = 1.0
        return scales


class LoRA(Strategy):
    """Low-rank adapters on the encoder's convolutions and linear layers; decoder and head train.

    The encoder's weights stay frozen (norm running statistics still update);
    :meth:`export` merges the adapters into plain weights.

    Args:
        rank: rank of each update.
        alpha: scale numerator (default ``rank``).

    When to use: large encoders, several tasks sharing one frozen backbone, or little data
    where full fine-tuning overfits; stores a few percent of the weights per task.

    Example:
        >>> import medtransfer as mt
        >>> model = mt.models.create_classifier("resnet18", 2, weights=None)
        >>> LoRA(rank=4).setup(model); count_parameters(model)[0]
        144326
    """

    def __init__(self, rank: int = 4, alpha: float | None = None) -> None:
        self.rank = rank
        self.alpha = alpha

    def setup(self, model: nn.Module) -> None:
        pretrained = {id(p) for p in _pretrained_params(model)}
        for p in model.parameters():
            p.requires_grad_(id(p) not in pretrained)
        inject_lora(model, self.rank, self.alpha, include=lambda m: id(m.weight) in pretrained)
        for p in lora_parameters(model):
            p.requires_grad_(True)

    def export(self, model: nn.Module) -> nn.Module:
        return merge_lora(model)


class ComposedStrategy(Strategy):
    """Strategies applied in order; learning-rate scales multiply.

    Example:
        >>> s = LinearProbe() + Discriminative(0.5)
        >>> [type(x).__name__ for x in s.strategies]
        ['LinearProbe', 'Discriminative']
    """

    def __init__(self, strategies: Sequence[Strategy]) -> None:
        flat: list[Strategy] = []
        for s in strategies:
            flat.extend(s.strategies if isinstance(s, ComposedStrategy) else [s])
        self.strategies = flat

    def setup(self, model: nn.Module) -> None:
        for s in self.strategies:
            s.setup(model)

    def lr_scales(self, model: nn.Module) -> dict[int, float]:
        scales: dict[int, float] = {}
        for s in self.strategies:
            for key, value in s.lr_scales(model).items():
                scales[key] = scales.get(key, 1.0) * value
        return scales

    def on_epoch_start(self, model: nn.Module, epoch: int) -> bool:
        changed = [s.on_epoch_start(model, epoch) for s in self.strategies]
        return any(changed)

    def train_mode(self, model: nn.Module) -> None:
        for s in self.strategies:
            s.train_mode(model)

    def export(self, model: nn.Module) -> nn.Module:
        for s in self.strategies:
            model = s.export(model)
        return model


# Name -> class: the names a run config and the CLI use; the config's ``strategy_args`` are the
# keyword arguments of these constructors (read from their signatures).
STRATEGIES: dict[str, type[Strategy]] = {
    "full": FullFineTune,
    "linear_probe": LinearProbe,
    "bitfit": BitFit,
    "gradual_unfreeze": GradualUnfreeze,
    "discriminative": Discriminative,
    "lora": LoRA,
}


def as_strategy(strategy: Strategy | Sequence[Strategy] | None) -> Strategy:
    """Normalise the ``strategy=`` argument (None -> FullFineTune, list -> composed).

    Example:
        >>> as_strategy(None)
        FullFineTune()
    """
    if strategy is None:
        return FullFineTune()
    if isinstance(strategy, Strategy):
        return strategy
    if isinstance(strategy, (list, tuple)) and all(isinstance(s, Strategy) for s in strategy):
        return ComposedStrategy(strategy)
    raise ConfigError(
        f"strategy={strategy!r} is not a medtransfer.training strategy; use e.g. "
        "FullFineTune(), LinearProbe(), LoRA(rank=4) or a list of them."
    )
