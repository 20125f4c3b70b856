"""Validate the transfer diagnostics on real anatomy: does the ranking predict fine-tuning, and
does pretraining help at small label budgets?

Not a test. Data: nilearn's MNI152 T1 with its tissue maps, made into distinct subjects by
``benchmarks/anatomy.py`` (smooth deformations, bias fields, contrast, noise; fixed seeds; written
as NIfTI with a CSV manifest), and two tasks:

- tissue segmentation (background, grey matter, white matter) at 3 mm, 2D/2.5D slices and 3D;
- lesion classification: 5-slice axial slabs at 2 mm, 48 x 48 voxels (96 mm) around white
  matter, label 1 when a synthetic white-matter lesion (semi-axes 3-6 mm) crosses the central
  slice (balanced; 128 slabs of 32 subjects).

For each task: ``rank_encoders`` scores every candidate (three real ImageNet encoders, random
inits, 2D vs 2.5D, inflate vs ACS for 3D) by each method; then every candidate is fine-tuned with
the same default recipe (``FineTuner`` defaults, ``tune_steps`` steps) and evaluated on
held-out subjects; Spearman's rho between score and fine-tuned metric is reported per method, with
the cost of ranking against the cost of fine-tuning. Then ``compare_to_scratch`` runs at several
label fractions. Results go to ``--out`` (JSON + Markdown) and are quoted in docs/diagnostics.md.

Usage:
    python benchmarks/transfer_diagnostics.py [--out outputs/transfer-diagnostics] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

import medtransfer as mt  # noqa: E402

_HERE = Path(__file__).resolve().parent


def _anatomy():
    spec = importlib.util.spec_from_file_location("anatomy", _HERE / "anatomy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["anatomy"] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Task:
    """One benchmark task: data sizes, candidates, preset and fine-tuning budget."""

    name: str
    task: str
    metric: str
    candidates: tuple[str, ...]
    methods: tuple[str, ...]
    steps: int  # compare_to_scratch: optimizer steps of every run
    tune_steps: int  # fine-tuning each ranked candidate (2D)
    steps_3d: int  # fine-tuning a 3D candidate
    batch_size: int
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]


LITES = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
SEG = Task(
    "tissue segmentation", "segmentation", "Dice (GM, WM mean)",
    candidates=(*LITES, "tf_efficientnet_lite0:random", "tf_efficientnet_lite0:2.5d",
                "tf_efficientnet_lite2:2.5d", "tf_efficientnet_lite0:3d-inflate",
                "tf_efficientnet_lite0:3d-acs"),
    methods=("logme", "h_score", "linear_probe"),
    steps=40, tune_steps=100, steps_3d=50, batch_size=16, fractions=(1.0, 0.25), seeds=(0, 1, 2),
)  # fmt: skip
CLS = Task(
    "lesion classification", "classification", "AUROC",
    candidates=(*LITES, "tf_efficientnet_lite0:random", "tf_efficientnet_lite1:random",
                "tf_efficientnet_lite0:2.5d", "tf_efficientnet_lite2:2.5d"),
    methods=("logme", "h_score", "leep", "linear_probe"),
    steps=80, tune_steps=150, steps_3d=0, batch_size=16, fractions=(1.0, 0.25), seeds=(0, 1, 2),
)  # fmt: skip


def build_data(out: Path, quick: bool) -> dict[str, tuple[list, list]]:
    """Write both datasets and split them by subject into train and test records."""
    anatomy = _anatomy()
    n_seg, n_cls = (4, 12) if quick else (12, 128)
    start = time.perf_counter()
    seg = mt.data.load_manifest(anatomy.write_tissue_task(out / "tissue", n_seg, seed=0, spacing=3.0))  # fmt: skip
    cls = mt.data.load_manifest(
        anatomy.write_lesion_task(
            out / "lesion", n_cls, seed=1, spacing=2.0, slab=5, crop=48, radius_mm=(3.0, 6.0)
        )
    )
    print(f"data: {n_seg} tissue subjects, {n_cls} lesion slabs in {time.perf_counter() - start:.0f} s")  # fmt: skip
    seg_train = n_seg * 2 // 3  # 8 training, 4 held-out subjects
    subjects = sorted({r["patient_id"] for r in cls})
    train_subjects = set(subjects[: len(subjects) * 5 // 8])
    return {
        "segmentation": (seg[:seg_train], seg[seg_train:]),
        "classification": (
            [r for r in cls if r["patient_id"] in train_subjects],
            [r for r in cls if r["patient_id"] not in train_subjects],
        ),
    }


def preset_for(task: Task):
    """A preset callable for every candidate: ``rank_encoders`` and ``Candidate.preset`` call it
    with the candidate's ``input_spec``, ``context`` and ``spatial_dims``."""

    def preset(*, input_spec: Any, context: int, spatial_dims: int):
        common = {"input_spec": input_spec, "context": context, "spatial_dims": spatial_dims}
        if task.task == "classification":
            return mt.transforms.presets.mri("classification", roi_size=(48, 48), **common)
        three_d = spatial_dims == 3
        return mt.transforms.presets.mri(
            "segmentation", roi_size=(48, 48, 48) if three_d else (80, 80), num_classes=3,
            num_samples=2 if three_d else 8, **common,
        )  # fmt: skip

    return preset


