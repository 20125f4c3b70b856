"""``medtransfer diagnose rank CONFIG`` and ``medtransfer train CONFIG --compare-to-scratch``.

Both read the run config and call :mod:`medtransfer.diagnostics`; their results go to
``<run_dir>/diagnostics/`` (JSON, Markdown, and a ``*.section.json`` report section).
``medtransfer evaluate`` adds every saved section to the run's HTML report when it writes it (an
existing report is not re-rendered: its JSON does not keep the overlay pixels).

- ``diagnose rank`` ranks the config's encoder (its weights and random initialisation) and the
  ``diagnostics.candidates`` (or ``--candidates``) on the **training split** only, each in the
  config's input form unless its name says otherwise (``"resnet18:2.5d"``), by
  ``diagnostics.method`` (``--method``).
- ``diagnose shift`` compares the training split with another site's manifest (``--target``),
  embedding with the trained model when the run has a checkpoint (else the config's encoder).
- ``train --compare-to-scratch`` trains the run as usual, then the same recipe (model, preset,
  optimiser, schedule, budget) from the config's weights and from random initialisation with the
  ``diagnostics.seeds`` at the ``diagnostics.label_fractions``, evaluated on the held-out split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medtransfer.cli import runs
from medtransfer.cli.config import RunConfig
from medtransfer.cli.exit_codes import EXIT_OK
from medtransfer.errors import ConfigError
from medtransfer.io.atomic import make_folder

__all__ = ["rank_command", "shift_command", "train_command"]

FOLDER = runs.DIAGNOSTICS
SECTION_SUFFIX = runs.SECTION_SUFFIX


def _defaults(cfg: RunConfig) -> dict[str, Any]:
    """Candidate fields a name leaves open: the config's weights and input form."""
    p = cfg.preprocessing
    return {
        "weights": cfg.model.weights,
        "context": p.context if p.preset != "xray" else 0,
        "spatial_dims": p.spatial_dims if p.preset != "xray" else 2,
        "conversion": cfg.model.conversion,
        "channels": cfg.derived_in_channels() // (2 * p.context + 1),
    }


def candidates(cfg: RunConfig, extra: list[str] | None = None) -> list[Any]:
    """The config's encoder (its weights, then random init) and the listed candidates, once each."""
    from medtransfer.diagnostics import as_candidate

    own = as_candidate(cfg.model.encoder, **_defaults(cfg))
    found = {own.name: own}
    for name in [f"{cfg.model.encoder}:random", *cfg.diagnostics.candidates, *(extra or [])]:
        # a listed name means ImageNet weights (":random" none); the config's weight file only
        # for the config's own encoder
        same = name.split(":")[0].strip() == cfg.model.encoder and cfg.model.weights is not None
        weights = cfg.model.weights if same else "imagenet"
        candidate = as_candidate(name, **{**_defaults(cfg), "weights": weights})
        found.setdefault(candidate.name, candidate)
    return list(found.values())


def preset_factory(cfg: RunConfig, num_classes: int):
    """A preset callable for any candidate: the config's preset in the candidate's input form."""
    import medtransfer as mt

    factory = getattr(mt.transforms.presets, cfg.preprocessing.preset)
    base = cfg.preset_kwargs(num_classes)

    def preset(*, input_spec: Any, context: int, spatial_dims: int) -> tuple[Any, Any]:
        kwargs = {**base, "input_spec": input_spec}
        if cfg.preprocessing.preset != "xray":
            kwargs.update(context=context, spatial_dims=spatial_dims)
            roi = kwargs.get("roi_size")
            if roi is not None and len(roi) != spatial_dims:
                kwargs.pop("roi_size")  # a 3D candidate of a 2D config: the preset's default
        return factory(**kwargs)

    # names the pipelines for feature caches and resume checks (mt.diagnostics.preset_identity)
    preset.identity = json.dumps([cfg.preprocessing.preset, base], default=str)  # type: ignore[attr-defined]
    return preset


def _folder(cfg: RunConfig) -> Path:
    return make_folder(cfg.output.run_dir / FOLDER)


