"""``compare_to_scratch``: does pretraining help on *this* dataset? Train both arms and compare.

The same candidate is fine-tuned twice per seed and label fraction, once from its pretrained
weights and once from random initialisation, with the same recipe, preset (built once, from the
pretrained model: both arms see identical inputs and normalisation), data and optimizer-step
budget. The test cases give a convergence curve during training (validation every so many
epochs) and score the final model (never the best checkpoint: nothing is selected on the test
cases); :class:`~medtransfer.diagnostics.comparison.TransferComparison` holds the result.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtransfer.data.case_ids import case_ids
from medtransfer.diagnostics.candidates import Candidate, as_candidate, preset_identity
from medtransfer.diagnostics.comparison import TASK_METRICS, TransferComparison, auroc_macro
from medtransfer.errors import ConfigError

__all__ = ["compare_to_scratch", "nested_subsets"]

#: FineTuner arguments that compare_to_scratch sets itself.
_RESERVED = ("model", "task", "seed", "run_dir", "progress", "device", "val_every")


def _stratum(value: Any) -> str:
    """A hashable, sortable key of a label (int, tensor or multi-label list)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return repr(np.asarray(value).tolist())


def nested_subsets(
    records: Sequence[Mapping[str, Any]],
    fractions: Sequence[float],
    *,
    stratify: bool = False,
    label_key: str = "label",
    seed: int = 0,
) -> dict[float, list[int]]:
    """Indices of nested training subsets, one per label fraction (smaller inside larger).

    Each subset is a prefix of one seeded random order of the records, so the subset of a
    smaller fraction is contained in every larger one. With ``stratify`` (classification) each
    label has its own order and keeps ``round(fraction * count)`` cases, at least 1.

    Args:
        records: the training records.
        fractions: label fractions in (0, 1].
        stratify: keep each label's share (``records[i][label_key]``).
        label_key: the label's key for ``stratify``.
        seed: seed of the random order.

    Returns:
        ``{fraction: sorted record indices}`` (at least one index each).

    Example:
        >>> records = [{"label": i % 2} for i in range(10)]
        >>> subsets = nested_subsets(records, [1.0, 0.5, 0.2], stratify=True)
        >>> [len(subsets[f]) for f in (1.0, 0.5, 0.2)], set(subsets[0.2]) <= set(subsets[0.5])
        ([10, 6, 2], True)
    """
    _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    if stratify:
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            if record.get(label_key) is None:
                raise ConfigError(
                    f"training record {i} has no {label_key!r}: every training case needs a label."
                )
            groups.setdefault(_stratum(record[label_key]), []).append(i)
        orders = [rng.permutation(groups[key]).tolist() for key in sorted(groups)]
    else:
        orders = [rng.permutation(len(records)).tolist()]
    return {
        float(f): sorted(
            i for order in orders for i in order[: max(1, math.floor(f * len(order) + 0.5))]
        )  # fmt: skip
        for f in fractions
    }


def _check_fractions(fractions: Any) -> list[float]:
    values = list(fractions) if isinstance(fractions, Sequence) else []
    if not values or any(
        isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1 for f in values
    ):
        raise ConfigError(
            f"label_fractions={fractions!r}: give a non-empty list of fractions in (0, 1], "
            "e.g. (1.0, 0.5, 0.25)."
        )
    return sorted({float(f) for f in values}, reverse=True)


