"""Validate the domain-shift diagnostics on real anatomy: a model trained at one hospital, a second
hospital's scanner (issue 14).

Not a test. Data: nilearn's MNI152 T1 with its tissue maps made into subjects by
``benchmarks/anatomy.py`` at 3 mm: site A (training subjects, seed 0; held-out subjects, seed 1)
and site B (seed 2: a stronger bias field, a stronger gamma change, 2.5x the noise, 2x thicker
axial slices written on their own 6 mm grid, so the headers say so), NIfTI with a manifest.

1. A 2D EfficientNet-Lite0 (ImageNet) segmenter (background, GM, WM) is fine-tuned on A with the
   recipe of ``benchmarks/transfer_diagnostics.py``; Dice (GM/WM mean) on held-out A and on B,
   with the out-of-distribution detector of the training cases.
2. ``domain_shift(A_train, A_heldout)`` and ``domain_shift(A_train, B)`` with the trained model's
   encoder and with the ImageNet encoder: p-values, MMD², Fréchet, intensity W1, flag rates.
3. Adaptation on B without labels: AdaBN, TENT, histogram standardisation (landmarks of the A
   training images, a second training on A) and histogram + AdaBN; "recovered" is
   (Dice_adapted_B - Dice_B) / (Dice_A - Dice_B). AdaBN on held-out A checks it does no harm.
4. Ablation (``--no-ablation`` skips it): B's subjects with one factor of site B at a time
   (thick grid, bias field, gamma, noise), to see which part of the loss each method can win back.

Results go to ``--out`` (results.json, results.md, shift reports and a figure) and are quoted in
docs/diagnostics.md.

Usage:
    python benchmarks/domain_shift.py [--out outputs/domain-shift] [--quick] [--steps 150]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

import medtransfer as mt  # noqa: E402

try:
    from medtransfer.diagnostics import domain_shift
except ImportError:  # before the export lands
    from medtransfer.diagnostics.shift import domain_shift

_HERE = Path(__file__).resolve().parent
ENCODER = "tf_efficientnet_lite0"


def _sibling(name: str):
    """``benchmarks/<name>.py`` (benchmarks/ is not a package), loaded once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


#: One factor of site B at a time, on B's subjects (seed 2): (base site, thick grid, changes).
ABLATION = {
    "A, A's grid": ("A", False, {}), "A, B's thick grid": ("A", True, {}),
    "A + B's bias field": ("A", True, {"bias": 0.3}),
    "A + B's gamma": ("A", True, {"gamma": ((0.6, 0.7), (1.4, 1.6))}),
    "A + B's noise (2.5x)": ("A", True, {"noise_x": 2.5}),
    "B without its extra noise": ("B", True, {"noise_x": 1.0}),
}  # fmt: skip


@dataclass(frozen=True)
class Config:
    n_train: int = 8
    n_heldout: int = 6
    n_b: int = 6
    spacing: float = 3.0
    steps: int = 150
    tent_steps: int = 10
    batch_size: int = 16
    permutations: int = 1000
    n_resamples: int = 1000
    ablation_sets: int = len(ABLATION)


QUICK = Config(n_train=4, n_heldout=2, n_b=2, spacing=4.0, steps=2, tent_steps=2, batch_size=4,
               permutations=99, n_resamples=50, ablation_sets=2)  # fmt: skip


class Clock:
    """Wall and CPU seconds per stage, in order. CPU seconds (all threads of this process) tell
    whether the run had the machine: about 2x wall on an idle 2-core machine, about 1x or less
    when other jobs compete (and then inflated too: waiting threads spin)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start, cpu = time.perf_counter(), time.process_time()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu
        print(f"[{name}: {self.seconds[name]:.0f} s, CPU {self.cpu[name]:.0f} s]", flush=True)


def build_data(root: Path, cfg: Config) -> dict[str, list[dict]]:
    """Three manifests: A training (seed 0), A held-out (seed 1), B (seed 2, thick slices)."""
    anatomy = _sibling("anatomy")
    specs = {"A-train": (cfg.n_train, 0, "A"), "A-heldout": (cfg.n_heldout, 1, "A"),
             "B": (cfg.n_b, 2, "B")}  # fmt: skip
    data = {}
    for name, (n, seed, site) in specs.items():
        manifest = anatomy.write_tissue_task(root / name, n, seed=seed, spacing=cfg.spacing,
                                             site=site, thick_grid=site == "B")  # fmt: skip
        # Case ids unique over the three sets (each manifest numbers its subjects from 0).
        data[name] = [{**r, "case_id": f"{name}-{r['case_id']}"} for r in mt.data.load_manifest(manifest)]  # fmt: skip
    return data


def ablation_data(root: Path, cfg: Config) -> dict[str, list[dict]]:
    """The ABLATION sets: variants added to anatomy's site table (here only, not in anatomy.py)."""
    anatomy, data = _sibling("anatomy"), {}
    for i, (name, (base, thick, changes)) in enumerate(list(ABLATION.items())[: cfg.ablation_sets]):
        site = f"{base}{i}" if changes else base
        anatomy._SITE[site] = {**anatomy._SITE[base], **changes}
        anatomy.SITES = tuple(dict.fromkeys((*anatomy.SITES, site)))
        manifest = anatomy.write_tissue_task(root / f"ablation-{i}", cfg.n_b, seed=2, spacing=cfg.spacing,
                                             site=site, thick_grid=thick)  # fmt: skip
        data[name] = [{**r, "case_id": f"ablation{i}-{r['case_id']}"} for r in mt.data.load_manifest(manifest)]  # fmt: skip
    return data


