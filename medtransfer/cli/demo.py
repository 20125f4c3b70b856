"""The offline demo behind ``make demo`` and ``medtransfer demo``: does ImageNet pretraining help?

On synthetic abdominal CT phantoms (``mt.data.synthetic``), with no network and on 2 CPU cores,
the same recipe is run twice, once from the offline ImageNet weights of EfficientNet-Lite0
(``tf_efficientnet_lite0``) and once from random initialisation (same seed, data, steps):

1. organ segmentation (liver, lesion, spleen, kidney): a 2D U-Net on axial slices, trained with
   ``mt.training.FineTuner`` and the ``mt.transforms.presets.ct`` preset, evaluated with
   ``mt.evaluation.evaluate_segmentation`` (Dice with 95% bootstrap CIs over patients);
2. tumour classification (does the patient have a liver lesion?): a 2.5D classifier trained on
   slices (3 neighbouring slices as channels, lesion-slice labels), evaluated per patient with
   ``mt.evaluation.evaluate_classification`` (AUROC with 95% CI; the patient's score is the mean
   of its slice probabilities).

Every number printed is computed by this run on patients that were not used for training.
The HTML reports (one per model, plus ``index.html`` comparing them) go to ``--out``.

Usage:
    medtransfer demo [--out outputs/demo] [--quick] [--seed N]
"""

from __future__ import annotations

import argparse
import html
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import medtransfer as mt
from medtransfer.cli.exit_codes import EXIT_OK
from medtransfer.cli.table import table

ENCODER = "tf_efficientnet_lite0"
ORGANS = ["liver", "lesion", "spleen", "kidney"]  # phantom labels 1..4
DECODER_CHANNELS = (64, 32, 16, 16, 16)  # a light U-Net decoder: CPU time goes to the encoder
INITS = {"imagenet": "imagenet", "random": None}  # shown name -> weights argument


@dataclass(frozen=True)
class Sizes:
    """How big the demo is: phantom shapes, patients per split, epochs."""

    seg_shape: tuple[int, int, int]
    seg_patients: tuple[int, int]  # train, test
    seg_epochs: int
    slices_per_case: int  # segmentation slices drawn per case and epoch
    cls_shape: tuple[int, int, int]  # finer in-plane: lesions are 15-45 mm
    cls_patients: tuple[int, int]
    cls_epochs: int
    n_resamples: int


