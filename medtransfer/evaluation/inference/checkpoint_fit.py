"""Why a checkpoint does not fit a model, in one sentence instead of a list of state-dict keys.

``load_state_dict`` reports every missing, unexpected and mis-shaped tensor: dozens of lines that
do not say what the user changed. :func:`checkpoint_differences` reads the few facts that decide
the architecture from the tensors themselves (model type, spatial dimensions and input channels
from the first convolution, outputs from the head, the encoder's and decoder's layers, LoRA
adapters, deep supervision) for both sides and lists those that differ; :func:`describe_mismatch` writes them as
one clause. Works on any ``encoder.* / decoder.* / head.*`` model of ``mt.models`` (the layout
of Segmenter and Classifier); training may import it for its resume errors.

Example:
    >>> import torch
    >>> ckpt = {"encoder.stem.weight": torch.zeros(8, 1, 3, 3), "head.weight": torch.zeros(5, 8, 1, 1)}
    >>> model = {"encoder.stem.weight": torch.zeros(8, 3, 3, 3), "head.weight": torch.zeros(5, 8, 1, 1)}
    >>> describe_mismatch(ckpt, model)
    'the checkpoint and this model differ in input channels (checkpoint 1, model 3)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medtransfer.evaluation.wording import count

__all__ = ["checkpoint_differences", "describe_mismatch"]

Difference = tuple[str, Any, Any]  # (what, checkpoint's, model's)


def _shapes(state: Any) -> dict[str, tuple[int, ...]]:
    if hasattr(state, "state_dict") and not isinstance(state, Mapping):
        state = state.state_dict()
    return {str(k): tuple(getattr(v, "shape", ())) for k, v in state.items()}


def _first_conv(shapes: dict[str, tuple[int, ...]]) -> str | None:
    return next(
        (
            k
            for k, s in shapes.items()
            if k.startswith("encoder.") and k.endswith("weight") and len(s) >= 4
        ),  # fmt: skip
        None,
    )


def _facts(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    keys = list(shapes)
    has_decoder = any(k.startswith("decoder.") for k in keys)
    kind = "segmenter" if has_decoder else "classifier" if any(k.startswith("head.") for k in keys) else "other"  # fmt: skip
    first = _first_conv(shapes)
    heads = [k for k in keys if k.startswith("head.") and k.endswith("weight") and len(shapes[k]) >= 2]  # fmt: skip
    return {
        "kind": kind,
        "dims": len(shapes[first]) - 2 if first else None,
        "in_channels": shapes[first][1] if first else None,
        "outputs": shapes[heads[-1]][0] if heads else None,
        "encoder": {k: s for k, s in shapes.items() if k.startswith("encoder.") and k != first},
        "decoder": {k: s for k, s in shapes.items() if k.startswith("decoder.")},
        "lora": any("lora" in k.lower() for k in keys),
        "aux": any(k.startswith("aux_heads.") for k in keys),
    }


def _layers(name: str, ours: dict, theirs: dict) -> Difference | None:
    """How two sets of layers differ: names (architecture) first, then shapes (widths)."""
    only_ckpt = [k for k in ours if k not in theirs]
    only_model = [k for k in theirs if k not in ours]
    if only_ckpt or only_model:
        example = (only_ckpt or only_model)[0]
        side = "checkpoint" if only_ckpt else "model"
        return (
            name,
            count(len(ours), "tensor"),
            f"{count(len(theirs), 'tensor')}; e.g. {example!r:.70} only in the {side}",
        )
    for key, shape in ours.items():
        if theirs[key] != shape:
            return (f"{name} widths", f"{key!r:.70} {list(shape)}", list(theirs[key]))
    return None


def checkpoint_differences(checkpoint: Any, model: Any) -> list[Difference]:
    """``[(what, checkpoint's value, model's value)]`` for the facts in which they differ.

    Args:
        checkpoint: the checkpoint's state dict (``{name: tensor}``).
        model: the model (``nn.Module``) or its state dict.

    Returns:
        An empty list when the tensors fit (same names and shapes).
    """
    ours, theirs = _shapes(checkpoint), _shapes(model)
    if ours == theirs:
        return []
    a, b = _facts(ours), _facts(theirs)
    out: list[Difference] = []
    if a["kind"] != b["kind"]:
        out.append(("model type", a["kind"], b["kind"]))
    if a["dims"] != b["dims"]:
        out.append(("spatial dimensions", a["dims"], b["dims"]))
    if a["in_channels"] != b["in_channels"]:
        out.append(("input channels", a["in_channels"], b["in_channels"]))
    if a["outputs"] != b["outputs"]:
        what = "classes incl. background" if b["kind"] == "segmenter" else "classes; 1 = binary"
        out.append((f"outputs ({what})", a["outputs"], b["outputs"]))
    if a["lora"] != b["lora"]:
        out.append(("LoRA adapters", "yes" if a["lora"] else "no", "yes" if b["lora"] else "no"))
    if a["aux"] != b["aux"]:
        out.append(("deep supervision heads", "yes" if a["aux"] else "no", "yes" if b["aux"] else "no"))  # fmt: skip
    if a["dims"] == b["dims"] and a["lora"] == b["lora"]:
        encoder = _layers("encoder", a["encoder"], b["encoder"])
        # the decoder's widths follow the encoder's: compare it only under the same encoder
        decoder = _layers("decoder", a["decoder"], b["decoder"]) if a["kind"] == b["kind"] else None  # fmt: skip
        out += [encoder] if encoder else [decoder] if decoder else []
    if not out:
        missing = [k for k in theirs if k not in ours]
        extra = [k for k in ours if k not in theirs]
        out.append(("tensors", f"{len(extra)} not in the model", f"{len(missing)} not in the checkpoint"))  # fmt: skip
    return out


def describe_mismatch(checkpoint: Any, model: Any) -> str:
    """One clause saying how a checkpoint's tensors differ from a model's ("" when they fit).

    Example:
        >>> import torch
        >>> describe_mismatch({"head.weight": torch.zeros(2, 4)}, {"head.weight": torch.zeros(3, 4)})
        'the checkpoint and this model differ in outputs (classes; 1 = binary) (checkpoint 2, model 3)'
    """
    parts = [f"{what} (checkpoint {ck}, model {md})" for what, ck, md in checkpoint_differences(checkpoint, model)]  # fmt: skip
    if not parts:
        return ""
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"the checkpoint and this model differ in {listed}"