def model_kwargs(task: Task) -> dict[str, Any]:
    """A light U-Net decoder (as ``medtransfer demo``): on a CPU the time goes to the encoder."""
    return {"decoder_channels": (64, 32, 16, 16, 16)} if task.task == "segmentation" else {}


def fine_tune(task: Task, candidate, train: list, test: list, run_dir: Path) -> dict[str, Any]:
    """The default recipe (FineTuner defaults, fixed steps) and the held-out metric."""
    start = time.perf_counter()
    num_classes = 3 if task.task == "segmentation" else 1
    model = candidate.build_model(task.task, num_classes, seed=0, **model_kwargs(task))
    preset = candidate.preset(preset_for(task), model)
    three_d = candidate.spatial_dims == 3
    tuner = mt.training.FineTuner(
        model, task=task.task, batch_size=2 if three_d else task.batch_size, seed=0,
        run_dir=run_dir, progress="quiet", device="cpu",
    )  # fmt: skip
    tuner.fit(train, steps=task.steps_3d if three_d else task.tune_steps, train_transform=preset[0])
    if task.task == "segmentation":
        report = mt.evaluation.evaluate_segmentation(
            model, test, preset, class_names=["GM", "WM"], postprocess=False, device="cpu",
            progress=False, n_resamples=200, batch_size=16,
        )  # fmt: skip
        value = sum(report.estimate("dice", c)["value"] for c in ("GM", "WM")) / 2
    else:
        report = mt.evaluation.evaluate_classification(
            model, test, preset, device="cpu", progress=False, n_resamples=200
        )
        value = report.estimate("auroc")["value"]
    return {"metric": value, "seconds": time.perf_counter() - start}


def _samples(method: str, quick: bool) -> int:
    """Pixels or cases scored: the k-fold logistic-regression probe gets fewer (it is the slow
    reference: about a minute per candidate on 3000 pixel hypercolumns on 2 cores)."""
    if quick:
        return 600
    return 1000 if method == "linear_probe" else 3000