def unlabelled(records: list[dict]) -> list[dict]:
    """What adaptation gets from a new site: images, no labels."""
    return [{"case_id": r["case_id"], "image": r["image"], "site": r["site"]} for r in records]


def preset_fn(histogram: dict | None = None) -> functools.partial:
    """transfer_diagnostics' segmentation preset (2D, 80x80 tiles, 8 per case), optionally with
    Nyul-Udupa standardisation; a partial, so a candidate fills in the encoder's input spec."""
    extra = {} if histogram is None else {"histogram": histogram}
    return functools.partial(mt.transforms.presets.mri, "segmentation", roi_size=(80, 80),
                             num_classes=3, num_samples=8, **extra)  # fmt: skip


def train(records: list[dict], preset: Any, cfg: Config, run_dir: Path) -> tuple[Any, tuple]:
    """The default recipe (FineTuner defaults, fixed steps) from ImageNet Lite0."""
    candidate = mt.diagnostics.as_candidate(ENCODER)
    recipe = _sibling("transfer_diagnostics")  # its light decoder
    model = candidate.build_model("segmentation", 3, seed=0, **recipe.model_kwargs(recipe.SEG))
    pair = candidate.preset(preset, model)
    tuner = mt.training.FineTuner(model, task="segmentation", batch_size=cfg.batch_size, seed=0,
                                  run_dir=run_dir, progress="quiet", device="cpu")  # fmt: skip
    tuner.fit(records, steps=cfg.steps, train_transform=pair[0], overwrite=True)
    return model.eval(), pair


