"""Low-rank adapters (LoRA) for convolution and linear layers, and their merge into plain weights.

A frozen layer ``W`` gets a trainable update ``(alpha / rank) * B @ A`` of rank ``rank``: ``A`` (the
"down" projection, a convolution with ``W``'s kernel into ``rank`` channels) starts random, ``B``
(the "up" projection, a 1x1 convolution) starts at zero, so training begins from the pretrained
function exactly. Because both parts are linear, the update folds into ``W`` after training
(:func:`merge_lora`) and the exported model has the original architecture and speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from medtransfer.errors import ConfigError

__all__ = ["LoRAConv", "LoRALinear", "inject_lora", "lora_parameters", "merge_lora"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class LoRALinear(nn.Module):
    """``base(x) + scale * up(down(x))`` around a frozen :class:`torch.nn.Linear`.

    Args:
        base: the layer to adapt (its parameters are frozen).
        rank: rank of the update.
        alpha: scale numerator; the update is multiplied by ``alpha / rank``.

    Example:
        >>> import torch
        >>> layer = LoRALinear(torch.nn.Linear(8, 4), rank=2)
        >>> torch.equal(layer(torch.ones(1, 8)), layer.base(torch.ones(1, 8)))  # B starts at 0
        True
    """

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float | None = None) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank
        self.down = nn.Linear(base.in_features, rank, bias=False)
        self.up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.up(self.down(x)) * self.scale

    def merged(self) -> nn.Linear:
        """A plain Linear whose weight includes the update."""
        layer = nn.Linear(
            self.base.in_features, self.base.out_features, bias=self.base.bias is not None
        )
        layer = layer.to(self.base.weight.device, self.base.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.scale * self.up.weight @ self.down.weight)
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        return layer


class LoRAConv(nn.Module):
    """``base(x) + scale * up(down(x))`` around a frozen 1D/2D/3D convolution (``groups=1``).

    ``down`` has the base kernel, stride, padding and dilation with ``rank`` output channels;
    ``up`` is a 1x1 convolution back to the base's output channels.

    Args:
        base: the convolution to adapt (zero padding, ``groups=1``).
        rank: rank of the update.
        alpha: scale numerator; the update is multiplied by ``alpha / rank``.

    Example:
        >>> import torch
        >>> layer = LoRAConv(torch.nn.Conv2d(3, 8, 3, padding=1), rank=2)
        >>> layer(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(self, base: nn.Module, rank: int = 4, alpha: float | None = None) -> None:
        super().__init__()
        if base.groups != 1 or base.padding_mode != "zeros":
            raise ConfigError("LoRAConv needs a convolution with groups=1 and zero padding.")
        self.base = base
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank
        conv = type(base)
        self.down = conv(
            base.in_channels,
            rank,
            base.kernel_size,
            stride=base.stride,
            padding=base.padding,
            dilation=base.dilation,
            bias=False,
        )
        self.up = conv(rank, base.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.up(self.down(x)) * self.scale

    def merged(self) -> nn.Module:
        """A plain convolution of the base's type whose weight includes the update."""
        b = self.base
        layer = type(b)(
            b.in_channels,
            b.out_channels,
            b.kernel_size,
            stride=b.stride,
            padding=b.padding,
            dilation=b.dilation,
            bias=b.bias is not None,
        ).to(b.weight.device, b.weight.dtype)
        up = self.up.weight.flatten(1)  # (out, rank)
        down = self.down.weight.flatten(1)  # (rank, in * prod(kernel))
        delta = (up @ down).reshape(b.weight.shape)
        with torch.no_grad():
            layer.weight.copy_(b.weight + self.scale * delta)
            if b.bias is not None:
                layer.bias.copy_(b.bias)
        return layer


def _adaptable(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(module, _CONVS)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def inject_lora(
    root: nn.Module,
    rank: int = 4,
    alpha: float | None = None,
    include: Callable[[nn.Module], bool] | None = None,
) -> int:
    """Wrap every linear layer and ``groups=1`` convolution under ``root`` in a LoRA adapter.

    Depthwise/grouped convolutions are left as they are (their updates are already low-rank).

    Args:
        root: module to adapt in place (usually ``model.encoder``).
        rank: rank of each update (>= 1).
        alpha: scale numerator (default: ``rank``, i.e. scale 1).
        include: optional filter on the layers to wrap (default: all adaptable layers).

    Returns:
        The number of layers wrapped.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4))
        >>> inject_lora(net, rank=2)
        1
    """
    if rank < 1:
        raise ConfigError(f"LoRA rank must be >= 1, got {rank}.")
    count = 0
    for name, child in list(root.named_children()):
        if isinstance(child, (LoRALinear, LoRAConv)):
            continue
        if _adaptable(child) and (include is None or include(child)):
            wrapper = LoRALinear if isinstance(child, nn.Linear) else LoRAConv
            adapter = wrapper(child, rank, alpha).to(child.weight.device)
            setattr(root, name, adapter)
            count += 1
        else:
            count += inject_lora(child, rank, alpha, include)
    return count


def lora_parameters(root: nn.Module) -> list[nn.Parameter]:
    """The trainable adapter parameters (``down`` and ``up``) under ``root``."""
    params: list[nn.Parameter] = []
    for module in root.modules():
        if isinstance(module, (LoRALinear, LoRAConv)):
            params.extend([module.down.weight, module.up.weight])
    return params


def merge_lora(root: nn.Module) -> nn.Module:
    """Replace every LoRA adapter under ``root`` by a plain layer with the merged weight, in place.

    Returns:
        ``root`` (a module with the original architecture: its state dict loads into a model
        that never had adapters).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3))
        >>> _ = inject_lora(net, rank=2)
        >>> _ = nn.init.normal_(net[0].up.weight)
        >>> x = torch.rand(1, 1, 8, 8)
        >>> before = net(x)
        >>> torch.allclose(merge_lora(net)(x), before, atol=1e-5), type(net[0]).__name__
        (True, 'Conv2d')
    """
    for name, child in list(root.named_children()):
        if isinstance(child, (LoRALinear, LoRAConv)):
            merged = child.merged()
            merged.train(child.training)
            for p in merged.parameters():
                p.requires_grad_(child.base.weight.requires_grad)
            setattr(root, name, merged)
        else:
            merge_lora(child)
    return root