def _write(path: Path, text: str) -> Path:
    import medtransfer as mt

    with mt.io.atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _save_section(folder: Path, stem: str, title: str, html: str, data: dict) -> Path:
    section = {"title": title, "html": html, "data": data}
    return _write(folder / f"{stem}{SECTION_SUFFIX}", json.dumps(section, default=str))


def _report_note(cfg: RunConfig) -> str:
    """Where the saved section will appear. An existing report is not rewritten: its JSON does not
    keep the overlay pixels, so re-rendering it would lose the example slices."""
    report = cfg.output.run_dir / "evaluation" / "report.html"
    if report.is_file():
        return (f"{report} exists: run `medtransfer evaluate ... --overwrite` to rewrite it with "
                "this section.")  # fmt: skip
    return "The section goes into the run's report when `medtransfer evaluate` writes it."


def rank_command(args: argparse.Namespace) -> int:
    """``medtransfer diagnose rank``: rank encoders on the training split before training."""
    overrides = runs._overrides(args.overrides)
    for key in ("method", "max_samples"):
        if getattr(args, key) is not None:
            overrides[f"diagnostics.{key}"] = getattr(args, key)
    cfg = runs._load(args.config, overrides)
    import medtransfer as mt

    records, names = runs._records(cfg)
    train, _, _ = runs._split(cfg, records)
    runs.learn_histogram(cfg, train)
    num_classes = runs._num_classes(cfg, names, records)
    chosen = candidates(cfg, args.candidates)
    d = cfg.diagnostics
    print(f"Ranking {len(chosen)} candidates by {d.method} on the {len(train)} training cases")
    ranking = mt.diagnostics.rank_encoders(
        chosen, train, preset_factory(cfg, num_classes), task=cfg.data.task, method=d.method,
        max_samples=d.max_samples, seed=cfg.training.seed, device=cfg.training.device,
        cache_dir=cfg.output.run_dir / FOLDER / "features",
    )  # fmt: skip
    print(f"\n{ranking!r}\n")
    folder = _folder(cfg)
    stem = f"ranking-{d.method}"
    paths = [ranking.to_json(folder / f"{stem}.json"), _write(folder / f"{stem}.md", ranking.to_markdown())]  # fmt: skip
    paths.append(_save_section(folder, stem, f"Encoder ranking ({d.method})", ranking.html_section(), ranking.to_dict()))  # fmt: skip
    print("Outputs:\n" + "\n".join(f"  {p}" for p in paths))
    print(_report_note(cfg))
    return EXIT_OK


def train_command(args: argparse.Namespace) -> int:
    """``medtransfer train``, then the comparison with scratch when ``--compare-to-scratch``."""
    if not getattr(args, "compare_to_scratch", False):
        return runs.train_command(args)
    cfg = runs._load(args.config, runs._overrides(args.overrides))
    _pretrained(cfg)  # before the (long) training
    code = runs.train_command(args)
    return compare(cfg) if code == EXIT_OK else code


def _pretrained(cfg: RunConfig) -> Any:
    """The config's candidate; a config without pretrained weights has nothing to compare."""
    import medtransfer as mt

    candidate = mt.diagnostics.as_candidate(cfg.model.encoder, **_defaults(cfg))
    if candidate.weights is None:
        raise ConfigError(
            "--compare-to-scratch: model.weights is null, nothing pretrained to compare "
            "(set model.weights: imagenet or a weight file)."
        )
    return candidate


_NOT_FOR_COMPARE = ("task", "seed", "run_dir", "device", "val_every")