def run_task(task: Task, train: list, test: list, out: Path, quick: bool) -> dict[str, Any]:
    print(f"\n== {task.name}: {len(train)} training, {len(test)} held-out cases")
    candidates = [mt.diagnostics.as_candidate(c) for c in task.candidates]
    rankings, rank_seconds = {}, {}
    for method in task.methods:
        start = time.perf_counter()
        rankings[method] = mt.diagnostics.rank_encoders(
            candidates, train, preset_for(task), task=task.task, method=method,
            max_samples=_samples(method, quick), device="cpu", progress=False,
        )  # fmt: skip
        rank_seconds[method] = time.perf_counter() - start
        print(rankings[method])
    tuned = {}
    for candidate in candidates:
        result = fine_tune(task, candidate, train, test, out / "runs" / task.task / candidate.name.replace(" ", ""))  # fmt: skip
        tuned[candidate.name] = result
        print(f"fine-tuned {candidate.name}: {task.metric} {result['metric']:.3f} in {result['seconds']:.0f} s")  # fmt: skip
    metrics = {name: r["metric"] for name, r in tuned.items()}
    agreement = {m: rankings[m].agreement(metrics) for m in task.methods}
    tune_seconds = sum(r["seconds"] for r in tuned.values())
    for method in task.methods:
        a = agreement[method]
        print(f"{method}: Spearman rho {a.get('spearman_rho')} (n={a.get('n')}), top match {a.get('top_match')}, "
              f"ranking {rank_seconds[method]:.0f} s = {rank_seconds[method] / tune_seconds:.3f} of fine-tuning ({tune_seconds:.0f} s)")  # fmt: skip
    comparison = mt.diagnostics.compare_to_scratch(
        candidates[0], train, test, preset_for(task), task=task.task,
        num_classes=3 if task.task == "segmentation" else 1,
        class_names=["GM", "WM"] if task.task == "segmentation" else None,
        seeds=task.seeds[:1] if quick else task.seeds, steps=task.steps,
        label_fractions=task.fractions, finetuner={"batch_size": task.batch_size},
        model_kwargs=model_kwargs(task),
        run_dir=out / "runs" / f"{task.task}-scratch", device="cpu", progress=False,
        n_resamples=200 if quick else 2000,
    )  # fmt: skip
    print(comparison)
    return {
        "rankings": {m: r.to_dict() for m, r in rankings.items()},
        "rank_seconds": rank_seconds, "fine_tuned": tuned, "agreement": agreement,
        "fine_tune_seconds": tune_seconds, "comparison": comparison.to_dict(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/transfer-diagnostics"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--task", choices=("segmentation", "classification", "both"), default="both")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    start = time.perf_counter()
    print(f"medtransfer {mt.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    data = build_data(args.out / "data", args.quick)
    results: dict[str, Any] = {}
    for task in (SEG, CLS):
        if args.task in (task.task, "both"):
            quick_task = task if not args.quick else _quick(task)
            results[task.task] = run_task(quick_task, *data[task.task], args.out, args.quick)
    results["seconds"] = time.perf_counter() - start
    path = args.out / "results.json"
    with mt.io.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=1, default=str))
    with mt.io.atomic_path(args.out / "results.md") as tmp:
        tmp.write_text(summary(results), encoding="utf-8")
    print("\n" + summary(results))
    print(f"Done in {results['seconds']:.0f} s; results in {path} and results.md")
    return 0


def summary(results: dict[str, Any]) -> str:
    """Markdown tables: agreement and cost per method, then the comparison with scratch."""
    lines = []
    for name, r in results.items():
        if not isinstance(r, dict):
            continue
        lines += [f"### {name}", "", "| method | Spearman rho | n | top match | ranking s | share of fine-tuning |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for method, a in r["agreement"].items():
            rho = "n/a" if a.get("spearman_rho") is None else f"{a['spearman_rho']:.2f}"
            share = r["rank_seconds"][method] / r["fine_tune_seconds"]
            lines.append(f"| {method} | {rho} | {a.get('n')} | {a.get('top_match')} | "
                         f"{r['rank_seconds'][method]:.0f} | {share:.3f} |")  # fmt: skip
        lines += ["", "| candidate | fine-tuned metric | seconds |", "|---|---|---|"]
        lines += [f"| {c} | {t['metric']:.3f} | {t['seconds']:.0f} |" for c, t in r["fine_tuned"].items()]  # fmt: skip
        comparison = mt.diagnostics.TransferComparison.from_dict(r["comparison"])
        lines += ["", "| fraction | n_train | verdict | steps to match (share of scratch's) |",
                  "|---|---|---|---|"]  # fmt: skip
        for f in comparison.fractions:
            match = ", ".join("never" if m["step"] is None else f"{m['fraction']:.2f}" for m in comparison.steps_to_match(f))  # fmt: skip
            lines.append(f"| {f:g} | {comparison.n_train(f)} | {comparison.verdict(f)} | {match} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def _quick(task: Task) -> Task:
    from dataclasses import replace

    return replace(
        task, steps=2, tune_steps=2, steps_3d=1, batch_size=4, fractions=(1.0, 0.5), seeds=(0,)
    )


if __name__ == "__main__":
    raise SystemExit(main())
