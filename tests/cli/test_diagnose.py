"""``medtransfer diagnose rank`` and ``train --compare-to-scratch`` on the tiny phantom project."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import save_file

import medtransfer as mt
from medtransfer.cli import main
from medtransfer.cli.config import load_config
from medtransfer.cli.diagnose import candidates
from tests.fixtures import write_tiny_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diagnose")
    torch.manual_seed(0)  # a "pretrained" resnet18: seeded weights in a file
    state = timm.create_model("resnet18").state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "resnet18.safetensors"))
    return folder, write_tiny_project(folder)


def test_listed_candidates_get_imagenet_and_only_the_own_encoder_the_weight_file(project):
    folder, config = project
    weights = str(folder / "resnet18.safetensors")
    cfg = load_config(config, {"model.weights": weights})
    found = {c.name: c.weights for c in candidates(cfg, ["resnet34", "resnet18:2.5d"])}
    assert found == {
        "resnet18 · 2D · resnet18.safetensors": weights,
        "resnet18 · 2D · random init": None,
        "resnet34 · 2D · ImageNet": "imagenet",  # not resnet18's file
        "resnet18 · 2.5D (3 slices) · resnet18.safetensors": weights,
    }


def test_candidates_follow_the_config(project):
    _, config = project
    cfg = load_config(config, {"preprocessing.context": 1, "diagnostics.candidates": ["resnet34"]})
    names = [c.name for c in candidates(cfg, ["resnet18:3d-acs"])]
    assert names == [
        "resnet18 · 2.5D (3 slices) · random init",  # the config's weights: null
        "resnet34 · 2.5D (3 slices) · ImageNet",  # a listed name means ImageNet
        "resnet18 · 3D acs · ImageNet",
    ]


def test_rank_writes_results_and_the_evaluation_report_gets_the_section(project, capsys):
    folder, config = project
    weights = str(folder / "resnet18.safetensors")
    args = ["--set", f"model.weights={weights}", "--set", "output.run_dir=runs/rank"]
    code = main(["diagnose", "rank", str(config), "--method", "h_score", "--max-samples", "200", *args])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = folder / "runs" / "rank"
    ranking = mt.diagnostics.Ranking.from_json(run_dir / "diagnostics" / "ranking-h_score.json")
    assert {r["candidate"] for r in ranking.rows} == {
        "resnet18 · 2D · resnet18.safetensors",
        "resnet18 · 2D · random init",
    }
    assert all(r["status"] == "ok" and r["n_samples"] <= 200 for r in ranking.rows)
    assert "Ranking by h_score" in out and "training cases" in out
    assert "when `medtransfer evaluate` writes it" in out
    assert (run_dir / "diagnostics" / "ranking-h_score.md").read_text().startswith("|")

    assert main(["train", str(config), *args]) == 0
    checkpoint = run_dir / "checkpoints" / "best.pt"
    assert main(["evaluate", str(config), "--checkpoint", str(checkpoint), *args]) == 0
    page = (run_dir / "evaluation" / "report.html").read_text()
    assert "<h2>Encoder ranking (h_score)</h2>" in page
    saved = json.loads((run_dir / "evaluation" / "report.json").read_text())
    assert [s["title"] for s in saved["sections"]] == ["Encoder ranking (h_score)"]


def test_compare_to_scratch_after_training(project, capsys):
    folder, config = project
    weights = str(folder / "resnet18.safetensors")
    args = ["--set", f"model.weights={weights}", "--set", "output.run_dir=runs/compare",
            "--set", "diagnostics.seeds=[0]", "--set", "training.steps=1"]  # fmt: skip
    assert main(["train", str(config), "--compare-to-scratch", *args]) == 0
    out = capsys.readouterr().out
    assert "Comparing with random initialisation: seeds [0]" in out
    result = mt.diagnostics.TransferComparison.from_json(
        folder / "runs" / "compare" / "diagnostics" / "comparison.json"
    )
    assert [(r["arm"], r["steps"]) for r in result.runs] == [("pretrained", 1), ("scratch", 1)]
    assert result.verdict().split(" ")[0] in ("pretraining", "no", "negative")


def test_compare_to_scratch_needs_pretrained_weights(project, capsys):
    _, config = project  # weights: null
    args = ["--set", "output.run_dir=runs/none", "--set", "training.steps=1"]
    assert main(["train", str(config), "--compare-to-scratch", *args]) == 2
    assert "nothing pretrained to compare" in capsys.readouterr().err