def _check_arguments(
    candidate: Candidate, train: Any, test: Any, task: str, num_classes: Any, seeds: Any,
    epochs: Any, steps: Any, evaluations: Any, finetuner: Mapping[str, Any],
) -> None:  # fmt: skip
    problems = []
    if candidate.weights is None:
        problems.append(
            f"candidate {candidate.name!r} has no pretrained weights (weights=None): give the "
            "pretrained arm, e.g. 'tf_efficientnet_lite0'; scratch is built from it"
        )
    if task not in TASK_METRICS:
        problems.append(f"task={task!r} must be one of {tuple(TASK_METRICS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        problems.append(f"num_classes={num_classes!r} must be an integer >= 1")
    for name, data in (("train", train), ("test", test)):
        records = isinstance(data, Sequence) and all(isinstance(r, Mapping) for r in data)
        if not records or not data:
            problems.append(f"{name} must be a non-empty list of records (dicts)")
    seed_list = list(seeds) if isinstance(seeds, Sequence) else []
    if (
        not seed_list
        or len(set(seed_list)) != len(seed_list)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seed_list)
    ):
        problems.append(f"seeds={seeds!r} must be a non-empty list of distinct integers")
    if (epochs is None) == (steps is None):
        problems.append("give exactly one of epochs= or steps= (the budget of both arms)")
    for name, value in (("epochs", epochs), ("steps", steps), ("evaluations", evaluations)):
        bad = isinstance(value, bool) or not isinstance(value, int) or value < 1
        if value is not None and bad:
            problems.append(f"{name}={value!r} must be an integer >= 1")
    reserved = sorted(set(finetuner) & set(_RESERVED))
    if reserved:
        problems.append(
            f"finetuner= must not set {reserved}: compare_to_scratch sets them (seeds=, "
            "run_dir=, progress=, device=; evaluations= decides val_every)"
        )
    if problems:
        raise ConfigError("compare_to_scratch: " + "; ".join(problems) + ".")


def _val_every(n_train: int, train_transform: Any, options: Mapping[str, Any], epochs: Any,
               steps: Any, evaluations: int) -> int:  # fmt: skip
    """Validate every so many epochs that a run has about ``evaluations`` validation points."""
    from medtransfer.training.data_loading import samples_per_record

    per_record = samples_per_record(train_transform) or 1
    batches = math.ceil(n_train * per_record / int(options.get("batch_size", 8)))
    per_epoch = max(1, math.ceil(batches / int(options.get("grad_accum", 1))))
    n_epochs = epochs if epochs is not None else math.ceil(steps / per_epoch)
    return max(1, math.ceil(n_epochs / evaluations))


def _per_case(task: str, report: Any) -> dict[str, Any]:
    """Per-case values of an evaluation report: mean foreground Dice, or scores and labels."""
    ids = [row["case_id"] for row in report.cases]
    if task == "segmentation":
        values = []
        for row in report.cases:
            dice = [float(v) for k, v in row.items() if k.startswith("dice/") and v is not None]
            finite = [v for v in dice if not math.isnan(v)]
            values.append(float(np.mean(finite)) if finite else math.nan)
        return {"case_id": ids, "value": values}
    scores = [
        row["score"] if "score" in row else [v for k, v in row.items() if k.startswith("score/")]
        for row in report.cases
    ]
    return {"case_id": ids, "score": scores, "label": [row["label"] for row in report.cases]}


def _final_metric(task: str, cases: Mapping[str, Any]) -> float:
    if task == "segmentation":
        finite = [v for v in cases["value"] if not math.isnan(v)]
        return float(np.mean(finite)) if finite else math.nan
    return auroc_macro(cases["score"], cases["label"])


def _run_arm(model: Any, subset: list, test: Sequence, presets: tuple, *, task: str, seed: int,
             run_dir: Path, resume: bool, budget: dict, val_every: int, options: dict,
             class_names: Any, device: str, progress: bool) -> dict[str, Any]:  # fmt: skip
    """Fine-tune one model, keep its validation curve, and score the final model on ``test``."""
    from medtransfer.evaluation import evaluate_classification, evaluate_segmentation
    from medtransfer.training import FineTuner

    tuner = FineTuner(model, task=task, seed=seed, run_dir=run_dir, device=device,
                      progress="epoch" if progress else "quiet", val_every=val_every,
                      **options)  # fmt: skip
    history = tuner.fit(subset, list(test), train_transform=presets[0], val_transform=presets[1],
                        resume="auto" if resume else False, **budget)  # fmt: skip
    name = tuner.metric.name
    curve = [[int(r["step"]), float(r[name])] for r in history.records if r.get(name) is not None]
    evaluate = evaluate_segmentation if task == "segmentation" else evaluate_classification
    extra = {"postprocess": False} if task == "segmentation" else {}
    # the report's own intervals are not used: few resamples keep it cheap
    report = evaluate(model, list(test), presets, class_names=class_names, n_resamples=20,
                      device=device, progress=False, **extra)  # fmt: skip
    cases = _per_case(task, report)
    steps = int(history.records[-1]["step"]) if history.records else 0
    return {"curve": curve, "curve_metric": name, "steps": steps, "cases": cases,
            "metric": _final_metric(task, cases)}  # fmt: skip


