"""Multi-label findings through the command: config fields, train -> evaluate -> predict on PNGs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medtransfer.cli import main
from medtransfer.cli.config import RunConfig, load_config
from medtransfer.errors import ConfigError

FINDINGS = ["opacity", "effusion", "cardiomegaly"]
BASE = {"manifest": "m.csv", "task": "classification", "findings": FINDINGS}


def test_findings_fields_reach_the_manifest_model_and_tuner():
    cfg = RunConfig.model_validate(
        {"data": {**BASE, "uncertain": "positive"}, "training": {"pos_weight": [1, 2, 3]}}
    )
    assert cfg.manifest_kwargs() == {
        "findings": FINDINGS,
        "uncertain": "positive",
        "missing": "ignore",
    }
    assert cfg.num_classes() == 3
    model = cfg.model_kwargs(3, None)
    assert model["multilabel"] is True and model["class_names"] == FINDINGS
    assert cfg.finetuner_kwargs()["pos_weight"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"data": {**BASE, "task": "segmentation"}}, "data.findings"),
        ({"data": {**BASE, "class_names": ["a", "b"]}}, "data.class_names"),
        ({"data": {**BASE, "findings": ["opacity", "macro"]}}, "data.findings"),
        ({"data": BASE, "model": {"num_classes": 2}}, "model.num_classes"),
        ({"data": BASE, "training": {"pos_weight": [1.0]}}, "training.pos_weight"),
        ({"data": BASE, "evaluation": {"threshold": {"efusion": 0.3}}}, "evaluation.threshold"),
        ({"data": {**BASE, "uncertain": "maybe"}}, "data.uncertain"),
    ],
)
def test_inconsistent_findings_fields_name_the_field(tmp_path, update, field):
    import yaml

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(update))
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(path)


def _chest(rng: np.random.Generator, findings: np.ndarray, size: int = 48) -> np.ndarray:
    """A radiograph-like 8-bit image: two dark lungs, a heart, bright marks for the findings."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.6 + rng.normal(0, 0.03, (size, size))
    for cx in (0.3, 0.7):
        image[((xx - cx) / 0.17) ** 2 + ((yy - 0.48) / 0.33) ** 2 < 1] -= 0.35
    width = 0.2 if findings[2] else 0.1
    image[((xx - 0.5) / width) ** 2 + ((yy - 0.62) / 0.14) ** 2 < 1] += 0.3
    image[((xx - 0.3) / 0.08) ** 2 + ((yy - 0.35) / 0.08) ** 2 < 1] += 0.3 * findings[0]
    image[(yy > 0.68) & (yy < 0.82) & (np.abs(xx - 0.7) < 0.15)] += 0.3 * findings[1]
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


CONFIG = """
data:
  manifest: data/manifest.csv
  task: classification
  findings: [opacity, effusion, cardiomegaly]
  split: {fractions: [0.5, 0.25, 0.25]}
preprocessing: {preset: xray, roi_size: [32, 32]}
model: {encoder: resnet18, weights: null}
training: {epochs: null, steps: 2, batch_size: 4, device: cpu}
evaluation: {threshold: youden, n_resamples: 20}
output: {run_dir: runs/cxr}
"""


def _project(folder: Path, n: int = 16) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "data" / "images").mkdir(parents=True)
    rows = ["case_id,image,patient_id,opacity,effusion,cardiomegaly"]
    for i in range(n):
        findings = np.array([i % 2, (i // 2) % 2, (i // 4) % 2])
        Image.fromarray(_chest(rng, findings)).save(folder / "data" / "images" / f"c{i:02d}.png")
        cells = [str(v) for v in findings]
        cells[1] = "-1" if i == 3 else "" if i == 6 else cells[1]
        rows.append(f"c{i:02d},images/c{i:02d}.png,p{i:02d},{','.join(cells)}")
    (folder / "data" / "manifest.csv").write_text("\n".join(rows) + "\n")
    config = folder / "cxr.yaml"
    config.write_text(CONFIG)
    return config


@pytest.mark.slow
def test_train_evaluate_predict_findings_from_png_files(tmp_path, capsys):
    config = _project(tmp_path)
    assert main(["train", str(config)]) == 0
    run = tmp_path / "runs" / "cxr"
    checkpoint = run / "checkpoints" / "best.pt"
    assert checkpoint.is_file()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"auroc", "auroc/opacity", "auroc/effusion"} <= set(metrics[-1])
    capsys.readouterr()

    assert main(["evaluate", str(config), "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "Thresholds (youden) chosen on 4 validation cases: opacity" in out
    for name in [*FINDINGS, "macro", "micro"]:
        assert f"AUROC {name} " in out
    report = json.loads((run / "evaluation" / "report.json").read_text())
    rows = [(r["metric"], r["class"]) for r in report["summary"]]
    assert ("auprc", "effusion") in rows and ("sensitivity", "micro") in rows
    assert set(report["metadata"]["threshold"]) == set(FINDINGS)

    images = sorted((tmp_path / "data" / "images").glob("*.png"))[:2]
    out_dir = tmp_path / "predictions"
    args = ["predict", "--checkpoint", str(checkpoint), "--input", *map(str, images)]
    assert main([*args, "--output", str(out_dir)]) == 0
    with (out_dir / "predictions.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["case_id"] for row in table] == ["c00", "c01"]
    assert {f"score/{n}" for n in FINDINGS} | {f"prediction/{n}" for n in FINDINGS} <= set(table[0])
    assert all(row[f"prediction/{n}"] in ("0", "1") for row in table for n in FINDINGS)


@pytest.mark.slow
def test_the_example_config_runs_on_the_sample_radiographs(tmp_path, capsys):
    config = Path(__file__).resolve().parents[2] / "configs" / "xray_findings_csv.yaml"
    run = tmp_path / "run"
    overrides = ["--set", f"output.run_dir={run}", "--set", "training.epochs=1"]
    assert main(["train", str(config), *overrides]) == 0
    assert "28 labelled cases" in capsys.readouterr().out
    checkpoint = run / "checkpoints" / "best.pt"
    assert main(["evaluate", str(run / "run_config.yaml"), "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "AUROC cardiomegaly" in out and "AUROC micro" in out
    saved = json.loads((run / "evaluation" / "report.json").read_text())
    assert saved["saliency"], "evaluation.saliency: true shows Grad-CAM overlays per finding"