def evaluate(
    model: Any, records: list[dict], pair: tuple, cfg: Config, detector: Any = None
) -> dict:
    """Dice (GM, WM, mean) with 95% CIs, per-case Dice and out-of-distribution flags."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mt.evaluation.OutOfDistributionWarning)
        report = mt.evaluation.evaluate_segmentation(
            model, records, pair, class_names=["GM", "WM"], postprocess=False, device="cpu",
            progress=False, n_resamples=cfg.n_resamples, batch_size=16, ood=detector,
        )  # fmt: skip
    est = {c: report.estimate("dice", c) for c in ("GM", "WM")}
    cases = [{"case_id": row["case_id"], "dice": (row["dice/GM"] + row["dice/WM"]) / 2,
              "ood_score": row.get("ood_score"), "ood": row.get("out_of_distribution")}
             for row in report.cases]  # fmt: skip
    flags = [c["ood"] for c in cases if c["ood"] is not None]
    return {
        "dice": (est["GM"]["value"] + est["WM"]["value"]) / 2,
        "GM": est["GM"], "WM": est["WM"], "cases": cases,
        "flag_rate": sum(flags) / len(flags) if flags else None,
    }  # fmt: skip


def shift(reference: list, target: list, preset: Any, cfg: Config, out: Path, name: str, **how) -> dict:  # fmt: skip
    """``domain_shift`` headline numbers; the whole report as JSON (and a figure for A->B)."""
    report = domain_shift(reference, target, preset, permutations=cfg.permutations, **how)
    report.to_json(out / f"shift-{name}.json")
    if name == "model-B":
        fig = report.plot()
        fig.savefig(out / "shift-model-B.png", dpi=90)
        with mt.io.atomic_path(out / "shift-model-B.md") as tmp:
            tmp.write_text(report.to_markdown(), encoding="utf-8")
    s = report.summary()
    s["acquisition_differences"] = [r["label"] for r in report.acquisition if r["differs"]]
    s["flagged"], s["seconds"] = report.flagged, report.seconds
    print(f"shift {name}: p {s['p_value']:.4f}, MMD² {s['mmd2']:.4g}, flagged {s['n_flagged']}/{s['n_target']}", flush=True)  # fmt: skip
    return s


def recovered(adapted: float, dice_a: float, dice_b: float) -> float | None:
    """Share of the A->B Dice loss an adaptation wins back (None when there is no loss)."""
    gap = dice_a - dice_b
    return None if gap <= 0.005 else (adapted - dice_b) / gap


def run(cfg: Config, out: Path, ablation: bool = True) -> dict[str, Any]:
    clock, res = Clock(), {"config": asdict(cfg)}
    with clock.stage("data"):
        data = build_data(out / "data", cfg)
    a_train, a_held, b = data["A-train"], data["A-heldout"], data["B"]
    with clock.stage("train on A"):
        model, pair = train(a_train, preset_fn(), cfg, out / "runs" / "baseline")
    with clock.stage("evaluate (+ OOD detector)"):
        emb = mt.evaluation.embed_records(model, a_train, pair)
        detector = mt.evaluation.OODDetector.fit(emb)
        base = {"A": evaluate(model, a_held, pair, cfg, detector),
                "B": evaluate(model, b, pair, cfg, detector)}  # fmt: skip
    res["baseline"] = base
    dice_a, dice_b = base["A"]["dice"], base["B"]["dice"]
    print(f"Dice: held-out A {dice_a:.3f}, B {dice_b:.3f}", flush=True)
    res["shift"] = {}
    with clock.stage("domain_shift (trained model)"):
        for name, target in (("A-heldout", a_held), ("B", b)):
            res["shift"][f"model-{name}"] = shift(a_train, target, pair, cfg, out, f"model-{name}", model=model)  # fmt: skip
    with clock.stage("domain_shift (ImageNet encoder)"):
        for name, target in (("A-heldout", a_held), ("B", b)):
            res["shift"][f"imagenet-{name}"] = shift(a_train, target, preset_fn(), cfg, out, f"imagenet-{name}", encoder=ENCODER)  # fmt: skip
    adapt: dict[str, dict] = {}
    with clock.stage("AdaBN"):
        adabn_b = mt.diagnostics.adapt_batchnorm(model, unlabelled(b), pair, batch_size=16)
        adabn_a = mt.diagnostics.adapt_batchnorm(model, unlabelled(a_held), pair, batch_size=16)
        adapt["AdaBN"] = {"A": evaluate(adabn_a, a_held, pair, cfg)["dice"],
                          "B": evaluate(adabn_b, b, pair, cfg)["dice"]}  # fmt: skip
    with clock.stage("TENT"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", mt.errors.MedTransferWarning)
        tent_b, log = mt.diagnostics.tent(model, unlabelled(b), pair, steps=cfg.tent_steps, return_log=True)  # fmt: skip
        adapt["TENT"] = {"A": None, "B": evaluate(tent_b, b, pair, cfg)["dice"], "log": log,
                         "warnings": [str(w.message) for w in caught]}  # fmt: skip
    with clock.stage("histogram standardisation (learn, train, evaluate)"):
        landmarks = mt.transforms.learn_histogram_landmarks(a_train, foreground="mean")
        hist_preset = preset_fn(landmarks)
        model_h, pair_h = train(a_train, hist_preset, cfg, out / "runs" / "histogram")
        adapt["histogram"] = {"A": evaluate(model_h, a_held, pair_h, cfg)["dice"],
                              "B": evaluate(model_h, b, pair_h, cfg)["dice"]}  # fmt: skip
        h_adabn = mt.diagnostics.adapt_batchnorm(model_h, unlabelled(b), pair_h, batch_size=16)
        adapt["histogram + AdaBN"] = {"A": None, "B": evaluate(h_adabn, b, pair_h, cfg)["dice"]}
        res["landmarks"] = landmarks
    with clock.stage("domain_shift (histogram model)"):
        res["shift"]["histogram-B"] = shift(a_train, b, pair_h, cfg, out, "histogram-B", model=model_h)  # fmt: skip
    for entry in adapt.values():
        entry["recovered"] = recovered(entry["B"], dice_a, dice_b)
    res["adaptation"] = adapt
    if ablation:
        with clock.stage("ablation: one factor of B at a time"):
            res["ablation"] = {}
            for name, records in ablation_data(out / "data", cfg).items():
                adabn = mt.diagnostics.adapt_batchnorm(model, unlabelled(records), pair, batch_size=16)  # fmt: skip
                res["ablation"][name] = {
                    "trained on A": evaluate(model, records, pair, cfg)["dice"],
                    "AdaBN": evaluate(adabn, records, pair, cfg)["dice"],
                    "histogram": evaluate(model_h, records, pair_h, cfg)["dice"],
                }  # fmt: skip
                print(f"ablation {name}: {res['ablation'][name]}", flush=True)
    res["seconds"], res["cpu_seconds"] = clock.seconds, clock.cpu
    return res


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and (abs(value) >= 1e4 or 0 < abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(est: dict) -> str:
    return f"{est['value']:.3f} ({est['low']:.3f}-{est['high']:.3f})"


def summary(res: dict[str, Any]) -> str:
    """Markdown: data, Dice and OOD flags, shift tests, adaptation, time."""
    cfg, base, shifts, adapt = res["config"], res["baseline"], res["shift"], res["adaptation"]
    lines = [
        "### Data", "",
        "| set | subjects | seed | site | grid |", "|---|---|---|---|---|",
        f"| A training | {cfg['n_train']} | 0 | A | {cfg['spacing']:g} mm isotropic |",
        f"| A held-out | {cfg['n_heldout']} | 1 | A | {cfg['spacing']:g} mm isotropic |",
        f"| B | {cfg['n_b']} | 2 | B | {cfg['spacing']:g} x {cfg['spacing']:g} x {2 * cfg['spacing']:g} mm |",
        "", "### Segmentation (trained on A, no adaptation)", "",
        "| evaluated on | Dice GM (95% CI) | Dice WM (95% CI) | Dice mean | OOD flagged |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for site, label in (("A", "held-out A"), ("B", "B")):
        r = base[site]
        n_flag = sum(bool(c["ood"]) for c in r["cases"])
        lines.append(f"| {label} | {_ci(r['GM'])} | {_ci(r['WM'])} | {r['dice']:.3f} | "
                     f"{n_flag}/{len(r['cases'])} ({_num(r['flag_rate'], 2)}) |")  # fmt: skip
    lines += ["", "### domain_shift (reference: A training cases)", "",
              "| encoder | target | p-value | shifted | MMD² | Fréchet | W1 (within A) | target flagged | A cross-fit flagged | acquisition differences | s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    names = {"model": "trained model", "imagenet": "ImageNet Lite0", "histogram": "trained, histogram preset"}  # fmt: skip
    for key, s in shifts.items():
        enc, target = key.split("-", 1)
        diffs = ", ".join(s["acquisition_differences"]) or "none"
        lines.append(
            f"| {names[enc]} | {target} | {_num(s['p_value'], 4)} | {'yes' if s['shifted'] else 'no'} | "
            f"{_num(s['mmd2'], 4)} | {_num(s['frechet'], 2)} | {_num(s['intensity_w1'], 4)} "
            f"({_num(s['intensity_w1_within_reference'], 4)}) | {s['n_flagged']}/{s['n_target']} | "
            f"{_num(s['reference_flag_rate'], 2)} | {diffs} | {s['seconds']:.0f} |"
        )  # fmt: skip
    dice_a, dice_b = base["A"]["dice"], base["B"]["dice"]
    lines += ["", "### Adaptation on B (no labels)", "",
              "| method | Dice held-out A | Dice B | recovered (target >= 0.5) |",
              "|---|---|---|---|",
              f"| none | {dice_a:.3f} | {dice_b:.3f} | – |"]  # fmt: skip
    for name, r in adapt.items():
        lines.append(f"| {name} | {_num(r['A'])} | {r['B']:.3f} | {_num(r['recovered'], 2)} |")
    warned = adapt.get("TENT", {}).get("warnings")
    if warned:
        lines += ["", "TENT warned: " + " / ".join(warned)]
    if res.get("ablation"):
        lines += ["", "### Ablation: one factor of site B at a time (B's subjects, seed 2)", "",
                  "| data | Dice, trained on A | after AdaBN | histogram-standardised model |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {k} | {v['trained on A']:.3f} | {v['AdaBN']:.3f} | {v['histogram']:.3f} |"
                  for k, v in res["ablation"].items()]  # fmt: skip
        lines.append(f"| B (all factors) | {dice_b:.3f} | {adapt['AdaBN']['B']:.3f} | {adapt['histogram']['B']:.3f} |")  # fmt: skip
    lines += ["", "### Time", "", f"{res.get('machine', '')}", "",
              "| stage | wall s | CPU s (all threads) |", "|---|---|---|"]  # fmt: skip
    cpu = res.get("cpu_seconds", {})
    lines += [f"| {k} | {v:.0f} | {_num(cpu.get(k), 0)} |" for k, v in res["seconds"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/domain-shift"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a 1-2 minute smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps of each training")
    parser.add_argument(
        "--no-ablation", action="store_true", help="skip the one-factor-at-a-time sets"
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    machine = f"medtransfer {mt.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"  # fmt: skip
    print(machine, flush=True)
    res = run(cfg, args.out, ablation=not args.no_ablation)
    res["seconds"]["total"] = time.perf_counter() - start
    res["cpu_seconds"]["total"] = time.process_time()
    res["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    res["machine"] = machine
    with mt.io.atomic_path(args.out / "results.json") as tmp:
        tmp.write_text(json.dumps(res, indent=1, default=str))
    text = summary(res)
    with mt.io.atomic_path(args.out / "results.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    print("\n" + text)
    print(f"Done in {res['seconds']['total']:.0f} s; results in {args.out}/results.json and results.md")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
