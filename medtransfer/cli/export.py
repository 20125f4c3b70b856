"""``medtransfer export CHECKPOINT --format onnx|torchscript|monai-bundle --output PATH``.

Rebuilds the trained model and its preset from the checkpoint and the run's ``run_config.yaml``
(as ``predict`` does) and calls :func:`medtransfer.export`; the run config's ``preprocessing``
and ``model`` sections travel in the export's metadata under ``extra``.
"""

from __future__ import annotations

import argparse

from medtransfer.cli.exit_codes import EXIT_OK
from medtransfer.cli.runs import (
    RUN_CONFIG,
    _class_names,
    _load,
    _normalisation_of_run,
    _preset,
    _trained_model,
)
from medtransfer.errors import ConfigError

__all__ = ["export_command"]


def export_command(args: argparse.Namespace) -> int:
    """Export the checkpoint as ``args.format`` to ``args.output`` (arguments: ``command.py``)."""
    import medtransfer as mt

    config = args.config or args.checkpoint.resolve().parent.parent / RUN_CONFIG
    if not config.is_file():
        raise ConfigError(f"No run config at {config}: pass --config (the training config).")
    cfg = _normalisation_of_run(_load(config), args.checkpoint)
    names = _class_names(cfg)
    model, cfg = _trained_model(cfg, names, args.checkpoint)
    run = {
        "checkpoint": args.checkpoint.name,
        "preprocessing": cfg.preprocessing.model_dump(mode="json"),
        "model": cfg.model.model_dump(mode="json"),
    }
    print(f"Exporting {args.checkpoint} as {args.format}", flush=True)
    result = mt.export(
        model, args.output, args.format, preset=_preset(cfg, names), class_names=names,
        metadata={"run_config": run}, verify=args.verify, overwrite=args.overwrite,
    )  # fmt: skip
    print(result.summary())
    if result.format == "monai-bundle":
        bundle = result.path
        print(
            "Run it with MONAI: python -m monai.bundle run --config_file "
            f"{bundle}/configs/inference.json --bundle_root {bundle} "
            "--dataset_dir IMAGES --output_dir MASKS"
        )
    return EXIT_OK
