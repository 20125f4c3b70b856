"""Paired statistics, verdicts, steps to match and the TransferComparison result object."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medtransfer.diagnostics.comparison import (
    TransferComparison,
    auroc_macro,
    paired_bootstrap,
    steps_to_match,
    verdict,
)
from medtransfer.errors import ConfigError


def _scratch(seeds: int = 3, cases: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.4, 0.8, size=(seeds, cases))


# --------------------------------------------------------------------------- paired bootstrap
def test_constant_gain_gives_exact_difference_and_zero_width_interval():
    scratch = _scratch()
    out = paired_bootstrap(scratch + 0.1, scratch, n_resamples=300)
    diff = out["difference"]
    assert diff["value"] == pytest.approx(0.1, abs=1e-12)
    assert diff["high"] - diff["low"] < 1e-9
    assert diff["low"] == pytest.approx(0.1, abs=1e-9)
    assert out["n_seeds"] == 3 and out["n_cases"] == 30 and out["skipped"] == 0
    assert out["seed_differences"] == pytest.approx([0.1] * 3)
    assert out["pretrained"]["value"] == pytest.approx(scratch.mean() + 0.1)
    assert out["pretrained"]["low"] < out["pretrained"]["value"] < out["pretrained"]["high"]
    assert verdict(diff).startswith("pretraining helps (+0.10 Dice, 95% CI 0.10 to 0.10")


def test_constant_loss_is_negative_transfer():
    scratch = _scratch()
    diff = paired_bootstrap(scratch - 0.1, scratch, n_resamples=300)["difference"]
    assert diff["value"] == pytest.approx(-0.1)
    text = verdict(diff)
    assert text.startswith("negative transfer: the pretrained model is worse (-0.10 Dice")


def test_symmetric_noise_is_no_evidence():
    scratch = _scratch(cases=40)
    noise = np.tile(np.repeat([0.05, -0.05], 20), (3, 1))  # per-case +-0.05, mean exactly 0
    diff = paired_bootstrap(scratch + noise, scratch, n_resamples=500)["difference"]
    assert diff["value"] == pytest.approx(0.0, abs=1e-12)
    assert diff["low"] < 0 < diff["high"]
    assert verdict(diff).startswith("no evidence either way (")


def test_pairing_removes_a_shared_case_effect():
    rng = np.random.default_rng(1)
    case_effect = rng.uniform(0.1, 0.9, size=25)  # hard and easy cases, for both arms
    scratch = case_effect + rng.normal(0, 0.005, size=(3, 25))
    pretrained = case_effect + 0.03 + rng.normal(0, 0.005, size=(3, 25))
    paired = paired_bootstrap(pretrained, scratch, n_resamples=500)["difference"]
    unpaired = paired_bootstrap(pretrained, scratch, n_resamples=500, paired=False)["difference"]
    assert paired["value"] == pytest.approx(unpaired["value"])
    assert paired["high"] - paired["low"] < 0.2 * (unpaired["high"] - unpaired["low"])
    assert paired["low"] > 0  # the gain is found only when cases are paired
    assert unpaired["low"] < 0


def test_seeds_are_resampled_too():
    scratch = _scratch(seeds=4)
    gains = np.array([0.0, 0.1, 0.2, 0.3])[:, None]  # the gain depends on the seed
    diff = paired_bootstrap(scratch + gains, scratch, n_resamples=500)["difference"]
    assert diff["value"] == pytest.approx(0.15)
    assert diff["high"] - diff["low"] > 0.1  # seed variation widens the interval


def test_nan_cases_are_ignored_in_dice():
    scratch = _scratch(seeds=2, cases=6)
    pretrained = scratch + 0.05
    pretrained[:, 0] = np.nan  # no foreground anywhere in case 0 for the pretrained arm
    out = paired_bootstrap(pretrained, scratch, n_resamples=100)
    assert math.isfinite(out["difference"]["value"])
    assert out["pretrained"]["value"] == pytest.approx(np.nanmean(pretrained))


def test_auroc_is_recomputed_and_single_class_resamples_are_skipped():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 9 + [1])  # one positive: many resamples miss it
    scratch = rng.uniform(size=(2, 10))
    pretrained = scratch.copy()
    pretrained[:, 9] = 1.0  # the positive ranks first: AUROC 1
    out = paired_bootstrap(pretrained, scratch, labels, metric="auroc", n_resamples=300)
    assert out["pretrained"]["value"] == pytest.approx(1.0)
    expected = np.mean([auroc_macro(s, labels) for s in scratch])
    assert out["scratch"]["value"] == pytest.approx(expected)
    assert 0 < out["skipped"] < 300
    assert out["difference"]["value"] == pytest.approx(1.0 - expected)


def test_auroc_macro_matches_the_evaluation_metric():
    from medtransfer.evaluation import auroc

    rng = np.random.default_rng(3)
    scores, labels = rng.uniform(size=40), rng.integers(0, 2, 40)
    assert auroc_macro(scores, labels) == pytest.approx(auroc(scores, labels))
    probs, classes = rng.dirichlet(np.ones(3), size=40), rng.integers(0, 3, 40)
    assert auroc_macro(probs, classes) == pytest.approx(auroc(probs, classes))
    assert math.isnan(auroc_macro([0.1, 0.2], [1, 1]))


def test_multiclass_paired_bootstrap_runs():
    rng = np.random.default_rng(4)
    labels = np.arange(12) % 3
    scratch = rng.dirichlet(np.ones(3), size=(2, 12))
    out = paired_bootstrap(scratch, scratch, labels, metric="auroc", n_resamples=100)
    assert out["difference"]["value"] == 0.0 and out["difference"]["high"] == 0.0


def test_bad_inputs_raise_config_errors():
    with pytest.raises(ConfigError, match="same shape"):
        paired_bootstrap(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ConfigError, match="labels"):
        paired_bootstrap(np.zeros((2, 3)), np.zeros((2, 3)), metric="auroc")
    with pytest.raises(ConfigError, match="metric"):
        paired_bootstrap(np.zeros((2, 3)), np.zeros((2, 3)), metric="hd95")


# --------------------------------------------------------------------------- verdict, steps
def test_verdict_wording():
    helps = verdict({"value": 0.12, "low": 0.08, "high": 0.15, "confidence": 0.95})
    assert helps == "pretraining helps (+0.12 Dice, 95% CI 0.08 to 0.15)"
    none = verdict({"value": 0.01, "low": -0.03, "high": 0.05}, "auroc")
    assert none == "no evidence either way (+0.01 AUROC, 95% CI -0.03 to 0.05)"
    small = verdict({"value": 0.004, "low": 0.001, "high": 0.008})  # small: 3 decimals
    assert small == "pretraining helps (+0.004 Dice, 95% CI 0.001 to 0.008)"
    missing = verdict({"value": 0.2, "low": None, "high": None})
    assert missing.startswith("no evidence either way (+0.20 Dice, no 95% CI")


def test_steps_to_match():
    curve = [(10, 0.2), (20, float("nan")), (30, 0.62), (40, 0.7)]
    assert steps_to_match(curve, 0.6, 40) == (30, 0.75)
    assert steps_to_match(curve, 0.9, 40) == (None, None)
    assert steps_to_match(curve, float("nan"), 40) == (None, None)
    assert steps_to_match([(5, 0.9), (10, 0.3)], 0.5, 20, higher_is_better=False) == (10, 0.5)


# --------------------------------------------------------------------------- TransferComparison
def _runs(gain: float = 0.1, fractions=(1.0, 0.5), seeds=(0, 1)) -> list[dict]:
    rng = np.random.default_rng(0)
    runs = []
    for f in fractions:
        base = rng.uniform(0.3, 0.7, size=8) * f
        for seed in seeds:
            for arm, shift in (("pretrained", gain), ("scratch", 0.0)):
                values = base + shift + rng.normal(0, 0.005, 8)
                final = float(values.mean())
                runs.append({
                    "fraction": f, "arm": arm, "seed": seed, "n_train": int(20 * f),
                    "steps": 40, "metric": final,
                    "curve": [[10, final * 0.5], [20, final * 0.9], [40, final]],
                    "cases": {"case_id": [f"c{i}" for i in range(8)], "value": values.tolist()},
                })  # fmt: skip
    return runs


def _comparison(**kwargs) -> TransferComparison:
    return TransferComparison(
        "segmentation", "dice", "resnet18 · 2D · ImageNet", [0, 1], [0.5, 1.0], _runs(**kwargs),
        n_resamples=200, metadata={"budget": "steps=40 per run", "n_test": 8},
    )  # fmt: skip


def test_comparison_statistics_and_table():
    c = _comparison()
    assert c.fractions == [1.0, 0.5]  # largest first
    assert c.n_train(0.5) == 10 and c.n_train() == 20
    diff = c.difference()
    assert diff["value"] == pytest.approx(0.1, abs=0.01) and diff["n"] == 8
    assert diff["n_seeds"] == 2
    assert c.verdict().startswith("pretraining helps") and c.verdict(0.5).startswith("pretrain")
    match = c.steps_to_match()
    assert [m["seed"] for m in match] == [0, 1]
    assert all(m["step"] == 20 and m["fraction"] == 0.5 for m in match)
    rows = c.summary_rows()
    assert [r["fraction"] for r in rows] == [1.0, 0.5]
    assert rows[0]["steps_to_match"] == 0.5 and rows[0]["matched_seeds"] == "2/2"
    assert len(c.to_frame()) == 2
    text = repr(c)
    assert c.verdict() in text and "n_train" in text
    with pytest.raises(ConfigError, match="fraction"):
        c.difference(0.25)


def test_json_round_trip(tmp_path):
    c = _comparison(gain=-0.1)
    c.runs[0]["cases"]["value"][3] = float("nan")  # NaN per-case Dice survives as null
    path = c.to_json(tmp_path / "comparison.json")
    again = TransferComparison.from_json(path)
    assert again.task == c.task and again.seeds == c.seeds and again.fractions == c.fractions
    assert math.isnan(again.runs[0]["cases"]["value"][3])
    assert again.difference() == pytest.approx(c.difference(), nan_ok=True)
    assert again.verdict() == c.verdict()
    assert again.verdict().startswith("negative transfer")
    with pytest.raises(ConfigError, match="Cannot read"):
        TransferComparison.from_json(tmp_path / "missing.json")


def test_plots_html_and_report_section():
    from matplotlib.figure import Figure

    import medtransfer as mt

    c = _comparison()
    assert isinstance(c.plot_learning_curve(), Figure)
    fig = c.plot_convergence(0.5)
    assert isinstance(fig, Figure)
    assert len(fig.axes[0].get_lines()) == 6  # 2 seeds + mean, per arm
    runs = _runs(fractions=(1.0,))
    single = TransferComparison("segmentation", "dice", "x", [0, 1], [1.0], runs)
    assert isinstance(single.plot_learning_curve(), Figure)
    fragment = c.html_section()
    assert fragment.count("<img") == 2 and "pretraining helps" in fragment
    report = mt.evaluation.Report("segmentation")
    c.add_to(report)
    assert report.sections[0]["title"] == "Pretrained vs scratch"
    assert report.sections[0]["data"]["summary"][0]["fraction"] == 1.0


def test_a_single_seed_verdict_says_what_its_interval_leaves_out():
    from medtransfer.diagnostics.comparison import verdict

    text = verdict({"value": 0.005, "low": 0.004, "high": 0.006, "n_seeds": 1})
    assert text.startswith("pretraining helps") and "one seed" in text
    assert "one seed" not in verdict({"value": 0.005, "low": 0.004, "high": 0.006, "n_seeds": 3})