FULL = Sizes((32, 32, 16), (16, 12), 40, 8, (64, 64, 16), (40, 40), 8, 2000)
QUICK = Sizes((32, 32, 8), (4, 3), 1, 2, (32, 32, 8), (6, 6), 1, 200)
LR = 3e-3  # peak learning rate (AdamW, warmup + cosine), the same for both initialisations


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``medtransfer demo``."""
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, < 1 min)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, weights and order")


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed arguments (``out``, ``quick``, ``seed``); returns ``EXIT_OK``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore", category=FutureWarning, module="monai")
    sizes = QUICK if args.quick else FULL
    start = time.perf_counter()
    found = mt.encoders.resolve_weights(ENCODER, "imagenet")  # fails early, saying how to fix
    print(f"medtransfer {mt.__version__} demo: {ENCODER} ImageNet weights ({found.source.kind}: "
          f"{found.path.name}) vs random initialisation, same recipe and seed {args.seed}")  # fmt: skip
    runs = args.out / "runs" / time.strftime("%Y%m%d-%H%M%S")
    rows: list[dict[str, Any]] = []
    reports: dict[str, Path] = {}
    _section("Organ segmentation (2D U-Net on axial slices)")
    rows += _segmentation(sizes, args.seed, runs, args.out, reports)
    _section("Tumour classification (2.5D slices -> patient score)")
    rows += _classification(sizes, args.seed, runs, args.out, reports)
    _section("Held-out patients: ImageNet vs random initialisation")
    print(table(rows, _COLUMNS))
    index = _write_index(args.out / "index.html", rows, reports, sizes)
    print(f"\nDone in {time.perf_counter() - start:.0f} s.")
    print(f"Report: {index.resolve()}")
    print(f"Per-model reports, runs and checkpoints: {args.out.resolve()}")
    return EXIT_OK


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def _phantoms(n: int, first: int, shape: tuple, seed: int, task: str) -> list[dict[str, Any]]:
    """Patients ``first .. first + n - 1`` (case i depends only on seed and i)."""
    cases = mt.data.synthetic.phantoms(first + n, task=task, seed=seed, shape=shape)
    return cases[first:]


def _finetuner(model: Any, task: str, run_dir: Path, seed: int, batch_size: int, **kw: Any) -> Any:
    return mt.training.FineTuner(
        model, task=task, lr=LR, batch_size=batch_size, seed=seed, run_dir=run_dir,
        progress="epoch", device="cpu", **kw,
    )  # fmt: skip


# ------------------------------------------------------------------------------- segmentation
def _segmentation(sizes: Sizes, seed: int, runs: Path, out: Path, reports: dict) -> list[dict]:
    import torch

    n_train, n_test = sizes.seg_patients
    train = _phantoms(n_train, 0, sizes.seg_shape, seed, "segmentation")
    test = _phantoms(n_test, n_train, sizes.seg_shape, seed, "segmentation")
    print(f"{n_train} training and {n_test} held-out phantoms of {sizes.seg_shape} voxels")
    preset = None
    rows = []
    for init, weights in INITS.items():
        torch.manual_seed(seed)  # the same decoder and head initialisation for both
        model = mt.models.create_segmenter(
            ENCODER, len(ORGANS) + 1, weights, decoder_channels=DECODER_CHANNELS
        )
        if preset is None:  # one preset (the pretrained encoder's normalisation) for both
            preset = mt.transforms.presets.ct(
                "segmentation", spatial_dims=2, roi_size=sizes.seg_shape[:2], window="abdomen",
                num_samples=sizes.slices_per_case, num_classes=len(ORGANS) + 1,
                input_spec=model.encoder.input_spec, seed=seed,
            )  # fmt: skip
        print(f"-- {init} initialisation")
        # 16 scans a step, all their slices: batch_size counts samples (slices), not scans
        batch = 16 * sizes.slices_per_case
        tuner = _finetuner(model, "segmentation", runs / f"segmentation-{init}", seed, batch)
        history = tuner.fit(train, epochs=sizes.seg_epochs, train_transform=preset[0])
        report = mt.evaluation.evaluate_segmentation(
            model, test, preset, class_names=ORGANS, postprocess=False, history=history,
            n_resamples=sizes.n_resamples, seed=seed, device="cpu", progress=False,
        )  # fmt: skip
        reports[f"segmentation-{init}"] = report.to_html(out / f"segmentation-{init}.html")
        for organ in ORGANS:
            rows.append(_row("segmentation", init, f"Dice {organ}", report.estimate("dice", organ)))
    return rows


# ------------------------------------------------------------------------------- classification
def _slice_records(cases: list[dict[str, Any]], pipeline: Any) -> list[dict[str, Any]]:
    """One record per axial slice: 3 neighbouring slices as channels, label = lesion in slice."""
    records = []
    for case in cases:
        sample = pipeline({"image": case["image"], "label": case["mask"]})
        lesion = (sample["label"] == ORGANS.index("lesion") + 1).flatten(1).any(1)
        for z in range(sample["image"].shape[0]):
            records.append({"image": sample["image"][z].as_tensor(), "label": int(lesion[z])})
    return records


def _classification(sizes: Sizes, seed: int, runs: Path, out: Path, reports: dict) -> list[dict]:
    import torch

    n_train, n_test = sizes.cls_patients
    first = sum(sizes.seg_patients)  # new patients, unseen by the segmentation models too
    train = _phantoms(n_train, first, sizes.cls_shape, seed, "classification")
    test = _phantoms(n_test, first + n_train, sizes.cls_shape, seed, "classification")
    positives = sum(c["label"] for c in test)
    print(
        f"{n_train} training and {n_test} held-out phantoms of {sizes.cls_shape} voxels "
        f"({positives} held-out with a lesion)"
    )
    rows = []
    slices = preset = None
    weights_bce = (1.0, 1.0)
    for init, weights in INITS.items():
        torch.manual_seed(seed)
        model = mt.models.create_classifier(ENCODER, num_classes=1, weights=weights, in_channels=3)
        if preset is None:
            common = {"spatial_dims": 2, "context": 1, "roi_size": sizes.cls_shape[:2],
                      "window": "liver", "input_spec": model.encoder.input_spec}  # fmt: skip
            _, slicer = mt.transforms.presets.ct("segmentation", **common)
            preset = mt.transforms.presets.ct("classification", **common)
            slices = _slice_records(train, slicer)
            positive = sum(s["label"] for s in slices)
            print(f"{len(slices)} training slices, {positive} with lesion")
            weights_bce = (1.0, (len(slices) - positive) / max(positive, 1))  # balance the loss
        print(f"-- {init} initialisation")
        run_dir = runs / f"classification-{init}"
        tuner = _finetuner(model, "classification", run_dir, seed, 32, class_weights=weights_bce)
        history = tuner.fit(slices, epochs=sizes.cls_epochs)
        report = mt.evaluation.evaluate_classification(
            model, test, preset, class_names=["no lesion", "lesion"], history=history,
            n_resamples=sizes.n_resamples, seed=seed, device="cpu", progress=False,
        )  # fmt: skip
        reports[f"classification-{init}"] = report.to_html(out / f"classification-{init}.html")
        rows.append(_row("classification", init, "AUROC (patient)", report.estimate("auroc")))
    return rows


# ------------------------------------------------------------------------------- output
def _row(task: str, init: str, metric: str, estimate: dict[str, Any]) -> dict[str, Any]:
    value, low, high = (estimate.get(k) for k in ("value", "low", "high"))
    text = "n/a" if value is None else f"{value:.3f}"
    if value is not None and low is not None and high is not None:
        text += f" ({low:.3f}-{high:.3f})"
    return {"task": task, "init": init, "metric": metric, "value (95% CI)": text,
            "n": estimate.get("n", "")}  # fmt: skip


_COLUMNS = ("task", "init", "metric", "value (95% CI)", "n")


def _write_index(path: Path, rows: list[dict], reports: dict[str, Path], sizes: Sizes) -> Path:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in _COLUMNS) + "</tr>"
        for r in rows
    )
    links = "".join(
        f'<li><a href="{html.escape(p.name)}">{html.escape(name)}</a></li>'
        for name, p in reports.items()
    )
    text = (
        "<!doctype html><html><head><meta charset='utf-8'><title>medtransfer demo</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:2px 10px;"
        "text-align:left}tr:nth-child(even){background:#f2f2f2}</style></head><body>"
        f"<h1>ImageNet vs random initialisation ({html.escape(ENCODER)})</h1>"
        f"<p>Synthetic CT phantoms ({sizes.seg_shape} for segmentation, {sizes.cls_shape} for "
        "classification); same recipe, seed and number of steps for both "
        "initialisations; metrics on held-out patients with 95% percentile-bootstrap intervals "
        f"over patients ({sizes.n_resamples} resamples). Generated by <code>medtransfer "
        f"demo</code> on {time.strftime('%Y-%m-%d %H:%M')}.</p>"
        f"<table><tr>{head}</tr>{body}</table><h2>Reports</h2><ul>{links}</ul></body></html>"
    )
    # imported here, not at the top: `medtransfer --help` builds the demo's options, needs no numpy
    from medtransfer.io.atomic import make_folder

    make_folder(path.parent)
    with mt.io.atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