def compare(cfg: RunConfig) -> int:
    """The comparison with scratch of a config's recipe on its held-out split."""
    import medtransfer as mt

    records, names = runs._records(cfg)
    train, val, test = runs._split(cfg, records)
    held_out = test or val
    if not held_out:
        raise ConfigError(
            "--compare-to-scratch needs held-out cases: data.split.fractions gives none."
        )
    num_classes = runs._num_classes(cfg, names, records)
    runs.learn_histogram(cfg, train)
    candidate = _pretrained(cfg)
    model_kwargs = cfg.model_kwargs(num_classes, None)
    for key in ("encoder_name", "num_classes", "weights", "in_channels", "spatial_dims", "conversion", "seed"):  # fmt: skip
        model_kwargs.pop(key, None)
    finetuner = {k: v for k, v in cfg.finetuner_kwargs().items() if k not in _NOT_FOR_COMPARE}
    strategies = runs._strategy(cfg)  # the run's strategy too: the same recipe in both arms
    finetuner["strategy"] = strategies[0] if len(strategies) == 1 else strategies
    d = cfg.diagnostics
    print(f"\nComparing with random initialisation: seeds {d.seeds}, label fractions "
          f"{d.label_fractions}, {len(train)} training and {len(held_out)} held-out cases")  # fmt: skip
    comparison = mt.diagnostics.compare_to_scratch(
        candidate, train, held_out, preset_factory(cfg, num_classes), task=cfg.data.task,
        num_classes=num_classes, class_names=names, seeds=tuple(d.seeds),
        label_fractions=tuple(d.label_fractions), finetuner=finetuner, model_kwargs=model_kwargs,
        run_dir=cfg.output.run_dir / FOLDER / "scratch-runs", device=cfg.training.device,
        n_resamples=cfg.evaluation.n_resamples, **cfg.fit_kwargs(),
    )  # fmt: skip
    print(f"\n{comparison!r}\n")
    folder = _folder(cfg)
    paths = [comparison.to_json(folder / "comparison.json")]
    paths.append(_save_section(folder, "comparison", "Pretrained vs scratch", comparison.html_section(), comparison.to_dict()))  # fmt: skip
    print("Outputs:\n" + "\n".join(f"  {p}" for p in paths))
    print(_report_note(cfg))
    return EXIT_OK


def shift_command(args: argparse.Namespace) -> int:
    """``medtransfer diagnose shift``: the domain shift from the training split to ``--target``."""
    cfg = runs._load(args.config, runs._overrides(args.overrides))
    import medtransfer as mt

    if not args.target.is_file():
        raise ConfigError(f"--target {args.target}: no such manifest (CSV, JSON or dataset.json).")
    records, names = runs._records(cfg)
    train, _, _ = runs._split(cfg, records)
    target = mt.data.load_manifest(args.target)  # labels are not needed (nor used)
    runs.learn_histogram(cfg, train)
    checkpoint = args.checkpoint
    best = cfg.output.run_dir / "checkpoints" / "best.pt"
    if checkpoint is None and best.is_file():
        checkpoint = best
    if checkpoint is not None:
        model, cfg = runs._trained_model(cfg, names, checkpoint, records)
        embed = {"model": model}
        preset: Any = runs._preset(cfg, names, records)
        source = f"the trained model ({checkpoint})"
    else:
        candidate = mt.diagnostics.as_candidate(cfg.model.encoder, **_defaults(cfg))
        embed = {"encoder": candidate}
        preset = preset_factory(cfg, runs._num_classes(cfg, names, records))
        source = f"{candidate.name} (no checkpoint yet)"
    print(f"Domain shift: {len(train)} training cases vs {len(target)} cases of {args.target}, "
          f"features of {source}")  # fmt: skip
    report = mt.diagnostics.domain_shift(
        train, target, preset, **embed, seed=cfg.training.seed, device=cfg.training.device,
        progress=True,
    )  # fmt: skip
    print(f"\n{report!r}")
    folder = _folder(cfg)
    stem = "shift-" + args.target.name.split(".")[0]
    title = f"Domain shift ({report.reference_name} → {report.target_name})"
    paths = [report.to_json(folder / f"{stem}.json"), _write(folder / f"{stem}.md", report.to_markdown())]  # fmt: skip
    paths.append(_save_section(folder, stem, title, report.html_section(), report.to_dict()))
    print("Outputs:\n" + "\n".join(f"  {p}" for p in paths))
    print(_report_note(cfg))
    return EXIT_OK
