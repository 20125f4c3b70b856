"""The ``medtransfer`` command: parses arguments, validates configs, calls the public API, prints.

Commands: ``inspect``, ``train``, ``evaluate``, ``predict``, ``weights list|verify|import|fetch``
and ``demo`` (see ``docs/cli.md``). Exit codes: 0 success, 1 runtime error (a
:class:`~medtransfer.errors.MedTransferError`, e.g. missing weights or an unreadable file),
2 usage, config or run-folder error (bad arguments, :class:`~medtransfer.errors.ConfigError`,
:class:`~medtransfer.errors.CheckpointError`: e.g. ``--resume`` with nothing to resume, a run
history that only ``--overwrite`` may replace). Tracebacks are printed only with ``--debug``.

Example:
    >>> main(["weights", "fetch"])  # a usage error: NAME is missing
    2
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medtransfer.errors import (
    CheckpointError,
    ConfigError,
    InputPathError,
    MedTransferError,
    WeightsError,
)

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medtransfer`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2, message printed)
        return int(stop.code or 0)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except (ConfigError, CheckpointError) as err:  # fixed by changing the command line
        return _fail(args, err, EXIT_USAGE)
    except MedTransferError as err:
        return _fail(args, err, EXIT_RUNTIME)
    except KeyboardInterrupt:
        print("medtransfer: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: say so, keep the message short
        return _fail(args, err, EXIT_RUNTIME, internal=True)


def _fail(args: argparse.Namespace, err: BaseException, code: int, internal: bool = False) -> int:
    if args.debug:
        traceback.print_exc()
    kind = f"internal error ({type(err).__name__})" if internal else "error"
    print(f"medtransfer: {kind}: {err}", file=sys.stderr)
    if internal and not args.debug:
        print("Run again with --debug for the traceback, and please report it.", file=sys.stderr)
    return code


# ------------------------------------------------------------------------------- parser
def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    """A run command from :mod:`medtransfer.cli_runs`, imported only when it runs."""

    def run(args: argparse.Namespace) -> int:
        from medtransfer import cli_runs

        return getattr(cli_runs, name)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``medtransfer`` command (subcommands set ``func``)."""
    from medtransfer import __version__

    parser = argparse.ArgumentParser(
        prog="medtransfer",
        description="Transfer learning for medical imaging: inspect data, manage weights, "
        "train, evaluate and predict from YAML configs.",
        epilog="Exit codes: 0 ok, 1 runtime error, 2 usage or config error. See docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"medtransfer {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    common = argparse.ArgumentParser(add_help=False)  # --debug after the command works too
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = command("inspect", _inspect, "list the series of a folder or the header of one image")
    p.add_argument("path", type=Path, help="DICOM folder, DICOM file or NIfTI file")
    p.add_argument(
        "--show-phi",
        action="store_true",
        help="also show series descriptions (free text that may hold names), study date, "
        "patient ID and name",
    )

    p = command("train", _lazy("train_command"), "fine-tune a model as a YAML config says")
    p.add_argument("config", type=Path, help="run config (see configs/)")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in output.run_dir from its last checkpoint (error if none)",
    )
    how.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the history of an earlier run in output.run_dir (metrics, checkpoints, "
        "reports) and start over",
    )
    _add_set(p)

    p = command(
        "evaluate",
        _lazy("evaluate_command"),
        "evaluate a checkpoint on the config's held-out cases",
    )
    p.add_argument("config", type=Path, help="run config used for training")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoints/best.pt of a run")
    p.add_argument("--output", type=Path, help="report folder (default <run_dir>/evaluation)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report there")
    _add_set(p)

    p = command("predict", _lazy("predict_command"), "segment images with a trained checkpoint")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoints/best.pt of a run")
    p.add_argument("--input", type=Path, nargs="+", required=True, help="NIfTI files/DICOM series")
    p.add_argument("--output", type=Path, required=True, help="folder for the masks")
    p.add_argument("--format", choices=("nifti", "dicom-seg"), default="nifti")
    p.add_argument("--config", type=Path, help="run config (default: the run's run_config.yaml)")

    weights = sub.add_parser("weights", help="list, verify, import or fetch encoder weights")
    wsub = weights.add_subparsers(title="weights commands", metavar="ACTION")
    weights.set_defaults(func=lambda _: _usage(weights))

    def action(name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        p = wsub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = action("list", _weights_list, "encoders with ImageNet weights on this machine")
    p.add_argument("--all", action="store_true", help="every supported encoder, with or without")
    p = action(
        "verify",
        _weights_verify,
        "check the SHA-256 of installed/cached weights (exit 1 if one fails or has none recorded)",
    )
    p.add_argument("names", nargs="*", help="encoders to check (default: all available offline)")
    p = action("import", _weights_import, "copy a weight file into the cache (air-gapped use)")
    p.add_argument("file", type=Path, help=".safetensors/.pth/.pt fetched on a connected machine")
    p.add_argument("--name", required=True, help="encoder the weights are for, e.g. resnet18")
    p.add_argument("--sha256", help="expected checksum of FILE")
    p = action("fetch", _weights_fetch, "download weights into the cache (connected machines)")
    p.add_argument("name", help="encoder name, e.g. resnet18")

    from medtransfer import demo

    p = command("demo", _demo, "offline demo: pretrained vs random init on CT phantoms")
    demo.add_arguments(p)
    return parser


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set training.epochs=2 (repeatable)",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


# ------------------------------------------------------------------------------- inspect
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _inspect(args: argparse.Namespace) -> int:
    """Print the table; pydicom's complaints about header values are counted, not dumped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = _inspect_table(args)
    hidden = 0
    for warning in caught:
        if _from_pydicom(warning) and not args.debug:
            hidden += 1
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if hidden:
        noun = "warning" if hidden == 1 else "warnings"
        print(
            f"({hidden} pydicom {noun} about non-standard header values hidden; --debug shows "
            "them)",
            file=sys.stderr,
        )
    return code


def _from_pydicom(warning: warnings.WarningMessage) -> bool:
    module = getattr(warning, "filename", "") or ""
    return f"{os.sep}pydicom{os.sep}" in module


def _inspect_table(args: argparse.Namespace) -> int:
    import medtransfer as mt

    path: Path = args.path.expanduser()
    if not path.exists():
        raise InputPathError(f"{path} does not exist; pass a DICOM folder, DICOM file or NIfTI.")
    if path.is_dir():
        series = mt.io.list_series(path)
        if series:
            rows = [_series_row(s, args.show_phi) for s in series]
            columns = ["uid", "modality", "files", "shape", "spacing", "origin", "orientation"]
            columns += ["problems"]
            if args.show_phi:  # free text and identifiers: only when asked (PS3.15 removes them)
                columns += ["description", "study_date", "patient_id", "patient_name"]
            print(_table(rows, columns))
            print(f"\n{len(series)} series in {path.resolve()}")
            return EXIT_OK
        images = sorted(p for p in path.iterdir() if p.name.endswith(_NIFTI_SUFFIXES))
        if not images:
            raise InputPathError(f"{path} holds no DICOM series and no NIfTI files.")
        print(_table([_image_row(p) for p in images], _IMAGE_COLUMNS))
        return EXIT_OK
    print(_table([_image_row(path)], _IMAGE_COLUMNS))
    return EXIT_OK


_IMAGE_COLUMNS = (
    "file", "modality", "shape", "spacing", "origin", "orientation", "direction", "dtype"
)  # fmt: skip


def _fmt(values: Any, digits: int = 3) -> str:
    if values is None:
        return "?"
    return "x".join(f"{float(v):.{digits}g}" if digits else str(int(v)) for v in values)


def _series_row(info: Any, show_phi: bool) -> dict[str, Any]:
    """One table row; SeriesDescription, StudyDate and patient identifiers only with show_phi.

    SeriesDescription is free text that often holds names or other identifiers (DICOM's basic
    de-identification profile, PS3.15 E.1, removes it), so it is not shown by default.
    """
    row = {
        "uid": info.uid,
        "modality": info.modality,
        "files": info.n_files,
        "shape": _fmt(info.shape, 0) if info.shape else "no pixels",
        "spacing": _fmt(info.spacing),
        "origin": ", ".join(f"{v:.1f}" for v in info.origin) if info.origin else "?",
        "orientation": info.orientation or "?",
        "problems": "; ".join(info.problems) or "none",
    }
    if show_phi:
        row.update(description=info.description, study_date=info.study_date or "?")
        row.update(_patient(info))
    return row


def _patient(info: Any) -> dict[str, str]:
    """PatientID and PatientName of a series' first file (read only with --show-phi)."""
    import pydicom

    if not info.files:
        return {"patient_id": "?", "patient_name": "?"}
    ds = pydicom.dcmread(
        info.files[0], stop_before_pixels=True, specific_tags=["PatientID", "PatientName"]
    )
    return {
        "patient_id": str(ds.get("PatientID", "?")),
        "patient_name": str(ds.get("PatientName", "?")),
    }


def _image_row(path: Path) -> dict[str, Any]:
    """A file's grid from its header (no voxels decoded, no MONAI imported)."""
    import medtransfer as mt

    info = mt.io.image_info(path)
    direction = info.direction
    return {
        "file": path.name,
        "modality": info.modality or "?",
        "shape": _fmt(info.shape, 0),
        "spacing": _fmt(info.spacing),
        "origin": ", ".join(f"{v:.1f}" for v in info.origin),
        "orientation": info.orientation,
        "direction": " ".join(
            ",".join(f"{v:.3g}" if abs(v) > 5e-4 else "0" for v in column) for column in direction.T
        ),
        "dtype": info.dtype,
    }


def _weights_list(args: argparse.Namespace) -> int:
    import medtransfer as mt

    rows = [
        {
            "encoder": e.name,
            "family": e.family,
            "tested": "yes" if e.tested else "no",
            "weights": e.weights_source or "not on this machine",
        }
        for e in mt.encoders.list_encoders(available_offline=not args.all)
    ]
    print(_table(rows, ("encoder", "family", "tested", "weights")))
    where = "on this machine" if not args.all else "supported"
    noun = "encoder" if len(rows) == 1 else "encoders"
    print(f"\n{len(rows)} {noun} {where}; cache: {mt.encoders.medtransfer_home() / 'weights'}")
    return EXIT_OK


def _weights_verify(args: argparse.Namespace) -> int:
    import medtransfer as mt

    names = args.names or [e.name for e in mt.encoders.list_encoders(available_offline=True)]
    rows, failed, unverified = [], 0, []
    for name in names:
        try:
            found = mt.encoders.resolve_weights(name, "imagenet")
        except MedTransferError as err:
            failed += 1
            rows.append({"encoder": name, "status": f"FAILED: {str(err).splitlines()[0]}"})
            continue
        if not found.verified:  # readable, but nobody recorded what it should be
            unverified.append((name, found.path))
        rows.append(
            {
                "encoder": name,
                "source": found.source.kind,
                "sha256": found.sha256[:16] + "...",
                "status": "ok (checksum matches)"
                if found.verified
                else "UNVERIFIED: no checksum recorded",
                "file": found.path,
            }
        )
    print(_table(rows, ("encoder", "source", "sha256", "status", "file")))
    if failed:
        print(f"\n{failed} of {len(names)} failed verification.", file=sys.stderr)
    if unverified:
        print(
            f"\n{len(unverified)} of {len(names)} could not be verified: no checksum was "
            "recorded for them (e.g. a file copied into the cache by hand). Get the SHA-256 from "
            "where the file came from and record it by importing the file again:",
            file=sys.stderr,
        )
        for name, path in unverified:
            print(
                f"  medtransfer weights import {path} --name {name} --sha256 <SHA-256>",
                file=sys.stderr,
            )
    if failed or unverified:
        return EXIT_RUNTIME
    print(f"\n{len(names)} verified.")
    return EXIT_OK


def _weights_import(args: argparse.Namespace) -> int:
    import medtransfer as mt

    if not args.file.is_file():
        raise InputPathError(f"Weight file {args.file} does not exist.")
    target = mt.encoders.import_weights(args.name, args.file, sha256=args.sha256)
    print(f"Imported {args.file} as {args.name!r}: {target}")
    print(f"SHA-256 {mt.encoders.sha256_file(target)} (stored next to it, checked on every load)")
    return EXIT_OK


def _weights_fetch(args: argparse.Namespace) -> int:
    import medtransfer as mt
    from medtransfer.encoders.sources import is_online

    if not is_online():
        raise WeightsError(
            f"Cannot fetch {args.name!r}: this machine is offline (HF_HUB_OFFLINE or "
            "MEDTRANSFER_OFFLINE is set). On a connected machine run "
            f"`medtransfer weights fetch {args.name}`, copy the file it prints to this machine, "
            f"then run `medtransfer weights import FILE --name {args.name}`."
        )
    found = mt.encoders.resolve_weights(args.name, "imagenet")
    print(f"{args.name}: {found.source.kind} {found.path} (SHA-256 {found.sha256})")
    return EXIT_OK


# ------------------------------------------------------------------------------- runs
def _demo(args: argparse.Namespace) -> int:
    from medtransfer import demo

    return demo.run(args)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
