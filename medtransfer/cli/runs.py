"""The run commands of the ``medtransfer`` CLI: ``train`` and ``evaluate``, and the helpers that
``predict`` (:mod:`medtransfer.cli.predict`), ``diagnose`` and ``export`` share with them.

Each turns a validated config (:mod:`medtransfer.cli.config`) into calls of the public API; no
training or evaluation logic lives here. :mod:`medtransfer.cli.command` parses the
arguments and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from medtransfer.cli.adaptation import ood_detector, store_ood
from medtransfer.cli.config import RunConfig, load_config
from medtransfer.cli.config_messages import shorten
from medtransfer.cli.config_yaml import load_yaml
from medtransfer.cli.exit_codes import EXIT_OK
from medtransfer.errors import CheckpointError, ConfigError, InputPathError
from medtransfer.io.atomic import make_folder

__all__ = ["evaluate_command", "train_command"]


def _overrides(items: list[str]) -> dict[str, Any]:
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {shorten(item)}: use KEY=VALUE, e.g. --set training.epochs=2.")  # fmt: skip
        values[key.strip()] = load_yaml(value, f"--set {shorten(key.strip())}")
    return values


RUN_CONFIG = "run_config.yaml"  # the validated config, normalisation included, in the run folder
DIAGNOSTICS = "diagnostics"  # <run_dir>/diagnostics/: results and report sections of diagnose
SECTION_SUFFIX = ".section.json"


def _load(path: Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    return load_config(path, overrides)


def _class_names(cfg: RunConfig) -> list[str] | None:
    """``data.findings`` or ``data.class_names``, else the foreground labels of an MSD
    dataset.json."""
    import json

    if cfg.data.findings is not None:
        return list(cfg.data.findings)
    if cfg.data.class_names is not None or cfg.data.manifest.suffix != ".json":
        return cfg.data.class_names
    try:
        labels = json.loads(cfg.data.manifest.read_text()).get("labels")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(labels, dict) or cfg.data.task != "segmentation":
        return None
    return [str(labels[k]) for k in sorted(labels, key=int) if int(k) != 0]


def _records(cfg: RunConfig) -> tuple[list[dict[str, Any]], list[str] | None]:
    """Labelled records of the manifest (label under ``"label"``, class names as indices).

    ``data.label_key`` and (classification) ``data.class_names`` go to ``load_manifest``, which
    maps class names to indices and names every row that does not fit.
    """
    import medtransfer as mt
    from medtransfer.cli.checks import manifest_label_error, missing_label_key
    from medtransfer.errors import ManifestError

    names = _class_names(cfg)
    try:
        loaded = mt.data.load_manifest(cfg.data.manifest, **cfg.manifest_kwargs())
    except ManifestError as err:
        raise manifest_label_error(err, cfg) from None
    records = [r for r in loaded if r.get("label") is not None]  # the label_key column's value
    if not records:
        raise missing_label_key(cfg, loaded)
    return records, names


def _split(cfg: RunConfig, records: list[dict[str, Any]]) -> tuple[list, list, list]:
    import medtransfer as mt

    s = cfg.data.split
    common = {"by": s.by, "stratify": s.stratify, "seed": s.seed}
    if s.folds is None:
        return tuple(mt.data.split(records, fractions=s.fractions, **common))
    rest, test = records, []
    if s.fractions[2] > 0:
        rest, test, _ = mt.data.split(records, fractions=(1 - s.fractions[2], s.fractions[2]), **common)  # fmt: skip
    fold = mt.data.kfold(rest, k=s.folds, **common)[s.fold]
    return fold.train, fold.val, test


def _num_classes(cfg: RunConfig, names: list[str] | None, records: list[dict] | None = None) -> int:
    if cfg.model.num_classes is not None or names is not None:
        return cfg.model.num_classes or cfg.num_classes(names)
    if cfg.data.task == "classification" and records:
        count = max(int(r["label"]) for r in records) + 1
        return 1 if count <= 2 else count
    return cfg.num_classes()  # raises: give model.num_classes or data.class_names


def _model(cfg: RunConfig, names: list[str] | None, weights: str | None, records=None) -> Any:
    import medtransfer as mt

    kwargs = cfg.model_kwargs(_num_classes(cfg, names, records), weights)
    if cfg.data.task == "segmentation":
        return mt.models.create_segmenter(**kwargs)
    return mt.models.create_classifier(**kwargs)


def _preset(cfg: RunConfig, names: list[str] | None, records=None) -> tuple[Any, Any]:
    import medtransfer as mt

    factory = getattr(mt.transforms.presets, cfg.preprocessing.preset)
    return factory(**cfg.preset_kwargs(_num_classes(cfg, names, records)))


def learn_histogram(cfg: RunConfig, train: list[dict[str, Any]], again: bool = False) -> None:
    """``preprocessing.histogram: learn``: the training split's landmarks, saved in the run
    folder for evaluate, predict and the diagnostics to reuse (``train`` learns them ``again``:
    the split may have changed; the diagnostics only when they are missing)."""
    path = cfg.histogram_path()
    if cfg.preprocessing.histogram != "learn" or path is None or (path.is_file() and not again):
        return
    import medtransfer as mt

    make_folder(path.parent)
    mt.transforms.save_landmarks(mt.transforms.learn_histogram_landmarks(train), path)
    print(f"Histogram landmarks of {len(train)} training cases: {path}")


def _strategy(cfg: RunConfig) -> list[Any]:
    import medtransfer as mt

    return [mt.training.STRATEGIES[name](**kwargs) for name, kwargs in cfg.strategy_kwargs()]


def _normalisation_of_run(cfg: RunConfig, checkpoint: Path) -> RunConfig:
    """Use the normalisation the run was trained with (its run_config.yaml), when known."""
    if cfg.preprocessing.mean is not None:
        return cfg
    saved = checkpoint.resolve().parent.parent / RUN_CONFIG
    if saved.is_file():
        p = _load(saved).preprocessing
        update = {"mean": p.mean, "std": p.std, "value_range": p.value_range}
        return cfg.model_copy(update={"preprocessing": cfg.preprocessing.model_copy(update=update)})  # fmt: skip
    return cfg


def _trained_model(
    cfg: RunConfig, names: list[str] | None, checkpoint: Path, records=None
) -> tuple[Any, RunConfig]:
    """The model with the checkpoint's weights, and the config with its normalisation."""
    import medtransfer as mt

    if not checkpoint.is_file():
        raise InputPathError(
            f"Checkpoint {checkpoint} does not exist (see the run's checkpoints/)."
        )
    # Without a saved normalisation the encoder's weights decide it: build with them.
    weights = None if cfg.preprocessing.mean is not None else cfg.model.weights
    model = _model(cfg, names, weights, records)
    cfg = cfg.with_normalisation(model.encoder.input_spec)
    strategies = _strategy(cfg)
    for strategy in strategies:
        if isinstance(strategy, mt.training.LoRA):
            strategy.setup(model)  # the checkpoint holds adapter weights
    state = mt.training.load_checkpoint(checkpoint).get("model")
    try:
        model.load_state_dict(state)
    except (TypeError, RuntimeError):
        from medtransfer.cli.checks import checkpoint_mismatch

        saved_path = checkpoint.resolve().parent.parent / RUN_CONFIG
        saved = _load(saved_path) if saved_path.is_file() else None
        raise checkpoint_mismatch(cfg, checkpoint, state, model, saved_path, saved) from None
    for strategy in strategies:
        model = strategy.export(model)
    return model.eval(), cfg


