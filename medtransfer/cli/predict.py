"""``medtransfer predict``: masks (NIfTI or DICOM SEG) of a segmenter, or ``predictions.csv`` of a
classifier, from a trained checkpoint and its run's ``run_config.yaml``.

The run's helpers are used through :mod:`medtransfer.cli.runs` (``runs._load`` ...), so that
``evaluate``, ``export`` and ``predict`` rebuild a trained model the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medtransfer.cli import runs
from medtransfer.cli.adaptation import adapt_model, ood_detector
from medtransfer.cli.config import RunConfig
from medtransfer.cli.exit_codes import EXIT_OK
from medtransfer.errors import ConfigError, InputPathError
from medtransfer.io.atomic import make_folder

__all__ = ["predict_command"]


def _predict_classes(cfg: RunConfig, args: argparse.Namespace) -> int:
    """Classification: ``<output>/predictions.csv``, one row per input (probabilities, calls)."""
    import csv

    import medtransfer as mt

    if args.format != "nifti" or args.adapt:
        raise ConfigError("predict of a classifier writes predictions.csv: drop --format/--adapt.")
    missing = [str(p) for p in args.input if not p.exists()]
    if missing:
        raise InputPathError(f"Input {missing[0]} does not exist.")
    names = runs._class_names(cfg)
    model, cfg = runs._trained_model(cfg, names, args.checkpoint)
    threshold = cfg.evaluation.threshold
    if isinstance(threshold, str):  # chosen by evaluate on the validation split, if it ran
        saved = args.checkpoint.resolve().parent.parent / "evaluation" / runs.REPORTS[1]
        threshold = _saved_threshold(saved)
    rows = mt.evaluation.classify(
        model, [str(p) for p in args.input], runs._preset(cfg, names), class_names=names,
        threshold=threshold, device=cfg.training.device,
    )  # fmt: skip
    for path, row in zip(args.input, rows):
        row["input"] = str(path)
        if isinstance(row["prediction"], list):  # findings: one 0/1 column each
            row.update({f"prediction/{n}": v for n, v in zip(names or [], row.pop("prediction"))})
    make_folder(args.output)
    out = args.output / "predictions.csv"
    columns = ["input", *[k for k in rows[0] if k != "input"]]
    with mt.io.atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} {'image' if len(rows) == 1 else 'images'} classified -> {out.resolve()}")
    return EXIT_OK


def _saved_threshold(report_json: Path) -> Any:
    """The thresholds ``evaluate`` chose and kept in its report.json, else None (0.5)."""
    try:
        threshold = json.loads(report_json.read_text(encoding="utf-8"))["metadata"]["threshold"]
    except (OSError, ValueError, KeyError, TypeError):
        print(f"No thresholds chosen yet ({report_json} missing): 0.5; run evaluate first.")
        return None
    print(f"Thresholds from {report_json}")
    return threshold


def predict_command(args: argparse.Namespace) -> int:
    import medtransfer as mt

    config = args.config or args.checkpoint.resolve().parent.parent / runs.RUN_CONFIG
    if not config.is_file():
        raise ConfigError(f"No run config at {config}: pass --config (the training config).")
    cfg = runs._normalisation_of_run(runs._load(config), args.checkpoint)
    if cfg.data.task == "classification":
        return _predict_classes(cfg, args)
    from medtransfer.cli.checks import check_predict_inputs

    check_predict_inputs(args.input, args.format)  # before the model and any inference
    names = runs._class_names(cfg)
    options = runs._postprocess(cfg, names)
    labels = cfg.seg_labels(names) if args.format != "nifti" else None  # before the model
    model, cfg = runs._trained_model(cfg, names, args.checkpoint)
    preset = runs._preset(cfg, names)
    ood = ood_detector(args.checkpoint)
    if args.adapt:  # the inputs are scored for OOD first, by the model the detector knows
        model = adapt_model(model, args.input, preset, args.adapt, cfg.training.device, ood)
        ood = None
    print(runs._postprocess_line(options, names))
    make_folder(args.output)
    for number, image in enumerate(args.input, start=1):
        print(f"[{number}/{len(args.input)}] {image}", flush=True)
        mask = mt.evaluation.predict(model, image, preset, tta=cfg.evaluation.tta, device=cfg.training.device, progress=sys.stderr.isatty(), ood=ood, case_id=image.name)  # fmt: skip
        if options is not None:
            mask = mt.evaluation.postprocess(mask, **options)
        stem = image.name.removesuffix(".gz").removesuffix(".nii").removesuffix(".dcm")
        if args.format == "nifti":
            written = mt.io.save(mask, args.output / f"{stem}_seg.nii.gz")
        else:
            written = mt.io.save_dicom_seg(mask, image, args.output / f"{stem}_seg.dcm", labels)
        print(f"{image} -> {written}")
    noun = "mask" if len(args.input) == 1 else "masks"
    print(f"\n{len(args.input)} {noun} in {args.output.resolve()}")
    return EXIT_OK