def compare_to_scratch(
    candidate: str | Candidate,
    train: Sequence[Mapping[str, Any]],
    test: Sequence[Mapping[str, Any]],
    preset: Any,
    *,
    task: str,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    steps: int | None = None,
    label_fractions: Sequence[float] = (1.0,),
    evaluations: int = 6,
    finetuner: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    device: str = "auto",
    progress: bool = True,
) -> TransferComparison:
    """Fine-tune from pretrained weights and from scratch, and say whether pretraining helps.

    For each label fraction (a nested, seeded subset of ``train``; stratified by label for
    classification), each seed and each arm, a :class:`~medtransfer.training.FineTuner` runs
    the same budget; ``test`` gives the convergence curve and scores the final models.

    Args:
        candidate: the pretrained arm (``"tf_efficientnet_lite0"``, ``"resnet18:2.5d"``, a
            :class:`Candidate` with a weight file...); scratch is the same with random weights.
        train, test: labelled records (``image``, ``label``, ``case_id``).
        preset: a ``(train, eval)`` pair or a callable such as ``functools.partial(
            mt.transforms.presets.ct, "segmentation", roi_size=(64, 64), num_classes=5)``,
            built once from the pretrained model and used by both arms.
        task, num_classes: ``"segmentation"`` (classes with background) or
            ``"classification"``, and the model's outputs.
        class_names: passed to the evaluation.
        seeds: training seeds (each seeds the model's new layers, data order, augmentation).
        epochs, steps: the budget, exactly one: ``steps`` gives the same number of optimizer
            steps at every fraction; ``epochs`` the same passes over each subset.
        label_fractions: shares of ``train`` to train on, in (0, 1].
        evaluations: about how many validation points each convergence curve gets.
        finetuner: more FineTuner arguments (``lr``, ``batch_size``, ``strategy``...).
        model_kwargs: more model arguments (``decoder_channels``...).
        run_dir: where the runs go (``<run_dir>/f<fraction>/<arm>/seed<k>``; an interrupted
            comparison resumes there, and a folder holding a comparison with other settings is
            a ``CheckpointError``); default a temporary folder, deleted afterwards.
        n_resamples, confidence: the paired bootstrap.
        device: "auto", "cpu", "cuda"...
        progress: print one line per run (and the FineTuner's epoch lines).

    Returns:
        A :class:`~medtransfer.diagnostics.comparison.TransferComparison`.

    Raises:
        ConfigError: bad arguments (the message names them).

    Example:
        >>> import functools, medtransfer as mt
        >>> from medtransfer.diagnostics.scratch import compare_to_scratch
        >>> cases = mt.data.synthetic.phantoms(6, shape=(32, 32, 8))
        >>> preset = functools.partial(mt.transforms.presets.ct, "segmentation", roi_size=(32, 32))
        >>> result = compare_to_scratch("resnet18", cases[:4], cases[4:], preset,
        ...     task="segmentation", num_classes=5, steps=20)  # doctest: +SKIP
        >>> result.verdict()  # doctest: +SKIP
        'pretraining helps (+0.12 Dice, 95% CI 0.08 to 0.15)'
    """
    pretrained = as_candidate(candidate)
    options = dict(finetuner or {})
    _check_arguments(pretrained, train, test, task, num_classes, seeds, epochs, steps,
                     evaluations, options)  # fmt: skip
    fractions = _check_fractions(label_fractions)
    arms = (("pretrained", pretrained), ("scratch", pretrained.with_weights(None)))
    subsets = nested_subsets(train, fractions, stratify=task == "classification")
    budget = {"steps": steps} if steps is not None else {"epochs": epochs}
    runs: list[dict[str, Any]] = []
    presets, extra = None, dict(model_kwargs or {})
    if "seed" in extra:
        raise ConfigError("model_kwargs may not set seed: each run's seed comes from seeds=.")
    start, total = time.perf_counter(), len(fractions) * len(seeds) * 2
    with contextlib.ExitStack() as stack:
        if run_dir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mt-scratch-")))
        else:
            root = Path(run_dir)
            settings = {"candidate": repr(pretrained), "task": task, "num_classes": num_classes,
                        "seeds": list(seeds), "fractions": fractions, "budget": budget,
                        "finetuner": repr(sorted(options.items())), "model": repr(sorted(extra.items())),
                        "evaluations": evaluations, "preset": preset_identity(preset), "train": case_ids(list(train)),
                        "test": case_ids(list(test))}  # fmt: skip
            _check_settings(root, settings)
        for f in fractions:
            subset = [dict(train[i]) for i in subsets[f]]
            for seed in seeds:
                for arm, cand in arms:
                    model = cand.build_model(task, num_classes, seed=seed, **extra)
                    if presets is None:  # from the first model, a pretrained one
                        presets = pretrained.preset(preset, model)
                    every = _val_every(len(subset), presets[0], options, epochs, steps,
                                       evaluations)  # fmt: skip
                    run = _run_arm(
                        model, subset, test, presets, task=task, seed=seed,
                        run_dir=root / f"f{f:g}" / arm / f"seed{seed}", resume=run_dir is not None,
                        budget=budget, val_every=every, options=options, class_names=class_names,
                        device=device, progress=progress,
                    )  # fmt: skip
                    head = {"fraction": f, "arm": arm, "seed": seed, "n_train": len(subset)}
                    runs.append(head | run)
                    if progress:
                        print(f"[{len(runs)}/{total}] fraction {f:g} ({len(subset)} cases), {arm}, "
                              f"seed {seed}: {TASK_METRICS[task]} {run['metric']:.3f} "
                              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
                    del model
    return TransferComparison(
        task, TASK_METRICS[task], pretrained.name, list(seeds), fractions,
        [{k: v for k, v in r.items() if k != "curve_metric"} for r in runs],
        curve_metric=runs[0]["curve_metric"], n_resamples=n_resamples, confidence=confidence,
        metadata=_metadata(budget, train, test, evaluations, device, pretrained),
    )  # fmt: skip


_SETTINGS = "comparison_settings.json"


def _check_settings(root: Path, settings: dict[str, Any]) -> None:
    """Runs in ``root`` are resumed only for the same comparison; other settings are refused."""
    import json

    from medtransfer.errors import CheckpointError
    from medtransfer.io.atomic import atomic_path, make_folder

    path = root / _SETTINGS
    settings = json.loads(json.dumps(settings, default=str))
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            saved = {}
        changed = sorted(k for k in settings if saved.get(k) != settings[k])
        if changed:
            raise CheckpointError(
                f"{root} holds the runs of a comparison with other settings ({', '.join(changed)} "
                "differ); resuming them would mix two experiments. Give another run_dir, or "
                "delete that folder to start over."
            )
        return
    make_folder(root)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=1), encoding="utf-8")


def _metadata(budget: dict, train: Sequence, test: Sequence, evaluations: int, device: str,
              candidate: Candidate) -> dict[str, Any]:  # fmt: skip
    import medtransfer

    return {
        "budget": ", ".join(f"{k}={v}" for k, v in budget.items()) + " per run",
        "n_train": len(train), "n_test": len(test), "evaluations": evaluations,
        "device": device, "encoder": candidate.encoder, "weights": str(candidate.weights),
        "medtransfer": getattr(medtransfer, "__version__", "?"),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
