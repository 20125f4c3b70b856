"""The ``medtransfer`` command: :func:`main` maps errors to exit codes, :func:`build_parser` lists
the commands.

Commands: ``inspect`` (:mod:`.inspect`), ``train``, ``evaluate`` (:mod:`.runs`), ``predict``
(:mod:`.predict`),
``diagnose rank`` and ``train --compare-to-scratch`` (:mod:`.diagnose`),
``export`` (:mod:`.export`), ``weights list|verify|import|fetch`` (:mod:`.weights`) and
``demo`` (:mod:`.demo`); see
``docs/cli.md``. Exit codes (:mod:`.exit_codes`): 0 success, 1 runtime error (a
:class:`~medtransfer.errors.MedTransferError`, e.g. missing weights or an unreadable file),
2 usage, config or run-folder error (bad arguments, :class:`~medtransfer.errors.ConfigError`,
:class:`~medtransfer.errors.CheckpointError`: e.g. ``--resume`` with nothing to resume, a run
history that only ``--overwrite`` may replace). Tracebacks are printed only with ``--debug``.
The run commands (pydantic, the config models, torch) are imported only when one runs, so
``medtransfer --help`` and ``medtransfer inspect`` stay fast.

Example:
    >>> main(["weights", "fetch"])  # a usage error: NAME is missing
    2
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from medtransfer.cli import demo, weights
from medtransfer.cli.exit_codes import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE
from medtransfer.cli.inspect import inspect_command
from medtransfer.errors import CheckpointError, ConfigError, MedTransferError, MedTransferWarning

__all__ = ["build_parser", "main"]


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
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except (ConfigError, CheckpointError) as err:  # fixed by changing the command line
        return _fail(args, err, EXIT_USAGE)
    except MedTransferError as err:
        return _fail(args, err, EXIT_RUNTIME)
    except KeyboardInterrupt:
        print("medtransfer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug, not bad input: say so, keep the message short
        return _fail(args, err, EXIT_RUNTIME, internal=True)


_SHOW_WARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """medtransfer's own warnings as one line for the user (no source line of the library)."""
    if issubclass(category, MedTransferWarning):
        print(f"Warning: {message}", file=file or sys.stderr)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


def _fail(args: argparse.Namespace, err: BaseException, code: int, internal: bool = False) -> int:
    if args.debug:
        traceback.print_exc()
    kind = f"internal error ({type(err).__name__})" if internal else "error"
    print(f"medtransfer: {kind}: {err}", file=sys.stderr)
    if internal and not args.debug:
        print("Run again with --debug for the traceback, and please report it.", file=sys.stderr)
    return code