def _threshold(cfg: RunConfig, model: Any, val: list[dict], preset: Any, names) -> Any:
    """``evaluation.threshold``; youden / sensitivity: chosen per finding on the val split."""
    from medtransfer.evaluation import choose_thresholds, evaluate_classification

    method = cfg.evaluation.threshold
    if not isinstance(method, str):
        return method
    if not val:
        raise ConfigError(
            f"evaluation.threshold={method} chooses thresholds on the validation split, which "
            "is empty: give data.split.fractions a validation share, or a number."
        )
    report = evaluate_classification(
        model, val, preset, class_names=names, n_resamples=1, device=cfg.training.device,
        progress=False,
    )  # fmt: skip
    cut = choose_thresholds(report, method=method, target_sensitivity=cfg.evaluation.target_sensitivity)  # fmt: skip
    shown = ", ".join(f"{k} {v:.3f}" for k, v in cut.items()) if isinstance(cut, dict) else f"{cut:.3f}"  # fmt: skip
    print(f"Thresholds ({method}) chosen on {len(val)} validation cases: {shown}")
    return cut


def _evaluate_report(
    cfg: RunConfig, model: Any, cases: list[dict], names: list[str] | None, records=None,
    ood: Any = None, val: list[dict] | None = None,
) -> Any:  # fmt: skip
    from medtransfer.evaluation.evaluate.classification import evaluate_classification
    from medtransfer.evaluation.evaluate.segmentation import evaluate_segmentation

    preset = _preset(cfg, names, records)
    e = cfg.evaluation
    common = {
        "n_resamples": e.n_resamples,
        "seed": cfg.training.seed,
        "device": cfg.training.device,
        "ood": ood,
    }
    if cfg.data.task == "segmentation":
        return evaluate_segmentation(
            model, cases, preset, class_names=names, postprocess=_postprocess(cfg, names),
            tolerance_mm=e.tolerance_mm, tta=e.tta, **common,
        )  # fmt: skip
    threshold = _threshold(cfg, model, val or [], preset, names)
    return evaluate_classification(
        model, cases, preset, class_names=names, threshold=threshold, saliency=e.saliency, **common
    )