# ------------------------------------------------------------------------------- parser
def _lazy(name: str, module: str = "runs") -> Callable[[argparse.Namespace], int]:
    """A command from :mod:`medtransfer.cli.runs` (or ``.predict``, ``.diagnose``...), imported when run."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(f"medtransfer.cli.{module}"), name)(args)

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

    p = command(
        "inspect", inspect_command, "list the series of a folder or the header of one image"
    )
    p.add_argument("path", type=Path, help="DICOM folder, DICOM file or NIfTI file")
    p.add_argument(
        "--show-phi",
        action="store_true",
        help="also show series descriptions (free text that may hold names), study date, "
        "patient ID and name",
    )

    p = command(
        "train", _lazy("train_command", "diagnose"), "fine-tune a model as a YAML config says"
    )
    p.add_argument("config", type=Path, help="run config (see configs/)")
    p.add_argument(
        "--compare-to-scratch",
        action="store_true",
        help="then train the same recipe from random initialisation (diagnostics.seeds, "
        "diagnostics.label_fractions) and report whether pretraining helped",
    )
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

    p = command(
        "predict",
        _lazy("predict_command", "predict"),
        "segment images (masks) or classify them (predictions.csv) with a trained checkpoint",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoints/best.pt of a run")
    p.add_argument(
        "--input", type=Path, nargs="+", required=True, help="NIfTI/PNG files, DICOM series"
    )
    p.add_argument("--output", type=Path, required=True, help="folder for the masks or the CSV")
    p.add_argument("--format", choices=("nifti", "dicom-seg"), default="nifti")
    p.add_argument("--config", type=Path, help="run config (default: the run's run_config.yaml)")
    p.add_argument(
        "--adapt",
        choices=("bn", "tent"),
        help="adapt to the input images first, without labels: bn re-estimates batch-norm "
        "statistics (AdaBN); tent adds entropy minimisation of the batch-norm affine parameters",
    )

    p = command(
        "export",
        _lazy("export_command", "export"),
        "export a checkpoint as ONNX, TorchScript or a MONAI bundle, checked by a round trip",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoints/best.pt of a run")
    p.add_argument("--format", choices=("onnx", "torchscript", "monai-bundle"), default="onnx")
    p.add_argument("--output", type=Path, required=True, help="file, or the bundle folder")
    p.add_argument("--config", type=Path, help="run config (default: the run's run_config.yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file or folder")
    p.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip the round-trip check"
    )

    diagnose_parser = sub.add_parser("diagnose", help="transfer diagnostics of a run config")
    dsub = diagnose_parser.add_subparsers(title="diagnose commands", metavar="ACTION")
    diagnose_parser.set_defaults(func=lambda _: _usage(diagnose_parser))
    p = dsub.add_parser(
        "rank",
        parents=[common],
        help="rank encoders by a transferability score before training",
        description="Rank the config's encoder (its weights and random init) and "
        "diagnostics.candidates on the training split by a transferability score of their "
        "frozen features; writes <run_dir>/diagnostics/ranking-<method>.json/.md.",
    )
    p.set_defaults(func=_lazy("rank_command", "diagnose"))
    p.add_argument("config", type=Path, help="run config (see configs/)")
    p.add_argument(
        "--candidates",
        nargs="+",
        metavar="NAME",
        help="more candidates, e.g. tf_efficientnet_lite1 resnet18:2.5d resnet18:random",
    )
    p.add_argument("--method", choices=("logme", "h_score", "leep", "linear_probe"), help="score")
    p.add_argument("--max-samples", type=int, help="cases or pixels scored (default 4000)")
    _add_set(p)
    p = dsub.add_parser(
        "shift",
        parents=[common],
        help="measure the domain shift from the training cases to another site's manifest",
        description="Compare the config's training split with the cases of --target (no labels "
        "needed): acquisition, intensity and encoder-feature distances, an MMD permutation test "
        "and the out-of-distribution cases; writes <run_dir>/diagnostics/shift-<target>.json/.md.",
    )
    p.set_defaults(func=_lazy("shift_command", "diagnose"))
    p.add_argument("config", type=Path, help="run config (see configs/)")
    p.add_argument("--target", type=Path, required=True, help="manifest of the new site's cases")
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="embed with the trained model's encoder (default: the run's best checkpoint when "
        "it exists, else the config's pretrained encoder)",
    )
    _add_set(p)

    weights_parser = sub.add_parser("weights", help="list, verify, import or fetch encoder weights")
    wsub = weights_parser.add_subparsers(title="weights commands", metavar="ACTION")
    weights_parser.set_defaults(func=lambda _: _usage(weights_parser))

    def action(name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        p = wsub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = action("list", weights.list_command, "encoders with ImageNet weights on this machine")
    p.add_argument("--all", action="store_true", help="every supported encoder, with or without")
    p = action(
        "verify",
        weights.verify_command,
        "check the SHA-256 of installed/cached weights (exit 1 if one fails or has none recorded)",
    )
    p.add_argument("names", nargs="*", help="encoders to check (default: all available offline)")
    p = action(
        "import", weights.import_command, "copy a weight file into the cache (air-gapped use)"
    )
    p.add_argument("file", type=Path, help=".safetensors/.pth/.pt fetched on a connected machine")
    p.add_argument("--name", required=True, help="encoder the weights are for, e.g. resnet18")
    p.add_argument("--sha256", help="expected checksum of FILE")
    p = action(
        "fetch", weights.fetch_command, "download weights into the cache (connected machines)"
    )
    p.add_argument("name", help="encoder name, e.g. resnet18")

    p = command("demo", demo.run, "offline demo: pretrained vs random init on CT phantoms")
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