def _postprocess(cfg: RunConfig, names: list[str] | None) -> dict[str, Any] | None:
    """``evaluation.postprocess`` resolved against the class names (None: none asked for)."""
    from medtransfer.evaluation.inference.postprocess_options import resolve_postprocess

    return resolve_postprocess(cfg.postprocess_options(), names, where="evaluation.postprocess")


def _postprocess_line(options: Any, names: list[str] | None) -> str:
    from medtransfer.evaluation.inference.postprocess_options import describe_postprocess

    if not options:
        return (
            "Post-processing: none (raw predictions; opt in per class with "
            "evaluation.postprocess, e.g. {largest_component: [liver]})"
        )
    return f"Post-processing: {describe_postprocess(options, names)}"


def train_command(args: argparse.Namespace) -> int:
    cfg = _load(args.config, _overrides(args.overrides))
    import medtransfer as mt  # (torch) only once the config is valid
    from medtransfer.training.run_dir import CLI_WORDING, check_run_folder

    # Checked before anything is written (run_config.yaml included); fit() checks it again.
    check_run_folder(cfg.output.run_dir, args.resume, args.overwrite, wording=CLI_WORDING)
    records, names = _records(cfg)
    train, val, test = _split(cfg, records)
    print(f"{len(records)} labelled cases: {len(train)} train, {len(val)} val, {len(test)} test")
    from medtransfer.cli.checks import check_label_values_fit

    check_label_values_fit(cfg, records, _num_classes(cfg, names, records), names)
    if cfg.data.task == "segmentation":
        _postprocess(cfg, names)  # a misspelt class in evaluation.postprocess fails now, not later
    model = _model(cfg, names, cfg.model.weights, records)
    cfg = cfg.with_normalisation(model.encoder.input_spec)
    learn_histogram(cfg, train, again=True)
    preset = _preset(cfg, names, records)
    strategies = _strategy(cfg)
    strategy = strategies[0] if len(strategies) == 1 else strategies
    tuner = mt.training.FineTuner(model, strategy=strategy, **cfg.finetuner_kwargs())
    patience = cfg.training.early_stopping
    callbacks = [mt.training.EarlyStopping(patience)] if patience else []
    make_folder(cfg.output.run_dir)
    with mt.io.atomic_path(cfg.output.run_dir / RUN_CONFIG) as tmp:
        tmp.write_text(cfg.to_yaml())
    tuner.fit(
        train,
        val or None,
        callbacks=callbacks,
        train_transform=preset[0],
        val_transform=preset[1],
        resume=args.resume,
        overwrite=args.overwrite,
        **cfg.fit_kwargs(),
    )
    best = tuner.run.best_checkpoint
    checkpoint = best if best.is_file() else tuner.run.last_checkpoint
    trained, _ = _trained_model(cfg, names, checkpoint, records)  # the checkpoint's weights
    store_ood(trained, train, preset, [checkpoint], device=cfg.training.device, seed=cfg.training.seed)  # fmt: skip
    print(f"\nRun directory: {tuner.run.path}")
    print(f"Checkpoint: {checkpoint}")
    # run_config.yaml, not args.config: it holds the --set overrides the model was built with
    run_config = shlex.quote(str(cfg.output.run_dir / RUN_CONFIG))
    print(f"Next: medtransfer evaluate {run_config} --checkpoint {shlex.quote(str(checkpoint))}")
    return EXIT_OK


REPORTS = ("report.html", "report.json", "cases.csv", "summary.csv")


def _refuse_to_replace_reports(folder: Path, overwrite: bool) -> None:
    """A report of an earlier evaluation is part of a run's history: replaced only on request."""
    existing = [name for name in REPORTS if (folder / name).exists()]
    if existing and not overwrite:
        raise CheckpointError(
            f"{folder} already holds an evaluation report ({', '.join(existing)}); pass "
            "--overwrite to replace it, or --output another folder."
        )


def evaluate_command(args: argparse.Namespace) -> int:
    cfg = _normalisation_of_run(_load(args.config, _overrides(args.overrides)), args.checkpoint)
    records, names = _records(cfg)
    _, val, test = _split(cfg, records)
    cases = test if cfg.evaluation.subset == "test" and test else val
    model, cfg = _trained_model(cfg, names, args.checkpoint, records)
    noun = "held-out case" if len(cases) == 1 else "held-out cases"
    print(f"Evaluating {args.checkpoint} on {len(cases)} {noun}")
    out = args.output or args.checkpoint.resolve().parent.parent / "evaluation"
    _refuse_to_replace_reports(out, args.overwrite)  # before the (long) evaluation
    report = _evaluate_report(cfg, model, cases, names, records, ood_detector(args.checkpoint), val)
    _add_diagnostics(report, args.checkpoint.resolve().parent.parent)
    make_folder(out)
    paths = [
        report.to_html(out / REPORTS[0]),
        report.to_json(out / REPORTS[1]),
        report.to_csv(out / REPORTS[2]),
        report.to_csv(out / REPORTS[3], table="summary"),
    ]
    if cfg.data.task == "segmentation":
        print("\n" + _postprocess_line(report.metadata.get("postprocess"), names))
    print("\n".join(["", *report.headline(), ""]))
    print("Outputs:\n" + "\n".join(f"  {p}" for p in paths))
    return EXIT_OK


def _add_diagnostics(report: Any, run_dir: Path) -> None:
    """The sections ``diagnose rank`` / ``train --compare-to-scratch`` saved in the run folder."""
    import json

    for path in sorted((run_dir / DIAGNOSTICS).glob(f"*{SECTION_SUFFIX}")):
        try:
            section = json.loads(path.read_text(encoding="utf-8"))
            report.add_section(section["title"], section["html"], section.get("data"))
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
            print(f"Skipped the report section in {path}: {err}")
